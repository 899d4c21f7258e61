"""`/api/{user_id}/tasks...`: the same handlers as `/api/tasks...` (tests/tasks/ runs every task
test against both), with the path's user id checked against the token and used for nothing else."""

import uuid
from urllib.parse import quote

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.factories import make_task, read_task, read_tasks
from tests.problems import assert_problem
from tests.tokens import TokenFactory, bearer

ROUTES = [
    pytest.param("GET", "", None, id="listTasksForUser"),
    pytest.param("POST", "", {"title": "Mine?"}, id="createTaskForUser"),
    pytest.param("GET", "/{task_id}", None, id="getTaskForUser"),
    pytest.param("PUT", "/{task_id}", {"title": "Mine?"}, id="updateTaskForUser"),
    pytest.param("PATCH", "/{task_id}", {"title": "Mine?"}, id="patchTaskForUser"),
    pytest.param("PATCH", "/{task_id}/complete", None, id="toggleTaskCompletionForUser"),
    pytest.param("DELETE", "/{task_id}", None, id="deleteTaskForUser"),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_path_naming_another_user_is_403_user_mismatch_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    other_owner_id: str,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    # The other user's own task, named by its real owner in the path: still not the caller's.
    theirs = await make_task(session, other_owner_id, title="Theirs")
    before = await read_task(session, theirs.id)
    url = f"/api/{other_owner_id}/tasks" + path.format(task_id=theirs.id)

    response = await client.request(method, url, json=body, headers=owner_headers)

    problem = assert_problem(response, 403, "user_mismatch")
    assert other_owner_id not in problem["detail"]
    assert await read_task(session, theirs.id) == before
    assert [task["title"] for task in await read_tasks(session, other_owner_id)] == ["Theirs"]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_without_a_valid_token_it_is_401_whatever_the_path_says(
    client: httpx.AsyncClient, owner_id: str, method: str, path: str, body: dict[str, str] | None
) -> None:
    url = f"/api/{owner_id}/tasks" + path.format(task_id="01890000-0000-7000-8000-000000000000")

    response = await client.request(
        method, url, json=body, headers={"Authorization": "Bearer not-a-jwt"}
    )

    assert_problem(response, 401, "malformed_token")


async def test_a_task_created_under_the_callers_path_is_the_callers(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    response = await client.post(
        f"/api/{owner_id}/tasks", json={"title": "Via the user path"}, headers=owner_headers
    )

    assert response.status_code == 201
    assert response.json()["user_id"] == owner_id
    # One canonical URL per task, whichever path created it.
    assert response.headers["location"] == f"http://testserver/api/tasks/{response.json()['id']}"
    assert [task["title"] for task in await read_tasks(session, owner_id)] == ["Via the user path"]


async def test_a_user_id_that_needs_percent_encoding_matches_after_decoding(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    subject = f"ann+{uuid.uuid4().hex[:6]}@example.com"
    headers = bearer(tokens.ed25519(subject))

    matching = await client.get(f"/api/{quote(subject, safe='')}/tasks", headers=headers)
    other = await client.get(f"/api/{quote(subject.upper(), safe='')}/tasks", headers=headers)

    assert matching.status_code == 200
    assert_problem(other, 403, "user_mismatch")
