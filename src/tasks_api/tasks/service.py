"""`TaskService`: the task use cases. Raises domain errors; flushes but never commits."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tasks_api.tasks.exceptions import InvalidCursorError, TaskNotFoundError
from tasks_api.tasks.models import Task
from tasks_api.tasks.pagination import (
    CursorPosition,
    MalformedCursorError,
    decode_cursor,
    encode_cursor,
)
from tasks_api.tasks.repository import Keyset, SortKey, TaskFilter, TaskRepository
from tasks_api.tasks.schemas import TaskCreate, TaskListParams, TaskPatch, TaskUpdate


@dataclass(frozen=True)
class TaskPage:
    items: Sequence[Task]
    next_cursor: str | None


def _now() -> datetime:
    return datetime.now(UTC)


class TaskService:
    def __init__(self, repository: TaskRepository) -> None:
        self._tasks = repository

    async def create(self, data: TaskCreate) -> Task:
        now = _now()
        task = Task(
            **data.model_dump(),
            completed_at=now if data.completed else None,
            created_at=now,
            updated_at=now,
        )
        return await self._tasks.add(task)

    async def get(self, task_id: uuid.UUID) -> Task:
        return _found(await self._tasks.get(task_id))

    async def list_page(self, params: TaskListParams) -> TaskPage:
        sort = SortKey(params.sort_key)
        after = None
        if params.cursor is not None:
            try:
                position = decode_cursor(params.cursor, sort.value, params.descending)
            except MalformedCursorError as error:
                raise InvalidCursorError(str(error)) from None
            after = Keyset(position.value, position.task_id)
        filters = TaskFilter(
            completed=params.completed_filter,
            priority=params.priority,
            due_before=params.due_before,
            due_after=params.due_after,
            search=params.q,
        )
        # One row more than asked tells whether a next page exists, without a COUNT.
        rows = await self._tasks.find_page(
            filters, sort, params.descending, params.limit + 1, after
        )
        items = rows[: params.limit]
        next_cursor = None
        if len(rows) > params.limit:
            last = items[-1]
            next_cursor = encode_cursor(
                CursorPosition(sort.value, params.descending, getattr(last, sort.value), last.id)
            )
        return TaskPage(items, next_cursor)

    async def replace(self, task_id: uuid.UUID, data: TaskUpdate) -> Task:
        return _found(await self._tasks.update(task_id, data.model_dump(), _now()))

    async def patch(self, task_id: uuid.UUID, changes: TaskPatch) -> Task:
        values = changes.model_dump(exclude_unset=True)
        if not values:
            return await self.get(task_id)
        return _found(await self._tasks.update(task_id, values, _now()))

    async def set_completion(self, task_id: uuid.UUID, completed: bool | None) -> Task:
        return _found(await self._tasks.set_completion(task_id, completed, _now()))

    async def delete(self, task_id: uuid.UUID) -> None:
        if not await self._tasks.delete(task_id):
            raise TaskNotFoundError()


def _found(task: Task | None) -> Task:
    if task is None:
        raise TaskNotFoundError()
    return task
