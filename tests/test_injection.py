"""Hostile text in every place a client can put it.

Where it is data (title, description, the search `q`, the token's `sub`) it is stored and
returned exactly, and searched for literally. Where it is not (sort, order, filters, cursor, path
id, If-Match) it is refused with a 4xx problem, never a 500. Nowhere is it interpreted: after
every test the tasks table still exists and another user's task is as it was. Response headers
never carry a CR or LF that came from a request.
"""

import re
import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.factories import make_task, read_task, read_tasks
from tests.problems import assert_problem
from tests.tokens import TokenFactory, bearer

# Text as a user might type it, or an attacker might: none of it is special to the service.
HOSTILE = {
    "sql-drop-table": "'; DROP TABLE tasks;--",
    "sql-tautology": "' OR '1'='1",
    "bind-placeholder": "$1",
    "type-cast": "::text",
    "like-percent": "100%",
    "like-underscore": "snake_case",
    "backslash": "C:\\tmp\\new \\%",
    "crlf": "line one\r\nline two",
    "html-script": '<script>alert("x")</script><img src=x onerror=alert(1)>',
    "rtl-override": "invoice\u202efdp.exe",
    "zero-width-joiner": "\U0001f469\u200d\U0001f4bb dev \u200b",
    "four-byte-emoji": "\U0001f389 \U0001d11e \U0001f984",
}
# Every one of them at once, as a single value (within the 500-character title limit).
EVERYTHING = " | ".join(HOSTILE.values())
TEXT_CASES = [pytest.param(text, id=name) for name, text in HOSTILE.items()] + [
    pytest.param(EVERYTHING, id="all-of-them")
]

SQL_FRAGMENTS = [
    pytest.param("'; DROP TABLE tasks;--", id="drop-table"),
    pytest.param("' OR '1'='1", id="tautology"),
    pytest.param("$1", id="placeholder"),
    pytest.param("::text", id="cast"),
    pytest.param("title; DELETE FROM tasks", id="stacked"),
    pytest.param("title DESC, (SELECT 1)", id="order-by-subquery"),
    pytest.param("%", id="percent"),
    pytest.param("\\", id="backslash"),
    pytest.param("title\r\nX-Injected: 1", id="crlf"),
]
PATH_IDS = [
    *SQL_FRAGMENTS,
    pytest.param(f"{uuid.uuid4()}' OR '1'='1", id="uuid-then-sql"),
    pytest.param("../../etc/passwd", id="path-traversal"),
]


@pytest.fixture
async def bystander(session: AsyncSession, other_owner_id: str) -> dict[str, Any]:
    """Another user's task, as stored before the test: it must still be exactly this after it."""
    task = await make_task(session, other_owner_id, title="Someone else's", description="private")
    return await read_task(session, task.id)


async def assert_nothing_interpreted(session: AsyncSession, bystander: dict[str, Any]) -> None:
    """The table is still there, and another user's row is untouched."""
    table = (await session.exec(select(func.to_regclass("tasks")))).one()
    assert table is not None
    assert await read_tasks(session, bystander["user_id"]) == [bystander]


def assert_clean_headers(response: httpx.Response) -> None:
    for name, value in response.headers.raw:
        assert b"\r" not in name + value, (name, value)
        assert b"\n" not in name + value, (name, value)
    assert "x-injected" not in response.headers
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("text", TEXT_CASES)
async def test_hostile_title_and_description_round_trip_exactly(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    bystander: dict[str, Any],
    text: str,
) -> None:
    # Descriptions are not trimmed, so surrounding CR/LF and tabs must survive too.
    description = f"\r\n\t{text}\r\n"

    created = await client.post(
        "/api/tasks", json={"title": text, "description": description}, headers=owner_headers
    )
    assert created.status_code == 201, created.text
    fetched = await client.get(created.headers["location"], headers=owner_headers)
    listed = await client.get("/api/tasks", headers=owner_headers)

    task_id = created.json()["id"]
    (from_list,) = [item for item in listed.json() if item["id"] == task_id]
    for body in (created.json(), fetched.json(), from_list):
        assert body["title"] == text
        assert body["description"] == description
    stored = await read_task(session, uuid.UUID(task_id))
    assert (stored["title"], stored["description"]) == (text, description)
    for response in (created, fetched, listed):
        assert response.headers["content-type"] == "application/json"  # never rendered as HTML
        assert_clean_headers(response)
    await assert_nothing_interpreted(session, bystander)


