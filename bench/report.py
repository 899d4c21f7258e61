"""Results: every run, the summary per scenario (medians over the rounds), the tables, the JSON."""

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.scenarios import SCENARIOS
from bench.servers import AppName
from bench.wrk import WrkResult

MIB = 1024 * 1024


@dataclass(frozen=True)
class Run:
    scenario: str
    app: AppName
    workers: int
    concurrency: int
    round: int
    result: WrkResult
    peak_rss_bytes: int

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "requests_per_second": self.result.requests_per_second,
            "errors": self.result.errors,
        }


@dataclass(frozen=True)
class Summary:
    """One app at one scenario, worker count and concurrency, over its rounds."""

    scenario: str
    app: AppName
    workers: int
    concurrency: int
    rounds: int
    requests_per_second: float
    # (max - min) / median of the rounds' requests/s: how much to trust the median.
    spread: float
    p50_ms: float
    p99_ms: float
    errors: int
    peak_rss_bytes: int


def summarize(runs: Sequence[Run]) -> list[Summary]:
    groups: dict[tuple[str, AppName, int, int], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.scenario, run.app, run.workers, run.concurrency), []).append(run)
    summaries = []
    for (scenario, app, workers, concurrency), group in groups.items():
        rates = [run.result.requests_per_second for run in group]
        median_rate = statistics.median(rates)
        summaries.append(
            Summary(
                scenario=scenario,
                app=app,
                workers=workers,
                concurrency=concurrency,
                rounds=len(group),
                requests_per_second=median_rate,
                spread=(max(rates) - min(rates)) / median_rate if median_rate else 0.0,
                p50_ms=statistics.median(run.result.p50_ms for run in group),
                p99_ms=statistics.median(run.result.p99_ms for run in group),
                errors=sum(run.result.errors for run in group),
                peak_rss_bytes=max(run.peak_rss_bytes for run in group),
            )
        )
    return summaries


def ratio(summaries: Sequence[Summary], of: Summary) -> float | None:
    """The service's requests/s over the ceiling's at the same point (1.0: as fast as it)."""
    for other in summaries:
        if (other.app, other.scenario, other.workers, other.concurrency) == (
            "ceiling",
            of.scenario,
            of.workers,
            of.concurrency,
        ):
            return (
                of.requests_per_second / other.requests_per_second
                if other.requests_per_second
                else None
            )
    return None


def tables(summaries: Sequence[Summary]) -> str:
    """One table per scenario and worker count, a row per concurrency and app."""
    out: list[str] = []
    for workers in sorted({summary.workers for summary in summaries}):
        for scenario in SCENARIOS:
            rows = [s for s in summaries if s.scenario == scenario.name and s.workers == workers]
            if not rows:
                continue
            plural = "s" if workers > 1 else ""
            out.append(f"\n{scenario.name} ({workers} worker{plural}): {scenario.what}")
            out.append(
                f"  {'conc':>4}  {'app':<8} {'req/s':>9} {'spread':>7} {'p50 ms':>8} "
                f"{'p99 ms':>8} {'errors':>7} {'peak RSS MiB':>13} {'service/ceiling':>16}"
            )
            for row in sorted(rows, key=lambda s: (s.concurrency, s.app != "service")):
                row_ratio = ratio(summaries, row) if row.app == "service" else None
                shown_ratio = f"{row_ratio:.2f}" if row_ratio is not None else ""
                out.append(
                    f"  {row.concurrency:>4}  {row.app:<8} {row.requests_per_second:>9.1f} "
                    f"{row.spread:>6.1%} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f} {row.errors:>7} "
                    f"{row.peak_rss_bytes / MIB:>13.1f} {shown_ratio:>16}".rstrip()
                )
    return "\n".join(out)


def auth_shares(runs: Sequence[Run]) -> str:
    """What auth adds to a GET, from three scenarios of the same round, per app and point.

    At concurrency 32 and up each worker is one busy core, so workers/(requests/s) is the CPU
    time of one request. /api/me minus /health is what verifying (or finding) a token costs, and
    that over get_task's time is auth's share of a GET. Worked out per round (the three are
    measured within minutes of each other in one round), then the median over the rounds and
    their range. Only printed when all three were measured.
    """
    by_run = {(r.scenario, r.app, r.workers, r.concurrency, r.round): r for r in runs}
    shares: dict[tuple[AppName, int, int], list[float]] = {}
    for (scenario, app, workers, concurrency, round_number), me in sorted(by_run.items()):
        if scenario != "auth_me" or concurrency < 32:
            continue
        health = by_run.get(("health", app, workers, concurrency, round_number))
        get = by_run.get(("get_task", app, workers, concurrency, round_number))
        if health is None or get is None:
            continue
        rates = [run.result.requests_per_second for run in (me, health, get)]
        if not all(rates):
            continue
        me_rate, health_rate, get_rate = rates
        auth_us = workers * (1e6 / me_rate - 1e6 / health_rate)
        get_us = workers * 1e6 / get_rate
        shares.setdefault((app, workers, concurrency), []).append(auth_us / get_us)
    lines = [
        f"  {app:<8} c={concurrency:<3} w={workers}: median {statistics.median(values):6.1%} "
        f"over {len(values)} round(s), from {min(values):6.1%} to {max(values):6.1%}"
        for (app, workers, concurrency), values in shares.items()
    ]
    if not lines:
        return ""
    return "\nauth's share of a GET (/api/me minus /health, over get_task, per round):\n" + (
        "\n".join(lines)
    )


def write_json(path: Path, *, metadata: dict[str, Any], runs: Sequence[Run]) -> None:
    summaries = summarize(runs)
    document = {
        **metadata,
        "summaries": [
            {**asdict(summary), "service_over_ceiling": ratio(summaries, summary)}
            if summary.app == "service"
            else asdict(summary)
            for summary in summaries
        ],
        "runs": [run.as_json() for run in runs],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
