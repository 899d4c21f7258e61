"""The README's first command, for real: `tasks-api dev` on a fresh data folder, used over HTTP."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.commands import ServerProcess, cli_environment, run_cli


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's tmp_path: the embedded server runs as another user when tests run as root.
    path = Path(tempfile.mkdtemp(prefix="tasks-api-dev-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def _token(sub: str, workdir: Path, environment: dict[str, str]) -> str:
    result = run_cli("token", "--sub", sub, cwd=workdir, environment=environment)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_dev_serves_every_endpoint_on_an_embedded_database_that_survives_a_restart(
    data_dir: Path, tmp_path: Path
) -> None:
    environment = cli_environment(DATA_DIR=str(data_dir))
    server = ServerProcess("dev", workdir=tmp_path, environment=environment)
    try:
        server.start()
        banner = server.read_until("Try:")
        assert f"{server.base_url}/docs" in banner
        assert "tasks-api token --sub" in banner
        headers = {"Authorization": f"Bearer {_token('alice', tmp_path, environment)}"}

        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as api:
            assert api.get("/health/ready").json() == {"status": "ok"}
            assert api.get("/api/me").json()["id"] == "alice"
            created = api.post("/api/tasks", json={"title": "Survives restarts 🎉"})
            assert created.status_code == 201
            task_url = created.headers["location"]
            assert api.put(task_url, json={"title": "Replaced"}).json()["version"] == 2
            assert api.patch(task_url, json={"priority": "high"}).json()["priority"] == "high"
            assert api.patch(f"{task_url}/complete").json()["completed"] is True
            assert api.get(task_url).json()["version"] == 4
            doomed = api.post("/api/tasks", json={"title": "Short-lived"}).headers["location"]
            assert api.delete(doomed).status_code == 204
            assert api.get("/docs").status_code == 200
        server.stop()

        server.start()
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as api:
            listed = api.get("/api/tasks").json()
        assert [(task["title"], task["completed"]) for task in listed] == [("Replaced", True)]
        assert (data_dir / "postgres" / "PG_VERSION").exists()
    finally:
        server.stop()
