"""`--profile`: where a worker's CPU goes in each scenario, sampled with py-spy.

After the measured runs, each scenario gets one more run of the service (never measured: the
sampler costs the machine CPU), with `py-spy record` attached to uvicorn and its workers. py-spy
reads the workers' memory from outside (`--nonblocking`: without pausing them), so the service runs
unchanged: no import, no hook, no flag.

Idle samples (the event loop waiting in epoll) are left out by py-spy, so a share is a share of
the CPU the worker spent, which at concurrency 32 is what limits its throughput. A part's share
counts a sample if the part's function is anywhere on the sampled stack; a function's own share
counts the samples where it is the innermost frame.

Per scenario this writes `<scenario>.txt`, collapsed stacks (`frame;frame;... count`) that
speedscope.app and flamegraph.pl open, and prints the shares of the named parts of a request
(PARTS) and the functions with the most samples of their own.
"""

import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Parts of a request, by a substring of a frame of the function that does that work (py-spy
# frames read `function (path/to/module.py:line)`).
PARTS = {
    "auth: verifying the credentials": "_authenticate (",
    "dependencies: FastAPI's solve_dependencies": "solve_dependencies (",
    "SQL statements: TaskRepository": "tasks/repository.py",
    "statements on connections: RequestDatabase.execute": "RequestDatabase.execute (",
    "JSON out: tasks/representation.py": "tasks/representation.py",
}
SAMPLE_RATE = 250  # per second: enough samples in a few seconds, little extra load
TOP_OWN = 15


class PySpyMissingError(RuntimeError):
    pass


def find_py_spy() -> str:
    found = shutil.which("py-spy")
    if found is None:
        raise PySpyMissingError("py-spy is not installed: `uv sync` installs it (dev group)")
    return found


def record(py_spy: str, root_pid: int, output: Path, duration_s: int) -> "subprocess.Popen[bytes]":
    """Start `py-spy record` on a server's process tree for `duration_s`; collapsed stacks out."""
    command = [
        py_spy,
        "record",
        "--pid",
        str(root_pid),
        "--subprocesses",
        "--nonblocking",
        "--format",
        "raw",
        "--rate",
        str(SAMPLE_RATE),
        "--duration",
        str(duration_s),
        "--output",
        str(output),
    ]
    # py-spy from the environment, a fixed argument list, no shell.
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603


@dataclass
class Profile:
    scenario: str
    samples: int = 0
    parts: Counter[str] = field(default_factory=Counter)
    own: Counter[str] = field(default_factory=Counter)

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0

    def report(self) -> str:
        lines = [
            f"{self.scenario}: {self.samples} CPU samples of the service's workers "
            "(a part counts every sample it is on the stack of, so parts overlap)"
        ]
        lines += [f"  {self.share(self.parts[label]):6.1%}  {label}" for label in PARTS]
        lines.append("  own samples (innermost frame):")
        lines += [
            f"  {self.share(count):6.1%}  {frame}" for frame, count in self.own.most_common(TOP_OWN)
        ]
        return "\n".join(lines)


def read_profile(scenario: str, path: Path) -> Profile:
    profile = Profile(scenario)
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        profile.samples += count
        profile.own[frames[-1]] += count
        for label, needle in PARTS.items():
            if any(needle in frame for frame in frames):
                profile.parts[label] += count
    return profile
