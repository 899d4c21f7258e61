"""Request size limits: 413, 414 and 431 problems before a route runs, without buffering a body.

In-process tests use limits other than the defaults, so they also show each setting takes effect.
The last tests run `tasks-api serve` and send a chunked body that never ends over a raw socket.
"""

import asyncio
import json
import logging
import selectors
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from selectors import EVENT_READ, EVENT_WRITE

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import Message, Receive

from tasks_api.config import Settings
from tasks_api.database import create_engine
from tasks_api.main import create_app
from tasks_api.tasks.models import Task
from tests.commands import ServerProcess, cli_environment
from tests.conftest import make_settings
from tests.problems import assert_problem
from tests.tasks.routes import PATCH_TASK, TOGGLE_TASK_COMPLETION, UPDATE_TASK, Route
from tests.tokens import HS256_SECRET, OMIT, JwksServer, TokenFactory

BODY_LIMIT = 32 * 1024
QUERY_LIMIT = 6000
HEADER_LIMIT = 8000
# The pieces of the endless body: two fill BODY_LIMIT exactly, the third passes it.
CHUNK_BYTES = 16 * 1024
APP_ORIGIN = "http://localhost:3000"
HEALTH_PATHS = ["/health", "/health/ready"]


@pytest.fixture
def app(database_url: str, jwks_server: JwksServer) -> FastAPI:
    """Overrides conftest's `app`: the same app, with limits other than the defaults."""
    settings = make_settings(
        database_url,
        max_body_bytes=BODY_LIMIT,
        max_query_string_bytes=QUERY_LIMIT,
        max_header_bytes=HEADER_LIMIT,
    )
    return create_app(settings, jwks_transport=jwks_server.transport)


@pytest.fixture
def running_app(app: FastAPI, client: httpx.AsyncClient) -> FastAPI:
    """The app with its lifespan running (through `client`), for calls straight through ASGI."""
    return app


def _task_body(size: int, title: str = "Right at the limit") -> bytes:
    # White space after a JSON value is still valid JSON, so the body is exactly `size` bytes.
    return json.dumps({"title": title}).encode().ljust(size, b" ")


