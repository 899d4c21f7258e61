import httpx
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.factories import make_task, read_row, read_tasks
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
