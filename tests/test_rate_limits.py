"""Rate limits as a caller meets them: 429 problems, Retry-After, RateLimit-* headers, and Redis.

The app here allows 3 requests a minute per user and 2 a minute per address for rejected tokens.
"""

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api import cli
from tasks_api.config import Settings, rate_limit_storage_uri
from tasks_api.main import create_app
from tasks_api.rate_limits import RATE_LIMIT_HEADERS
from tests.asgi import serving
from tests.conftest import make_settings
from tests.factories import make_task, read_tasks
from tests.problems import assert_problem
from tests.redis_server import RedisServer, redis_server_binary
from tests.tokens import JwksServer, TokenFactory, bearer

USER_LIMIT = 3
ADDRESS_LIMIT = 2
WINDOW = 60
LIMITS = {"rate_limit_per_user": "3/minute", "rate_limit_per_address": "2/minute"}
BAD_TOKEN = {"Authorization": "Bearer not-a-jwt"}


@pytest.fixture
def app(database_url: str, jwks_server: JwksServer) -> FastAPI:
    """Replaces conftest's `app`, so `client` serves these small limits."""
    return create_app(make_settings(database_url, **LIMITS), jwks_transport=jwks_server.transport)


def _limit_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in RATE_LIMIT_HEADERS if name in response.headers}


def _assert_limit_headers(response: httpx.Response, *, limit: int, remaining: int) -> int:
    """Check the RateLimit-* headers and return RateLimit-Reset."""
    headers = _limit_headers(response)
    assert headers.keys() == set(RATE_LIMIT_HEADERS), response.headers
    assert headers["RateLimit-Limit"] == str(limit)
    assert headers["RateLimit-Remaining"] == str(remaining)
    assert headers["RateLimit-Policy"] == f"{limit};w={WINDOW}"
    reset = int(headers["RateLimit-Reset"])
    assert 1 <= reset <= WINDOW
    return reset


