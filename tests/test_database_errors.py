"""Slow or unreachable database: a 503 problem with Retry-After, quickly, never a 500 or a hang."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import func, select

from tasks_api.database import DatabaseDep
from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings, raw_connection
from tests.polling import eventually
from tests.problems import assert_database_unavailable
from tests.tokens import JwksServer


async def _sleep_in_database(database: DatabaseDep, seconds: float) -> dict[str, str]:
    await database.execute(select(func.pg_sleep(seconds)))
    return {"slept": str(seconds)}


@asynccontextmanager
async def _serving_with_sleep_route(
    database_url: str, jwks_server: JwksServer, **settings: object
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    # One pooled connection, so that "given back" and "busy" are easy to observe.
    app = create_app(
        make_settings(database_url, db_pool_size=1, db_max_overflow=0, **settings),
        jwks_transport=jwks_server.transport,
    )
    # A route that exists only in these tests, running a statement of the caller's length.
    app.add_api_route("/test/sleep", _sleep_in_database)
    async with serving(app) as client:
        yield app, client


@pytest.fixture
async def slow_query_client(
    database_url: str, jwks_server: JwksServer
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with _serving_with_sleep_route(
        database_url, jwks_server, db_statement_timeout_seconds=0.5
    ) as served:
        yield served


async def _sleeping_backends(database_url: str) -> int:
    connection = await raw_connection(database_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return count


async def test_statement_past_the_timeout_returns_503_quickly_and_frees_its_connection(
    slow_query_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = slow_query_client

    started = time.monotonic()
    response = await client.get("/test/sleep", params={"seconds": 5})
    elapsed = time.monotonic() - started

    assert_database_unavailable(response)
    assert elapsed < 3
    # The pool has a single connection: the next request can only succeed if it was given back.
    assert (await client.get("/test/sleep", params={"seconds": 0})).status_code == 200
    assert app.state.engine.pool.checkedout() == 0


async def test_a_statement_past_the_timeout_is_cancelled_in_the_database_too(
    slow_query_client: tuple[FastAPI, httpx.AsyncClient], database_url: str
) -> None:
    _, client = slow_query_client

    response = await client.get("/test/sleep", params={"seconds": 30})

    assert_database_unavailable(response)
    # Not merely abandoned by the client: no server process is left sleeping on its behalf.
    assert await _sleeping_backends(database_url) == 0


async def test_a_full_pool_queues_for_a_bounded_time_then_answers_503(
    database_url: str, jwks_server: JwksServer
) -> None:
    async with _serving_with_sleep_route(
        database_url, jwks_server, db_pool_timeout_seconds=0.5, db_statement_timeout_seconds=10
    ) as (app, client):
        holder = asyncio.create_task(client.get("/test/sleep", params={"seconds": 2}))
        await eventually(lambda: app.state.engine.pool.checkedout() == 1)

        started = time.monotonic()
        queued = await client.get("/test/sleep", params={"seconds": 0})
        waited = time.monotonic() - started

        assert_database_unavailable(queued)
        assert 0.4 < waited < 1.5
        # The request holding the connection is unaffected, and afterwards the pool serves again.
        assert (await holder).status_code == 200
        assert (await client.get("/test/sleep", params={"seconds": 0})).status_code == 200


async def test_a_database_that_never_answers_gets_503_within_the_connect_timeout(
    silent_server_port: int, jwks_server: JwksServer
) -> None:
    # Accepts the TCP connection, then says nothing: a black-holed or overloaded server.
    url = f"postgresql://postgres@127.0.0.1:{silent_server_port}/postgres"
    settings = make_settings(url, db_connect_timeout_seconds=1)
    app = create_app(settings, jwks_transport=jwks_server.transport)
    app.add_api_route("/test/sleep", _sleep_in_database)

    async with serving(app) as client:
        started = time.monotonic()
        response = await client.get("/test/sleep", params={"seconds": 0})
        request_took = time.monotonic() - started
        started = time.monotonic()
        readiness = await client.get("/health/ready")
        readiness_took = time.monotonic() - started

    assert_database_unavailable(response)
    assert_database_unavailable(readiness)
    assert request_took < 2.5
    assert readiness_took < 2.5


async def test_pooled_connections_the_server_closed_are_replaced_without_an_error(
    empty_database_url: str, jwks_server: JwksServer
) -> None:
    # No pre-ping (the default): what protects this request is the check at checkout.
    settings = make_settings(empty_database_url, db_pool_size=2, db_max_overflow=0)
    assert settings.db_pool_pre_ping is False
    app = create_app(settings, jwks_transport=jwks_server.transport)
    admin = await raw_connection(empty_database_url)
    try:
        async with serving(app) as client:
            # Two connections in the pool, both idle.
            warm = await asyncio.gather(*(client.get("/health/ready") for _ in range(2)))
            assert [response.status_code for response in warm] == [200, 200]
            # The server ends them (a restart, a pooler dropping idle clients, Neon suspending).
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            await eventually(lambda: _no_other_backends(admin), what="backends to exit")

            after = [await client.get("/health/ready") for _ in range(3)]
    finally:
        await admin.close()

    assert terminated >= 1
    assert [response.status_code for response in after] == [200, 200, 200]


async def _no_other_backends(admin: asyncpg.Connection) -> bool:
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    count: int = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return count == 0
