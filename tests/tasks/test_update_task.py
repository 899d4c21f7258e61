from datetime import datetime
from typing import Any

import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.factories import BASE_TIME, read_task
from tests.problems import assert_problem

WRITABLE_DEFAULTS: dict[str, Any] = {
    "description": None,
    "priority": "medium",
    "due_date": None,
    "completed": False,
    "position": 0,
}


async def test_update_task_replaces_every_writable_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    task: Task,
) -> None:
    response = await client.put(
        f"/api/tasks/{task.id}",
        json={
            "title": "  Replaced  ",
            "description": "New description",
            "priority": "low",
            "due_date": "2027-03-01",
            "completed": False,
            "position": -4,
        },
        headers=owner_headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(task.id)
    assert body["user_id"] == owner_id
    assert body["title"] == "Replaced"
    assert body["description"] == "New description"
    assert body["priority"] == "low"
    assert body["due_date"] == "2027-03-01T00:00:00Z"
    assert (body["completed"], body["completed_at"]) == (False, None)
    assert body["position"] == -4
    assert body["version"] == 2
    assert body["created_at"] == "2026-01-01T00:00:00Z"
    assert datetime.fromisoformat(body["updated_at"]) > BASE_TIME
    assert await read_task(session, task.id) == body


async def test_update_task_resets_omitted_fields_to_their_defaults(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    response = await client.put(
        f"/api/tasks/{task.id}", json={"title": "Only a title"}, headers=owner_headers
    )

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in WRITABLE_DEFAULTS} == WRITABLE_DEFAULTS
    assert (body["title"], body["completed_at"], body["version"]) == ("Only a title", None, 2)
    assert await read_task(session, task.id) == body


async def test_update_task_without_title_returns_422_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    before = await read_task(session, task.id)

    response = await client.put(
        f"/api/tasks/{task.id}", json={"description": "no title"}, headers=owner_headers
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", "title"]]
    assert await read_task(session, task.id) == before
