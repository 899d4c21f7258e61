"""A real Redis for the rate-limit tests: TEST_REDIS_URL when set, else a `redis-server` we start.

The started server keeps nothing on disk (`--save ''`, no AOF), listens on a free loopback port
and lives in a scratch folder from `tempfile.mkdtemp()`, like the embedded PostgreSQL.
"""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.processes import free_port, require_program, terminate


def redis_server_binary() -> str:
    return require_program("redis-server", install_hint="apt-get install redis-server")


class RedisServer:
    """One `redis-server` process on 127.0.0.1; `stop()` takes it away like an outage would."""

    def __init__(self, binary: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="tasks-api-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                binary,
                "--save",
                "",
                "--appendonly",
                "no",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
            ],
            cwd=self.workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read() if self.process.stdout else ""
                pytest.fail(f"redis-server exited early:\n{output}")
            if ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        pytest.fail("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        terminate(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False
