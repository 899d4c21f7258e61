"""Insert tasks straight through the test session (bypassing the API) and flush; read them back."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tasks_api.tasks.schemas import TaskResponse

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
# Before BASE_TIME, so a write that keeps a completion time is told from one that stamps it.
EARLIER = datetime(2025, 6, 1, tzinfo=UTC)


async def make_task(session: AsyncSession, user_id: str, **fields: Any) -> Task:
    created = fields.pop("created_at", BASE_TIME)
    values: dict[str, Any] = {"title": "A task", "created_at": created, "updated_at": created}
    values.update(fields)
    if values.get("completed") and "completed_at" not in values:
        values["completed_at"] = created
    task = Task(user_id=user_id, **values)
    session.add(task)
    await session.flush()
    return task


async def make_tasks(session: AsyncSession, user_id: str, count: int, **fields: Any) -> list[Task]:
    return [
        await make_task(
            session,
            user_id,
            title=f"Task {index:03d}",
            created_at=BASE_TIME + timedelta(minutes=index),
            **fields,
        )
        for index in range(count)
    ]


async def _read(session: AsyncSession, condition: ColumnElement[bool]) -> list[dict[str, Any]]:
    # populate_existing: the session may hold the row as it was before the request changed it.
    statement = (
        select(Task)
        .where(condition)
        .order_by(col(Task.id))
        .execution_options(populate_existing=True)
    )
    rows = (await session.exec(statement)).all()
    return [TaskResponse.model_validate(row).model_dump(mode="json") for row in rows]


async def read_task(session: AsyncSession, task_id: uuid.UUID) -> dict[str, Any]:
    """The stored task as the API would render it, read fresh from the database."""
    (task,) = await _read(session, col(Task.id) == task_id)
    return task


async def read_tasks(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    """Every live (not deleted) task of the user as the API would render it, read fresh, in id
    order."""
    return await _read(session, (col(Task.user_id) == user_id) & col(Task.deleted_at).is_(None))


async def read_row(session: AsyncSession, task_id: uuid.UUID) -> Task | None:
    """The stored row itself, tombstone or not, read fresh."""
    statement = select(Task).where(col(Task.id) == task_id)
    result = await session.exec(statement.execution_options(populate_existing=True))
    return result.one_or_none()


async def make_expired_tombstone(connection: AsyncConnection, task_id: uuid.UUID) -> None:
    """Turn a task into a tombstone deleted 31 days ago: past the default retention (30 days),
    so the next delete's purge removes it."""
    await connection.execute(
        text("UPDATE tasks SET deleted_at = now() - interval '31 days' WHERE id = :id"),
        {"id": task_id},
    )
