"""`GET /api/tasks`: ownership, filters, search, sort keys and parameter validation.

Paging (the `Link` header, cursors, walks over every sort) lives in `test_list_pagination.py`.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.config import Settings
from tasks_api.tasks.models import Priority, Task
from tests.factories import BASE_TIME, make_task, make_tasks
from tests.problems import assert_problem

Params = dict[str, str | int]


async def _list(
    client: httpx.AsyncClient, headers: dict[str, str], params: Params | None = None
) -> list[dict[str, Any]]:
    response = await client.get("/api/tasks", params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: list[dict[str, Any]] = response.json()
    assert isinstance(body, list)
    return body


def _titles(items: list[dict[str, Any]]) -> list[str]:
    return [item["title"] for item in items]


def _assert_validation_problem(response: httpx.Response, parameter: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "validation_failed"
    assert any(error["loc"][:2] == ["query", parameter] for error in body["errors"]), body["errors"]


# Every filter test runs over the same tasks for two users; the other user's copies match every
# filter too, so a missing owner condition would show up as duplicated titles.
CATALOGUE: list[dict[str, Any]] = [
    {
        "title": "Pay rent",
        "priority": Priority.HIGH,
        "due_date": datetime(2026, 3, 1, tzinfo=UTC),
    },
    {
        "title": "File taxes",
        "completed": True,
        "priority": Priority.HIGH,
        "due_date": datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC),
    },
    {"title": "Water plants", "priority": Priority.LOW},
    {
        "title": "Book dentist",
        "completed": True,
        "priority": Priority.MEDIUM,
        "due_date": datetime(2026, 3, 1, 12, tzinfo=UTC),
    },
    {
        "title": "Read book",
        "priority": Priority.MEDIUM,
        "due_date": datetime(2026, 3, 2, tzinfo=UTC),
    },
]


@pytest.fixture
async def catalogue(session: AsyncSession, owner_id: str, other_owner_id: str) -> dict[str, Task]:
    """The CATALOGUE for the owner (returned by title) and an identical copy for the other user."""
    owned: dict[str, Task] = {}
    for index, fields in enumerate(CATALOGUE):
        created_at = BASE_TIME + timedelta(hours=index)
        task = await make_task(session, owner_id, created_at=created_at, **fields)
        await make_task(session, other_owner_id, created_at=created_at, **fields)
        owned[task.title] = task
    return owned


async def test_list_tasks_returns_200_with_only_the_callers_tasks(
    client: httpx.AsyncClient,
    catalogue: dict[str, Task],
    owner_headers: dict[str, str],
    other_owner_headers: dict[str, str],
    owner_id: str,
    other_owner_id: str,
) -> None:
    mine = await _list(client, owner_headers)
    theirs = await _list(client, other_owner_headers)

    assert {item["id"] for item in mine} == {str(task.id) for task in catalogue.values()}
    assert {item["user_id"] for item in mine} == {owner_id}
    assert {item["user_id"] for item in theirs} == {other_owner_id}
    assert not {item["id"] for item in mine} & {item["id"] for item in theirs}


async def test_list_tasks_returns_every_response_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
) -> None:
    task = await make_task(
        session,
        owner_id,
        title="Pay rent",
        description="Before the 5th",
        completed=True,
        priority=Priority.HIGH,
        due_date=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
        position=-4,
    )

    assert await _list(client, owner_headers) == [
        {
            "id": str(task.id),
            "user_id": owner_id,
            "title": "Pay rent",
            "description": "Before the 5th",
            "completed": True,
            "completed_at": "2026-01-01T00:00:00Z",
            "priority": "high",
            "due_date": "2026-03-01T09:30:00Z",
            "position": -4,
            "version": 1,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
            "deleted": False,
        }
    ]


async def test_list_tasks_without_tasks_returns_an_empty_array_and_no_link(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    other_owner_id: str,
) -> None:
    await make_tasks(session, other_owner_id, 3)

    response = await client.get("/api/tasks", headers=owner_headers)

    assert response.status_code == 200
    assert response.json() == []
    assert "link" not in response.headers


async def test_list_tasks_without_a_token_returns_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks")

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"].startswith("Bearer")


ALL = sorted(task["title"] for task in CATALOGUE)
PENDING = ["Pay rent", "Read book", "Water plants"]
COMPLETED = ["Book dentist", "File taxes"]


# Due dates in the catalogue: File taxes 02-28 23:59:59Z, Pay rent 03-01 00:00Z,
# Book dentist 03-01 12:00Z, Read book 03-02 00:00Z; Water plants has none.
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # completion: `status`, or `completed` as a shorthand, or both when they agree
        pytest.param({}, ALL, id="default-is-all"),
        pytest.param({"status": "all"}, ALL, id="all"),
        pytest.param({"status": "pending"}, PENDING, id="pending"),
        pytest.param({"status": "completed"}, COMPLETED, id="completed"),
        pytest.param({"completed": "false"}, PENDING, id="completed-false"),
        pytest.param({"completed": "true"}, COMPLETED, id="completed-true"),
        pytest.param(
            {"status": "all", "completed": "true"}, COMPLETED, id="all-and-completed-true"
        ),
        pytest.param(
            {"status": "completed", "completed": "true"},
            COMPLETED,
            id="completed-and-completed-true",
        ),
        pytest.param(
            {"status": "pending", "completed": "false"}, PENDING, id="pending-and-completed-false"
        ),
        # priority
        pytest.param({"priority": "high"}, ["File taxes", "Pay rent"], id="priority-high"),
        pytest.param({"priority": "medium"}, ["Book dentist", "Read book"], id="priority-medium"),
        pytest.param({"priority": "low"}, ["Water plants"], id="priority-low"),
        # due date: both bounds exclusive, a plain date is midnight UTC, undated tasks never match
        pytest.param(
            {"due_before": "2026-03-01"},
            ["File taxes"],
            id="before-plain-date-is-midnight-utc-exclusive",
        ),
        pytest.param(
            {"due_before": "2026-03-01T00:00:00Z"}, ["File taxes"], id="before-instant-is-exclusive"
        ),
        pytest.param(
            {"due_before": "2026-03-01T00:00:00.000001Z"},
            ["File taxes", "Pay rent"],
            id="before-just-after-midnight",
        ),
        pytest.param(
            {"due_before": "2026-03-01T13:00:00+02:00"},
            ["File taxes", "Pay rent"],
            id="before-with-offset",
        ),
        pytest.param(
            {"due_after": "2026-03-01"},
            ["Book dentist", "Read book"],
            id="after-plain-date-is-midnight-utc-exclusive",
        ),
        pytest.param(
            {"due_after": "2026-03-01T12:00:00Z"}, ["Read book"], id="after-instant-is-exclusive"
        ),
        pytest.param(
            {"due_after": "2026-03-01T07:00:00-05:00"}, ["Read book"], id="after-with-offset"
        ),
        pytest.param(
            {"due_after": "2026-02-28", "due_before": "2026-03-02"},
            ["Book dentist", "File taxes", "Pay rent"],
            id="between-plain-dates",
        ),
        pytest.param(
            {"due_after": "2026-03-01", "due_before": "2026-03-01T12:00:00Z"},
            [],
            id="between-excludes-both-bounds",
        ),
        pytest.param(
            {"due_after": "2020-01-01"},
            ["Book dentist", "File taxes", "Pay rent", "Read book"],
            id="after-excludes-undated",
        ),
        pytest.param(
            {"due_before": "2030-01-01"},
            ["Book dentist", "File taxes", "Pay rent", "Read book"],
            id="before-excludes-undated",
        ),
        # several at once
        pytest.param(
            {"status": "pending", "priority": "medium", "due_after": "2026-03-01", "q": "BOOK"},
            ["Read book"],
            id="all-filters-combine-with-and",
        ),
    ],
)
async def test_list_tasks_returns_only_the_tasks_matching_the_filters(
    client: httpx.AsyncClient,
    catalogue: dict[str, Task],
    owner_headers: dict[str, str],
    params: Params,
    expected: list[str],
) -> None:
    items = await _list(client, owner_headers, {**params, "sort": "title"})

    assert _titles(items) == expected


@pytest.mark.parametrize(
    "params",
    [{"status": "pending", "completed": "true"}, {"status": "completed", "completed": "false"}],
    ids=["pending-but-completed", "completed-but-not"],
)
async def test_list_tasks_with_contradicting_status_and_completed_returns_422(
    client: httpx.AsyncClient, owner_headers: dict[str, str], params: Params
) -> None:
    response = await client.get("/api/tasks", params=params, headers=owner_headers)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "validation_failed"


SEARCHABLE: list[dict[str, Any]] = [
    {"title": "Buy MILK"},
    {"title": "Call mom", "description": "Ask about the Milkman"},
    {"title": "50% off sale"},
    {"title": "500 items"},
    {"title": "a_b test"},
    {"title": "axb test"},
    {"title": "Fix C:\\temp path"},
    {"title": "Fix C:temp path"},
    {"title": "Café ☕ for Zoë 🎉"},
    {"title": "Plain", "description": "nothing to see"},
]


@pytest.fixture
async def searchable(session: AsyncSession, owner_id: str, other_owner_id: str) -> None:
    for index, fields in enumerate(SEARCHABLE):
        created_at = BASE_TIME + timedelta(hours=index)
        await make_task(session, owner_id, created_at=created_at, **fields)
        await make_task(session, other_owner_id, created_at=created_at, **fields)


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("milk", ["Buy MILK", "Call mom"]),
        ("MiLk", ["Buy MILK", "Call mom"]),
        ("milkman", ["Call mom"]),
        ("50%", ["50% off sale"]),
        ("%", ["50% off sale"]),
        ("0%", ["50% off sale"]),
        ("a_b", ["a_b test"]),
        ("_", ["a_b test"]),
        ("\\", ["Fix C:\\temp path"]),
        ("C:\\t", ["Fix C:\\temp path"]),
        ("\\%", []),
        ("🎉", ["Café ☕ for Zoë 🎉"]),
        ("CAFÉ", ["Café ☕ for Zoë 🎉"]),
        ("zoë", ["Café ☕ for Zoë 🎉"]),
        ("☕ for", ["Café ☕ for Zoë 🎉"]),
        ("see", ["Plain"]),
        ("nowhere", []),
    ],
)
async def test_list_tasks_q_matches_a_literal_case_insensitive_substring_of_title_or_description(
    client: httpx.AsyncClient,
    searchable: None,
    owner_headers: dict[str, str],
    q: str,
    expected: list[str],
) -> None:
    items = await _list(client, owner_headers, {"q": q, "sort": "title"})

    assert sorted(_titles(items)) == sorted(expected)


@pytest.mark.parametrize(
    "q",
    [
        "'; DROP TABLE tasks; --",
        "' OR '1'='1",
        "%' OR 1=1 --",
        '"); DELETE FROM tasks; --',
        "\\'; SELECT pg_sleep(5); --",
    ],
)
async def test_list_tasks_q_with_sql_is_only_searched_for(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    other_owner_id: str,
    q: str,
) -> None:
    await make_task(session, owner_id, title="Ordinary task")
    await make_task(session, other_owner_id, title="Someone else's task")
    quoted = await make_task(session, owner_id, title=f"Note: {q} is an attack")

    items = await _list(client, owner_headers, {"q": q})

    assert [item["id"] for item in items] == [str(quoted.id)]
    assert items[0]["title"] == f"Note: {q} is an attack"
    both = col(Task.user_id).in_([owner_id, other_owner_id])
    assert (await session.exec(select(func.count()).where(both))).one() == 3


@pytest.mark.parametrize(
    "text",
    [
        "Ünïcødé ✓",
        "日本語のタスク",
        "🚀🔥 launch 👩‍👩‍👧‍👦",
        "𝄞 clef outside the BMP",
        "e\u0301 combining accent",
        "right-to-left: مرحبا",
    ],
)
async def test_list_tasks_round_trips_unicode_and_finds_it_with_q(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    text: str,
) -> None:
    await make_task(session, owner_id, title="Ascii only")
    task = await make_task(session, owner_id, title=text, description=f"about {text}")

    everything = await _list(client, owner_headers)
    found = await _list(client, owner_headers, {"q": text[:3]})

    assert {(item["title"], item["description"]) for item in everything} == {
        ("Ascii only", None),
        (text, f"about {text}"),
    }
    assert [item["id"] for item in found] == [str(task.id)]


# Created in this order. Priority names sort high < low < medium, so only ranking them gives the
# priority orders below.
SORTABLE: list[dict[str, Any]] = [
    {"title": "undated medium", "priority": Priority.MEDIUM},
    {
        "title": "early high",
        "priority": Priority.HIGH,
        "due_date": datetime(2026, 2, 1, tzinfo=UTC),
    },
    {"title": "late low", "priority": Priority.LOW, "due_date": datetime(2026, 5, 1, tzinfo=UTC)},
]
OLDEST_FIRST = [fields["title"] for fields in SORTABLE]
NEWEST_FIRST = OLDEST_FIRST[::-1]
BY_TITLE = ["early high", "late low", "undated medium"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, NEWEST_FIRST),
        ({"sort": "created_at"}, NEWEST_FIRST),
        ({"sort": "created"}, NEWEST_FIRST),
        ({"sort": "created", "order": "asc"}, OLDEST_FIRST),
        ({"sort": "title"}, BY_TITLE),
        ({"sort": "title", "order": "desc"}, BY_TITLE[::-1]),
        ({"sort": "due_date", "order": "asc"}, ["early high", "late low", "undated medium"]),
        ({"sort": "due_date", "order": "desc"}, ["late low", "early high", "undated medium"]),
        ({"sort": "priority", "order": "asc"}, ["late low", "undated medium", "early high"]),
        ({"sort": "priority", "order": "desc"}, ["early high", "undated medium", "late low"]),
    ],
    ids=[
        "default-is-newest-first",
        "created_at",
        "created-alias",
        "created-alias-asc",
        "title",
        "title-desc",
        "due-date-asc-undated-last",
        "due-date-desc-undated-last",
        "priority-asc-by-rank",
        "priority-desc-by-rank",
    ],
)
async def test_list_tasks_sort_and_order_parameters(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    params: Params,
    expected: list[str],
) -> None:
    for minutes, fields in enumerate(SORTABLE):
        await make_task(
            session, owner_id, created_at=BASE_TIME + timedelta(minutes=minutes), **fields
        )

    assert _titles(await _list(client, owner_headers, params)) == expected


async def test_list_tasks_returns_at_most_100_tasks_by_default(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    await make_tasks(session, owner_id, 101)

    response = await client.get("/api/tasks", headers=owner_headers)

    assert response.status_code == 200
    assert len(response.json()) == 100
    assert 'rel="next"' in response.headers["link"]


@pytest.mark.parametrize("limit", [1, 500])
async def test_list_tasks_accepts_limits_from_1_to_500(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    limit: int,
) -> None:
    await make_tasks(session, owner_id, 2)

    items = await _list(client, owner_headers, {"limit": limit})

    assert len(items) == min(limit, 2)


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("limit", "0"),
        ("limit", "501"),
        ("limit", "-1"),
        ("limit", "ten"),
        ("status", "done"),
        ("status", "ALL"),
        ("completed", "maybe"),
        ("priority", "urgent"),
        ("priority", "HIGH"),
        ("sort", "user_id"),
        ("sort", "title desc"),
        ("order", "up"),
        ("due_before", "tomorrow"),
        ("due_before", "2026-03-01T10:00:00"),
        ("due_after", "2026-02-30"),
        ("q", ""),
        pytest.param("q", "x" * 201, id="q-201-chars"),
        pytest.param("cursor", "A" * 4097, id="cursor-4097-chars"),
        ("q", "nul\x00byte"),
    ],
)
async def test_list_tasks_with_an_invalid_query_parameter_returns_422(
    client: httpx.AsyncClient, owner_headers: dict[str, str], parameter: str, value: str
) -> None:
    response = await client.get("/api/tasks", params={parameter: value}, headers=owner_headers)

    _assert_validation_problem(response, parameter)


@pytest.mark.parametrize("q", ["x" * 200, "🎉" * 200], ids=["200-chars", "200-emoji"])
async def test_list_tasks_accepts_a_q_of_200_characters(
    client: httpx.AsyncClient, owner_headers: dict[str, str], q: str
) -> None:
    assert await _list(client, owner_headers, {"q": q}) == []


async def test_list_tasks_reads_a_cursor_of_4096_characters(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.get("/api/tasks", params={"cursor": "A" * 4096}, headers=owner_headers)

    # Within the length bound, so it is decoded (and found not to be ours), not refused as long.
    assert_problem(response, 400, "invalid_cursor")


async def test_list_tasks_with_every_parameter_at_its_longest_fits_the_default_query_limit(
    client: httpx.AsyncClient, owner_headers: dict[str, str], settings: Settings
) -> None:
    longest: Params = {
        "status": "completed",
        "completed": "true",
        "priority": "medium",
        "due_before": "2026-12-31T23:59:59.999999+14:00",
        "due_after": "2026-01-01T00:00:00.000001-12:00",
        "q": "🎉" * 200,  # 12 bytes each once percent-encoded
        "sort": "updated_at",
        "order": "desc",
        "limit": 500,
        "cursor": "A" * 4096,
    }

    response = await client.get("/api/tasks", params=longest, headers=owner_headers)

    assert settings.max_query_string_bytes == 8192  # the default
    assert len(response.request.url.query) <= settings.max_query_string_bytes
    # Not a 414: the request got as far as reading the cursor.
    assert_problem(response, 400, "invalid_cursor")
