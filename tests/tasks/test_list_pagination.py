"""`GET /api/tasks` paging: the `Link: rel="next"` header, keyset walks over every sort, cursors."""

import base64
import hashlib
import itertools
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Priority, Task
from tests.factories import BASE_TIME, make_task, make_tasks

Params = dict[str, str | int]
Page = list[dict[str, Any]]

NEXT_LINK = re.compile(r'<(?P<url>[^<>]+)>; rel="next"')
SORTS = ["created_at", "created", "updated_at", "title", "due_date", "priority", "position"]
ORDERS = ["asc", "desc"]


def _next_url(response: httpx.Response) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    match = NEXT_LINK.fullmatch(link)
    assert match is not None, f"not an RFC 8288 next link: {link!r}"
    return match["url"]


def _query(url: str) -> dict[str, str]:
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=True)
    assert all(len(values) == 1 for values in parsed.values()), url
    return {name: values[0] for name, values in parsed.items()}


async def _next_cursor(client: httpx.AsyncClient, headers: dict[str, str], params: Params) -> str:
    """The cursor that the first page for `params` links to."""
    response = await client.get("/api/tasks", params=params, headers=headers)
    url = _next_url(response)
    assert url is not None, "expected a next page"
    return _query(url)["cursor"]


async def _walk(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    params: Params,
    between_pages: Callable[[Page], Awaitable[None]] | None = None,
) -> list[Page]:
    """Every page from the first one, following `Link: rel="next"` until there is none.

    Also checks that each next link keeps the first request's parameters and adds only `cursor`.
    """
    pages: list[Page] = []
    response = await client.get("/api/tasks", params=params, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = _next_url(response)
        if url is None:
            return pages
        # The link points back at the path that was asked (either mount of the list).
        assert url.startswith(f"http://testserver{response.request.url.path}?")
        kept = _query(url)
        del kept["cursor"]
        assert kept == {name: str(value) for name, value in params.items()}
        assert len(pages) < 50, "the walk does not end"
        if between_pages is not None:
            await between_pages(pages[-1])
        response = await client.get(url, headers=headers)


def _ids(pages: Iterable[Page]) -> list[str]:
    return [item["id"] for page in pages for item in page]


def _sort_value(task: Task, sort: str) -> Any:
    value = getattr(task, "created_at" if sort == "created" else sort)
    return value.rank if isinstance(value, Priority) else value


def _expected_ids(tasks: Iterable[Task], sort: str, descending: bool) -> list[str]:
    """The full ordering: by the sort key, ties by id in the same direction, no value last."""
    tasks = list(tasks)
    valued = [task for task in tasks if _sort_value(task, sort) is not None]
    missing = [task for task in tasks if _sort_value(task, sort) is None]
    valued.sort(key=lambda task: (_sort_value(task, sort), task.id), reverse=descending)
    missing.sort(key=lambda task: task.id, reverse=descending)
    return [str(task.id) for task in valued + missing]


# Ten tasks with ties in every sort key: equal timestamps (a microsecond apart otherwise, so a
# cursor that lost precision would skip or repeat rows), equal titles, priorities and positions,
# equal due dates and three without one.
# title, created (us), updated (us), priority, due (days), position, completed
TIED_ROWS: list[tuple[str, int, int, Priority, int | None, int, bool]] = [
    ("cherry", 1, 5, Priority.HIGH, None, 3, False),
    ("apple", 0, 5, Priority.LOW, 2, 0, True),
    ("cherry", 1, 2, Priority.MEDIUM, 1, 0, False),
    ("banana", 3, 9, Priority.MEDIUM, None, -7, False),
    ("apple", 1, 2, Priority.HIGH, 2, 3, False),
    ("date", 4, 9, Priority.LOW, 5, 10, True),
    ("cherry", 2, 0, Priority.MEDIUM, None, 0, False),
    ("elder", 4, 7, Priority.HIGH, 3, -7, True),
    ("fig", 6, 5, Priority.MEDIUM, 1, 2, False),
    ("banana", 5, 1, Priority.LOW, 4, 3, False),
]


def _tied_fields(row: tuple[str, int, int, Priority, int | None, int, bool]) -> dict[str, Any]:
    title, created, updated, priority, due, position, completed = row
    return {
        "title": title,
        "created_at": BASE_TIME + timedelta(microseconds=created),
        "updated_at": BASE_TIME + timedelta(microseconds=updated),
        "priority": priority,
        "due_date": None if due is None else BASE_TIME + timedelta(days=due),
        "position": position,
        "completed": completed,
    }


@pytest.fixture
async def tied_tasks(session: AsyncSession, owner_id: str, other_owner_id: str) -> list[Task]:
    """TIED_ROWS for the owner; the other user gets the same rows, interleaved in every sort."""
    owned = []
    for row in TIED_ROWS:
        owned.append(await make_task(session, owner_id, **_tied_fields(row)))
        await make_task(session, other_owner_id, **_tied_fields(row))
    return owned


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sort", SORTS)
async def test_walking_every_page_returns_the_full_ordering_once(
    client: httpx.AsyncClient,
    tied_tasks: list[Task],
    owner_headers: dict[str, str],
    sort: str,
    order: str,
) -> None:
    pages = await _walk(client, owner_headers, {"sort": sort, "order": order, "limit": 3})

    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert _ids(pages) == _expected_ids(tied_tasks, sort, descending=order == "desc")


@pytest.mark.parametrize(
    ("sort", "descending"),
    [
        ("created_at", True),
        ("created", True),
        ("updated_at", True),
        ("title", False),
        ("due_date", False),
        ("priority", False),
        ("position", False),
    ],
)
async def test_walking_without_order_uses_the_sort_keys_default_direction(
    client: httpx.AsyncClient,
    tied_tasks: list[Task],
    owner_headers: dict[str, str],
    sort: str,
    descending: bool,
) -> None:
    pages = await _walk(client, owner_headers, {"sort": sort, "limit": 4})

    assert _ids(pages) == _expected_ids(tied_tasks, sort, descending)


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"status": "pending"}, lambda task: not task.completed),
        ({"completed": "true"}, lambda task: task.completed),
        ({"priority": "medium"}, lambda task: task.priority is Priority.MEDIUM),
        ({"q": "E"}, lambda task: "e" in task.title),
        (
            {"due_after": "2026-01-02", "due_before": "2026-01-06"},
            lambda task: task.due_date is not None and task.due_date.day in {3, 4, 5},
        ),
    ],
    ids=["status", "completed", "priority", "q", "due-range"],
)
@pytest.mark.parametrize("sort", ["title", "due_date"])
async def test_walking_a_filtered_list_keeps_the_filters_on_every_page(
    client: httpx.AsyncClient,
    tied_tasks: list[Task],
    owner_headers: dict[str, str],
    params: Params,
    keep: Callable[[Task], bool],
    sort: str,
) -> None:
    pages = await _walk(client, owner_headers, {**params, "sort": sort, "limit": 2})

    expected = _expected_ids(filter(keep, tied_tasks), sort, descending=False)
    assert len(expected) >= 3, "the filter should leave more than one page"
    assert _ids(pages) == expected


