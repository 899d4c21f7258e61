"""Bounds and malformed input for every write (POST, PUT, PATCH): a problem, and nothing stored."""

import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.config import Settings
from tasks_api.tasks.models import Task
from tests.factories import read_tasks
from tests.problems import assert_problem
from tests.tasks.routes import CREATE_TASK, PATCH_TASK, UPDATE_TASK, Route

INT32_MAX = 2**31 - 1
FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # woman, woman, girl joined by ZWJ
JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class OwnerWrite:
    """One write route, sent with the owner's token (to the owner's task where it takes an id)."""

    route: Route
    client: httpx.AsyncClient
    headers: dict[str, str]
    task_id: uuid.UUID
    session: AsyncSession
    owner_id: str

    async def send(self, **request: Any) -> httpx.Response:
        return await self.route.send(self.client, self.task_id, self.headers, **request)

    async def stored(self) -> list[dict[str, Any]]:
        """Every task of the owner as the API would render it, read fresh from the database."""
        return await read_tasks(self.session, self.owner_id)


@pytest.fixture(params=[CREATE_TASK, UPDATE_TASK, PATCH_TASK], ids=lambda route: route.method)
def write(
    request: pytest.FixtureRequest,
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    task: Task,
    session: AsyncSession,
    owner_id: str,
) -> OwnerWrite:
    return OwnerWrite(request.param, client, owner_headers, task.id, session, owner_id)


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
        pytest.param("position", True, id="position-boolean"),
        pytest.param("position", "12", id="position-string"),
        pytest.param("completed", 1, id="completed-number"),
        pytest.param("completed", "true", id="completed-string"),
        pytest.param("due_date", 1767225600, id="due-date-unix-timestamp"),
        pytest.param("due_date", "2026-01-01T10:00:00", id="due-date-naive"),
        pytest.param("due_date", "next tuesday", id="due-date-garbage"),
        pytest.param("due_date", "2026-02-30", id="due-date-impossible-day"),
        pytest.param("due_date", "0001-01-01T00:00:00+01:00", id="due-date-before-year-1-utc"),
        pytest.param("due_date", "9999-12-31T23:59:59-01:00", id="due-date-after-year-9999-utc"),
        pytest.param("completed", "maybe", id="completed-not-boolean"),
    ],
)
async def test_write_with_invalid_field_returns_422_and_stores_nothing(
    write: OwnerWrite, field: str, value: object
) -> None:
    before = await write.stored()

    response = await write.send(json={"title": "Valid", field: value})

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", field]]
    assert await write.stored() == before


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
    write: OwnerWrite, content: bytes, loc: list[str]
) -> None:
    before = await write.stored()

    response = await write.send(content=content, headers=JSON)

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [loc]
    assert await write.stored() == before


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
    write: OwnerWrite, content: bytes
) -> None:
    before = await write.stored()

    response = await write.send(content=content, headers=JSON)

    assert_problem(response, 400, "malformed_json")
    assert await write.stored() == before


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
async def test_write_stores_title_exactly(write: OwnerWrite, title: str, stored: str) -> None:
    response = await write.send(json={"title": title})

    assert response.status_code in {200, 201}, response.text
    assert response.json()["title"] == stored
    assert response.json() in await write.stored()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("description", "x" * 5000, id="description-5000"),
        pytest.param("description", "🎉" * 5000, id="description-5000-emoji"),
        pytest.param("description", "", id="description-empty"),
        pytest.param("position", INT32_MAX, id="position-int32-max"),
        pytest.param("position", -INT32_MAX - 1, id="position-int32-min"),
        # JSON Schema's integer includes numbers with a zero fraction.
        pytest.param("position", 12.0, id="position-integral-float"),
    ],
)
async def test_write_accepts_field_at_its_bound(
    write: OwnerWrite, field: str, value: object
) -> None:
    response = await write.send(json={"title": "Bound", field: value})

    assert response.status_code in {200, 201}, response.text
    assert response.json()[field] == value
    assert response.json() in await write.stored()


async def test_the_largest_valid_task_fits_the_default_body_limit(
    write: OwnerWrite, settings: Settings
) -> None:
    # Every field at its longest, as a browser's JSON.stringify sends it (UTF-8, no \u escapes).
    largest = {
        "title": "🎉" * 500,
        "description": "🎉" * 5000,
        "priority": "medium",
        "due_date": "2026-12-24T16:30:00.000001+14:00",
        "completed": True,
        "position": -INT32_MAX - 1,
    }
    content = json.dumps(largest, ensure_ascii=False).encode()

    response = await write.send(content=content, headers=JSON)

    assert settings.max_body_bytes == 65536  # the default
    assert len(content) > 22_000
    assert response.status_code in {200, 201}, response.text
    assert response.json()["description"] == largest["description"]
