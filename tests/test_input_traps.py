"""Hostile input that the OpenAPI schema alone does not keep out: each is refused with a problem,
never a 500, and writes nothing; or it is served the way spec.md decides.

Already pinned elsewhere, so not repeated here:
- tests/tasks/test_task_validation.py: NUL and lone surrogates in `title` and `description`;
  `position` out of int32, fractional, boolean or a string; due dates just outside years 1-9999
  once in UTC; an array, a bare string, a number or `null` as the body of POST, PUT and PATCH;
  malformed JSON and bytes that are not UTF-8.
- tests/tasks/test_toggle_completion.py: an array, a bare string or a number as the toggle's body.
- tests/tasks/test_list_tasks.py: NUL in `q`; `limit` 0, 501, -1 and "ten"; unreadable dates.
- tests/tasks/test_delta_sync.py: `updated_since` without an offset, a word, a number.
- tests/tasks/test_list_pagination.py: forged cursors with wrongly typed content.
- tests/tasks/test_conditional_requests.py: malformed If-Match; a version beyond int4.
- tests/test_idempotency.py: control characters and non-ASCII in Idempotency-Key.
- tests/test_request_limits.py: a query string of exactly the limit (served), one byte more (414).
- tests/fuzz/test_openapi_fuzz.py: everything the schema describes, generated.
"""

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.config import Settings
from tasks_api.tasks.models import Task
from tests.factories import make_task, make_tasks, read_task, read_tasks
from tests.problems import assert_problem
from tests.tasks.routes import (
    CREATE_TASK,
    PATCH_TASK,
    TOGGLE_TASK_COMPLETION,
    UPDATE_TASK,
    Route,
)

JSON = {"content-type": "application/json"}
BODY_WRITES = [CREATE_TASK, UPDATE_TASK, PATCH_TASK]
ALL_WRITES = [*BODY_WRITES, TOGGLE_TASK_COMPLETION]
# Outside what PostgreSQL (4713 BC to 294276 AD) or Python (years 1-9999) can hold.
DATES_OUT_OF_RANGE = [
    "0000-01-01",
    "0000-01-01T00:00:00Z",
    "-0001-01-01",
    "10000-01-01",
    "+10000-01-01T00:00:00Z",
    "294277-01-01",
    "infinity",
    "-infinity",
]


def _ids(routes: list[Route]) -> list[str]:
    return [route.operation for route in routes]


@pytest.fixture
async def task(session: AsyncSession, owner_id: str) -> Task:
    return await make_task(session, owner_id, title="Before")


async def _send(
    client: httpx.AsyncClient, route: Route, task: Task, auth: dict[str, str], **request: Any
) -> httpx.Response:
    """The route's request, to `task` where it takes an id (httpx options in `request`)."""
    return await route.send(client, task.id, auth, **request)


def _assert_refused_field(response: httpx.Response, *loc: str) -> None:
    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [list(loc)], body["errors"]


# NUL: PostgreSQL cannot store U+0000 in text; each of these must stop before SQL.


@pytest.mark.parametrize("route", BODY_WRITES, ids=_ids(BODY_WRITES))
@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", "lo\x00w"), ("due_date", "2026-01-01\x00")],
    ids=["priority", "due_date"],
)
async def test_nul_in_a_body_field_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    route: Route,
    field: str,
    value: str,
) -> None:
    before = await read_tasks(session, owner_id)

    response = await _send(
        client, route, task, owner_headers, json={"title": "Valid", field: value}
    )

    _assert_refused_field(response, "body", field)
    assert await read_tasks(session, owner_id) == before


async def test_nul_as_the_toggles_value_is_422_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    before = await read_task(session, task.id)

    response = await _send(
        client, TOGGLE_TASK_COMPLETION, task, owner_headers, json={"completed": "\x00"}
    )

    _assert_refused_field(response, "body", "completed")
    assert await read_task(session, task.id) == before


