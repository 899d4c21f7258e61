"""Insert tasks straight through the test session (bypassing the API) and flush."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task

BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)


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
