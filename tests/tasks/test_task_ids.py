"""Every route that takes a task id: an unknown id is a 404, another owner's task is the same 404
and stays as it was, and a malformed id is a 422."""

import uuid
from typing import Any

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.factories import read_task
from tests.problems import assert_problem, without_request_id
from tests.tasks.routes import (
    DELETE_TASK,
    GET_TASK,
    PATCH_TASK,
    TOGGLE_TASK_COMPLETION,
    UPDATE_TASK,
    Route,
)

# One request to each route, as httpx options; the writes would take the task over if they could.
REQUESTS = [
    pytest.param(GET_TASK, {}, id="get_task"),
    pytest.param(
        UPDATE_TASK,
        {"json": {"title": "Hijacked", "user_id": "bob-takes-it", "completed": False}},
        id="update_task",
    ),
    pytest.param(PATCH_TASK, {"json": {"title": "Hijacked"}}, id="patch_task"),
    pytest.param(TOGGLE_TASK_COMPLETION, {}, id="toggle_task_completion"),
    pytest.param(DELETE_TASK, {}, id="delete_task"),
]


@pytest.mark.parametrize(("route", "request_options"), REQUESTS)
async def test_unknown_task_id_returns_404(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    route: Route,
    request_options: dict[str, Any],
) -> None:
    response = await route.send(client, uuid.uuid4(), owner_headers, **request_options)

    body = assert_problem(response, 404, "task_not_found")
    assert body["detail"] == "No task with this id exists."


@pytest.mark.parametrize(
    ("route", "request_options"),
    [
        *REQUESTS,
        pytest.param(
            PATCH_TASK,
            {"json": {"user_id": "bob-takes-it", "position": 1}},
            id="patch_task-user-id",
        ),
        pytest.param(PATCH_TASK, {"json": {}}, id="patch_task-empty"),
        pytest.param(
            TOGGLE_TASK_COMPLETION, {"json": {"completed": True}}, id="toggle_task_completion-set"
        ),
    ],
)
async def test_task_of_another_user_returns_the_same_404_as_an_unknown_id(
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_owner_headers: dict[str, str],
    task: Task,
    route: Route,
    request_options: dict[str, Any],
) -> None:
    before = await read_task(session, task.id)

    foreign = await route.send(client, task.id, other_owner_headers, **request_options)
    unknown = await route.send(client, uuid.uuid4(), other_owner_headers, **request_options)

    assert_problem(foreign, 404, "task_not_found")
    assert without_request_id(foreign) == without_request_id(unknown)
    assert foreign.headers["content-type"] == unknown.headers["content-type"]
    assert await read_task(session, task.id) == before


@pytest.mark.parametrize(("route", "request_options"), REQUESTS)
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
    route: Route,
    request_options: dict[str, Any],
    task_id: str,
) -> None:
    response = await route.send(client, task_id, owner_headers, **request_options)

    problem = assert_problem(response, 422, "validation_failed")
    assert [error["loc"] for error in problem["errors"]] == [["path", "task_id"]]
