"""Fixtures shared by the task tests, which all run twice: /api/tasks and /api/{user_id}/tasks."""

import base64
import json
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Priority, Task
from tasks_api.tasks.router import PREFIX, USER_SCOPED_PREFIX
from tests.factories import EARLIER, make_task


@pytest.fixture
async def task(session: AsyncSession, owner_id: str) -> Task:
    """The owner's task: every writable field away from its default, completed at EARLIER."""
    return await make_task(
        session,
        owner_id,
        title="Water the plants 🌱",
        description="Balcony first",
        priority=Priority.HIGH,
        due_date=datetime(2026, 12, 24, 16, 30, tzinfo=UTC),
        completed=True,
        completed_at=EARLIER,
        position=7,
    )


@pytest.fixture(
    params=[PREFIX, USER_SCOPED_PREFIX], ids=["api-tasks", "api-user_id-tasks"], scope="module"
)
def route_prefix(request: pytest.FixtureRequest) -> str:
    """Every task test runs against both mounts of the same handlers."""
    prefix: str = request.param
    return prefix


@pytest.fixture
async def client(client: httpx.AsyncClient, route_prefix: str) -> httpx.AsyncClient:
    """conftest's `client`; in the second run `/api/tasks...` goes to `/api/<caller>/tasks...`."""
    if route_prefix == USER_SCOPED_PREFIX:
        client.event_hooks = {"request": [_to_user_scoped_path], "response": []}
    return client


@pytest.fixture
async def live_client(live_client: httpx.AsyncClient, route_prefix: str) -> httpx.AsyncClient:
    if route_prefix == USER_SCOPED_PREFIX:
        live_client.event_hooks = {"request": [_to_user_scoped_path], "response": []}
    return live_client


async def _to_user_scoped_path(request: httpx.Request) -> None:
    """Rewrite the path to name the user the request's token is for, as such a frontend would."""
    path = request.url.path
    if path == PREFIX or path.startswith(PREFIX + "/"):
        user = quote(_token_subject(request.headers.get("authorization", "")), safe="")
        request.url = request.url.copy_with(path=f"/api/{user}/tasks{path.removeprefix(PREFIX)}")


def _token_subject(authorization: str) -> str:
    """The `sub` of a bearer JWT, read without verifying (the service verifies); a stand-in for
    requests whose token has none, so they still reach the user-scoped route."""
    try:
        payload = authorization.split(" ", 1)[1].split(".")[1]
        subject = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    except (IndexError, ValueError, KeyError, TypeError):
        return "someone"
    return subject if isinstance(subject, str) and subject else "someone"