async def test_nul_in_a_field_the_api_ignores_is_not_stored(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    content = b'{"title": "Kept", "user_id": "x\\u0000", "no\\u0000te": "\\u0000"}'

    response = await CREATE_TASK.send(client, None, owner_headers, content=content, headers=JSON)

    assert response.status_code == 201, response.text
    assert response.json()["user_id"] == owner_id
    assert await read_tasks(session, owner_id) == [response.json()]


@pytest.mark.parametrize(
    "parameter",
    [
        "status",
        "completed",
        "priority",
        "due_before",
        "due_after",
        "updated_since",
        "include_deleted",
        "sort",
        "order",
        "limit",
    ],
)
async def test_nul_in_a_query_parameter_is_422(
    client: httpx.AsyncClient, owner_headers: dict[str, str], parameter: str
) -> None:
    # Each a valid value but for the NUL (q: tests/tasks/test_list_tasks.py).
    valid = {
        "status": "all",
        "completed": "true",
        "priority": "low",
        "due_before": "2026-01-01",
        "due_after": "2026-01-01",
        "updated_since": "2026-01-01T00:00:00Z",
        "include_deleted": "false",
        "sort": "title",
        "order": "asc",
        "limit": "10",
    }

    response = await client.get(
        "/api/tasks", params={parameter: valid[parameter] + "\x00"}, headers=owner_headers
    )

    body = assert_problem(response, 422, "validation_failed")
    assert ["query", parameter] in [error["loc"][:2] for error in body["errors"]]


async def test_nul_in_a_cursor_is_400_invalid_cursor(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.get("/api/tasks", params={"cursor": "\x00"}, headers=owner_headers)

    assert_problem(response, 400, "invalid_cursor")


async def test_nul_in_the_task_id_is_422(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.get("/api/tasks/%00", headers=owner_headers)

    _assert_refused_field(response, "path", "task_id")


async def test_nul_in_if_match_is_400_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    before = await read_task(session, task.id)

    response = await _send(
        client,
        PATCH_TASK,
        task,
        owner_headers,
        json={"title": "Changed"},
        headers={"If-Match": '"1\x00"'},
    )

    assert_problem(response, 400, "invalid_precondition")
    assert await read_task(session, task.id) == before


async def test_nul_in_if_none_match_is_ignored_like_any_unreadable_validator(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task
) -> None:
    response = await client.get(
        f"/api/tasks/{task.id}", headers={**owner_headers, "If-None-Match": '"1\x00"'}
    )

    assert response.status_code == 200
    assert response.json()["id"] == str(task.id)


async def test_nul_in_idempotency_key_is_400_and_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    response = await client.post(
        "/api/tasks", json={"title": "Once"}, headers={**owner_headers, "Idempotency-Key": "a\x00b"}
    )

    assert_problem(response, 400, "invalid_idempotency_key")
    assert await read_tasks(session, owner_id) == []


# Lone surrogates: valid in a JSON string escape, not in UTF-8, so never storable.


@pytest.mark.parametrize("route", BODY_WRITES, ids=_ids(BODY_WRITES))
@pytest.mark.parametrize("field", ["priority", "due_date"])
async def test_a_lone_surrogate_in_a_body_field_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    route: Route,
    field: str,
) -> None:
    before = await read_tasks(session, owner_id)
    content = json.dumps({"title": "Valid", field: "\ud800"}).encode()  # ASCII: "\\ud800"

    response = await _send(client, route, task, owner_headers, content=content, headers=JSON)

    _assert_refused_field(response, "body", field)
    assert await read_tasks(session, owner_id) == before


async def test_a_lone_surrogate_in_a_field_the_api_ignores_is_not_stored(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    content = b'{"\\udfff": 1, "title": "Kept", "user_id": "\\ud800"}'

    response = await CREATE_TASK.send(client, None, owner_headers, content=content, headers=JSON)

    assert response.status_code == 201, response.text
    assert await read_tasks(session, owner_id) == [response.json()]


@pytest.mark.parametrize(
    "encoded",
    ["%ED%A0%80", "%FF", "%C0%80"],
    ids=["surrogate-as-utf8-bytes", "not-utf8", "overlong-nul"],
)
async def test_a_q_that_is_not_utf8_is_read_with_replacement_characters(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    encoded: str,
) -> None:
    await make_task(session, owner_id, title="Plain ascii")

    response = await client.get(f"/api/tasks?q={encoded}", headers=owner_headers)

    # Decoded with U+FFFD for each bad byte, as Starlette does: a search that finds nothing.
    assert response.status_code == 200, response.text
    assert response.json() == []


# Numbers: int4 columns, and what Python's JSON parser makes of extreme literals.


@pytest.mark.parametrize("route", BODY_WRITES, ids=_ids(BODY_WRITES))
@pytest.mark.parametrize(
    "literal",
    [b"1e10", b"2147483648.0", b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity"],
    ids=[
        "1e10",
        "int32-max-plus-one-float",
        "1e400",
        "minus-1e400",
        "NaN",
        "Infinity",
        "-Infinity",
    ],
)
async def test_an_extreme_number_for_position_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    route: Route,
    literal: bytes,
) -> None:
    # 1e400 parses as infinity; NaN and Infinity are not JSON, but Python's parser reads them.
    before = await read_tasks(session, owner_id)
    content = b'{"title": "Number", "position": ' + literal + b"}"

    response = await _send(client, route, task, owner_headers, content=content, headers=JSON)

    _assert_refused_field(response, "body", "position")
    assert await read_tasks(session, owner_id) == before


@pytest.mark.parametrize("route", ALL_WRITES, ids=_ids(ALL_WRITES))
async def test_a_number_too_long_to_parse_is_400_malformed_json_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    route: Route,
) -> None:
    # Python refuses to convert integers of more than 4300 digits (CVE-2020-10735): the body
    # cannot be read, even where the number would be ignored.
    before = await read_tasks(session, owner_id)
    content = b'{"title": "Digits", "ignored": ' + b"9" * 5000 + b"}"

    response = await _send(client, route, task, owner_headers, content=content, headers=JSON)

    assert_problem(response, 400, "malformed_json")
    assert await read_tasks(session, owner_id) == before


@pytest.mark.parametrize(
    "limit",
    [
        "2147483648",
        "-2147483649",
        "9" * 30,
        "1e3",
        "5e0",
        "1.5",
        "Infinity",
        "NaN",
    ],
)
async def test_a_limit_out_of_int32_or_not_an_integer_is_422(
    client: httpx.AsyncClient, owner_headers: dict[str, str], limit: str
) -> None:
    response = await client.get("/api/tasks", params={"limit": limit}, headers=owner_headers)

    _assert_refused_field(response, "query", "limit")


# Dates PostgreSQL or Python cannot hold.


# Due dates a body may not carry: out of range, and the calendar's very ends, which asyncpg
# stored as -infinity/infinity and read back without an offset
# (`"due_date": "9999-12-31T23:59:59.999999"`), sorted among the undated tasks, so that the next
# page's cursor was refused (a regression).
DUE_DATES_REFUSED = [
    *DATES_OUT_OF_RANGE,
    pytest.param("0001-01-01T00:00:00Z", id="first-microsecond"),
    pytest.param("0001-01-01", id="first-day"),
    pytest.param("9999-12-31T23:59:59.999999Z", id="last-microsecond"),
    pytest.param("9999-12-31T23:59:59.999999-00:00", id="last-microsecond-minus-zero"),
]


@pytest.mark.parametrize("route", BODY_WRITES, ids=_ids(BODY_WRITES))
@pytest.mark.parametrize("due_date", DUE_DATES_REFUSED)
async def test_a_due_date_that_cannot_be_stored_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    route: Route,
    due_date: str,
) -> None:
    before = await read_tasks(session, owner_id)

    response = await _send(
        client, route, task, owner_headers, json={"title": "Valid", "due_date": due_date}
    )

    _assert_refused_field(response, "body", "due_date")
    assert await read_tasks(session, owner_id) == before


@pytest.mark.parametrize("parameter", ["due_before", "due_after", "updated_since"])
@pytest.mark.parametrize("value", DATES_OUT_OF_RANGE)
async def test_a_date_parameter_out_of_range_is_422(
    client: httpx.AsyncClient, owner_headers: dict[str, str], parameter: str, value: str
) -> None:
    response = await client.get("/api/tasks", params={parameter: value}, headers=owner_headers)

    _assert_refused_field(response, "query", parameter)


@pytest.mark.parametrize(
    "due_date",
    ["0001-01-01T00:00:00.000001Z", "9999-12-31T23:59:59.999998Z"],
    ids=["first-storable", "last-storable"],
)
async def test_the_first_and_last_storable_due_dates_come_back_exactly(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    due_date: str,
) -> None:
    response = await client.post(
        "/api/tasks", json={"title": "Edge", "due_date": due_date}, headers=owner_headers
    )

    assert response.status_code == 201, response.text
    assert response.json()["due_date"] == due_date
    assert await read_tasks(session, owner_id) == [response.json()]


async def test_filters_may_use_the_first_and_last_instants(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    task = await make_task(session, owner_id, due_date=datetime(2026, 1, 1, tzinfo=UTC))
    params = {
        "due_after": "0001-01-01T00:00:00Z",
        "due_before": "9999-12-31T23:59:59.999999Z",
        "updated_since": "0001-01-01",
    }

    response = await client.get("/api/tasks", params=params, headers=owner_headers)

    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()] == [str(task.id)]


def _forge_cursor(fields: list[Any]) -> str:
    """A cursor with a valid checksum: the checksum is public (spec.md), so anyone can make one."""
    payload = json.dumps(fields).encode()
    checksum = hashlib.blake2b(payload, digest_size=8, person=b"tasks-cursor").digest()
    return base64.urlsafe_b64encode(checksum + payload).decode().rstrip("=")


SOME_ID = str(uuid.UUID(int=1))
# Times Python reads but that have no UTC equivalent: year 1 at +14:00 is still year 0 in UTC.
EDGE_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("time", EDGE_TIMES, ids=["before-year-1", "after-year-9999"])
@pytest.mark.parametrize(
    ("params", "fields"),
    [
        pytest.param({}, lambda t: ["created_at", True, {"t": t}, SOME_ID], id="created_at"),
        pytest.param(
            {"sort": "due_date", "order": "asc"},
            lambda t: ["due_date", False, {"t": t}, SOME_ID],
            id="due_date",
        ),
        pytest.param(
            {"updated_since": "2026-01-01T00:00:00Z"},
            lambda t: ["updated_at", False, {"t": "2026-01-01T00:00:00+00:00"}, SOME_ID, t],
            id="sync-token",
        ),
    ],
)
async def test_a_forged_cursor_with_a_time_beyond_utc_is_400_not_500(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    task: Task,
    params: dict[str, str],
    fields: Any,
    time: str,
) -> None:
    # Regression: such a time passed the cursor's checks and failed in the database driver (500).
    cursor = _forge_cursor(fields(time))

    response = await client.get(
        "/api/tasks", params={**params, "cursor": cursor}, headers=owner_headers
    )

    assert_problem(response, 400, "invalid_cursor")


# Long query strings: the limit itself is pinned in tests/test_request_limits.py.


async def test_a_write_with_a_query_string_over_the_limit_is_414_and_creates_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    settings: Settings,
) -> None:
    padding = "x" * (settings.max_query_string_bytes - len("pad=") + 1)

    response = await client.post(
        "/api/tasks", params={"pad": padding}, json={"title": "Too long"}, headers=owner_headers
    )

    assert_problem(response, 414, "query_too_long")
    assert response.headers["connection"] == "close"
    assert await read_tasks(session, owner_id) == []