async def test_next_link_is_an_absolute_rfc8288_link_that_re_encodes_the_query(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    q = "50% ☕ & #1+1=2"
    matching = [await make_task(session, owner_id, title=f"{q} ({n})") for n in range(5)]
    await make_task(session, owner_id, title="50 coffees")
    params: Params = {"q": q, "sort": "title", "limit": 2}

    response = await client.get("/api/tasks", params=params, headers=owner_headers)
    pages = await _walk(client, owner_headers, params)

    link = response.headers["link"]
    path = re.escape(response.request.url.path)
    url = rf"http://testserver{path}\?[^<>\s]*cursor=[\w-]+[^<>\s]*"
    assert re.fullmatch(f'<{url}>; rel="next"', link), link
    assert _ids(pages) == [str(task.id) for task in matching]


@pytest.mark.parametrize(("count", "sizes"), [(0, [0]), (3, [3]), (6, [3, 3]), (7, [3, 3, 1])])
async def test_last_page_has_no_link_and_no_empty_page_follows_a_full_one(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    count: int,
    sizes: list[int],
) -> None:
    await make_tasks(session, owner_id, count)

    pages = await _walk(client, owner_headers, {"limit": 3})

    assert [len(page) for page in pages] == sizes


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sort", [sort for sort in SORTS if sort != "created"])
async def test_walking_neither_repeats_nor_skips_while_tasks_are_created_and_deleted(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tied_tasks: list[Task],
    owner_headers: dict[str, str],
    owner_id: str,
    sort: str,
    order: str,
) -> None:
    descending = order == "desc"
    initial = _expected_ids(tied_tasks, sort, descending)
    tasks = {str(task.id): task for task in tied_tasks}
    seen: list[str] = []
    deleted: set[str] = set()
    small_ids = (uuid.UUID(int=n) for n in itertools.count(1))

    async def delete(task_id: str) -> None:
        response = await client.delete(f"/api/tasks/{task_id}", headers=owner_headers)
        assert response.status_code == 204
        deleted.add(task_id)

    async def clone(task_id: str, **fields: Any) -> None:
        original = tasks[task_id]
        names = ("title", "created_at", "updated_at", "priority", "due_date", "position")
        values = {name: getattr(original, name) for name in names}
        task = await make_task(session, owner_id, **values, **fields)
        tasks[str(task.id)] = task

    async def change_the_list(page: Page) -> None:
        seen.extend(item["id"] for item in page)
        unseen = [task_id for task_id in initial if task_id not in seen and task_id not in deleted]
        # New rows that tie with the row the cursor points at, one on each side of its id, and
        # one that ties with a row still to come.
        await clone(seen[-1], id=next(small_ids))
        await clone(seen[-1])
        if unseen:
            await clone(unseen[0], id=next(small_ids))
        # Gone: the row the cursor points at, an earlier one, and one not reached yet.
        await delete(seen[-1])
        if len(seen) > 1 and seen[0] not in deleted:
            await delete(seen[0])
        if len(unseen) > 1:
            await delete(unseen[1])

    pages = await _walk(
        client, owner_headers, {"sort": sort, "order": order, "limit": 3}, change_the_list
    )

    walked = _ids(pages)
    assert len(walked) == len(set(walked)), "a row was returned twice"
    survivors = [task_id for task_id in initial if task_id not in deleted]
    assert set(survivors) <= set(walked), "a row that existed throughout was skipped"
    assert not deleted & set(walked) - set(seen), "a row deleted before its page was returned"
    assert walked == _expected_ids([tasks[task_id] for task_id in walked], sort, descending)


# --- cursors ------------------------------------------------------------------------------------


@pytest.fixture
async def title_cursor(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> str:
    """A real cursor for the owner's `sort=title` (ascending) list, pointing after "Task 001"."""
    await make_tasks(session, owner_id, 5)
    return await _next_cursor(client, owner_headers, {"sort": "title", "limit": 2})


def _assert_invalid_cursor(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 400
    assert body["code"] == "invalid_cursor"
    assert body["type"].endswith("/invalid-cursor")
    assert body["detail"]


async def test_a_real_cursor_continues_the_list(
    client: httpx.AsyncClient, title_cursor: str, owner_headers: dict[str, str]
) -> None:
    response = await client.get(
        "/api/tasks", params={"sort": "title", "cursor": title_cursor}, headers=owner_headers
    )

    assert response.status_code == 200
    assert [item["title"] for item in response.json()] == ["Task 002", "Task 003", "Task 004"]


@pytest.mark.parametrize(
    "cursor", ["abc", "!!!", "AAAA", "x" * 1024, "é🎉", "eyJzb3J0IjoidGl0bGUifQ", "null"]
)
async def test_list_tasks_with_a_garbage_cursor_returns_400_invalid_cursor(
    client: httpx.AsyncClient, owner_headers: dict[str, str], cursor: str
) -> None:
    response = await client.get(
        "/api/tasks", params={"sort": "title", "cursor": cursor}, headers=owner_headers
    )

    _assert_invalid_cursor(response)


def _change_char(cursor: str, index: int) -> str:
    replacement = "A" if cursor[index] != "A" else "B"
    return cursor[:index] + replacement + cursor[index + 1 :]


@pytest.mark.parametrize(
    "alter",
    [
        lambda cursor: cursor[:-1],
        lambda cursor: cursor[:-4],
        lambda cursor: cursor[: len(cursor) // 2],
        lambda cursor: cursor + "A",
        lambda cursor: _change_char(cursor, 0),
        lambda cursor: _change_char(cursor, len(cursor) // 2),
        lambda cursor: _change_char(cursor, len(cursor) - 3),
    ],
    ids=[
        "last-char-dropped",
        "last-4-chars-dropped",
        "cut-in-half",
        "char-appended",
        "first-char-changed",
        "middle-char-changed",
        "char-near-the-end-changed",
    ],
)
async def test_list_tasks_with_an_altered_cursor_returns_400_invalid_cursor(
    client: httpx.AsyncClient,
    title_cursor: str,
    owner_headers: dict[str, str],
    alter: Callable[[str], str],
) -> None:
    response = await client.get(
        "/api/tasks", params={"sort": "title", "cursor": alter(title_cursor)}, headers=owner_headers
    )

    _assert_invalid_cursor(response)


@pytest.mark.parametrize(
    ("made_for", "used_with"),
    [
        ({"sort": "title"}, {"sort": "created_at"}),
        ({"sort": "title"}, {"sort": "created"}),
        ({"sort": "title"}, {"sort": "title", "order": "desc"}),
        ({"sort": "title"}, {"sort": "priority"}),
        ({"sort": "title"}, {"sort": "position"}),
        ({"sort": "title"}, {}),
        ({"sort": "created_at"}, {"sort": "created_at", "order": "asc"}),
        ({"sort": "created_at"}, {"sort": "updated_at"}),
        ({"sort": "created_at"}, {"sort": "due_date", "order": "desc"}),
        ({"sort": "due_date"}, {"sort": "created_at", "order": "asc"}),
        ({"sort": "position"}, {"sort": "position", "order": "desc"}),
        ({"sort": "priority", "order": "desc"}, {"sort": "priority"}),
    ],
    ids=lambda params: "&".join(f"{name}={value}" for name, value in params.items()) or "default",
)
async def test_a_cursor_used_with_another_sort_or_order_returns_400_invalid_cursor(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    made_for: Params,
    used_with: Params,
) -> None:
    for day in range(1, 4):
        await make_task(session, owner_id, due_date=BASE_TIME + timedelta(days=day))
    cursor = await _next_cursor(client, owner_headers, {**made_for, "limit": 1})

    response = await client.get(
        "/api/tasks", params={**used_with, "cursor": cursor}, headers=owner_headers
    )

    _assert_invalid_cursor(response)


async def test_a_cursor_made_for_created_works_for_its_alias_created_at(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    await make_tasks(session, owner_id, 3)
    cursor = await _next_cursor(client, owner_headers, {"sort": "created", "limit": 1})

    response = await client.get(
        "/api/tasks", params={"sort": "created_at", "cursor": cursor}, headers=owner_headers
    )

    assert response.status_code == 200
    assert [item["title"] for item in response.json()] == ["Task 001", "Task 000"]


async def test_another_users_cursor_only_ever_yields_the_callers_own_tasks(
    client: httpx.AsyncClient,
    session: AsyncSession,
    title_cursor: str,
    other_owner_headers: dict[str, str],
    other_owner_id: str,
) -> None:
    theirs = [
        await make_task(session, other_owner_id, title=title)
        for title in ("Task 000", "Task 001b", "Task 003", "Zebra")
    ]

    response = await client.get(
        "/api/tasks", params={"sort": "title", "cursor": title_cursor}, headers=other_owner_headers
    )

    assert response.status_code == 200
    items = response.json()
    assert {item["user_id"] for item in items} == {other_owner_id}
    assert [item["id"] for item in items] == [str(task.id) for task in theirs[1:]]


def _forge_cursor(payload: object) -> str:
    """A cursor with a valid checksum around any JSON, as anyone who reads the code could make.

    The checksum is public by design (see specs: "a checksum, not a signature"); this mirrors it.
    """
    raw = json.dumps(payload).encode()
    checksum = hashlib.blake2b(raw, digest_size=8, person=b"tasks-cursor").digest()
    return base64.urlsafe_b64encode(checksum + raw).decode().rstrip("=")


SOME_ID = "0199c7c4-8a55-7000-8000-000000000000"
FORGED_PAYLOADS: dict[str, tuple[str, object]] = {
    "two-items": ("title", ["title", False]),
    "object": ("title", {"sort": "title"}),
    "number-for-title": ("title", ["title", False, 42, SOME_ID]),
    "title-too-long": ("title", ["title", False, "x" * 501, SOME_ID]),
    "title-with-nul": ("title", ["title", False, "nul\u0000", SOME_ID]),
    "task-id-not-a-uuid": ("title", ["title", False, "Task", "not-a-uuid"]),
    "task-id-null": ("title", ["title", False, "Task", None]),
    "task-id-number": ("title", ["title", False, "Task", 7]),
    "task-id-list": ("title", ["title", False, "Task", [SOME_ID]]),
    "time-unparseable": ("created_at", ["created_at", True, {"t": "yesterday"}, SOME_ID]),
    "time-naive": ("created_at", ["created_at", True, {"t": "2026-01-01T00:00:00"}, SOME_ID]),
    "time-number": ("created_at", ["created_at", True, {"t": 1}, SOME_ID]),
    "time-wrong-key": ("created_at", ["created_at", True, {"when": "2026-01-01Z"}, SOME_ID]),
    "time-plain-string": ("created_at", ["created_at", True, "2026-01-01T00:00:00Z", SOME_ID]),
    "due-number": ("due_date", ["due_date", False, 20260101, SOME_ID]),
    "position-beyond-int32": ("position", ["position", False, 2**31, SOME_ID]),
    "position-float": ("position", ["position", False, 1.5, SOME_ID]),
    "position-bool": ("position", ["position", False, True, SOME_ID]),
    "priority-unknown": ("priority", ["priority", False, "urgent", SOME_ID]),
    "priority-rank": ("priority", ["priority", False, 3, SOME_ID]),
    "priority-list": ("priority", ["priority", False, ["high"], SOME_ID]),
}


@pytest.mark.parametrize(("sort", "payload"), FORGED_PAYLOADS.values(), ids=FORGED_PAYLOADS.keys())
async def test_a_forged_cursor_with_wrongly_typed_content_returns_400_invalid_cursor(
    client: httpx.AsyncClient, owner_headers: dict[str, str], sort: str, payload: object
) -> None:
    response = await client.get(
        "/api/tasks",
        params={"sort": sort, "cursor": _forge_cursor(payload)},
        headers=owner_headers,
    )

    _assert_invalid_cursor(response)


@pytest.mark.parametrize("character", ["x", "é", "日", "🎉"])
async def test_the_next_link_works_after_a_500_character_title(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    character: str,
) -> None:
    first = await make_task(session, owner_id, title=character * 499 + "1")
    second = await make_task(session, owner_id, title=character * 499 + "2")

    pages = await _walk(client, owner_headers, {"sort": "title", "limit": 1})

    assert _ids(pages) == [str(first.id), str(second.id)]
