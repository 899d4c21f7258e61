"""What every write to an existing task shares: PUT, PATCH and the completion toggle.

Each keeps `completed_at` in step with `completed`, moves `version` and `updated_at` on every
change, and ignores the server-owned fields a request may carry.
"""

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.factories import BASE_TIME, EARLIER, make_task, read_task
from tests.tasks.routes import PATCH_TASK, TOGGLE_TASK_COMPLETION, UPDATE_TASK, Route

WRITES = [
    pytest.param(route, id=route.operation)
    for route in (UPDATE_TASK, PATCH_TASK, TOGGLE_TASK_COMPLETION)
]
LONG_AGO = "2000-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("was_completed", "completed", "completed_at"),
    [
        pytest.param(False, True, "now", id="completing-stamps-now"),
        pytest.param(True, True, "kept", id="already-completed-keeps-its-time"),
        pytest.param(True, False, None, id="reopening-clears-it"),
        pytest.param(False, False, None, id="still-open-stays-empty"),
    ],
)
@pytest.mark.parametrize("route", WRITES)
async def test_writing_completed_keeps_completed_at_consistent(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    route: Route,
    was_completed: bool,
    completed: bool,
    completed_at: str | None,
) -> None:
    task = await make_task(
        session, owner_id, completed=was_completed, completed_at=EARLIER if was_completed else None
    )

    response = await route.send(
        client, task.id, owner_headers, json=route.body(completed=completed)
    )

    assert response.status_code == 200
    body = response.json()
    assert body["completed"] is completed
    expected = {"now": body["updated_at"], "kept": "2025-06-01T00:00:00Z", None: None}
    assert body["completed_at"] == expected[completed_at]
    assert await read_task(session, task.id) == body


@pytest.mark.parametrize(
    ("route", "first_change", "second_change"),
    [
        pytest.param(UPDATE_TASK, {"title": "One"}, {"title": "Two"}, id="update_task"),
        pytest.param(PATCH_TASK, {"position": 1}, {"position": 2}, id="patch_task"),
        pytest.param(TOGGLE_TASK_COMPLETION, {}, {}, id="toggle_task_completion"),
    ],
)
async def test_each_write_increments_version_and_moves_updated_at(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    task: Task,
    route: Route,
    first_change: dict[str, Any],
    second_change: dict[str, Any],
) -> None:
    first = await route.send(client, task.id, owner_headers, json=route.body(**first_change))
    second = await route.send(client, task.id, owner_headers, json=route.body(**second_change))

    assert (first.json()["version"], second.json()["version"]) == (2, 3)
    first_at = datetime.fromisoformat(first.json()["updated_at"])
    second_at = datetime.fromisoformat(second.json()["updated_at"])
    assert BASE_TIME < first_at < second_at


@pytest.mark.parametrize(
    ("route", "changes", "expected"),
    [
        pytest.param(
            UPDATE_TASK,
            {"title": "Moved?", "completed_at": LONG_AGO},
            {"title": "Moved?", "completed_at": None, "version": 2},
            id="update_task",
        ),
        pytest.param(
            PATCH_TASK,
            {"completed_at": None},
            {"completed_at": "2025-06-01T00:00:00Z", "version": 1},
            id="patch_task-nothing-else",
        ),
        pytest.param(
            PATCH_TASK,
            {"title": "Still mine"},
            {"title": "Still mine", "completed_at": "2025-06-01T00:00:00Z", "version": 2},
            id="patch_task-with-a-real-change",
        ),
        pytest.param(
            TOGGLE_TASK_COMPLETION,
            {"completed": True, "completed_at": LONG_AGO},
            {"completed_at": "2025-06-01T00:00:00Z", "version": 2},
            id="toggle_task_completion",
        ),
    ],
)
async def test_write_ignores_server_owned_fields(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    other_owner_id: str,
    task: Task,
    route: Route,
    changes: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    before = await read_task(session, task.id)
    forged = {
        "id": "019a0000-0000-7000-8000-000000000000",
        "user_id": other_owner_id,
        "version": 99,
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
    }

    response = await route.send(
        client, task.id, owner_headers, json=route.body(**forged, **changes)
    )

    assert response.status_code == 200
    body = response.json()
    kept = ("id", "user_id", "created_at")
    assert {key: body[key] for key in kept} == {key: before[key] for key in kept}
    assert not body["updated_at"].startswith("2000")
    assert {key: body[key] for key in expected} == expected
    assert await read_task(session, task.id) == body
