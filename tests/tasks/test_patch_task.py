from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.factories import BASE_TIME, read_task
from tests.problems import assert_problem


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"title": "  New title "}, {"title": "New title"}, id="title"),
        pytest.param({"description": "New"}, {"description": "New"}, id="description"),
        pytest.param({"description": None}, {"description": None}, id="description-null"),
        pytest.param({"priority": "low"}, {"priority": "low"}, id="priority"),
        pytest.param(
            {"due_date": "2027-01-02T03:04:05+01:00"},
            {"due_date": "2027-01-02T02:04:05Z"},
            id="due-date",
        ),
        pytest.param({"due_date": None}, {"due_date": None}, id="due-date-null"),
        pytest.param({"position": 42}, {"position": 42}, id="position"),
        pytest.param(
            {"completed": False}, {"completed": False, "completed_at": None}, id="completed"
        ),
        pytest.param(
            {"title": "Both", "position": -1}, {"title": "Both", "position": -1}, id="two-fields"
        ),
    ],
)
async def test_patch_task_changes_only_the_fields_sent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    changes: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    before = await read_task(session, task.id)

    response = await client.patch(f"/api/tasks/{task.id}", json=changes, headers=owner_headers)

    assert response.status_code == 200
    body = response.json()
    assert datetime.fromisoformat(body["updated_at"]) > BASE_TIME
    assert body == {**before, **expected, "version": 2, "updated_at": body["updated_at"]}
    assert await read_task(session, task.id) == body


@pytest.mark.parametrize("field", ["title", "priority", "completed", "position"])
async def test_patch_task_refuses_null_for_a_required_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    field: str,
) -> None:
    before = await read_task(session, task.id)

    response = await client.patch(
        f"/api/tasks/{task.id}",
        json={"description": "Also sent", field: None},
        headers=owner_headers,
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", field]]
    assert await read_task(session, task.id) == before


async def test_patch_task_with_empty_body_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    before = await read_task(session, task.id)

    response = await client.patch(f"/api/tasks/{task.id}", json={}, headers=owner_headers)

    assert response.status_code == 200
    assert response.json() == before
    assert await read_task(session, task.id) == before
