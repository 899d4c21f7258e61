"""The real `tasks-api` command, run as a subprocess with an environment the test controls."""

import asyncio
import stat
import subprocess
from pathlib import Path

import jwt
import pytest
from sqlalchemy import text

from tasks_api.config import Settings
from tasks_api.database import create_engine
from tasks_api.main import create_app
from tests.asgi import serving
from tests.commands import cli_environment, run_cli
from tests.conftest import make_settings


def _run_cli(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cwd=cwd, environment=cli_environment(**settings))


def _issue_token(data_dir: Path) -> str:
    result = _run_cli(
        "token",
        "--sub",
        "alice",
        "--email",
        "a@x.io",
        "--name",
        "Alice",
        "--ttl",
        "15m",
        cwd=data_dir,
        DATA_DIR=str(data_dir),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_token_prints_a_jwt_signed_with_the_development_secret(tmp_path: Path) -> None:
    token = _issue_token(tmp_path)

    secret_file = tmp_path / "dev-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    claims = jwt.decode(token, secret_file.read_text().strip(), algorithms=["HS256"])
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert (claims["sub"], claims["email"], claims["name"]) == ("alice", "a@x.io", "Alice")
    assert claims["exp"] - claims["iat"] == 900


async def test_development_token_is_accepted_by_the_app(tmp_path: Path, database_url: str) -> None:
    token = await asyncio.to_thread(_issue_token, tmp_path)
    settings = Settings(
        _env_file=None, environment="development", data_dir=tmp_path, database_url=database_url
    )
    app = create_app(settings)

    async with serving(app) as client:
        response = await client.get("/api/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json() == {"id": "alice", "email": "a@x.io", "name": "Alice"}


@pytest.mark.parametrize("ttl", ["0", "15x", "-5m", "1.5h"])
def test_token_refuses_an_unusable_ttl(tmp_path: Path, ttl: str) -> None:
    result = _run_cli(
        "token", "--sub", "alice", f"--ttl={ttl}", cwd=tmp_path, DATA_DIR=str(tmp_path)
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert "--ttl" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_refuses_to_run_in_production(tmp_path: Path) -> None:
    result = _run_cli(
        "token",
        "--sub",
        "alice",
        cwd=tmp_path,
        DATA_DIR=str(tmp_path),
        ENVIRONMENT="production",
        AUTH_JWKS_URL="https://app.example.com/api/auth/jwks",
        DATABASE_URL="postgresql://user:pw@db.example.com/tasks",
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert "production" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dev-secret").exists()


def test_migrate_with_a_non_postgres_url_fails_with_one_line_naming_the_variable(
    tmp_path: Path,
) -> None:
    result = _run_cli("migrate", cwd=tmp_path, DATA_DIR=str(tmp_path), DATABASE_URL="mysql://x/y")

    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr


async def test_migrate_builds_the_schema_of_an_empty_database(
    tmp_path: Path, empty_database_url: str
) -> None:
    result = await asyncio.to_thread(
        _run_cli, "migrate", cwd=tmp_path, DATA_DIR=str(tmp_path), DATABASE_URL=empty_database_url
    )

    assert result.returncode == 0, result.stderr
    assert "latest migration" in result.stdout
    engine = create_engine(make_settings(empty_database_url))
    try:
        async with engine.connect() as connection:
            tables = await connection.scalars(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            )
            assert set(tables) == {"alembic_version", "idempotency_keys", "tasks"}
    finally:
        await engine.dispose()
    # The given database was used: no embedded server was started under DATA_DIR.
    assert not (tmp_path / "postgres").exists()
