import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.factories import BASE_TIME, EARLIER, make_task, read_task
from tests.problems import assert_problem
from tests.tasks.routes import TOGGLE_TASK_COMPLETION

toggle = TOGGLE_TASK_COMPLETION.send
# Ways to ask for a flip: no body at all, an empty object, or JSON null.
FLIP_REQUESTS: list[Any] = [
    pytest.param({}, id="no-body"),
    pytest.param({"json": {}}, id="empty-object"),
    pytest.param({"content": b"null", "headers": {"content-type": "application/json"}}, id="null"),
]


@pytest.mark.parametrize("request_options", FLIP_REQUESTS)
@pytest.mark.parametrize(
    "was_completed",
    [
        pytest.param(False, id="completes-an-open-task"),
        pytest.param(True, id="reopens-a-completed-task"),
    ],
)
async def test_toggle_completion_without_a_value_flips_it(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    was_completed: bool,
    request_options: dict[str, Any],
) -> None:
    task = await make_task(
        session, owner_id, completed=was_completed, completed_at=EARLIER if was_completed else None
    )

    response = await toggle(client, task.id, owner_headers, **request_options)

    assert response.status_code == 200
    body = response.json()
    assert (body["completed"], body["version"]) == (not was_completed, 2)
    assert body["completed_at"] == (body["updated_at"] if body["completed"] else None)
    assert datetime.fromisoformat(body["updated_at"]) > BASE_TIME
    assert await read_task(session, task.id) == body


async def test_toggle_completion_twice_returns_to_the_start(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    task = await make_task(session, owner_id)

    first = await toggle(client, task.id, owner_headers)
    second = await toggle(client, task.id, owner_headers)

    assert (first.json()["completed"], second.json()["completed"]) == (True, False)
    assert second.json()["completed_at"] is None
    assert await read_task(session, task.id) == second.json()


@pytest.mark.parametrize(
    "request_options",
    [
        pytest.param({"json": {"completed": "maybe"}}, id="not-a-boolean"),
        pytest.param({"json": []}, id="array"),
        pytest.param({"json": "true"}, id="bare-string"),
        pytest.param({"json": 1}, id="bare-number"),
    ],
)
async def test_toggle_completion_with_invalid_body_returns_422_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    request_options: dict[str, Any],
) -> None:
    before = await read_task(session, task.id)

    response = await toggle(client, task.id, owner_headers, **request_options)

    assert_problem(response, 422, "validation_failed")
    assert await read_task(session, task.id) == before


async def test_toggle_completion_with_malformed_json_returns_400(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    response = await toggle(
        client,
        task.id,
        owner_headers,
        content=b'{"completed": ',
        headers={"content-type": "application/json"},
    )

    assert_problem(response, 400, "malformed_json")
    assert (await read_task(session, task.id))["version"] == 1


@pytest.fixture
async def live_task_url(
    live_client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> AsyncIterator[str]:
    """An open task created (and finally deleted) through the API with real commits."""
    created = await live_client.post("/api/tasks", json={"title": "Flip me"}, headers=owner_headers)
    assert created.status_code == 201
    url = created.headers["location"]
    yield url
    deleted = await live_client.delete(url, headers=owner_headers)
    assert deleted.status_code == 204


@dataclass
class PoolUsage:
    in_use: int = 0
    peak: int = 0

    def checked_out(self, *_: object) -> None:
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def checked_in(self, *_: object) -> None:
        self.in_use -= 1


@pytest.fixture
def pool_usage(app: FastAPI, live_client: httpx.AsyncClient) -> Iterator[PoolUsage]:
    """How many of the live app's pooled connections were in use at once."""
    pool = app.state.engine.sync_engine.pool
    usage = PoolUsage()
    event.listen(pool, "checkout", usage.checked_out)
    event.listen(pool, "checkin", usage.checked_in)
    yield usage
    event.remove(pool, "checkout", usage.checked_out)
    event.remove(pool, "checkin", usage.checked_in)


@pytest.mark.parametrize(("toggles", "completed"), [(50, False), (49, True)])
async def test_concurrent_toggles_are_all_applied(
    live_client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    live_task_url: str,
    pool_usage: PoolUsage,
    toggles: int,
    completed: bool,
) -> None:
    url = f"{live_task_url}/complete"

    responses = await asyncio.gather(
        *(live_client.patch(url, headers=owner_headers) for _ in range(toggles))
    )

    assert [response.status_code for response in responses] == [200] * toggles
    assert pool_usage.peak > 1, "the toggles should have overlapped"
    bodies = [response.json() for response in responses]
    # Each toggle saw the row its predecessor left behind: one version each, and the
    # completion state matching how many flips came before it.
    assert sorted(body["version"] for body in bodies) == list(range(2, toggles + 2))
    for body in bodies:
        assert body["completed"] is (body["version"] % 2 == 0)
        assert (body["completed_at"] is not None) is body["completed"]
    final = (await live_client.get(live_task_url, headers=owner_headers)).json()
    assert (final["completed"], final["version"]) == (completed, toggles + 1)
    assert (final["completed_at"] is not None) is completed
