import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Priority, Task
from tests.factories import make_task
from tests.problems import assert_problem, without_request_id


@pytest.fixture
async def task(session: AsyncSession, owner_id: str) -> Task:
    return await make_task(
        session,
        owner_id,
        title="Water the plants 🌱",
        description="Balcony first",
        priority=Priority.HIGH,
        due_date=datetime(2026, 12, 24, 16, 30, tzinfo=UTC),
        completed=True,
        position=3,
    )


async def test_get_task_returns_every_field(
    client: httpx.AsyncClient, owner_headers: dict[str, str], owner_id: str, task: Task
) -> None:
    response = await client.get(f"/api/tasks/{task.id}", headers=owner_headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": str(task.id),
        "user_id": owner_id,
        "title": "Water the plants 🌱",
        "description": "Balcony first",
        "completed": True,
        "completed_at": "2026-01-01T00:00:00Z",
        "priority": "high",
        "due_date": "2026-12-24T16:30:00Z",
        "position": 3,
        "version": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }


async def test_get_task_with_unknown_id_returns_404(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.get(f"/api/tasks/{uuid.uuid4()}", headers=owner_headers)

    body = assert_problem(response, 404, "task_not_found")
    assert body["detail"] == "No task with this id exists."


async def test_get_task_of_another_user_returns_404(
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_owner_headers: dict[str, str],
    task: Task,
) -> None:
    foreign = await client.get(f"/api/tasks/{task.id}", headers=other_owner_headers)
    unknown = await client.get(f"/api/tasks/{uuid.uuid4()}", headers=other_owner_headers)

    assert_problem(foreign, 404, "task_not_found")
    assert without_request_id(foreign) == without_request_id(unknown)
    assert foreign.headers["content-type"] == unknown.headers["content-type"]
    await session.refresh(task)
    assert (task.title, task.version) == ("Water the plants 🌱", 1)


async def test_get_task_without_token_returns_401(client: httpx.AsyncClient, task: Task) -> None:
    response = await client.get(f"/api/tasks/{task.id}")

    assert_problem(response, 401, "missing_token")
