"""Bounds and malformed input for every write (POST, PUT, PATCH): a problem, and nothing stored."""

from typing import Any

import httpx
import pytest
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tasks_api.tasks.schemas import TaskResponse
from tests.factories import make_task
from tests.problems import assert_problem

WRITES = ["POST", "PUT", "PATCH"]
INT32_MAX = 2**31 - 1
FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # woman, woman, girl joined by ZWJ
JSON = {"content-type": "application/json"}


@pytest.fixture
async def task(session: AsyncSession, owner_id: str) -> Task:
    return await make_task(session, owner_id, title="Original", description="Untouched")


def _url(method: str, task: Task) -> str:
    return "/api/tasks" if method == "POST" else f"/api/tasks/{task.id}"


async def _owner_rows(session: AsyncSession, owner_id: str) -> list[dict[str, Any]]:
    """Every task of the owner as the API would render it, read fresh from the database."""
    statement = (
        select(Task)
        .where(Task.user_id == owner_id)
        .order_by(col(Task.id))
        .execution_options(populate_existing=True)
    )
    rows = (await session.exec(statement)).all()
    return [TaskResponse.model_validate(row).model_dump(mode="json") for row in rows]


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("title", "", id="empty-title"),
        pytest.param("title", "   ", id="blank-title"),
        pytest.param("title", "\u00a0\u2003\t\n", id="unicode-blank-title"),
        pytest.param("title", "x" * 501, id="title-501"),
        pytest.param("title", "a\x00b", id="title-nul"),
        pytest.param("title", 42, id="title-number"),
        pytest.param("description", "x" * 5001, id="description-5001"),
        pytest.param("description", "a\x00b", id="description-nul"),
        pytest.param("priority", "urgent", id="priority-unknown"),
        pytest.param("position", INT32_MAX + 1, id="position-above-int32"),
        pytest.param("position", -INT32_MAX - 2, id="position-below-int32"),
        pytest.param("position", 10**30, id="position-huge"),
        pytest.param("position", 1.5, id="position-fraction"),
        pytest.param("due_date", "2026-01-01T10:00:00", id="due-date-naive"),
        pytest.param("due_date", "next tuesday", id="due-date-garbage"),
        pytest.param("due_date", "2026-02-30", id="due-date-impossible-day"),
        pytest.param("due_date", "0001-01-01T00:00:00+01:00", id="due-date-before-year-1-utc"),
        pytest.param("due_date", "9999-12-31T23:59:59-01:00", id="due-date-after-year-9999-utc"),
        pytest.param("completed", "maybe", id="completed-not-boolean"),
    ],
)
async def test_write_with_invalid_field_returns_422_and_stores_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    method: str,
    field: str,
    value: object,
) -> None:
    before = await _owner_rows(session, owner_id)

    response = await client.request(
        method, _url(method, task), json={"title": "Valid", field: value}, headers=owner_headers
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", field]]
    assert await _owner_rows(session, owner_id) == before


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize(
    ("content", "loc"),
    [
        pytest.param(b'{"title": "\\ud800"}', ["body", "title"], id="title-lone-surrogate"),
        pytest.param(
            b'{"title": "ok", "description": "a\\udfffb"}',
            ["body", "description"],
            id="description-lone-surrogate",
        ),
        pytest.param(b'[{"title": "In an array"}]', ["body"], id="array"),
        pytest.param(b'"Buy milk"', ["body"], id="bare-string"),
        pytest.param(b"42", ["body"], id="bare-number"),
        pytest.param(b"null", ["body"], id="null"),
    ],
)
async def test_write_with_unusable_body_returns_422_and_stores_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    method: str,
    content: bytes,
    loc: list[str],
) -> None:
    before = await _owner_rows(session, owner_id)

    response = await client.request(
        method, _url(method, task), content=content, headers={**owner_headers, **JSON}
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [loc]
    assert await _owner_rows(session, owner_id) == before


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"title": ', id="truncated"),
        pytest.param(b"{'title': 'single quotes'}", id="single-quotes"),
        pytest.param(b'{"title": "x",}', id="trailing-comma"),
        pytest.param(
            b'{"title": "\xff\xfe"}',
            id="invalid-utf8",
        ),
    ],
)
async def test_write_with_malformed_json_returns_400_and_stores_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    method: str,
    content: bytes,
) -> None:
    before = await _owner_rows(session, owner_id)

    response = await client.request(
        method, _url(method, task), content=content, headers={**owner_headers, **JSON}
    )

    assert_problem(response, 400, "malformed_json")
    assert await _owner_rows(session, owner_id) == before


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize(
    ("title", "stored"),
    [
        pytest.param("x", "x", id="1-char"),
        pytest.param("x" * 500, "x" * 500, id="500-chars"),
        pytest.param(
            "  " + "x" * 500 + "\n",
            "x" * 500,
            id="500-chars-after-trimming",
        ),
        pytest.param(f"{FAMILY} family 🎉", f"{FAMILY} family 🎉", id="emoji"),
        pytest.param("🎉" * 500, "🎉" * 500, id="500-emoji"),
        pytest.param(FAMILY * 100, FAMILY * 100, id="100-zwj-families"),
        pytest.param("Cafe\u0301", "Cafe\u0301", id="combining-accent-not-normalised"),
        pytest.param("a\u200bb", "a\u200bb", id="zero-width-space"),
    ],
)
async def test_write_stores_title_exactly(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    method: str,
    title: str,
    stored: str,
) -> None:
    response = await client.request(
        method, _url(method, task), json={"title": title}, headers=owner_headers
    )

    assert response.status_code in {200, 201}, response.text
    assert response.json()["title"] == stored
    rows = await _owner_rows(session, owner_id)
    assert response.json() in rows


@pytest.mark.parametrize("method", WRITES)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("description", "x" * 5000, id="description-5000"),
        pytest.param("description", "🎉" * 5000, id="description-5000-emoji"),
        pytest.param("description", "", id="description-empty"),
        pytest.param("position", INT32_MAX, id="position-int32-max"),
        pytest.param("position", -INT32_MAX - 1, id="position-int32-min"),
    ],
)
async def test_write_accepts_field_at_its_bound(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
    method: str,
    field: str,
    value: object,
) -> None:
    response = await client.request(
        method, _url(method, task), json={"title": "Bound", field: value}, headers=owner_headers
    )

    assert response.status_code in {200, 201}, response.text
    assert response.json()[field] == value
    assert response.json() in await _owner_rows(session, owner_id)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "x"}),
        ("PATCH", "", {"title": "x"}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
)
@pytest.mark.parametrize(
    "task_id",
    [
        "not-a-uuid",
        "123",
        "0195f3a1-7c2e-7d4b-9a61-2f0c1e7b9a1",
        "0195f3a1-7c2e-7d4b-9a61-2f0c1e7b9a10ff",
    ],
    ids=["word", "number", "one-digit-short", "two-digits-long"],
)
async def test_invalid_task_id_in_path_returns_422(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    task_id: str,
) -> None:
    response = await client.request(
        method, f"/api/tasks/{task_id}{suffix}", json=body, headers=owner_headers
    )

    problem = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in problem["errors"]] == [["path", "task_id"]]
