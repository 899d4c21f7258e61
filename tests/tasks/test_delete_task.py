import uuid

import httpx
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.factories import make_task
from tests.problems import assert_problem, without_request_id


async def _stored_ids(session: AsyncSession, owner_id: str) -> set[uuid.UUID]:
    return set((await session.exec(select(Task.id).where(Task.user_id == owner_id))).all())


async def test_delete_task_returns_204_and_removes_it(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    task = await make_task(session, owner_id, title="Goes")
    kept = await make_task(session, owner_id, title="Stays")

    response = await client.delete(f"/api/tasks/{task.id}", headers=owner_headers)

    assert response.status_code == 204
    assert response.content == b""
    assert await _stored_ids(session, owner_id) == {kept.id}


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


async def test_delete_task_with_unknown_id_returns_404(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.delete(f"/api/tasks/{uuid.uuid4()}", headers=owner_headers)

    assert_problem(response, 404, "task_not_found")


async def test_delete_task_of_another_user_returns_404(
    client: httpx.AsyncClient,
    session: AsyncSession,
    other_owner_headers: dict[str, str],
    owner_id: str,
) -> None:
    task = await make_task(session, owner_id, title="Not yours")

    foreign = await client.delete(f"/api/tasks/{task.id}", headers=other_owner_headers)
    unknown = await client.delete(f"/api/tasks/{uuid.uuid4()}", headers=other_owner_headers)

    assert_problem(foreign, 404, "task_not_found")
    assert without_request_id(foreign) == without_request_id(unknown)
    await session.refresh(task)
    assert (task.user_id, task.title, task.version) == (owner_id, "Not yours", 1)
