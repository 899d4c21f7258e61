"""ETags, If-None-Match (304) and If-Match (412, 428) on the single-task routes (RFC 9110 13)."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.main import create_app
from tasks_api.tasks.models import Task
from tests.asgi import serving
from tests.conftest import make_settings
from tests.factories import make_task, read_row, read_task
from tests.problems import assert_problem, without_request_id
from tests.statement_log import Logged, recording_statements
from tests.tasks.routes import (
    CREATE_TASK,
    GET_TASK,
    PATCH_TASK,
    TOGGLE_TASK_COMPLETION,
    UPDATE_TASK,
    WRITES_TO_A_TASK,
    Route,
)
from tests.tokens import JwksServer


def _etag(version: int) -> str:
    return f'"{version}"'


# --- ETag on every single-task response ----------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "body", "version"),
    [
        pytest.param(GET_TASK, None, 1, id="get_task"),
        pytest.param(UPDATE_TASK, {"title": "Changed"}, 2, id="update_task"),
        pytest.param(PATCH_TASK, {"title": "Changed"}, 2, id="patch_task"),
        pytest.param(TOGGLE_TASK_COMPLETION, {}, 2, id="toggle_task_completion"),
    ],
)
async def test_single_task_responses_carry_the_version_as_a_strong_etag(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    task: Task,
    route: Route,
    body: dict[str, Any] | None,
    version: int,
) -> None:
    response = await route.send(client, task.id, owner_headers, json=body)

    assert response.status_code == 200
    assert response.json()["version"] == version
    assert response.headers["etag"] == _etag(version)


async def test_a_created_task_carries_its_etag(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await CREATE_TASK.send(client, None, owner_headers, json={"title": "New"})

    assert response.status_code == 201
    assert response.headers["etag"] == _etag(1)


# --- If-None-Match -------------------------------------------------------------------------------


@pytest.mark.parametrize("if_none_match", ['"1"', 'W/"1"', '"7", "1"', "*"])
async def test_get_with_a_current_etag_is_304_without_a_body(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task, if_none_match: str
) -> None:
    response = await GET_TASK.send(
        client, task.id, owner_headers, headers={"If-None-Match": if_none_match}
    )

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == _etag(1)


@pytest.mark.parametrize("if_none_match", ['"2"', '"0"', "not-an-etag", '"abc"'])
async def test_get_with_a_stale_or_unreadable_etag_is_a_full_200(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task, if_none_match: str
) -> None:
    response = await GET_TASK.send(
        client, task.id, owner_headers, headers={"If-None-Match": if_none_match}
    )

    assert response.status_code == 200
    assert response.json()["id"] == str(task.id)
    assert response.headers["etag"] == _etag(1)


async def test_a_304_follows_a_change_of_version(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task
) -> None:
    cached = {"If-None-Match": _etag(1)}
    await PATCH_TASK.send(client, task.id, owner_headers, json={"position": 1})

    response = await GET_TASK.send(client, task.id, owner_headers, headers=cached)

    assert response.status_code == 200
    assert response.headers["etag"] == _etag(2)


# --- If-Match ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("route", "body"), WRITES_TO_A_TASK)
@pytest.mark.parametrize("if_match", ['"1"', '"5", "1"', "*"])
async def test_a_write_with_a_matching_if_match_happens(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    route: Route,
    body: dict[str, Any] | None,
    if_match: str,
) -> None:
    response = await route.send(
        client, task.id, owner_headers, json=body, headers={"If-Match": if_match}
    )

    assert response.status_code in {200, 204}, response.text
    row = await read_row(session, task.id)
    assert row is not None
    assert row.version == 2
    if response.status_code == 200:
        assert response.headers["etag"] == _etag(2)


@pytest.mark.parametrize(("route", "body"), WRITES_TO_A_TASK)
@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"', '"99999999999"', '"one"'])
async def test_a_write_with_a_stale_if_match_is_412_with_the_current_etag_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    route: Route,
    body: dict[str, Any] | None,
    if_match: str,
) -> None:
    before = await read_task(session, task.id)

    response = await route.send(
        client, task.id, owner_headers, json=body, headers={"If-Match": if_match}
    )

    assert_problem(response, 412, "precondition_failed")
    assert response.headers["etag"] == _etag(1)
    assert await read_task(session, task.id) == before


@pytest.mark.parametrize(("route", "body"), WRITES_TO_A_TASK)
@pytest.mark.parametrize("if_match", ["1", '"1', "W/1", '"1" junk', ","])
async def test_a_malformed_if_match_is_400_and_changes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    task: Task,
    route: Route,
    body: dict[str, Any] | None,
    if_match: str,
) -> None:
    before = await read_task(session, task.id)

    response = await route.send(
        client, task.id, owner_headers, json=body, headers={"If-Match": if_match}
    )

    assert_problem(response, 400, "invalid_precondition")
    assert await read_task(session, task.id) == before


@pytest.mark.parametrize(("route", "body"), WRITES_TO_A_TASK)
async def test_if_match_on_a_missing_or_foreign_task_is_the_same_404(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    other_owner_id: str,
    route: Route,
    body: dict[str, Any] | None,
) -> None:
    foreign = await make_task(session, other_owner_id)
    missing = "01890000-0000-7000-8000-000000000000"
    conditional = {"If-Match": _etag(1)}

    on_foreign = await route.send(client, foreign.id, owner_headers, json=body, headers=conditional)
    on_missing = await route.send(client, missing, owner_headers, json=body, headers=conditional)

    assert_problem(on_foreign, 404, "task_not_found")
    assert "etag" not in on_foreign.headers
    assert without_request_id(on_foreign) == without_request_id(on_missing)
    row = await read_row(session, foreign.id)
    assert row is not None
    assert (row.version, row.deleted_at) == (1, None)


async def test_an_empty_patch_still_checks_if_match(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task
) -> None:
    stale = await PATCH_TASK.send(
        client, task.id, owner_headers, json={}, headers={"If-Match": '"9"'}
    )
    current = await PATCH_TASK.send(
        client, task.id, owner_headers, json={}, headers={"If-Match": '"1"'}
    )

    assert_problem(stale, 412, "precondition_failed")
    assert current.status_code == 200
    assert current.headers["etag"] == _etag(1)


async def test_two_devices_editing_the_same_version_one_wins_and_the_other_gets_412(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], task: Task
) -> None:
    phone = await GET_TASK.send(client, task.id, owner_headers)
    laptop = await GET_TASK.send(client, task.id, owner_headers)

    from_phone = await PATCH_TASK.send(
        client,
        task.id,
        owner_headers,
        json={"title": "From the phone"},
        headers={"If-Match": phone.headers["etag"]},
    )
    from_laptop = await PATCH_TASK.send(
        client,
        task.id,
        owner_headers,
        json={"title": "From the laptop"},
        headers={"If-Match": laptop.headers["etag"]},
    )

    assert from_phone.status_code == 200
    assert_problem(from_laptop, 412, "precondition_failed")
    # The loser learns the winner's ETag, and can re-read, merge and retry with it.
    assert from_laptop.headers["etag"] == from_phone.headers["etag"] == _etag(2)
    stored = await read_task(session, task.id)
    assert (stored["title"], stored["version"]) == ("From the phone", 2)


# --- One statement, no read-then-write -----------------------------------------------------------


@pytest.fixture
def statements(connection: AsyncConnection) -> Iterator[list[Logged]]:
    with recording_statements(connection) as log:
        yield log


@pytest.mark.parametrize(("route", "body"), WRITES_TO_A_TASK)
async def test_a_conditional_write_is_one_update_with_the_version_in_its_where_clause(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    task: Task,
    statements: list[Logged],
    route: Route,
    body: dict[str, Any] | None,
) -> None:
    response = await route.send(
        client, task.id, owner_headers, json=body, headers={"If-Match": _etag(1)}
    )

    assert response.status_code in {200, 204}
    data_statements = [
        sql for sql, _ in statements if not sql.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))
    ]
    write, *after = data_statements
    assert write.startswith("UPDATE tasks SET")
    assert "tasks.version = ANY" in write
    assert "RETURNING" in write
    # Only the DELETE's bounded tombstone purge may follow; nothing reads the task first.
    assert all(sql.startswith("DELETE FROM tasks") for sql in after), after


# --- Concurrency, with real commits --------------------------------------------------------------


async def test_fifty_concurrent_patches_with_the_same_etag_exactly_one_succeeds(
    database_url: str, jwks_server: JwksServer, owner_headers: dict[str, str]
) -> None:
    settings = make_settings(
        database_url, rate_limit_enabled=False, db_pool_size=20, db_max_overflow=0
    )
    live = create_app(settings, jwks_transport=jwks_server.transport)
    async with serving(live) as client:
        created = await CREATE_TASK.send(client, None, owner_headers, json={"title": "Contended"})
        task_id, etag = created.json()["id"], created.headers["etag"]

        responses = await asyncio.gather(
            *(
                PATCH_TASK.send(
                    client,
                    task_id,
                    owner_headers,
                    json={"title": f"Writer {writer}"},
                    headers={"If-Match": etag},
                )
                for writer in range(50)
            )
        )
        stored = await GET_TASK.send(client, task_id, owner_headers)

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 412: 49}
    (winner,) = [response for response in responses if response.status_code == 200]
    assert stored.json()["title"] == winner.json()["title"]
    assert stored.json()["version"] == 2
    assert all(
        response.headers["etag"] == _etag(2)
        for response in responses
        if response.status_code == 412
    )
