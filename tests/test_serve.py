"""`tasks-api serve`, the production command: no migration on start, stops cleanly on SIGTERM."""

import asyncio
import os
import signal
import uuid
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import text

from tasks_api.database import create_engine
from tasks_api.migrations import upgrade_to_head
from tests.commands import ServerProcess, cli_environment, run_cli
from tests.conftest import make_settings, raw_connection
from tests.polling import eventually
from tests.tokens import HS256_SECRET, OMIT, TokenFactory


def test_serve_answers_requests_and_exits_cleanly_on_sigterm(
    database_url: str, tokens: TokenFactory, tmp_path: Path
) -> None:
    environment = cli_environment(
        ENVIRONMENT="production", DATABASE_URL=database_url, BETTER_AUTH_SECRET=HS256_SECRET
    )
    server = ServerProcess("serve", workdir=tmp_path, environment=environment)
    try:
        server.start("--host", "127.0.0.1", "--workers", "1")
        headers = {"Authorization": f"Bearer {tokens.hs256('serve-user', iss=OMIT, aud=OMIT)}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as api:
            assert api.get("/health/ready").status_code == 200
            created = api.post("/api/tasks", json={"title": "From production"})
            assert created.status_code == 201
            assert api.delete(created.headers["location"]).status_code == 204
    finally:
        exit_code = server.stop(signal.SIGTERM)

    # uvicorn shuts down gracefully, then re-raises the signal it caught, as a process should.
    assert exit_code == -signal.SIGTERM
    output = server.output()
    assert "Traceback" not in output
    assert "stopped; database pool disposed" in output
    # One structured line per request from the app; uvicorn's own access log is off.
    assert '"path": "/api/tasks"' in output
    assert '"POST /api/tasks HTTP/1.1" 201' not in output


async def _other_backends(connection: asyncpg.Connection, *, waiting_on_a_lock: bool) -> int:
    """Server processes connected to this database, but for the test's own."""
    # Within a transaction PostgreSQL keeps showing the activity it saw first: look again.
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    count: int = await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND (NOT $1 OR wait_event_type = 'Lock')",
        waiting_on_a_lock,
    )
    return count


async def test_sigterm_lets_a_slow_request_finish_then_disposes_the_pool(
    empty_database_url: str, tokens: TokenFactory, tmp_path: Path
) -> None:
    settings = make_settings(empty_database_url)
    await asyncio.to_thread(upgrade_to_head, settings)
    environment = cli_environment(
        ENVIRONMENT="production", DATABASE_URL=empty_database_url, BETTER_AUTH_SECRET=HS256_SECRET
    )
    server = ServerProcess("serve", workdir=tmp_path, environment=environment)
    await asyncio.to_thread(server.start, "--host", "127.0.0.1")
    assert server.process is not None
    headers = {"Authorization": f"Bearer {tokens.hs256('draining', iss=OMIT, aud=OMIT)}"}
    database = await raw_connection(empty_database_url)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as api:
            created = await api.post("/api/tasks", json={"title": "before"})
            task_id = uuid.UUID(created.json()["id"])
            async with database.transaction():
                # Holding the row makes the PATCH below wait inside the database: a slow request.
                await database.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task_id)
                slow = asyncio.create_task(
                    api.patch(f"/api/tasks/{task_id}", json={"title": "after"})
                )

                async def request_waits_on_the_row() -> bool:
                    return await _other_backends(database, waiting_on_a_lock=True) > 0

                await eventually(request_waits_on_the_row)

                os.killpg(server.process.pid, signal.SIGTERM)
                await asyncio.sleep(1)
                # Draining: the process waits for the request instead of cutting it off.
                assert server.process.poll() is None
                assert not slow.done()
            response = await slow  # the row is free: the request completes

        exit_code = await asyncio.to_thread(server.process.wait, 30)
        stored = await database.fetchval("SELECT title FROM tasks WHERE id = $1", task_id)
        # PgBouncer keeps its own server connections open by design; only a direct one shows
        # that the service closed its pool.
        leftover = 0
        if not settings.uses_pgbouncer:
            leftover = await _other_backends(database, waiting_on_a_lock=False)
    finally:
        await database.close()
        server.stop(signal.SIGKILL)

    assert response.status_code == 200
    assert response.json()["title"] == "after"
    assert stored == "after"
    assert exit_code == -signal.SIGTERM
    assert "stopped; database pool disposed" in server.output()
    assert leftover == 0


def test_serve_runs_web_concurrency_workers_each_with_its_own_pool(
    database_url: str, tmp_path: Path
) -> None:
    environment = cli_environment(
        ENVIRONMENT="production",
        DATABASE_URL=database_url,
        BETTER_AUTH_SECRET=HS256_SECRET,
        WEB_CONCURRENCY="2",
    )
    server = ServerProcess("serve", workdir=tmp_path, environment=environment)
    try:
        server.start("--host", "127.0.0.1")
        assert httpx.get(f"{server.base_url}/health/ready", timeout=10).status_code == 200
    finally:
        exit_code = server.stop(signal.SIGTERM)

    output = server.output()
    # uvicorn's process manager stops every worker gracefully, then exits 0 itself.
    assert exit_code == 0
    assert output.count('"message": "started (production)"') == 2, output
    assert output.count('"message": "stopped; database pool disposed"') == 2, output


def test_serve_refuses_to_start_without_a_database_url(tmp_path: Path) -> None:
    environment = cli_environment(ENVIRONMENT="test", BETTER_AUTH_SECRET=HS256_SECRET)

    result = run_cli("serve", "--port", "0", cwd=tmp_path, environment=environment)

    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


async def test_serve_does_not_migrate_on_start(empty_database_url: str, tmp_path: Path) -> None:
    environment = cli_environment(
        ENVIRONMENT="production", DATABASE_URL=empty_database_url, BETTER_AUTH_SECRET=HS256_SECRET
    )
    server = ServerProcess("serve", workdir=tmp_path, environment=environment)
    try:
        await asyncio.to_thread(server.start, "--host", "127.0.0.1")
        tables = await _public_tables(empty_database_url)
    finally:
        server.stop(signal.SIGTERM)

    assert tables == set()


async def _public_tables(url: str) -> set[str]:
    engine = create_engine(make_settings(url))
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            )
            return {row.tablename for row in rows}
    finally:
        await engine.dispose()
