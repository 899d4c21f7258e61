"""REQUIRE_IF_MATCH=true: a change without If-Match is 428; reads and creates are unaffected."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.main import create_app
from tasks_api.tasks.models import Task
from tests.conftest import make_settings
from tests.factories import read_task
from tests.problems import assert_problem
from tests.tasks.routes import CREATE_TASK, GET_TASK, WRITES_TO_A_TASK, Route
from tests.tokens import JwksServer


@pytest.fixture
def app(database_url: str, jwks_server: JwksServer) -> FastAPI:
    """Replaces conftest's `app`, so `client` serves with If-Match required."""
    settings = make_settings(database_url, require_if_match=True)
    return create_app(settings, jwks_transport=jwks_server.transport)


@pytest.mark.parametrize(("route", "body"), WRITES_TO_A_TASK)
async def test_a_change_without_if_match_is_428_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    route: Route,
    body: dict[str, Any] | None,
) -> None:
    before = await read_task(session, task.id)

    refused = await route.send(client, task.id, owner_headers, json=body)
    unchanged = await read_task(session, task.id)
    allowed = await route.send(
        client, task.id, owner_headers, json=body, headers={"If-Match": '"1"'}
    )

    assert_problem(refused, 428, "precondition_required")
    assert unchanged == before
    assert allowed.status_code in {200, 204}


async def test_reads_and_creates_need_no_precondition(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task
) -> None:
    read = await GET_TASK.send(client, task.id, owner_headers)
    created = await CREATE_TASK.send(client, None, owner_headers, json={"title": "New"})

    assert read.status_code == 200
    assert created.status_code == 201
