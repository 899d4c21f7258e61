"""Drive a server with wrk (Debian's package `wrk`) and read back what the Lua scripts report.

wrk only counts statuses above 399 as errors; the scripts count every non-2xx response
themselves (bench/lua/common.lua) and print one `BENCH_RESULT {json}` line when the run is done.
"""

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LUA_DIR = Path(__file__).resolve().parent / "lua"
RESULT_PREFIX = "BENCH_RESULT "
# A request still unanswered after this long counts as a socket error (timeout).
REQUEST_TIMEOUT = "10s"


class WrkMissingError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    # connect, read, write, timeout: as wrk counts them.
    socket_errors: dict[str, int]
    # The status and start of the body of the first non-2xx response, for the error message.
    first_bad_response: str

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def find_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissingError("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu)")
    return found


def run_wrk(
    wrk: str,
    *,
    base_url: str,
    script: str,
    script_args: list[str],
    connections: int,
    duration_s: int,
    threads: int,
) -> WrkResult:
    command = [
        wrk,
        "--threads",
        str(max(1, min(threads, connections))),
        "--connections",
        str(connections),
        "--duration",
        f"{duration_s}s",
        "--timeout",
        REQUEST_TIMEOUT,
        "--script",
        str(LUA_DIR / script),
        base_url,
        "--",
        *script_args,
    ]
    # A fixed argument list and the wrk found on PATH, no shell.
    completed = subprocess.run(  # noqa: S603
        command,
        capture_output=True,
        # A body excerpt cut inside a UTF-8 sequence must not break the report.
        encoding="utf-8",
        errors="replace",
        timeout=duration_s + 60,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return _result(json.loads(line.removeprefix(RESULT_PREFIX)))
    raise RuntimeError(
        f"wrk exited with {completed.returncode} and no result:\n"
        f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
    )


def _result(report: dict[str, Any]) -> WrkResult:
    return WrkResult(
        requests=int(report["requests"]),
        duration_s=float(report["duration_us"]) / 1e6,
        p50_ms=float(report["p50_us"]) / 1000,
        p99_ms=float(report["p99_us"]) / 1000,
        non_2xx=int(report["non_2xx"]),
        socket_errors={name: int(report[name]) for name in ("connect", "read", "write", "timeout")},
        first_bad_response=str(report["first_bad"]),
    )
