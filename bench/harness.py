"""`python -m bench`: build the database, start the servers, drive them with wrk, report.

Order of events: PostgreSQL (embedded, or BENCH_DATABASE_URL) -> a fresh database -> migrations ->
seed and VACUUM ANALYZE -> per worker count: start the service and the ceiling side by side,
find the deep cursor, check that both answer alike, then for every scenario and concurrency run
the rounds interleaved (service, ceiling, then ceiling, service, ...) so that drift in the
machine's load falls on both alike. Tables go to stdout, progress to stderr, everything to JSON.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import checks, profiling
from bench.auth import AuthMode, Signer, signer
from bench.database import (
    FULL,
    SMALL,
    DataSize,
    configured_server_url,
    fresh_database,
    migrate,
    postgres_server,
    postgres_version,
    seed,
)
from bench.report import Run, auth_shares, summarize, tables, write_json
from bench.scenarios import (
    SCENARIO_NAMES,
    SCENARIOS,
    USERS,
    ListPaths,
    Scenario,
    list_paths,
    write_data_file,
)
from bench.servers import AppName, AppServer, PeakRss, start_server
from bench.wrk import WrkMissingError, WrkResult, find_wrk, run_wrk

RESULTS_DIR = Path(__file__).resolve().parent / "results"
APPS: tuple[AppName, ...] = ("service", "ceiling")
# How far into the big user's list the deep-cursor scenario starts.
DEEP_FRACTION = 0.9


@dataclass(frozen=True)
class Plan:
    smoke: bool
    size: DataSize
    duration_s: int
    warmup_s: int
    rounds: int
    concurrency: list[int]
    workers: list[int]
    apps: list[AppName]
    scenarios: list[str]
    auth: AuthMode
    wrk_threads: int
    output: Path
    profile: bool
    # Extra settings for both apps, from --env: to compare configurations.
    environment: dict[str, str]

    @property
    def runs(self) -> int:
        per_workers = len(self.scenarios) * len(self.concurrency) * self.rounds * len(self.apps)
        return per_workers * len(self.workers)

    def estimated_seconds(self) -> int:
        warmups = len(self.workers) * len(self.scenarios) * len(self.apps) * self.warmup_s
        return self.runs * self.duration_s + warmups


def parse_plan(argv: Sequence[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the service against a thin ceiling app (see bench/README.md).",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI mode: small data, 2 s runs, concurrency 1 and 4, one round, the service only, "
        "1 worker; exits 1 on any non-2xx response or socket error",
    )
    parser.add_argument("--small", action="store_true", help="small data (20 000 tasks)")
    parser.add_argument("--duration", type=int, help="seconds per run (default 10; smoke 2)")
    parser.add_argument(
        "--warmup", type=int, help="unrecorded seconds per scenario and app (default 2; smoke 0)"
    )
    parser.add_argument("--rounds", type=int, help="runs per app and point (default 3; smoke 1)")
    parser.add_argument("--concurrency", help="connections, comma-separated (default 1,32,64)")
    parser.add_argument("--workers", help="uvicorn workers, comma-separated (default 1,2)")
    parser.add_argument("--apps", help="service,ceiling (default both; smoke: service)")
    parser.add_argument(
        "--scenarios", help=f"comma-separated (default all: {','.join(SCENARIO_NAMES)})"
    )
    parser.add_argument(
        "--auth",
        choices=["eddsa", "hs256"],
        default="eddsa",
        help="token kind: EdDSA via a local JWKS, as Better-Auth signs (default), or HS256",
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/<time>.json)")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for both apps, e.g. --env DB_POOL_SIZE=20 (repeatable)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after measuring, one more run per scenario with py-spy sampling the service: "
        "collapsed stacks beside the JSON and a summary of where the CPU goes",
    )
    args = parser.parse_args(argv)

    smoke: bool = args.smoke
    apps = _names(args.apps or ("service" if smoke else "service,ceiling"), APPS, "app", parser)
    scenarios = _names(
        args.scenarios or ",".join(SCENARIO_NAMES), SCENARIO_NAMES, "scenario", parser
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    plan = Plan(
        smoke=smoke,
        size=SMALL if smoke or args.small else FULL,
        duration_s=args.duration if args.duration is not None else (2 if smoke else 10),
        warmup_s=args.warmup if args.warmup is not None else (0 if smoke else 2),
        rounds=args.rounds if args.rounds is not None else (1 if smoke else 3),
        concurrency=_numbers(args.concurrency or ("1,4" if smoke else "1,32,64"), parser),
        workers=_numbers(args.workers or ("1" if smoke else "1,2"), parser),
        apps=[app for app in APPS if app in apps],
        scenarios=[name for name in SCENARIO_NAMES if name in scenarios],
        auth=args.auth,
        wrk_threads=args.wrk_threads,
        output=args.output or RESULTS_DIR / f"{stamp}{'-smoke' if smoke else ''}.json",
        profile=args.profile,
        environment=dict(_setting(text, parser) for text in args.env),
    )
    if plan.duration_s < 1 or plan.rounds < 1 or plan.wrk_threads < 1 or plan.warmup_s < 0:
        parser.error("--duration, --rounds and --wrk-threads must be at least 1, --warmup 0")
    return plan


def _names(
    text: str, allowed: Sequence[str], kind: str, parser: argparse.ArgumentParser
) -> list[Any]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        parser.error(f"unknown {kind}(s) {unknown}; choose from {', '.join(allowed)}")
    return names


def _setting(text: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        parser.error(f"--env takes NAME=VALUE, got {text!r}")
    return name, value


def _numbers(text: str, parser: argparse.ArgumentParser) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1:
        parser.error(f"expected positive whole numbers separated by commas, got {text!r}")
    return numbers


class ParityError(RuntimeError):
    """The ceiling does not answer like the service: a comparison would be meaningless."""


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_plan(argv)
    try:
        wrk = find_wrk()
        if plan.profile:
            profiling.find_py_spy()
    except (WrkMissingError, profiling.PySpyMissingError) as error:
        print(error, file=sys.stderr)
        return 2
    _progress(
        f"{plan.runs} runs of {plan.duration_s} s ({plan.size.name} data, "
        f"workers {plan.workers}, concurrency {plan.concurrency}, {plan.rounds} round(s)): "
        f"about {plan.estimated_seconds() / 60:.1f} min of load plus setup"
    )
    load_at_start = _warn_if_busy()
    started_at = datetime.now(UTC)
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="tasks-api-bench-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        server_url = stack.enter_context(postgres_server(configured_server_url()))
        database_url = stack.enter_context(fresh_database(server_url))
        clock = time.monotonic()
        migrate(database_url)
        task_ids = seed(database_url, plan.size)
        _progress(
            f"database ready: {plan.size.total_tasks} tasks seeded, migrated and analysed in "
            f"{time.monotonic() - clock:.1f} s"
        )
        sign = stack.enter_context(signer(plan.auth))
        try:
            runs = _serve_and_measure(plan, wrk, workdir, database_url, sign, task_ids)
        except ParityError as error:
            print(error, file=sys.stderr)
            return 3
        database_version = postgres_version(database_url)

    print(_legend(plan))
    summaries = summarize(runs)
    print(tables(summaries))
    print(auth_shares(runs))
    metadata = {
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "plan": {
            **{name: value for name, value in asdict(plan).items() if name != "output"},
            "deep_cursor_depth_fraction": DEEP_FRACTION,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "postgres": database_version,
            "wrk": _wrk_version(wrk),
            "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg()[0],
        },
    }
    write_json(plan.output, metadata=metadata, runs=runs)
    print(f"\nresults: {plan.output}")

    failed = [run for run in runs if run.result.errors or run.result.requests == 0]
    for run in failed:
        print(
            f"ERRORS in {run.scenario} {run.app} c={run.concurrency} w={run.workers}: "
            f"{run.result.requests} requests, {run.result.non_2xx} non-2xx, socket errors "
            f"{run.result.socket_errors}; first bad response: {run.result.first_bad_response!r}",
            file=sys.stderr,
        )
    # A smoke run checks that the harness and the service work, so any error fails it. A full run
    # reports errors in its tables (overload may cause some) and still succeeds.
    return 1 if plan.smoke and failed else 0


def _serve_and_measure(
    plan: Plan,
    wrk: str,
    workdir: Path,
    database_url: str,
    sign: Signer,
    task_ids: list[str],
) -> list[Run]:
    tokens = {user: sign.token(sub) for user, sub in USERS.items()}
    settings = {
        "ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        **sign.environment(),
        "RATE_LIMIT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **plan.environment,
    }
    runs: list[Run] = []
    paths: dict[AppName, ListPaths] = {}
    data_files = {app: workdir / f"{app}.data" for app in APPS}
    for workers in plan.workers:
        with ExitStack() as running:
            servers: dict[AppName, AppServer] = {}
            # Both run side by side (the idle one costs next to nothing): the ceiling answers the
            # parity check even when only the service is measured.
            for app in APPS:
                servers[app] = start_server(
                    app, workers=workers, settings=settings, workdir=workdir
                )
                running.callback(servers[app].stop)
            if not paths:
                # The data does not depend on the servers: found once, used by every worker count.
                depth = int(plan.size.large_user_tasks * DEEP_FRACTION)
                depth -= depth % checks.WALK_PAGE_SIZE
                _progress(f"walking the service's Link headers {depth} tasks deep")
                service_cursor, ceiling_cursor = checks.deep_cursors(
                    servers["service"].base_url, tokens["large"], depth
                )
                paths = {
                    "service": list_paths(service_cursor),
                    "ceiling": list_paths(ceiling_cursor),
                }
                for app in APPS:
                    write_data_file(
                        data_files[app], tokens=tokens, paths=paths[app], task_ids=task_ids
                    )
            problems = checks.parity_problems(
                servers["service"].base_url,
                servers["ceiling"].base_url,
                tokens=tokens,
                service_paths=paths["service"],
                ceiling_paths=paths["ceiling"],
                task_id=task_ids[0],
            )
            if problems:
                raise ParityError(
                    "the ceiling does not answer like the service:\n"
                    + "\n".join(f"- {problem}" for problem in problems)
                )
            runs += _measure(plan, wrk, servers, data_files, workers)
            if plan.profile:
                try:
                    _profile(
                        plan,
                        wrk,
                        profiling.find_py_spy(),
                        servers["service"],
                        data_files["service"],
                        workers,
                    )
                except (OSError, RuntimeError, subprocess.SubprocessError) as error:
                    # Profiling is an extra: the measured runs are kept and reported.
                    _progress(f"profiling stopped: {error!r}")
    return runs


def _warn_if_busy() -> float:
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > cpus / 2:
        _progress(
            f"WARNING: load average {load:.1f} on {cpus} CPUs: the machine is busy and the "
            "numbers will be noise (fine for --smoke)"
        )
    return load


def _legend(plan: Plan) -> str:
    size = plan.size
    return (
        f"{size.total_tasks} tasks: the small user has {size.small_user_tasks}, the big user "
        f"{size.large_user_tasks}; {plan.auth} tokens; {plan.duration_s} s per run, medians of "
        f"{plan.rounds} round(s); service/ceiling is the ratio of requests/s (1.00: no overhead)"
    )


def _measure(
    plan: Plan,
    wrk: str,
    servers: dict[AppName, AppServer],
    data_files: dict[AppName, Path],
    workers: int,
) -> list[Run]:
    runs: list[Run] = []
    total = plan.runs // len(plan.workers)
    scenarios = [s for s in SCENARIOS if s.name in plan.scenarios]
    if plan.warmup_s:
        for scenario in scenarios:
            for app in plan.apps:
                _drive(plan, wrk, servers[app], data_files[app], scenario, max(plan.concurrency))
    for concurrency in plan.concurrency:
        # Each round measures every scenario once, so the scenarios that are compared with each
        # other (auth's share: health, auth_me, get_task; the deep cursor with the first page)
        # are measured minutes apart at most, not a whole run apart.
        for round_number in range(1, plan.rounds + 1):
            # ABBA order: a steady drift in the machine's load favours neither app.
            order = plan.apps if round_number % 2 else plan.apps[::-1]
            for scenario in scenarios:
                for app in order:
                    result, peak_rss = _drive(
                        plan,
                        wrk,
                        servers[app],
                        data_files[app],
                        scenario,
                        concurrency,
                        measured=True,
                    )
                    runs.append(
                        Run(
                            scenario.name, app, workers, concurrency, round_number, result, peak_rss
                        )
                    )
                    _progress(
                        f"[{len(runs)}/{total}] w={workers} {scenario.name} c={concurrency} {app} "
                        f"round {round_number}: {result.requests_per_second:.0f} req/s, "
                        f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                        f"errors {result.errors}"
                    )
    return runs


def _drive(
    plan: Plan,
    wrk: str,
    server: AppServer,
    data_file: Path,
    scenario: Scenario,
    connections: int,
    *,
    measured: bool = False,
) -> tuple[WrkResult, int]:
    """One wrk run (a warm-up unless `measured`) and the server's peak RSS during it."""
    with PeakRss(server.process.pid) as rss:
        result = run_wrk(
            wrk,
            base_url=server.base_url,
            script=scenario.script,
            script_args=[str(data_file), *scenario.script_args],
            connections=connections,
            duration_s=plan.duration_s if measured else plan.warmup_s,
            threads=plan.wrk_threads,
        )
    return result, rss.peak_bytes


