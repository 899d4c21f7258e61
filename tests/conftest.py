"""Fixtures: real PostgreSQL (embedded, or TEST_DATABASE_URL), the app, clients and tokens.

Once per run: start or locate PostgreSQL, create a fresh database and build it with
`alembic upgrade head`. Per test: one connection with an outer transaction; each of the app's
requests runs in a savepoint on it, and everything is rolled back at the end.
"""

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import Executable, Result, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api import embedded_postgres
from tasks_api.config import Settings
from tasks_api.database import Connections, RequestDatabase, create_engine
from tasks_api.main import create_app
from tasks_api.migrations import upgrade_to_head
from tests.asgi import serving
from tests.statement_log import log_fetch
from tests.tokens import HS256_SECRET, ISSUER, JWKS_URL, KID, JwksServer, TokenFactory, public_jwk


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "auth_jwks_url": JWKS_URL,
        "better_auth_secret": HS256_SECRET,
        "auth_issuer": ISSUER,
        "auth_audience": ISSUER,
        "db_connect_timeout_seconds": 2,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]  # pydantic-settings init


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def raw_connection(url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to `url` (a test's own statements, outside the app)."""
    target = make_url(url)
    return await asyncpg.connect(
        user=target.username,
        password=target.password,
        host=target.query.get("host") or target.host,
        port=target.port,
        database=target.database,
    )


async def admin_execute(server_url: str, statement: str) -> None:
    connection = await raw_connection(server_url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server: TEST_DATABASE_URL when set, else an embedded one for this run."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    # Not under pytest's tmp_path: the server runs as another user when tests run as root, and a
    # concurrent pytest run may reset the permissions of pytest's temporary root.
    server = embedded_postgres.start(
        Path(tempfile.mkdtemp(prefix="tasks-api-test-")) / "data", keep_data=False
    )
    yield embedded_postgres.database_url(server)
    server.cleanup()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh database for this run, built by the Alembic migrations."""
    name = f"tasks_api_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"'))
    url = with_database(postgres_server_url, name)
    upgrade_to_head(make_settings(url))
    yield url
    asyncio.run(admin_execute(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture
async def empty_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A brand-new database with no schema at all, dropped after the test."""
    name = f"tasks_api_empty_{uuid.uuid4().hex[:12]}"
    await admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    yield with_database(postgres_server_url, name)
    await admin_execute(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def tokens(signing_key: Ed25519PrivateKey) -> TokenFactory:
    return TokenFactory(signing_key)


@pytest.fixture
def jwks_server(signing_key: Ed25519PrivateKey) -> JwksServer:
    return JwksServer(keys=[public_jwk(signing_key, KID)])


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One connection and an outer transaction that is rolled back after the test."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


def _sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    # The session's commits become savepoint releases inside the test's outer transaction.
    return async_sessionmaker(
        bind=connection,
        class_=AsyncSession,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    """For factories and for checking the database state after a request."""
    async with _sessionmaker(connection)() as session:
        yield session


@pytest.fixture
def app(settings: Settings, jwks_server: JwksServer) -> FastAPI:
    return create_app(settings, jwks_transport=jwks_server.transport)


def savepoint_connections(connection: AsyncConnection) -> Connections:
    """The app's connections as savepoints on the test's connection: each statement, and each
    atomic block, is released when it succeeds and rolled back when it fails (the app's commit
    and rollback), inside the test's rolled-back transaction."""

    @asynccontextmanager
    async def savepoint() -> AsyncIterator[AsyncConnection]:
        async with connection.begin_nested():
            yield connection

    async def run_in_savepoint(
        statement: Executable, parameters: Mapping[str, Any] | None
    ) -> Result[Any]:
        async with savepoint() as in_savepoint:
            return await in_savepoint.execute(statement, parameters)

    async def fetch_in_savepoint(sql: str, arguments: Sequence[Any]) -> list[asyncpg.Record]:
        # Compiled statements run on the asyncpg connection underneath, as in the app; the
        # savepoint (and the test's transaction) is already open on it.
        async with savepoint() as in_savepoint:
            log_fetch(connection, sql, arguments)
            driver = (await in_savepoint.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection has its asyncpg connection
            records: list[asyncpg.Record] = await driver.fetch(sql, *arguments)
            return records

    return Connections(run=run_in_savepoint, fetch=fetch_in_savepoint, transaction=savepoint)


def database_on(connection: AsyncConnection) -> RequestDatabase:
    """A request's database on the test's connection, for repositories tested on their own."""
    return RequestDatabase(savepoint_connections(connection))


@pytest.fixture
async def client(app: FastAPI, connection: AsyncConnection) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI, each request (read or write) in savepoints of the test's rolled-back
    transaction."""
    async with serving(app, connections=savepoint_connections(connection)) as client:
        yield client


@pytest.fixture
async def live_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real pool and real commits, for concurrency tests (use fresh user ids)."""
    async with serving(app) as client:
        yield client


@pytest.fixture
def owner_id() -> str:
    return "alice" + uuid.uuid4().hex[:8]


@pytest.fixture
def other_owner_id() -> str:
    return "bob" + uuid.uuid4().hex[:8]


@pytest.fixture
def owner_token(tokens: TokenFactory, owner_id: str) -> str:
    return tokens.ed25519(owner_id)


@pytest.fixture
def other_owner_token(tokens: TokenFactory, other_owner_id: str) -> str:
    return tokens.ed25519(other_owner_id)


@pytest.fixture
def owner_headers(owner_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {owner_token}"}


@pytest.fixture
def other_owner_headers(other_owner_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {other_owner_token}"}


@pytest.fixture
async def silent_server_port() -> AsyncIterator[int]:
    """A loopback TCP port that accepts connections and never answers: a hung server."""
    connections: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in connections:
        writer.close()
    server.close()


@pytest.fixture(scope="session")
def project_root() -> Path:
    return Path(__file__).resolve().parents[1]
