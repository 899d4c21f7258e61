import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Priority, Task
from tests.factories import BASE_TIME, make_task
from tests.problems import assert_problem, without_request_id

DUE = datetime(2026, 12, 24, 16, 30, tzinfo=UTC)
EARLIER = datetime(2025, 6, 1, tzinfo=UTC)
WRITABLE_DEFAULTS: dict[str, Any] = {
    "description": None,
    "priority": "medium",
    "due_date": None,
    "completed": False,
    "position": 0,
}


@pytest.fixture
async def task(session: AsyncSession, owner_id: str) -> Task:
    return await make_task(
        session,
        owner_id,
        title="Original",
        description="Original description",
        priority=Priority.HIGH,
        due_date=DUE,
        completed=True,
        completed_at=EARLIER,
        position=7,
    )


async def _stored(session: AsyncSession, task_id: uuid.UUID) -> Task:
    statement = select(Task).where(Task.id == task_id).execution_options(populate_existing=True)
    return (await session.exec(statement)).one()


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
    stored = await _stored(session, task.id)
    assert stored.title == "Replaced"
    assert stored.description == "New description"
    assert stored.priority is Priority.LOW
    assert stored.due_date == datetime(2027, 3, 1, tzinfo=UTC)
    assert (stored.completed, stored.completed_at) == (False, None)
    assert (stored.position, stored.version, stored.created_at) == (-4, 2, BASE_TIME)
    assert stored.updated_at == datetime.fromisoformat(body["updated_at"])


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
    stored = await _stored(session, task.id)
    assert (stored.description, stored.priority, stored.due_date) == (None, Priority.MEDIUM, None)
    assert (stored.completed, stored.completed_at, stored.position) == (False, None, 0)


@pytest.mark.parametrize(
    ("was_completed", "completed", "completed_at"),
    [
        pytest.param(False, True, "now", id="completing-stamps-now"),
        pytest.param(True, True, "kept", id="already-completed-keeps-its-time"),
        pytest.param(True, False, None, id="reopening-clears-it"),
        pytest.param(False, False, None, id="still-open-stays-empty"),
    ],
)
async def test_update_task_keeps_completed_at_consistent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    was_completed: bool,
    completed: bool,
    completed_at: str | None,
) -> None:
    task = await make_task(
        session,
        owner_id,
        completed=was_completed,
        completed_at=EARLIER if was_completed else None,
    )

    response = await client.put(
        f"/api/tasks/{task.id}",
        json={"title": "Same", "completed": completed},
        headers=owner_headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["completed"] is completed
    expected = {"now": body["updated_at"], "kept": "2025-06-01T00:00:00Z", None: None}
    assert body["completed_at"] == expected[completed_at]
    stored = await _stored(session, task.id)
    assert stored.completed is completed
    assert stored.completed_at == (
        None if body["completed_at"] is None else datetime.fromisoformat(body["completed_at"])
    )


async def test_update_task_increments_version_and_moves_updated_at_each_time(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task
) -> None:
    first = await client.put(f"/api/tasks/{task.id}", json={"title": "One"}, headers=owner_headers)
    second = await client.put(f"/api/tasks/{task.id}", json={"title": "Two"}, headers=owner_headers)

    assert (first.json()["version"], second.json()["version"]) == (2, 3)
    first_at = datetime.fromisoformat(first.json()["updated_at"])
    second_at = datetime.fromisoformat(second.json()["updated_at"])
    assert BASE_TIME < first_at < second_at


async def test_update_task_ignores_server_owned_fields(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    other_owner_id: str,
    task: Task,
) -> None:
    response = await client.put(
        f"/api/tasks/{task.id}",
        json={
            "title": "Moved?",
            "id": str(uuid.uuid4()),
            "user_id": other_owner_id,
            "version": 99,
            "created_at": "2000-01-01T00:00:00Z",
            "updated_at": "2000-01-01T00:00:00Z",
            "completed_at": "2000-01-01T00:00:00Z",
        },
        headers=owner_headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["user_id"], body["version"]) == (str(task.id), owner_id, 2)
    assert body["created_at"] == "2026-01-01T00:00:00Z"
    assert not body["updated_at"].startswith("2000")
    assert body["completed_at"] is None
    stored = await _stored(session, task.id)
    assert (stored.user_id, stored.version, stored.created_at) == (owner_id, 2, BASE_TIME)


async def test_update_task_without_title_returns_422_and_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    response = await client.put(
        f"/api/tasks/{task.id}", json={"description": "no title"}, headers=owner_headers
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", "title"]]
    stored = await _stored(session, task.id)
    assert (stored.title, stored.description, stored.version) == (
        "Original",
        "Original description",
        1,
    )


async def test_update_task_with_unknown_id_returns_404(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.put(
        f"/api/tasks/{uuid.uuid4()}", json={"title": "Nobody"}, headers=owner_headers
    )

    assert_problem(response, 404, "task_not_found")


async def test_update_task_of_another_user_returns_404(
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_owner_headers: dict[str, str],
    other_owner_id: str,
    owner_id: str,
    task: Task,
) -> None:
    change = {"title": "Hijacked", "user_id": other_owner_id, "completed": False}

    foreign = await client.put(f"/api/tasks/{task.id}", json=change, headers=other_owner_headers)
    unknown = await client.put(
        f"/api/tasks/{uuid.uuid4()}", json=change, headers=other_owner_headers
    )

    assert_problem(foreign, 404, "task_not_found")
    assert without_request_id(foreign) == without_request_id(unknown)
    await session.refresh(task)
    assert (task.user_id, task.title, task.completed, task.version) == (
        owner_id,
        "Original",
        True,
        1,
    )
    assert task.updated_at == BASE_TIME
