"""Prometheus metrics (`prometheus-client`): requests, latency, the database pool, JWKS fetches.

Off unless METRICS_ENABLED. `GET /metrics` is never behind user auth (Prometheus has no user
token); METRICS_TOKEN puts it behind a bearer token of its own. Each app has its own registry, so
several apps in one process (tests) never share or double-register series.

Routes are labelled by their template (`/api/tasks/{task_id}`), never the raw path, so the number
of series stays bounded whatever clients send; a path that fits no route is `<unmatched>`. The
templates are the app's own paths, read once from its schema: the tasks routes are mounted twice,
so the matched route object alone does not know which prefix was used.

Each worker process keeps its own counts: with WEB_CONCURRENCY > 1, a scrape sees one worker
(Prometheus's usual per-process model; scrape each worker, or run one worker per container).
"""

import hmac
import re
import time
from collections.abc import Iterator

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_api.errors import UnauthenticatedError

UNMATCHED_ROUTE = "<unmatched>"
# Seconds; around this service's expected latencies (a few ms) up to the statement timeout.
_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tasks_api_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tasks_api_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.jwks_fetches = Counter(
            "tasks_api_jwks_fetches",
            "Fetches of the JWKS key set, by outcome (ok or failed).",
            ["outcome"],
            registry=self.registry,
        )
        # Both outcomes exist from the start, so "failed" reads 0 rather than missing.
        for outcome in ("ok", "failed"):
            self.jwks_fetches.labels(outcome=outcome)

    def watch_pool(self, engine: AsyncEngine) -> None:
        self.registry.register(_PoolCollector(engine))

    def jwks_fetched(self, ok: bool) -> None:
        self.jwks_fetches.labels(outcome="ok" if ok else "failed").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _PoolCollector(Collector):
    """The pool's state, read at scrape time rather than tracked on every checkout."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        pool = self._engine.pool
        if not isinstance(pool, QueuePool):
            return
        for name, documentation, value in (
            ("in_use", "Connections checked out to requests.", pool.checkedout()),
            ("idle", "Connections open and waiting in the pool.", pool.checkedin()),
            # Negative while the pool has not yet opened all of its base connections.
            ("overflow", "Connections opened beyond DB_POOL_SIZE.", max(pool.overflow(), 0)),
        ):
            yield GaugeMetricFamily(f"tasks_api_db_pool_{name}", documentation, value=value)


class MetricsMiddleware:
    """Counts and times every HTTP request (a pure ASGI middleware, so it sees every response)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            labels = {
                "method": scope["method"],
                "route": self._template(scope),
                "status": str(status),
            }
            self.metrics.requests.labels(**labels).inc()
            self.metrics.latency.labels(**labels).observe(time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        if self._templates is None:
            self._templates = _route_templates(scope["app"])
        path: str = scope["path"]
        for pattern, template in self._templates:
            if pattern.fullmatch(path):
                return template
        return UNMATCHED_ROUTE


def _route_templates(app: FastAPI) -> list[tuple[re.Pattern[str], str]]:
    """Every path the app serves, as (regex, template); fixed paths before ones with parameters,
    so `/api/me` is never read as a `{user_id}`."""
    templates = [*app.openapi()["paths"], "/metrics"]
    templates += [url for url in (app.openapi_url, app.docs_url, app.redoc_url) if url]
    templates.sort(key=lambda template: template.count("{"))
    return [(compile_path(template)[0], template) for template in templates]


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def get_metrics(request: Request) -> Response:
    """Prometheus text format."""
    expected = request.app.state.settings.metrics_token
    if expected is not None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        sent = token.strip().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            sent, expected.get_secret_value().encode()
        ):
            raise UnauthenticatedError(
                "Send METRICS_TOKEN as a bearer token.", code="invalid_metrics_token"
            )
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
