import uuid

import httpx
import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Priority, Task


async def test_create_task_returns_201_with_location_and_stores_it(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    response = await client.post(
        "/api/tasks",
        json={"title": "  Buy milk  ", "description": "2 litres", "priority": "high"},
        headers=owner_headers,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["title"] == "Buy milk"
    assert body["description"] == "2 litres"
    assert body["priority"] == "high"
    assert body["completed"] is False
    assert body["completed_at"] is None
    assert body["position"] == 0
    assert body["version"] == 1
    assert body["user_id"] == owner_id
    assert body["created_at"] == body["updated_at"]
    task_id = uuid.UUID(body["id"])
    assert task_id.version == 7
    assert response.headers["location"] == f"http://testserver/api/tasks/{task_id}"
    stored = (await session.exec(select(Task).where(Task.id == task_id))).one()
    assert (stored.user_id, stored.title, stored.priority) == (owner_id, "Buy milk", Priority.HIGH)


async def test_create_task_ignores_server_owned_fields(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    forged_id = "019a0000-0000-7000-8000-000000000000"
    response = await client.post(
        "/api/tasks",
        json={
            "title": "Mine",
            "id": forged_id,
            "user_id": "mallory",
            "version": 99,
            "created_at": "2000-01-01T00:00:00Z",
        },
        headers=owner_headers,
    )

    assert response.status_code == 201
    body = response.json()
    assert body["id"] != forged_id
    assert body["user_id"] == owner_id
    assert body["version"] == 1
    assert not body["created_at"].startswith("2000")
    owners = (await session.exec(select(Task.user_id))).all()
    assert "mallory" not in owners


async def test_create_completed_task_sets_completed_at(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/tasks", json={"title": "Done already", "completed": True}, headers=owner_headers
    )

    assert response.status_code == 201
    assert response.json()["completed"] is True
    assert response.json()["completed_at"] is not None


@pytest.mark.parametrize(
    ("due_date", "stored"),
    [
        ("2026-12-24", "2026-12-24T00:00:00Z"),
        ("2026-12-24T18:30:00+02:00", "2026-12-24T16:30:00Z"),
        ("2026-12-24T18:30:00Z", "2026-12-24T18:30:00Z"),
    ],
)
async def test_create_task_accepts_rfc3339_and_plain_dates(
    client: httpx.AsyncClient, owner_headers: dict[str, str], due_date: str, stored: str
) -> None:
    response = await client.post(
        "/api/tasks", json={"title": "Due", "due_date": due_date}, headers=owner_headers
    )

    assert response.status_code == 201
    assert response.json()["due_date"] == stored