@pytest.mark.parametrize("text", TEXT_CASES)
async def test_hostile_text_survives_put_and_patch(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    bystander: dict[str, Any],
    text: str,
) -> None:
    task = await make_task(session, owner_id, title="Plain")

    replaced = await client.put(
        f"/api/tasks/{task.id}", json={"title": text}, headers=owner_headers
    )
    patched = await client.patch(
        f"/api/tasks/{task.id}", json={"description": text}, headers=owner_headers
    )

    assert replaced.json()["title"] == text
    assert (patched.json()["title"], patched.json()["description"]) == (text, text)
    stored = await read_task(session, task.id)
    assert (stored["title"], stored["description"]) == (text, text)
    await assert_nothing_interpreted(session, bystander)


# Decoys: near misses of the wildcard searches (no %, no _, no \).
DECOYS = ["100 percent", "snakecase", "C:/tmp/new", "plain task", "1=1"]


@pytest.fixture
async def searchable(session: AsyncSession, owner_id: str, other_owner_id: str) -> list[str]:
    """The owner's titles: every hostile value and the decoys. The other user holds the same
    titles, so a search that escaped the owner filter would show duplicates."""
    titles = [*HOSTILE.values(), *DECOYS]
    for user in (owner_id, other_owner_id):
        for title in titles:
            await make_task(session, user, title=title)
    return titles


@pytest.mark.parametrize(
    "q",
    [
        pytest.param("%", id="percent"),
        pytest.param("_", id="underscore"),
        pytest.param("\\", id="backslash"),
        pytest.param("\\%", id="escaped-percent"),
        pytest.param("0%", id="percent-after-a-digit"),
        pytest.param("e_c", id="underscore-in-a-word"),
        pytest.param("'", id="quote"),
        pytest.param("' OR '1'='1", id="tautology"),
        pytest.param("$1", id="placeholder"),
        pytest.param("::text", id="cast"),
        pytest.param("\r\n", id="crlf"),
        pytest.param("<script>", id="html"),
        pytest.param("\u202e", id="rtl-override"),
        pytest.param("\u200d", id="zero-width-joiner"),
        pytest.param("\U0001f984", id="four-byte-emoji"),
    ],
)
async def test_q_matches_hostile_text_literally_and_only_the_callers(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    searchable: list[str],
    q: str,
) -> None:
    expected = sorted(title for title in searchable if q.lower() in title.lower())
    assert expected, "each search has something to find"

    response = await client.get("/api/tasks", params={"q": q}, headers=owner_headers)

    assert response.status_code == 200, response.text
    assert sorted(item["title"] for item in response.json()) == expected


async def test_percent_matches_only_tasks_with_a_percent_sign(
    client: httpx.AsyncClient, owner_headers: dict[str, str], searchable: list[str]
) -> None:
    response = await client.get("/api/tasks", params={"q": "%"}, headers=owner_headers)

    titles = sorted(item["title"] for item in response.json())
    assert titles == sorted([HOSTILE["like-percent"], HOSTILE["backslash"]])
    assert len(titles) < len(searchable)


@pytest.mark.parametrize(
    "parameter", ["sort", "order", "status", "priority", "due_before", "updated_since", "limit"]
)
@pytest.mark.parametrize("value", SQL_FRAGMENTS)
async def test_sql_in_a_list_parameter_is_a_422(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    bystander: dict[str, Any],
    parameter: str,
    value: str,
) -> None:
    response = await client.get("/api/tasks", params={parameter: value}, headers=owner_headers)

    body = assert_problem(response, status=422, code="validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["query", parameter]]
    assert_clean_headers(response)
    await assert_nothing_interpreted(session, bystander)


@pytest.mark.parametrize("value", SQL_FRAGMENTS)
async def test_sql_as_a_cursor_is_a_400_invalid_cursor(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    bystander: dict[str, Any],
    value: str,
) -> None:
    response = await client.get("/api/tasks", params={"cursor": value}, headers=owner_headers)

    assert_problem(response, status=400, code="invalid_cursor")
    assert_clean_headers(response)
    await assert_nothing_interpreted(session, bystander)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        pytest.param("GET", "", None, id="get"),
        pytest.param("PUT", "", {"title": "Overwritten"}, id="put"),
        pytest.param("PATCH", "", {"title": "Patched"}, id="patch"),
        pytest.param("PATCH", "/complete", None, id="toggle"),
        pytest.param("DELETE", "", None, id="delete"),
    ],
)
@pytest.mark.parametrize("task_id", PATH_IDS)
async def test_sql_as_a_task_id_is_a_422_or_404_never_a_500(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    bystander: dict[str, Any],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    task_id: str,
) -> None:
    path = f"/api/tasks/{quote(task_id, safe='')}{suffix}"

    response = await client.request(method, path, json=body, headers=owner_headers)

    # A slash splits the path, which then names no route at all; anything else is no UUID.
    if "/" in task_id:
        assert_problem(response, status=404, code="not_found")
    else:
        assert_problem(response, status=422, code="validation_failed")
    assert_clean_headers(response)
    await assert_nothing_interpreted(session, bystander)


