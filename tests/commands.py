"""The real `tasks-api` command in tests: one-off runs, and servers on a free loopback port."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port

# DATABASE_POOLER: set by the PgBouncer leg (tests/pgbouncer.py) for servers started by tests too.
_INHERITED = ("PATH", "HOME", "LANG", "SSL_CERT_FILE", "TMPDIR", "DATABASE_POOLER")


def cli_environment(**settings: str) -> dict[str, str]:
    """Only what a shell would pass on, plus the given settings: no DATABASE_URL leaks in."""
    return {**{name: os.environ[name] for name in _INHERITED if name in os.environ}, **settings}


def run_cli(*args: str, cwd: Path, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `tasks-api <args>` to completion. `cwd` is a scratch folder, so no `.env` is read."""
    return subprocess.run(
        [sys.executable, "-m", "tasks_api.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class ServerProcess:
    def __init__(self, command: str, *, workdir: Path, environment: dict[str, str]) -> None:
        self.command = command
        self.workdir = workdir
        self.environment = environment
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self, *extra_args: str) -> None:
        """Start `tasks-api <command> --port N` and wait until /health answers."""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tasks_api.cli",
                self.command,
                "--port",
                str(self.port),
                *extra_args,
            ],
            cwd=self.workdir,
            env=self.environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"`tasks-api {self.command}` exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        pytest.fail(f"`tasks-api {self.command}` did not answer /health within 60 s")

    def read_until(self, marker: str) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        lines: list[str] = []
        while marker not in "".join(lines):
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
        return "".join(lines)

    def output(self) -> str:
        assert self.process is not None
        assert self.process.stdout is not None
        return self.process.stdout.read()

    def stop(self, signal_number: int = signal.SIGINT) -> int:
        """Signal the whole process group and return the server's exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal_number)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode
