import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.factories import make_expired_tombstone, make_task, read_row, read_tasks
from tests.problems import assert_problem, without_request_id


async def test_delete_task_returns_204_and_leaves_a_tombstone(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    task = await make_task(session, owner_id, title="Goes")
    kept = await make_task(session, owner_id, title="Stays")
    version = task.version

    response = await client.delete(f"/api/tasks/{task.id}", headers=owner_headers)

    assert response.status_code == 204
    assert response.content == b""
    assert [row["id"] for row in await read_tasks(session, owner_id)] == [str(kept.id)]
    # Kept for delta sync as a tombstone: a new version, stamped deleted.
    tombstone = await read_row(session, task.id)
    assert tombstone is not None
    assert tombstone.deleted_at is not None
    assert tombstone.version == version + 1
    assert tombstone.updated_at == tombstone.deleted_at


async def test_deleted_task_is_gone_for_get_and_delete(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    task = await make_task(session, owner_id)
    assert (await client.delete(f"/api/tasks/{task.id}", headers=owner_headers)).status_code == 204

    fetched = await client.get(f"/api/tasks/{task.id}", headers=owner_headers)
    deleted_again = await client.delete(f"/api/tasks/{task.id}", headers=owner_headers)

    assert_problem(fetched, 404, "task_not_found")
    assert_problem(deleted_again, 404, "task_not_found")
    assert without_request_id(fetched) == without_request_id(deleted_again)


async def test_a_delete_whose_purge_fails_leaves_the_task_as_it_was(
    client: httpx.AsyncClient,
    session: AsyncSession,
    connection: AsyncConnection,
    owner_headers: dict[str, str],
    owner_id: str,
    other_owner_id: str,
) -> None:
    # The tombstone and the purge of expired ones are one transaction (TaskService.delete): if
    # the purge fails, the delete is undone too, and the client's retry starts from a clean state.
    task = await make_task(session, owner_id, title="Must survive")
    version = task.version
    expired = await make_task(session, other_owner_id, title="Deleted long ago")
    await make_expired_tombstone(connection, expired.id)
    # Any row the purge tries to remove makes it fail (inside the test's transaction only).
    await connection.execute(
        text(
            "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'purge refused'; END $$"
        )
    )
    await connection.execute(
        text(
            "CREATE TRIGGER refuse_delete BEFORE DELETE ON tasks FOR EACH ROW"
            " EXECUTE FUNCTION refuse_delete()"
        )
    )

    with pytest.raises(DBAPIError, match="purge refused"):
        await client.delete(f"/api/tasks/{task.id}", headers=owner_headers)

    row = await read_row(session, task.id)
    assert row is not None
    assert row.deleted_at is None
    assert row.version == version
    assert await read_row(session, expired.id) is not None
