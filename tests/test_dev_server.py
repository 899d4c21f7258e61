"""The README's first command, for real: `tasks-api dev` on a fresh data folder, used over HTTP."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environment(data_dir: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "SSL_CERT_FILE", "TMPDIR")
    return {
        **{name: os.environ[name] for name in keep if name in os.environ},
        "DATA_DIR": str(data_dir),
    }


class DevServer:
    def __init__(self, data_dir: Path, workdir: Path) -> None:
        self.data_dir = data_dir
        self.workdir = workdir
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tasks_api.cli", "dev", "--port", str(self.port)],
            cwd=self.workdir,
            env=_environment(self.data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                self.process.stdout.read() if self.process.stdout else ""
            )
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self.banner()
            except httpx.TransportError:
                time.sleep(0.2)
        pytest.fail("the dev server did not answer /health within 60 s")

    def banner(self) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        lines: list[str] = []
        while "Try:" not in "".join(lines):
            lines.append(self.process.stdout.readline())
        return "".join(lines)

    def token(self, sub: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tasks_api.cli", "token", "--sub", sub],
            cwd=self.workdir,
            env=_environment(self.data_dir),
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's tmp_path: the embedded server runs as another user when tests run as root.
    path = Path(tempfile.mkdtemp(prefix="tasks-api-dev-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def test_dev_serves_every_endpoint_on_an_embedded_database_that_survives_a_restart(
    data_dir: Path, tmp_path: Path
) -> None:
    server = DevServer(data_dir, tmp_path)
    try:
        banner = server.start()
        assert f"{server.base_url}/docs" in banner
        assert "tasks-api token --sub" in banner
        headers = {"Authorization": f"Bearer {server.token('alice')}"}

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
