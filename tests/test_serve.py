"""`tasks-api serve`, the production command: no migration on start, stops cleanly on SIGTERM."""

import asyncio
import signal
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text

from tasks_api.database import create_engine
from tests.commands import ServerProcess, cli_environment, run_cli
from tests.conftest import admin_execute, make_settings, with_database
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


def test_serve_refuses_to_start_without_a_database_url(tmp_path: Path) -> None:
    environment = cli_environment(ENVIRONMENT="test", BETTER_AUTH_SECRET=HS256_SECRET)

    result = run_cli("serve", "--port", "0", cwd=tmp_path, environment=environment)

    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


async def test_serve_does_not_migrate_on_start(postgres_server_url: str, tmp_path: Path) -> None:
    name = f"tasks_api_serve_{uuid.uuid4().hex[:12]}"
    await admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    url = with_database(postgres_server_url, name)
    environment = cli_environment(
        ENVIRONMENT="production", DATABASE_URL=url, BETTER_AUTH_SECRET=HS256_SECRET
    )
    server = ServerProcess("serve", workdir=tmp_path, environment=environment)
    try:
        await asyncio.to_thread(server.start, "--host", "127.0.0.1")
        tables = await _public_tables(url)
    finally:
        server.stop(signal.SIGTERM)
        await admin_execute(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)')

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
