import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Priority, Task
from tasks_api.tasks.schemas import TaskResponse
from tests.factories import BASE_TIME, make_task
from tests.problems import assert_problem, without_request_id

EARLIER = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
async def task(session: AsyncSession, owner_id: str) -> Task:
    return await make_task(
        session,
        owner_id,
        title="Original",
        description="Original description",
        priority=Priority.HIGH,
        due_date=datetime(2026, 12, 24, 16, 30, tzinfo=UTC),
        completed=True,
        completed_at=EARLIER,
        position=7,
    )


async def _stored(session: AsyncSession, task_id: uuid.UUID) -> dict[str, Any]:
    """The row as the API would render it, read fresh from the database."""
    statement = select(Task).where(Task.id == task_id).execution_options(populate_existing=True)
    row = (await session.exec(statement)).one()
    return TaskResponse.model_validate(row).model_dump(mode="json")


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
    before = await _stored(session, task.id)

    response = await client.patch(f"/api/tasks/{task.id}", json=changes, headers=owner_headers)

    assert response.status_code == 200
    body = response.json()
    assert datetime.fromisoformat(body["updated_at"]) > BASE_TIME
    assert body == {**before, **expected, "version": 2, "updated_at": body["updated_at"]}
    assert await _stored(session, task.id) == body


@pytest.mark.parametrize("field", ["title", "priority", "completed", "position"])
async def test_patch_task_refuses_null_for_a_required_field(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    field: str,
) -> None:
    before = await _stored(session, task.id)

    response = await client.patch(
        f"/api/tasks/{task.id}",
        json={"description": "Also sent", field: None},
        headers=owner_headers,
    )

    body = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in body["errors"]] == [["body", field]]
    assert await _stored(session, task.id) == before


async def test_patch_task_with_empty_body_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    before = await _stored(session, task.id)

    response = await client.patch(f"/api/tasks/{task.id}", json={}, headers=owner_headers)

    assert response.status_code == 200
    assert response.json() == before
    assert await _stored(session, task.id) == before


@pytest.mark.parametrize(
    ("was_completed", "completed", "completed_at"),
    [
        pytest.param(False, True, "now", id="completing-stamps-now"),
        pytest.param(True, True, "kept", id="already-completed-keeps-its-time"),
        pytest.param(True, False, None, id="reopening-clears-it"),
    ],
)
async def test_patch_task_keeps_completed_at_consistent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    was_completed: bool,
    completed: bool,
    completed_at: str | None,
) -> None:
    task = await make_task(
        session, owner_id, completed=was_completed, completed_at=EARLIER if was_completed else None
    )

    response = await client.patch(
        f"/api/tasks/{task.id}", json={"completed": completed}, headers=owner_headers
    )

    assert response.status_code == 200
    body = response.json()
    assert body["completed"] is completed
    expected = {"now": body["updated_at"], "kept": "2025-06-01T00:00:00Z", None: None}
    assert body["completed_at"] == expected[completed_at]
    assert await _stored(session, task.id) == body


async def test_patch_task_increments_version_and_moves_updated_at_each_time(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task
) -> None:
    first = await client.patch(f"/api/tasks/{task.id}", json={"position": 1}, headers=owner_headers)
    second = await client.patch(
        f"/api/tasks/{task.id}", json={"position": 2}, headers=owner_headers
    )

    assert (first.json()["version"], second.json()["version"]) == (2, 3)
    first_at = datetime.fromisoformat(first.json()["updated_at"])
    second_at = datetime.fromisoformat(second.json()["updated_at"])
    assert BASE_TIME < first_at < second_at


async def test_patch_task_ignores_server_owned_fields(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    other_owner_id: str,
    task: Task,
) -> None:
    response = await client.patch(
        f"/api/tasks/{task.id}",
        json={
            "user_id": other_owner_id,
            "id": str(uuid.uuid4()),
            "version": 99,
            "created_at": "2000-01-01T00:00:00Z",
            "completed_at": None,
        },
        headers=owner_headers,
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["user_id"], body["version"]) == (str(task.id), owner_id, 1)
    assert (body["created_at"], body["completed_at"]) == (
        "2026-01-01T00:00:00Z",
        "2025-06-01T00:00:00Z",
    )
    stored = await _stored(session, task.id)
    assert (stored["user_id"], stored["version"]) == (owner_id, 1)


async def test_patch_task_with_user_id_and_a_real_change_keeps_the_owner(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    other_owner_id: str,
    task: Task,
) -> None:
    response = await client.patch(
        f"/api/tasks/{task.id}",
        json={"title": "Still mine", "user_id": other_owner_id},
        headers=owner_headers,
    )

    assert response.status_code == 200
    stored = await _stored(session, task.id)
    assert (stored["user_id"], stored["title"], stored["version"]) == (owner_id, "Still mine", 2)


async def test_patch_task_with_unknown_id_returns_404(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.patch(
        f"/api/tasks/{uuid.uuid4()}", json={"title": "Nobody"}, headers=owner_headers
    )

    assert_problem(response, 404, "task_not_found")


@pytest.mark.parametrize(
    "changes",
    [{"title": "Hijacked"}, {"user_id": "bob-takes-it", "position": 1}, {}],
    ids=["title", "user-id", "empty"],
)
async def test_patch_task_of_another_user_returns_404(
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_owner_headers: dict[str, str],
    task: Task,
    changes: dict[str, Any],
) -> None:
    before = await _stored(session, task.id)

    foreign = await client.patch(f"/api/tasks/{task.id}", json=changes, headers=other_owner_headers)
    unknown = await client.patch(
        f"/api/tasks/{uuid.uuid4()}", json=changes, headers=other_owner_headers
    )

    assert_problem(foreign, 404, "task_not_found")
    assert without_request_id(foreign) == without_request_id(unknown)
    assert await _stored(session, task.id) == before
