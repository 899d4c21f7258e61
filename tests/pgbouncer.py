"""A real PgBouncer in transaction pooling mode, in front of the test PostgreSQL.

Used two ways:
- by tests (`PgBouncer(...)` as a context manager), e.g. the 50-client load test;
- as the PgBouncer leg of CI: `uv run python -m tests.pgbouncer [pytest arguments]` starts an
  embedded PostgreSQL (or uses TEST_DATABASE_URL), puts PgBouncer in front of it and runs the whole
  suite through it, with TEST_DATABASE_URL pointing at PgBouncer and DATABASE_POOLER=pgbouncer.

Debian's package: `apt-get install pgbouncer` (the binary is /usr/sbin/pgbouncer).
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from sqlalchemy import make_url

from tasks_api import embedded_postgres
from tests.processes import free_port, require_program, terminate


def require_pgbouncer() -> str:
    # Debian installs it outside a normal user's PATH.
    return require_program(
        "pgbouncer", "/usr/sbin/pgbouncer", install_hint="apt-get install pgbouncer"
    )


class PgBouncer:
    """PgBouncer on a free loopback port, forwarding every database name to `server_url`'s server.

    `pool_size` is the number of server connections per database and user: small values make many
    client connections take turns on few server connections, which is what exposes clients that
    keep state (prepared statements) on a server connection.
    """

    def __init__(self, server_url: str, *, pool_size: int = 20, binary: str | None = None) -> None:
        self.server = make_url(server_url)
        self.pool_size = pool_size
        self.binary = binary or require_pgbouncer()
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="tasks-api-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str | None = None) -> str:
        """The same user, password and database as `server_url`, but through PgBouncer."""
        return self.server.set(
            host="127.0.0.1",
            port=self.port,
            database=database or self.server.database,
            query={},
        ).render_as_string(hide_password=False)

    def _config(self) -> str:
        # A Unix socket server (`?host=/dir`, the embedded one) or a TCP one.
        host = self.server.query.get("host") or self.server.host or "127.0.0.1"
        port = self.server.port or 5432
        return "\n".join(
            [
                "[databases]",
                # Any database name is forwarded: the tests create a fresh database per run.
                f"* = host={host} port={port}",
                "",
                "[pgbouncer]",
                "pool_mode = transaction",
                "listen_addr = 127.0.0.1",
                f"listen_port = {self.port}",
                "unix_socket_dir =",
                # Loopback and tests only: clients are not asked for a password. PgBouncer logs in
                # to PostgreSQL as the user in auth_file, with the password given there.
                "auth_type = trust",
                f"auth_file = {self.workdir / 'users.txt'}",
                f"default_pool_size = {self.pool_size}",
                "max_client_conn = 1000",
                "max_db_connections = 0",
                f"logfile = {self.workdir / 'pgbouncer.log'}",
                f"pidfile = {self.workdir / 'pgbouncer.pid'}",
                "log_connections = 0",
                "log_disconnections = 0",
                "",
            ]
        )

    def start(self) -> Self:
        user = self.server.username or "postgres"
        password = self.server.password or ""
        (self.workdir / "users.txt").write_text(f'"{user}" "{password}"\n')
        config = self.workdir / "pgbouncer.ini"
        config.write_text(self._config())
        command = [self.binary, "--quiet", str(config)]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root. It drops to the user that owns the server's socket
            # (who can reach it: the embedded server's own user), and writes its files as them.
            self.workdir.chmod(0o777)
            command[1:1] = ["--user", self._unprivileged_user()]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_until_listening()
        return self

    def _unprivileged_user(self) -> str:
        socket_dir = self.server.query.get("host")
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):
            owner = Path(socket_dir).owner()
            if owner != "root":
                return owner
        return "nobody"

    def _wait_until_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited at start: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port} within 15 s: {self.log()}")

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log"
        stderr = ""
        if self.process is not None and self.process.poll() is not None and self.process.stderr:
            stderr = self.process.stderr.read().decode(errors="replace")
        return stderr + (path.read_text(errors="replace") if path.exists() else "")

    def stop(self) -> None:
        if self.process is not None:
            terminate(self.process)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def run_suite_through_pgbouncer(pytest_args: list[str]) -> int:
    """The PgBouncer leg: the whole test suite with every connection going through PgBouncer."""
    server = None
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        server = embedded_postgres.start(
            Path(tempfile.mkdtemp(prefix="tasks-api-pgbouncer-leg-")) / "data", keep_data=False
        )
        server_url = embedded_postgres.database_url(server)
    try:
        with PgBouncer(server_url) as bouncer:
            environment = {
                **os.environ,
                "TEST_DATABASE_URL": bouncer.url(),
                "DATABASE_POOLER": "pgbouncer",
            }
            print(f"PgBouncer (transaction mode) on 127.0.0.1:{bouncer.port}", flush=True)
            command = [sys.executable, "-m", "pytest", *pytest_args]
            return subprocess.run(command, env=environment, check=False).returncode
    finally:
        if server is not None:
            server.cleanup()


if __name__ == "__main__":
    sys.exit(run_suite_through_pgbouncer(sys.argv[1:]))