# Repeated query parameters: the last one wins (spec.md), never a 500.


async def test_a_repeated_limit_takes_the_last_value(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    await make_tasks(session, owner_id, 3)

    response = await client.get("/api/tasks?limit=1&limit=2", headers=owner_headers)

    assert response.status_code == 200, response.text
    assert len(response.json()) == 2


@pytest.mark.parametrize(
    ("query", "status"),
    [("limit=0&limit=1", 200), ("limit=1&limit=0", 422), ("q=a%00&q=ok", 200)],
    ids=["invalid-then-valid", "valid-then-invalid", "nul-then-valid"],
)
async def test_only_the_last_of_repeated_values_is_validated(
    client: httpx.AsyncClient, owner_headers: dict[str, str], query: str, status: int
) -> None:
    response = await client.get(f"/api/tasks?{query}", headers=owner_headers)

    if status == 422:
        _assert_refused_field(response, "query", "limit")
    else:
        assert response.status_code == 200, response.text


async def test_a_repeated_sort_takes_the_last_value_on_every_page(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    # By title: a, b, c. By due date: c, a, b.
    due = {"a": "2026-02-01T00:00:00Z", "b": "2026-03-01T00:00:00Z", "c": "2026-01-01T00:00:00Z"}
    for title, due_date in due.items():
        created = await client.post(
            "/api/tasks", json={"title": title, "due_date": due_date}, headers=owner_headers
        )
        assert created.status_code == 201

    first = await client.get("/api/tasks?sort=title&sort=due_date&limit=2", headers=owner_headers)
    # The next link repeats both values, so the second page reads the same sort as the first.
    next_url = first.links["next"]["url"]
    second = await client.get(next_url, headers=owner_headers)

    assert [item["title"] for item in first.json()] == ["c", "a"]
    assert "sort=title&sort=due_date" in next_url
    assert second.status_code == 200, second.text
    assert [item["title"] for item in second.json()] == ["b"]


# Bodies that are not an object.


@pytest.mark.parametrize("route", BODY_WRITES, ids=_ids(BODY_WRITES))
async def test_an_empty_json_body_is_422_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    route: Route,
) -> None:
    before = await read_tasks(session, owner_id)

    response = await _send(client, route, task, owner_headers, content=b"", headers=JSON)

    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"] == [{"loc": ["body"], "msg": "Field required", "type": "missing"}]
    assert await read_tasks(session, owner_id) == before


@pytest.mark.parametrize("content", [b"", b"null"], ids=["empty", "null"])
async def test_the_toggle_reads_an_empty_or_null_body_as_no_body_and_flips(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    content: bytes,
) -> None:
    response = await _send(
        client, TOGGLE_TASK_COMPLETION, task, owner_headers, content=content, headers=JSON
    )

    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    assert await read_task(session, task.id) == response.json()


# The body's media type: JSON only, and said so.


@pytest.mark.parametrize("route", ALL_WRITES, ids=_ids(ALL_WRITES))
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
    ids=["text-plain", "fetch-default", "form", "multipart", "none"],
)
async def test_a_body_not_sent_as_json_is_415_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    route: Route,
    content_type: str | None,
) -> None:
    # Regression: was a 422 saying the body "should be a valid dictionary", which misleads a
    # frontend whose fetch() sent JSON text as text/plain. Still refused: such a request needs
    # no CORS preflight, and FastAPI parses JSON only when the Content-Type says JSON.
    before = await read_tasks(session, owner_id)
    headers = {} if content_type is None else {"content-type": content_type}

    response = await _send(
        client, route, task, owner_headers, content=b'{"title": "Sent as text"}', headers=headers
    )

    problem = assert_problem(response, 415, "unsupported_media_type")
    assert "application/json" in problem["detail"]
    assert response.headers["accept"] == "application/json"
    assert await read_tasks(session, owner_id) == before


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "application/merge-patch+json"],
    ids=["with-charset", "json-suffix"],
)
async def test_json_media_types_with_parameters_or_a_suffix_are_read_as_json(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    content_type: str,
) -> None:
    response = await _send(
        client,
        PATCH_TASK,
        task,
        owner_headers,
        content=b'{"title": "Changed"}',
        headers={"content-type": content_type},
    )

    assert response.status_code == 200, response.text
    assert (await read_task(session, task.id))["title"] == "Changed"