def _profile(
    plan: Plan, wrk: str, py_spy: str, server: AppServer, data_file: Path, workers: int
) -> None:
    """One more run of the service per scenario, sampled by py-spy (see bench/profiling.py)."""
    folder = plan.output.with_name(f"{plan.output.stem}-profile-{workers}w")
    folder.mkdir(parents=True, exist_ok=True)
    concurrency = max(plan.concurrency)
    for scenario in (s for s in SCENARIOS if s.name in plan.scenarios):
        stacks = folder / f"{scenario.name}.txt"
        with ThreadPoolExecutor(max_workers=1) as load_thread:
            # The load starts before the sampling and ends after it: every sample is of a loaded
            # worker.
            load = load_thread.submit(
                run_wrk,
                wrk,
                base_url=server.base_url,
                script=scenario.script,
                script_args=[str(data_file), *scenario.script_args],
                connections=concurrency,
                duration_s=plan.duration_s + 2,
                threads=plan.wrk_threads,
            )
            time.sleep(0.5)
            recorder = profiling.record(py_spy, server.process.pid, stacks, plan.duration_s)
            try:
                _, error = recorder.communicate(timeout=plan.duration_s + 30)
            finally:
                if recorder.poll() is None:
                    recorder.kill()
                    recorder.wait()
            result = load.result()
        if recorder.returncode != 0 or not stacks.exists():
            # The same cause (no ptrace, say) would fail every scenario: stop here.
            _progress(f"py-spy failed on {scenario.name}: {error.decode(errors='replace')[-500:]}")
            return
        if result.errors:
            _progress(f"the profiled run of {scenario.name} had {result.errors} error(s)")
        label = f"{scenario.name} (c={concurrency}, w={workers})"
        print(f"\n{profiling.read_profile(label, stacks).report()}")
    print(f"\nprofiles (collapsed stacks, for speedscope.app or flamegraph.pl): {folder}")


def _wrk_version(wrk: str) -> str:
    # `wrk --version` prints its banner and exits 1.
    completed = subprocess.run(  # noqa: S603  # the wrk found on PATH, a fixed argument
        [wrk, "--version"], capture_output=True, text=True, check=False
    )
    text = completed.stdout or completed.stderr
    return text.splitlines()[0] if text.strip() else ""


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