async def _in_pieces(body: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    """A streamed body: httpx sends it chunked, without Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _send_as(framing: str, body: bytes) -> bytes | AsyncIterator[bytes]:
    return body if framing == "content-length" else _in_pieces(body)


async def _owner_task_count(session: AsyncSession, owner_id: str) -> int:
    statement = select(func.count()).where(col(Task.user_id) == owner_id)
    return (await session.exec(statement)).one()


def _assert_body_too_large(response: httpx.Response) -> None:
    body = assert_problem(response, 413, "body_too_large")
    assert body["title"] == "Content too large"
    assert str(BODY_LIMIT) in body["detail"]
    # The rest of the request is not read, so the connection is not reused.
    assert response.headers["connection"] == "close"


# --- bodies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_creates_the_task(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    framing: str,
) -> None:
    response = await client.post(
        "/api/tasks",
        content=_send_as(framing, _task_body(BODY_LIMIT)),
        headers={**owner_headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 201, response.text
    stored = await session.get(Task, uuid.UUID(response.json()["id"]))
    assert stored is not None
    assert (stored.user_id, stored.title) == (owner_id, "Right at the limit")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_one_byte_over_the_limit_returns_413_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    framing: str,
) -> None:
    response = await client.post(
        "/api/tasks",
        content=_send_as(framing, _task_body(BODY_LIMIT + 1)),
        headers={**owner_headers, "Content-Type": "application/json"},
    )

    _assert_body_too_large(response)
    assert await _owner_task_count(session, owner_id) == 0


@pytest.mark.parametrize(
    "route",
    [UPDATE_TASK, PATCH_TASK, TOGGLE_TASK_COMPLETION],
    ids=lambda route: route.operation,
)
async def test_every_route_that_takes_a_body_refuses_one_over_the_limit(
    client: httpx.AsyncClient, owner_headers: dict[str, str], route: Route
) -> None:
    response = await route.send(
        client,
        uuid.uuid4(),
        owner_headers,
        content=_in_pieces(_task_body(BODY_LIMIT + 1)),
        headers={"Content-Type": "application/json"},
    )

    _assert_body_too_large(response)


class CountingReceive:
    """An ASGI `receive` that counts the app's calls: a body that never ends, or that must not be
    read at all."""

    def __init__(self, chunk: bytes) -> None:
        self.chunk = chunk
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        if self.calls > 1000:
            # Out of FastAPI's reach (`pytest.fail` is not an `Exception`), so the test fails
            # rather than hangs.
            pytest.fail("the app kept reading a body over the limit")
        return {"type": "http.request", "body": self.chunk, "more_body": True}


async def _call(
    app: FastAPI, method: str, path: str, headers: dict[str, str], receive: Receive
) -> httpx.Response:
    """One request straight through the ASGI interface; the response as httpx would show it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    starts = [message for message in sent if message["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return httpx.Response(starts[0]["status"], headers=starts[0]["headers"], content=body)


async def test_an_endless_body_is_refused_after_reading_just_past_the_limit(
    running_app: FastAPI, owner_headers: dict[str, str]
) -> None:
    receive = CountingReceive(b"x" * CHUNK_BYTES)

    response = await _call(
        running_app,
        "POST",
        "/api/tasks",
        {**owner_headers, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        receive,
    )

    _assert_body_too_large(response)
    # Two chunks fit (exactly the limit); the third passes it and nothing more is read.
    assert receive.calls == BODY_LIMIT // CHUNK_BYTES + 1


@pytest.mark.parametrize("path", ["/api/tasks", *HEALTH_PATHS])
async def test_a_declared_length_over_the_limit_is_refused_without_reading_the_body(
    running_app: FastAPI, owner_headers: dict[str, str], path: str
) -> None:
    # The declared length is a lie: the body that follows is never asked for.
    receive = CountingReceive(b"{}")
    headers = {**owner_headers, "Content-Length": str(BODY_LIMIT + 1)}
    method = "POST" if path == "/api/tasks" else "GET"

    response = await _call(running_app, method, path, headers, receive)

    _assert_body_too_large(response)
    assert receive.calls == 0


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_413_to_an_allowed_origin_carries_the_cors_headers(
    client: httpx.AsyncClient, owner_headers: dict[str, str], framing: str
) -> None:
    response = await client.post(
        "/api/tasks",
        content=_send_as(framing, _task_body(BODY_LIMIT + 1)),
        headers={**owner_headers, "Content-Type": "application/json", "Origin": APP_ORIGIN},
    )

    _assert_body_too_large(response)
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


async def test_a_refused_request_is_logged_once_with_its_status(
    client: httpx.AsyncClient, owner_headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks_api")

    await client.post("/api/tasks", content=_task_body(BODY_LIMIT + 1), headers=owner_headers)

    access = [record for record in caplog.records if record.name == "tasks_api.request_context"]
    assert [record.status for record in access] == [413]  # type: ignore[attr-defined]


# --- query string and headers -------------------------------------------------------------------


def _query_of(size: int) -> dict[str, str]:
    # `pad=` and the value: exactly `size` bytes; list parameters the app does not know are ignored.
    return {"pad": "x" * (size - len("pad="))}


@pytest.mark.parametrize("path", ["/api/tasks", *HEALTH_PATHS])
async def test_a_query_string_of_exactly_the_limit_is_served(
    client: httpx.AsyncClient, owner_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, params=_query_of(QUERY_LIMIT), headers=owner_headers)

    assert len(response.request.url.query) == QUERY_LIMIT
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/api/tasks", *HEALTH_PATHS])
async def test_a_query_string_over_the_limit_returns_414(
    client: httpx.AsyncClient, owner_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, params=_query_of(QUERY_LIMIT + 1), headers=owner_headers)

    body = assert_problem(response, 414, "query_too_long")
    assert body["title"] == "URI too long"
    assert f"{QUERY_LIMIT + 1} bytes" in body["detail"]


def _padded_to(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], size: int
) -> dict[str, str]:
    """`headers` plus an `X-Padding` that brings every request header (name and value) to `size`
    bytes, counting the ones httpx adds."""
    request = client.build_request("GET", path, headers={**headers, "X-Padding": ""})
    used = sum(len(name) + len(value) for name, value in request.headers.raw)
    return {**headers, "X-Padding": "x" * (size - used)}


@pytest.mark.parametrize("path", ["/api/tasks", *HEALTH_PATHS])
async def test_headers_of_exactly_the_limit_are_served(
    client: httpx.AsyncClient, owner_headers: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=_padded_to(client, path, owner_headers, HEADER_LIMIT))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/api/tasks", *HEALTH_PATHS])
async def test_headers_over_the_limit_return_431(
    client: httpx.AsyncClient, owner_headers: dict[str, str], path: str
) -> None:
    response = await client.get(
        path, headers=_padded_to(client, path, owner_headers, HEADER_LIMIT + 1)
    )

    body = assert_problem(response, 431, "headers_too_large")
    assert body["title"] == "Request header fields too large"
    assert f"{HEADER_LIMIT + 1} bytes" in body["detail"]


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("max_body_bytes", 1023),
        ("max_query_string_bytes", 4607),
        ("max_query_string_bytes", 65536),
        ("max_header_bytes", 4095),
    ],
)
def test_limits_out_of_their_bounds_are_refused_at_start(setting: str, value: int) -> None:
    with pytest.raises(ValueError, match=setting):
        Settings(_env_file=None, **{setting: value})  # type: ignore[arg-type]  # pydantic-settings init


# --- against `tasks-api serve` ------------------------------------------------------------------

SERVE_BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    environment = cli_environment(
        ENVIRONMENT="production",
        DATABASE_URL=database_url,
        BETTER_AUTH_SECRET=HS256_SECRET,
        MAX_BODY_BYTES=str(SERVE_BODY_LIMIT),
    )
    process = ServerProcess(
        "serve", workdir=tmp_path_factory.mktemp("serve"), environment=environment
    )
    try:
        process.start("--host", "127.0.0.1")
        yield process
    finally:
        process.stop(signal.SIGTERM)
    # Cutting a body off is not an error: the app's reaction to the disconnect leaves no trace.
    output = process.output()
    assert "Traceback" not in output
    assert '"status": 413' in output


def _exchange(port: int, head: bytes, body_chunk: bytes | None) -> tuple[bytes, int]:
    """Send `head`, then `body_chunk` over and over (never a last chunk) until the server answers
    and closes. Returns the raw response and how many body bytes were sent."""
    response = b""
    sent = 0
    pending = b""
    deadline = time.monotonic() + 10
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        connection.setblocking(False)
        with selectors.DefaultSelector() as selector:
            sending = body_chunk is not None
            selector.register(connection, EVENT_READ | (EVENT_WRITE if sending else 0))
            while time.monotonic() < deadline:
                ready = 0
                for _, events in selector.select(timeout=0.5):
                    ready |= events
                if ready & EVENT_READ:
                    try:
                        data = connection.recv(65536)
                    except ConnectionResetError:
                        break  # closed with our unread body in its buffer, after the answer
                    if not data:
                        break
                    response += data
                elif ready & EVENT_WRITE and body_chunk is not None:
                    # Whole chunks only, across partial sends, so the framing stays valid.
                    pending = pending or body_chunk
                    try:
                        written = connection.send(pending)
                    except (BrokenPipeError, ConnectionResetError):
                        selector.modify(connection, EVENT_READ)
                        continue
                    pending = pending[written:]
                    sent += written
            else:
                pytest.fail(f"no complete answer within 10 s; got {response!r}")
    return response, sent


def _parse(raw: bytes) -> httpx.Response:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [(name, value) for name, _, value in (line.partition(": ") for line in header_lines)]
    response = httpx.Response(int(status_line.split(" ")[1]), headers=headers, content=body)
    assert len(body) == int(response.headers["content-length"]), "the whole body arrived"
    return response


def _head(port: int, token: str, framing: str) -> bytes:
    return (
        "POST /api/tasks HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"{framing}\r\n"
        "\r\n"
    ).encode()


async def _stored_tasks(database_url: str, user_id: str) -> int:
    engine = create_engine(make_settings(database_url))
    try:
        async with AsyncSession(engine) as session:
            return await _owner_task_count(session, user_id)
    finally:
        await engine.dispose()


async def test_serve_answers_413_to_an_endless_chunked_body_while_it_is_still_being_sent(
    server: ServerProcess, tokens: TokenFactory, database_url: str
) -> None:
    user_id = f"chunked-{uuid.uuid4().hex[:8]}"
    token = tokens.hs256(user_id, iss=OMIT, aud=OMIT)
    piece = b" " * 1024
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    head = _head(server.port, token, "Transfer-Encoding: chunked")
    started = time.monotonic()

    raw, sent = await asyncio.to_thread(_exchange, server.port, head, chunk)

    response = _parse(raw)
    _assert_problem_at(response, SERVE_BODY_LIMIT)
    # The client never sent the last chunk (`0\r\n\r\n`): the answer came mid-body, quickly.
    assert sent > SERVE_BODY_LIMIT
    assert time.monotonic() - started < 5
    assert await _stored_tasks(database_url, user_id) == 0


async def test_serve_answers_413_to_a_declared_length_over_the_limit_at_once(
    server: ServerProcess, tokens: TokenFactory
) -> None:
    token = tokens.hs256(f"declared-{uuid.uuid4().hex[:8]}", iss=OMIT, aud=OMIT)
    head = _head(server.port, token, f"Content-Length: {10**9}")

    # No body is sent at all: the head alone gets the answer.
    raw, _ = await asyncio.to_thread(_exchange, server.port, head, None)

    _assert_problem_at(_parse(raw), SERVE_BODY_LIMIT)


def _assert_problem_at(response: httpx.Response, limit: int) -> None:
    body = assert_problem(response, 413, "body_too_large")
    assert str(limit) in body["detail"]
    assert response.headers["connection"] == "close"
