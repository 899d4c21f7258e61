"""Delta sync: `updated_since`, tombstones with `include_deleted`, the Sync-Token, and the purge.

The end-to-end tests use real commits (`live_client`): a sync is about what other transactions
have committed, which the rolled-back test transaction cannot show.
"""

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.conftest import raw_connection
from tests.factories import make_expired_tombstone, make_task, read_row
from tests.problems import assert_problem
from tests.tasks.routes import (
    CREATE_TASK,
    DELETE_TASK,
    GET_TASK,
    PATCH_TASK,
    TOGGLE_TASK_COMPLETION,
    UPDATE_TASK,
)

EPOCH = "1970-01-01T00:00:00Z"


class Device:
    """An offline-first client: a local copy of the tasks, kept current by delta sync."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers
        self.tasks: dict[str, dict[str, Any]] = {}
        self.sync_token = EPOCH

    async def sync(self, page_size: int = 3) -> list[dict[str, Any]]:
        """Pull every change since the last sync, page by page; return what came."""
        changes: list[dict[str, Any]] = []
        tokens: set[str] = set()
        url: str | None = "/api/tasks"
        params: dict[str, Any] | None = {
            "updated_since": self.sync_token,
            "include_deleted": "true",
            "limit": page_size,
        }
        while url is not None:
            response = await self.client.get(url, params=params, headers=self.headers)
            assert response.status_code == 200, response.text
            tokens.add(response.headers["sync-token"])
            changes.extend(response.json())
            url = response.links.get("next", {}).get("url")
            params = None
        for change in changes:
            if change["deleted"]:
                self.tasks.pop(change["id"], None)
            else:
                self.tasks[change["id"]] = change
        # Every page of one sync hands out the same token: the one taken before the first read.
        (self.sync_token,) = tokens
        return changes


async def _server_state(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/tasks", params={"limit": 500}, headers=headers)
    return {task["id"]: task for task in response.json()}


async def test_a_device_that_was_offline_ends_with_exactly_the_servers_state(
    live_client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    phone = Device(live_client, owner_headers)

    async def create(title: str) -> str:
        response = await CREATE_TASK.send(live_client, None, owner_headers, json={"title": title})
        task_id: str = response.json()["id"]
        return task_id

    kept, edited, deleted, toggled = [await create(title) for title in "ABCD"]
    await phone.sync()
    assert set(phone.tasks) == {kept, edited, deleted, toggled}

    # The phone is offline; the laptop creates, edits, toggles and deletes.
    added = await create("E")
    created_then_deleted = await create("F")
    await PATCH_TASK.send(live_client, edited, owner_headers, json={"title": "B, edited"})
    await UPDATE_TASK.send(live_client, edited, owner_headers, json={"title": "B, replaced"})
    await TOGGLE_TASK_COMPLETION.send(live_client, toggled, owner_headers)
    await DELETE_TASK.send(live_client, deleted, owner_headers)
    await DELETE_TASK.send(live_client, created_then_deleted, owner_headers)

    changes = await phone.sync()

    assert phone.tasks == await _server_state(live_client, owner_headers)
    assert set(phone.tasks) == {kept, edited, toggled, added}
    assert phone.tasks[edited]["title"] == "B, replaced"
    assert phone.tasks[toggled]["completed"] is True
    tombstones = [change for change in changes if change["deleted"]]
    assert {tombstone["id"] for tombstone in tombstones} == {deleted, created_then_deleted}
    assert all(tombstone.keys() == {"id", "deleted", "updated_at"} for tombstone in tombstones)

    # Nothing changed since. A sync may repeat what changed just before the last one (the
    # overlap); repeats change nothing. Once past the overlap, a sync brings nothing.
    known = dict(phone.tasks)
    repeated = await phone.sync()
    assert all(
        known.get(change["id"], change) == change for change in repeated if not change["deleted"]
    )
    assert phone.tasks == known
    await asyncio.sleep(1.1)
    await phone.sync()
    assert await phone.sync() == []
    assert phone.tasks == await _server_state(live_client, owner_headers)


async def test_a_write_committing_during_a_sync_is_not_missed_by_the_next_one(
    live_client: httpx.AsyncClient, owner_headers: dict[str, str], database_url: str
) -> None:
    """The race that a plain "now" as the sync token loses: a write that started before the
    sync (so its updated_at is earlier) but commits after it."""
    phone = Device(live_client, owner_headers)
    created = await CREATE_TASK.send(live_client, None, owner_headers, json={"title": "Slow"})
    task_id = uuid.UUID(created.json()["id"])
    await phone.sync()

    writer = await raw_connection(database_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        # The same UPDATE the service runs, stamped when it starts; it commits much later.
        await writer.execute(
            "UPDATE tasks SET title = 'Slow, edited', version = version + 1,"
            " updated_at = statement_timestamp() WHERE id = $1",
            task_id,
        )
        await asyncio.sleep(1.5)  # longer than the sync's fixed overlap
        during = await phone.sync()
        await transaction.commit()
    finally:
        await writer.close()

    after = await phone.sync()

    # Uncommitted during the sync: not seen then, and not lost afterwards.
    assert "Slow, edited" not in [change["title"] for change in during]
    assert [change["title"] for change in after] == ["Slow, edited"]
    assert phone.tasks[str(task_id)]["title"] == "Slow, edited"


async def test_every_page_of_a_sync_carries_the_same_token(
    live_client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    for index in range(7):
        await CREATE_TASK.send(live_client, None, owner_headers, json={"title": f"T{index}"})
    phone = Device(live_client, owner_headers)

    changes = await phone.sync(page_size=2)

    assert len(changes) == 7
    # Oldest change first, by default.
    stamps = [datetime.fromisoformat(change["updated_at"]) for change in changes]
    assert stamps == sorted(stamps)
    token = datetime.fromisoformat(phone.sync_token)
    assert phone.sync_token.endswith("Z")
    assert before < token < datetime.now(UTC)


async def test_without_include_deleted_a_sync_lists_only_live_changes(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    old = await make_task(session, owner_id, title="Old")
    changed = await make_task(session, owner_id, title="Changed")
    gone = await make_task(session, owner_id, title="Gone")
    await PATCH_TASK.send(client, changed.id, owner_headers, json={"position": 3})
    await DELETE_TASK.send(client, gone.id, owner_headers)

    since = "2026-06-01T00:00:00Z"  # after the factory's timestamps, before the changes
    live_only = await client.get(
        "/api/tasks", params={"updated_since": since}, headers=owner_headers
    )
    with_deleted = await client.get(
        "/api/tasks",
        params={"updated_since": since, "include_deleted": "true"},
        headers=owner_headers,
    )

    assert [task["id"] for task in live_only.json()] == [str(changed.id)]
    assert [(item["id"], item["deleted"]) for item in with_deleted.json()] == [
        (str(changed.id), False),
        (str(gone.id), True),
    ]
    assert str(old.id) not in {item["id"] for item in with_deleted.json()}
    assert "sync-token" in live_only.headers


async def test_a_plain_list_has_no_sync_token_and_no_tombstones(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    kept = await make_task(session, owner_id)
    gone = await make_task(session, owner_id)
    await DELETE_TASK.send(client, gone.id, owner_headers)

    response = await client.get("/api/tasks", headers=owner_headers)

    assert [task["id"] for task in response.json()] == [str(kept.id)]
    assert "sync-token" not in response.headers


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"include_deleted": "true"}, id="include_deleted-without-updated_since"),
        pytest.param({"updated_since": "2026-01-01T00:00:00"}, id="no-offset"),
        pytest.param({"updated_since": "yesterday"}, id="not-a-date"),
        pytest.param({"updated_since": "1700000000"}, id="a-number"),
    ],
)
async def test_bad_sync_parameters_are_422(
    client: httpx.AsyncClient, owner_headers: dict[str, str], params: dict[str, str]
) -> None:
    response = await client.get("/api/tasks", params=params, headers=owner_headers)

    assert_problem(response, 422, "validation_failed")


async def test_a_tombstone_is_gone_for_every_other_route(
    client: httpx.AsyncClient, owner_headers: dict[str, str], task: Task
) -> None:
    await DELETE_TASK.send(client, task.id, owner_headers)

    for route, body in [
        (GET_TASK, None),
        (UPDATE_TASK, {"title": "Back?"}),
        (PATCH_TASK, {"title": "Back?"}),
        (TOGGLE_TASK_COMPLETION, {}),
        (DELETE_TASK, None),
    ]:
        response = await route.send(client, task.id, owner_headers, json=body)
        assert_problem(response, 404, "task_not_found")


async def test_another_users_sync_never_shows_my_changes_or_tombstones(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    other_owner_headers: dict[str, str],
    task: Task,
) -> None:
    await DELETE_TASK.send(client, task.id, owner_headers)

    theirs = await client.get(
        "/api/tasks",
        params={"updated_since": EPOCH, "include_deleted": "true"},
        headers=other_owner_headers,
    )

    assert theirs.status_code == 200
    assert theirs.json() == []


async def test_expired_tombstones_are_purged_on_a_later_delete_and_recent_ones_kept(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    owner_headers: dict[str, str],
    owner_id: str,
    other_owner_id: str,
) -> None:
    expired = await make_task(session, other_owner_id, title="Deleted long ago")
    recent = await make_task(session, owner_id, title="Deleted lately")
    trigger = await make_task(session, owner_id, title="Deleted now")
    await DELETE_TASK.send(client, recent.id, owner_headers)
    await make_expired_tombstone(connection, expired.id)

    await DELETE_TASK.send(client, trigger.id, owner_headers)

    assert await read_row(session, expired.id) is None
    kept = await read_row(session, recent.id)
    assert kept is not None
    assert kept.deleted_at is not None


async def test_timestamps_come_from_the_database_clock(
    client: httpx.AsyncClient, connection: AsyncConnection, owner_headers: dict[str, str]
) -> None:
    started = time.time()
    created = await CREATE_TASK.send(client, None, owner_headers, json={"title": "Clock"})
    database_now = (await connection.execute(text("SELECT statement_timestamp()"))).scalar_one()

    body = created.json()
    assert body["created_at"] == body["updated_at"]
    stamped = datetime.fromisoformat(body["created_at"])
    assert started - 5 < stamped.timestamp() <= database_now.timestamp()
