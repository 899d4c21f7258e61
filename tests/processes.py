"""Servers that tests start as processes of their own: ports, programs, stopping."""

import os
import shutil
import socket
import subprocess
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_program(*candidates: str, install_hint: str) -> str:
    """The program's path. Missing: a skip on a laptop, but a failure in CI (`CI` is set), where
    `.ci/run` installs it."""
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    message = f"{candidates[0]} is not installed ({install_hint})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def terminate(process: "subprocess.Popen[Any]") -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
