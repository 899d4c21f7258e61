"""`create_app()`: the composition root: engine, token verifier, routes, middleware, handlers."""

import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from tasks_api import health
from tasks_api.auth import router as auth_router
from tasks_api.auth.dependencies import require_path_user
from tasks_api.auth.development import with_development_secret
from tasks_api.auth.tokens import JwksCache, TokenVerifier
from tasks_api.config import Settings, get_settings
from tasks_api.database import create_request_engine
from tasks_api.idempotency.dependencies import IDEMPOTENCY_KEY_HEADER, REPLAYED_HEADER
from tasks_api.logging import configure_logging
from tasks_api.metrics import Metrics, MetricsMiddleware
from tasks_api.metrics import router as metrics_router
from tasks_api.problem_details import add_problem_handlers, problem_responses
from tasks_api.rate_limits import RATE_LIMIT_HEADERS, RateLimiter, RateLimitHeadersMiddleware
from tasks_api.request_context import REQUEST_ID_HEADER, RequestContextMiddleware
from tasks_api.request_limits import RequestLimitsMiddleware
from tasks_api.tasks import router as tasks_router

logger = logging.getLogger(__name__)

EXPOSED_HEADERS = [
    "Location",
    "Link",
    "ETag",
    REQUEST_ID_HEADER,
    "Retry-After",
    tasks_router.SYNC_HEADER,
    REPLAYED_HEADER,
    *RATE_LIMIT_HEADERS,
]


def create_app(
    settings: Settings | None = None, *, jwks_transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """Build the app. `jwks_transport` lets tests serve a JWKS without a network."""
    settings = with_development_secret(settings or get_settings())
    configure_logging(settings)
    metrics = Metrics() if settings.metrics_enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine, connections = create_request_engine(settings)
        async with httpx.AsyncClient(
            transport=jwks_transport, timeout=settings.auth_jwks_timeout_seconds
        ) as http_client:
            jwks = None
            if settings.auth_jwks_url is not None:
                jwks = JwksCache(
                    settings.auth_jwks_url,
                    http_client,
                    max_age=settings.auth_jwks_cache_seconds,
                    min_refetch=settings.auth_jwks_min_refetch_seconds,
                    timeout=settings.auth_jwks_timeout_seconds,
                    on_fetch=metrics.jwks_fetched if metrics is not None else None,
                )
            app.state.settings = settings
            app.state.engine = engine
            if metrics is not None:
                metrics.watch_pool(engine)
            app.state.connections = connections
            app.state.token_verifier = TokenVerifier(settings, jwks)
            rate_limiter = (
                RateLimiter.from_settings(settings) if settings.rate_limit_enabled else None
            )
            app.state.rate_limiter = rate_limiter
            _freeze_start_up_objects()
            logger.info("started (%s)", settings.environment.value)
            try:
                yield
            finally:
                if rate_limiter is not None:
                    await rate_limiter.close()
                await engine.dispose()
                logger.info("stopped; database pool disposed")

    app = FastAPI(
        title="Tasks API",
        version="1.0.0",
        summary="Private task lists for a Next.js app signed in with Better-Auth.",
        lifespan=lifespan,
        # Operation ids are the route function names in camelCase: `listTasks` in a TS client.
        generate_unique_id_function=_operation_id,
        # RequestLimitsMiddleware answers these on every path, before any route runs.
        responses=problem_responses(414, 431),
    )
    add_problem_handlers(app)
    app.include_router(tasks_router.router, prefix=tasks_router.PREFIX)
    # Drop-in paths for todo frontends that put the user id in the URL: the same handlers, with
    # the path's user id checked against the token (403 user_mismatch) and used for nothing else.
    app.include_router(
        tasks_router.router,
        prefix=tasks_router.USER_SCOPED_PREFIX,
        tags=["tasks (user id in the path)"],
        dependencies=[Depends(require_path_user)],
        responses=problem_responses(403),
        generate_unique_id_function=_user_scoped_operation_id,
    )
    app.include_router(auth_router.router)
    app.include_router(health.router)
    if metrics is not None:
        app.state.metrics = metrics
        app.include_router(metrics_router)
    if settings.rate_limit_enabled:
        app.add_middleware(RateLimitHeadersMiddleware)
    # Inside CORS, so a browser can read a 413; inside the request context, so it has an id.
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_query_string_bytes=settings.max_query_string_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            REQUEST_ID_HEADER,
            "If-Match",
            "If-None-Match",
            IDEMPOTENCY_KEY_HEADER,
        ],
        expose_headers=EXPOSED_HEADERS,
    )
    app.add_middleware(RequestContextMiddleware)
    if metrics is not None:
        # Outermost: it times and counts every response, the ones the other middleware send too.
        app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


@functools.cache  # once per process: a test run starts hundreds of apps in one
def _freeze_start_up_objects() -> None:
    """What start-up built (routes, schemas, validators, the metadata) lives as long as the
    process. Freezing it takes it out of the cyclic collector's passes, which otherwise walk all of
    it on every full collection: a pause that showed as the list's p99 at concurrency 1 (81 ms
    against a p50 of 6 ms, bench/RESULTS.md)."""
    gc.collect()
    gc.freeze()


def _operation_id(route: APIRoute) -> str:
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _user_scoped_operation_id(route: APIRoute) -> str:
    # `listTasks` at /api/tasks, `listTasksForUser` at /api/{user_id}/tasks.
    return _operation_id(route) + "ForUser"