@pytest.mark.parametrize(
    ("if_match", "status", "code"),
    [
        pytest.param("'; DROP TABLE tasks;--", 400, "invalid_precondition", id="bare-sql"),
        # White space is not allowed inside an entity tag.
        pytest.param('"1 OR 1=1"', 400, "invalid_precondition", id="quoted-sql"),
        # Valid entity tags that are no version of ours: they match nothing.
        pytest.param("\"1'OR'1'='1\"", 412, "precondition_failed", id="quoted-tautology"),
        pytest.param('"2", "1)OR(1=1"', 412, "precondition_failed", id="sql-in-a-list"),
        pytest.param('"$1"', 412, "precondition_failed", id="placeholder"),
    ],
)
async def test_sql_in_if_match_never_reaches_the_update(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    bystander: dict[str, Any],
    if_match: str,
    status: int,
    code: str,
) -> None:
    task = await make_task(session, owner_id, title="Guarded")
    before = await read_task(session, task.id)

    response = await client.patch(
        f"/api/tasks/{task.id}",
        json={"title": "Changed"},
        headers={**owner_headers, "If-Match": if_match},
    )

    assert_problem(response, status=status, code=code)
    assert await read_task(session, task.id) == before
    await assert_nothing_interpreted(session, bystander)


@pytest.mark.parametrize(
    "sub",
    [
        pytest.param("' OR '1'='1", id="tautology"),
        pytest.param("%", id="like-percent"),
        pytest.param("_", id="like-underscore"),
        pytest.param("$1", id="placeholder"),
    ],
)
async def test_a_hostile_token_subject_is_only_an_owner_id(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tokens: TokenFactory,
    bystander: dict[str, Any],
    sub: str,
) -> None:
    headers = bearer(tokens.ed25519(sub))

    listed = await client.get("/api/tasks", headers=headers)
    created = await client.post("/api/tasks", json={"title": "Mine"}, headers=headers)
    foreign = await client.get(f"/api/tasks/{bystander['id']}", headers=headers)

    assert listed.json() == []
    assert created.json()["user_id"] == sub
    assert_problem(foreign, status=404, code="task_not_found")
    # Exactly the one task it created is stored under that sub (count included).
    assert await read_tasks(session, sub) == [created.json()]
    await assert_nothing_interpreted(session, bystander)


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param("abc\r\nSet-Cookie: session=stolen", id="crlf"),
        pytest.param("abc\nX-Injected: 1", id="lf"),
        pytest.param("abc\rX-Injected: 1", id="cr"),
        pytest.param("abc%0d%0aX-Injected:%201", id="percent-encoded-crlf"),
        pytest.param("\r\n", id="only-crlf"),
    ],
)
async def test_crlf_in_request_id_never_splits_a_response_header(
    client: httpx.AsyncClient, owner_headers: dict[str, str], request_id: str
) -> None:
    response = await client.get("/api/tasks", headers={**owner_headers, "X-Request-ID": request_id})

    assert response.status_code == 200
    generated = response.headers["x-request-id"]
    assert uuid.UUID(generated).version == 7
    assert_clean_headers(response)


_LINK = re.compile(r'<(?P<url>[^<>]*)>; rel="next"')


async def test_hostile_q_cannot_forge_the_link_header(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    q = '\r\nX-Injected: 1\r\n>; rel="prev", <https://evil.example/>; rel="next"'
    first = await make_task(session, owner_id, title=f"first {q}")
    second = await make_task(session, owner_id, title=f"second {q}")

    page = await client.get(
        "/api/tasks", params={"q": q, "limit": 1, "sort": "title"}, headers=owner_headers
    )

    assert page.status_code == 200, page.text
    assert_clean_headers(page)
    link = _LINK.fullmatch(page.headers["link"])
    assert link is not None, page.headers["link"]
    assert link["url"].startswith("http://testserver/api/tasks?")
    assert [item["id"] for item in page.json()] == [str(first.id)]
    following = await client.get(link["url"], headers=owner_headers)
    assert [item["id"] for item in following.json()] == [str(second.id)]
    assert "link" not in following.headers
