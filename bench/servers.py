"""The servers under test as processes of their own, and their memory while they are measured.

Both run under uvicorn with the options `tasks-api serve` passes (factory, no access log, proxy
headers, `--workers N`), from a scratch folder so no `.env` is read, with only the environment
given here.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

import httpx

from tasks_api.migrations import PROJECT_ROOT

AppName = Literal["service", "ceiling"]
APP_TARGETS: dict[AppName, str] = {
    "service": "tasks_api.main:create_app",
    "ceiling": "bench.ceiling:create_app",
}
# Passed on from our own environment: what a shell would hand a server, nothing more.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def server_environment(settings: dict[str, str]) -> dict[str, str]:
    inherited = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    # The ceiling is imported from the checkout (the service is installed in the venv).
    return {**inherited, "PYTHONPATH": str(PROJECT_ROOT), **settings}


@dataclass
class AppServer:
    app: AppName
    workers: int
    port: int
    process: "subprocess.Popen[bytes]"
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        """SIGTERM to the server's process group (uvicorn and its workers), SIGKILL if stuck."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def start_server(
    app: AppName, *, workers: int, settings: dict[str, str], workdir: Path
) -> AppServer:
    """Start `uvicorn <app> --workers N` on a free loopback port and wait until /health answers."""
    port = _free_port()
    log_path = workdir / f"{app}-{workers}w.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        APP_TARGETS[app],
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--proxy-headers",
        "--log-level",
        "warning",
    ]
    log: IO[bytes]
    with log_path.open("wb") as log:
        # Our own interpreter and a fixed argument list, no shell.
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=workdir,
            env=server_environment(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, so stop() reaches the workers too.
            start_new_session=True,
        )
    server = AppServer(app, workers, port, process, log_path)
    _wait_until_healthy(server)
    return server


def _wait_until_healthy(server: AppServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.app} exited at start:\n{server.log_tail()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"{server.app} did not answer /health in {timeout:.0f} s:\n{server.log_tail()}"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PeakRss:
    """The largest total resident memory of a process and all its descendants (uvicorn's
    supervisor and workers) while the block runs, sampled from /proc every `interval` seconds."""

    def __init__(self, root_pid: int, interval: float = 0.1) -> None:
        self._root_pid = root_pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss", daemon=True)
        self.peak_bytes = 0

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(self._root_pid))
            if self._stop.wait(self._interval):
                return


def tree_rss_bytes(root_pid: int) -> int:
    return sum(_rss_bytes(pid) for pid in _process_tree(root_pid))


def _process_tree(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        # statm: size resident shared ... in pages.
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0