def _assert_rate_limited(response: httpx.Response, *, limit: int) -> None:
    assert_problem(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW
    # Both name the same moment: when the oldest request in the window leaves it.
    assert _assert_limit_headers(response, limit=limit, remaining=0) == retry_after


async def test_user_over_the_limit_gets_429_and_other_users_are_unaffected(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    other_owner_headers: dict[str, str],
) -> None:
    for remaining in (2, 1, 0):
        response = await client.get("/api/tasks", headers=owner_headers)
        assert response.status_code == 200
        _assert_limit_headers(response, limit=USER_LIMIT, remaining=remaining)

    refused = await client.get("/api/tasks", headers=owner_headers)
    other = await client.get("/api/tasks", headers=other_owner_headers)

    _assert_rate_limited(refused, limit=USER_LIMIT)
    assert other.status_code == 200
    _assert_limit_headers(other, limit=USER_LIMIT, remaining=2)


async def test_write_refused_by_the_limit_stores_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    for number in range(USER_LIMIT):
        created = await client.post(
            "/api/tasks", json={"title": f"Task {number}"}, headers=owner_headers
        )
        assert created.status_code == 201

    refused = await client.post("/api/tasks", json={"title": "One too many"}, headers=owner_headers)

    _assert_rate_limited(refused, limit=USER_LIMIT)
    titles = [task["title"] for task in await read_tasks(session, owner_id)]
    assert sorted(titles) == ["Task 0", "Task 1", "Task 2"]


async def test_headers_are_on_errors_on_204_and_on_me(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    task = await make_task(session, owner_id)

    missing = await client.get(f"/api/tasks/{uuid.uuid4()}", headers=owner_headers)
    deleted = await client.delete(f"/api/tasks/{task.id}", headers=owner_headers)
    me = await client.get("/api/me", headers=owner_headers)

    assert_problem(missing, 404, "task_not_found")
    _assert_limit_headers(missing, limit=USER_LIMIT, remaining=2)
    assert deleted.status_code == 204
    _assert_limit_headers(deleted, limit=USER_LIMIT, remaining=1)
    assert me.status_code == 200
    _assert_limit_headers(me, limit=USER_LIMIT, remaining=0)


async def test_rejected_tokens_from_one_address_get_429_instead_of_401(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    first = await client.get("/api/tasks", headers=BAD_TOKEN)
    second = await client.get("/api/tasks")  # no token at all counts the same

    assert_problem(first, 401, "malformed_token")
    _assert_limit_headers(first, limit=ADDRESS_LIMIT, remaining=1)
    assert_problem(second, 401, "missing_token")
    _assert_limit_headers(second, limit=ADDRESS_LIMIT, remaining=0)

    refused = await client.get("/api/tasks", headers=BAD_TOKEN)
    _assert_rate_limited(refused, limit=ADDRESS_LIMIT)
    assert "www-authenticate" not in refused.headers

    # A valid token from the same address is counted against its user only.
    valid = await client.get("/api/tasks", headers=owner_headers)
    assert valid.status_code == 200
    _assert_limit_headers(valid, limit=USER_LIMIT, remaining=2)


async def test_valid_requests_never_count_against_the_address(
    client: httpx.AsyncClient, owner_headers: dict[str, str], other_owner_headers: dict[str, str]
) -> None:
    # More valid requests from one address than its limit, as from users behind one NAT.
    for headers in (owner_headers, other_owner_headers) * USER_LIMIT:
        assert (await client.get("/api/tasks", headers=headers)).status_code == 200

    rejected = await client.get("/api/tasks", headers=BAD_TOKEN)

    assert_problem(rejected, 401, "malformed_token")
    _assert_limit_headers(rejected, limit=ADDRESS_LIMIT, remaining=1)


async def test_health_and_docs_are_not_limited(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    for _ in range(USER_LIMIT + 1):
        await client.get("/api/tasks", headers=owner_headers)
    for _ in range(ADDRESS_LIMIT + 1):
        await client.get("/api/tasks", headers=BAD_TOKEN)
    assert (await client.get("/api/tasks", headers=owner_headers)).status_code == 429
    assert (await client.get("/api/tasks", headers=BAD_TOKEN)).status_code == 429

    for path in ("/health", "/health/ready", "/openapi.json", "/docs"):
        for headers in (owner_headers, BAD_TOKEN):
            response = await client.get(path, headers=headers)
            assert response.status_code == 200, path
            assert _limit_headers(response) == {}, path


async def test_a_slot_frees_when_its_request_leaves_the_window(
    database_url: str, jwks_server: JwksServer, owner_headers: dict[str, str]
) -> None:
    settings = make_settings(database_url, rate_limit_per_user="2/second")
    app = create_app(settings, jwks_transport=jwks_server.transport)

    async with serving(app) as client:
        assert (await client.get("/api/me", headers=owner_headers)).status_code == 200
        assert (await client.get("/api/me", headers=owner_headers)).status_code == 200
        refused = await client.get("/api/me", headers=owner_headers)
        assert_problem(refused, 429, "rate_limited")
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["ratelimit-policy"] == "2;w=1"

        await asyncio.sleep(1.05)
        again = await client.get("/api/me", headers=owner_headers)

    assert again.status_code == 200
    assert again.headers["ratelimit-remaining"] == "1"


async def test_disabled_limits_count_nothing_and_send_no_headers(
    database_url: str, jwks_server: JwksServer, owner_headers: dict[str, str]
) -> None:
    settings = make_settings(
        database_url,
        rate_limit_enabled=False,
        rate_limit_per_user="1/minute",
        rate_limit_per_address="1/minute",
    )
    app = create_app(settings, jwks_transport=jwks_server.transport)

    async with serving(app) as client:
        valid = [await client.get("/api/tasks", headers=owner_headers) for _ in range(3)]
        rejected = [await client.get("/api/tasks", headers=BAD_TOKEN) for _ in range(3)]

    assert [response.status_code for response in valid] == [200, 200, 200]
    assert [response.status_code for response in rejected] == [401, 401, 401]
    assert all(_limit_headers(response) == {} for response in valid + rejected)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate_limit_per_user", "lots"),
        ("rate_limit_per_user", "0/minute"),
        ("rate_limit_per_user", "10/fortnight"),
        ("rate_limit_per_address", "10/second;300/minute"),
        ("rate_limit_storage_url", "memcached://localhost:11211"),
        ("rate_limit_storage_url", "valkey://localhost:6379"),
        ("rate_limit_storage_url", "localhost:6379"),
    ],
)
def test_invalid_rate_limit_settings_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{field: value})  # type: ignore[arg-type]  # pydantic-settings init

    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize(
    ("url", "storage"),
    [
        ("memory://", "async+memory://"),
        ("redis://:pw@cache.internal:6379/2", "async+redis://:pw@cache.internal:6379/2"),
        ("rediss://cache.example.com:6380", "async+rediss://cache.example.com:6380"),
        ("redis+unix:///run/redis.sock?db=1", "async+redis+unix:///run/redis.sock?db=1"),
        ("async+redis://localhost", "async+redis://localhost"),
    ],
)
def test_storage_urls_map_to_the_limits_async_storages(url: str, storage: str) -> None:
    settings = Settings(_env_file=None, rate_limit_storage_url=url)

    assert rate_limit_storage_uri(settings.rate_limit_storage_url) == storage


def test_invalid_storage_url_stops_the_command_with_one_line_and_no_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process (the subprocess tests in test_cli.py cover the exit itself): no `.env` in tmp_path.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RATE_LIMIT_STORAGE_URL", "memcached://user:hunter2@cache:11211")

    with pytest.raises(SystemExit) as caught:
        cli.main(["token", "--sub", "alice"])

    message = str(caught.value.code)
    assert message.startswith("configuration error: RATE_LIMIT_STORAGE_URL: ")
    assert "\n" not in message
    assert "hunter2" not in message


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """TEST_REDIS_URL when set, else a `redis-server` started for this run."""
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisServer(redis_server_binary())
    yield server.url
    server.stop()


@pytest.fixture
def stoppable_redis() -> Iterator[RedisServer]:
    """A server of this test's own, so stopping it disturbs nothing else."""
    server = RedisServer(redis_server_binary())
    yield server
    server.stop()


@pytest.fixture
async def replicas(
    database_url: str, redis_url: str, jwks_server: JwksServer
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two app instances, as two processes behind a load balancer, sharing one Redis."""
    settings = make_settings(database_url, rate_limit_storage_url=redis_url, **LIMITS)
    first = create_app(settings, jwks_transport=jwks_server.transport)
    second = create_app(settings, jwks_transport=jwks_server.transport)
    async with serving(first) as first_client, serving(second) as second_client:
        yield first_client, second_client


async def test_replicas_sharing_redis_enforce_one_limit(
    replicas: tuple[httpx.AsyncClient, httpx.AsyncClient], tokens: TokenFactory
) -> None:
    first, second = replicas
    # A fresh user: with TEST_REDIS_URL, earlier runs' counts may still be in the window.
    headers = bearer(tokens.ed25519(f"replica-user-{uuid.uuid4().hex}"))

    responses = [
        await client.get("/api/tasks", headers=headers) for client in (first, second, first)
    ]
    refused = await second.get("/api/tasks", headers=headers)

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert [response.headers["ratelimit-remaining"] for response in responses] == ["2", "1", "0"]
    _assert_rate_limited(refused, limit=USER_LIMIT)


@pytest.fixture
def stoppable_redis_app(
    stoppable_redis: RedisServer, database_url: str, jwks_server: JwksServer
) -> FastAPI:
    # Built before the test body runs: create_app configures logging, which would otherwise
    # replace the handlers that `caplog` installs for the test.
    settings = make_settings(database_url, rate_limit_storage_url=stoppable_redis.url, **LIMITS)
    return create_app(settings, jwks_transport=jwks_server.transport)


async def test_redis_outage_fails_open_and_warns_once(
    stoppable_redis: RedisServer,
    stoppable_redis_app: FastAPI,
    owner_headers: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(stoppable_redis_app) as client:
        before = await client.get("/api/tasks", headers=owner_headers)
        caplog.set_level(logging.WARNING, logger="tasks_api")
        await asyncio.to_thread(stoppable_redis.stop)

        started = time.monotonic()
        # More than the user limit, and rejected tokens past the address limit: still served.
        during = [
            await client.get("/api/tasks", headers=owner_headers) for _ in range(USER_LIMIT + 1)
        ]
        rejected = [await client.get("/api/tasks", headers=BAD_TOKEN) for _ in range(3)]
        elapsed = time.monotonic() - started

    _assert_limit_headers(before, limit=USER_LIMIT, remaining=2)
    assert [response.status_code for response in during] == [200] * (USER_LIMIT + 1)
    assert [response.status_code for response in rejected] == [401] * 3
    assert all(_limit_headers(response) == {} for response in during + rejected)
    assert elapsed < 5
    warnings = [
        record
        for record in caplog.records
        if record.name == "tasks_api.rate_limits" and record.levelno == logging.WARNING
    ]
    assert len(warnings) == 1
    assert "without limits" in warnings[0].getMessage()


@pytest.fixture
def silent_storage_url(silent_server_port: int) -> str:
    return f"redis://127.0.0.1:{silent_server_port}/0"


async def test_a_hung_redis_slows_at_most_one_request_in_a_while(
    silent_storage_url: str,
    database_url: str,
    jwks_server: JwksServer,
    owner_headers: dict[str, str],
) -> None:
    settings = make_settings(database_url, rate_limit_storage_url=silent_storage_url, **LIMITS)
    app = create_app(settings, jwks_transport=jwks_server.transport)

    async with serving(app) as client:
        first_started = time.monotonic()
        first = await client.get("/api/tasks", headers=owner_headers)
        first_took = time.monotonic() - first_started
        rest_started = time.monotonic()
        rest = [await client.get("/api/tasks", headers=owner_headers) for _ in range(10)]
        rest_took = time.monotonic() - rest_started

    # The first request waits for the storage to time out, then is served without limits ...
    assert first.status_code == 200
    assert first_took < 3
    # ... and the next ones do not wait on it again: the storage is left alone for a while.
    assert [response.status_code for response in rest] == [200] * 10
    assert rest_took < 1
    assert all(_limit_headers(response) == {} for response in [first, *rest])
