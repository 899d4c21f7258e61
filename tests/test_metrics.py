"""`GET /metrics`: Prometheus text, off by default, optionally behind a bearer token of its own."""

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings
from tests.problems import assert_problem
from tests.tokens import JwksServer

METRICS_TOKEN = "scraper-secret-0123456789"


def _samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def _requests(method: str, route: str, status: int) -> tuple[str, frozenset[tuple[str, str]]]:
    labels = {"method": method, "route": route, "status": str(status)}
    return "tasks_api_http_requests_total", frozenset(labels.items())


@pytest.fixture
async def metrics_client(
    database_url: str, jwks_server: JwksServer
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = make_settings(database_url, metrics_enabled=True)
    app = create_app(settings, jwks_transport=jwks_server.transport)
    async with serving(app) as client:
        yield app, client


async def test_metrics_are_off_unless_enabled(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")

    assert_problem(response, 404, "not_found")


async def test_requests_are_counted_and_timed_by_route_template_and_status(
    metrics_client: tuple[FastAPI, httpx.AsyncClient],
    owner_headers: dict[str, str],
    owner_id: str,
) -> None:
    _, client = metrics_client
    missing = uuid.uuid4()
    await client.get("/api/tasks", headers=owner_headers)
    await client.get("/api/tasks", headers=owner_headers)
    await client.get(f"/api/tasks/{missing}", headers=owner_headers)
    await client.get(f"/api/{owner_id}/tasks", headers=owner_headers)
    await client.get("/no/such/route")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(response.text)
    assert samples[_requests("GET", "/api/tasks", 200)] == 2
    assert samples[_requests("GET", "/api/tasks/{task_id}", 404)] == 1
    assert samples[_requests("GET", "/api/{user_id}/tasks", 200)] == 1
    assert samples[_requests("GET", "<unmatched>", 404)] == 1
    # Templates only: no id, no user, ever becomes a label value.
    assert str(missing) not in response.text
    assert owner_id not in response.text
    count = (
        "tasks_api_http_request_duration_seconds_count",
        frozenset({"method": "GET", "route": "/api/tasks", "status": "200"}.items()),
    )
    assert samples[count] == 2
    assert re.search(
        r'tasks_api_http_request_duration_seconds_bucket\{le="0\.005",method="GET",'
        r'route="/api/tasks",status="200"\}',
        response.text,
    )


async def test_pool_and_jwks_fetches_are_reported(
    metrics_client: tuple[FastAPI, httpx.AsyncClient],
    owner_headers: dict[str, str],
    jwks_server: JwksServer,
) -> None:
    app, client = metrics_client
    await client.get("/api/tasks", headers=owner_headers)

    samples = _samples((await client.get("/metrics")).text)

    pool = app.state.engine.pool
    assert samples[("tasks_api_db_pool_in_use", frozenset())] == pool.checkedout() == 0
    assert samples[("tasks_api_db_pool_idle", frozenset())] == pool.checkedin() >= 1
    assert samples[("tasks_api_db_pool_overflow", frozenset())] == 0
    ok = ("tasks_api_jwks_fetches_total", frozenset({("outcome", "ok")}))
    failed = ("tasks_api_jwks_fetches_total", frozenset({("outcome", "failed")}))
    assert (samples[ok], samples[failed]) == (jwks_server.requests, 0) == (1, 0)


async def test_a_failed_jwks_fetch_is_counted(
    database_url: str, jwks_server: JwksServer, owner_headers: dict[str, str]
) -> None:
    jwks_server.status_code = 500
    app = create_app(
        make_settings(database_url, metrics_enabled=True), jwks_transport=jwks_server.transport
    )
    async with serving(app) as client:
        refused = await client.get("/api/tasks", headers=owner_headers)
        samples = _samples((await client.get("/metrics")).text)

    assert refused.status_code == 503
    assert samples[("tasks_api_jwks_fetches_total", frozenset({("outcome", "failed")}))] == 1


@pytest.fixture
async def guarded_client(
    database_url: str, jwks_server: JwksServer
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, metrics_enabled=True, metrics_token=METRICS_TOKEN)
    app = create_app(settings, jwks_transport=jwks_server.transport)
    async with serving(app) as client:
        yield client


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {METRICS_TOKEN}", f"Bearer {METRICS_TOKEN}x"],
)
async def test_with_a_metrics_token_a_scrape_without_it_is_401(
    guarded_client: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = await guarded_client.get("/metrics", headers=headers)

    assert_problem(response, 401, "invalid_metrics_token")
    assert "tasks_api_" not in response.text


async def test_a_users_token_does_not_open_guarded_metrics(
    guarded_client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await guarded_client.get("/metrics", headers=owner_headers)

    assert_problem(response, 401, "invalid_metrics_token")


async def test_with_the_metrics_token_a_scrape_works_and_is_never_rate_limited(
    database_url: str, jwks_server: JwksServer
) -> None:
    settings = make_settings(
        database_url,
        metrics_enabled=True,
        metrics_token=METRICS_TOKEN,
        rate_limit_per_address="1/minute",
    )
    app = create_app(settings, jwks_transport=jwks_server.transport)
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with serving(app) as client:
        scrapes = [await client.get("/metrics", headers=headers) for _ in range(3)]

    assert [scrape.status_code for scrape in scrapes] == [200, 200, 200]
    assert all("ratelimit-limit" not in scrape.headers for scrape in scrapes)


async def test_metrics_are_not_in_the_api_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    assert "/metrics" not in schema["paths"]
