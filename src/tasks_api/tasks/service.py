"""`TaskService`: the task use cases. Raises domain errors.

Each repository call is one statement that commits on its own; a use case whose statements must
land together runs them in `atomic()` (see `database.RequestDatabase`).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks_api.conditional_requests import VersionCondition
from tasks_api.database import Atomic
from tasks_api.tasks.exceptions import (
    InvalidCursorError,
    TaskNotFoundError,
    TaskVersionMismatchError,
)
from tasks_api.tasks.models import TaskRecord
from tasks_api.tasks.pagination import (
    CursorPosition,
    MalformedCursorError,
    decode_cursor,
    encode_cursor,
)
from tasks_api.tasks.repository import Keyset, SortKey, TaskFilter, TaskRepository
from tasks_api.tasks.schemas import TaskCreate, TaskListParams, TaskPatch, TaskUpdate

# Tombstones purged per deletion, at most: keeps a DELETE fast whatever the backlog.
TOMBSTONE_PURGE_BATCH = 100
# A sync point lies this far before the earliest moment a pending change could be stamped with,
# so that one stamped right at the boundary is sent twice rather than missed. Clients apply
# changes by id and version, so a repeat is harmless.
SYNC_OVERLAP = timedelta(seconds=1)


@dataclass(frozen=True)
class TaskPage:
    items: Sequence[TaskRecord]
    next_cursor: str | None
    # Delta sync only: what the client sends as `updated_since` next time.
    sync_token: datetime | None = None


class TaskService:
    def __init__(
        self, repository: TaskRepository, *, atomic: Atomic, tombstone_retention: timedelta
    ) -> None:
        self._tasks = repository
        self._atomic = atomic
        self._tombstone_retention = tombstone_retention

    async def create(self, data: TaskCreate) -> TaskRecord:
        return await self._tasks.add(data.model_dump())

    async def get(self, task_id: uuid.UUID) -> TaskRecord:
        return _found(await self._tasks.get(task_id))

    async def list_page(self, params: TaskListParams) -> TaskPage:
        sort = SortKey(params.sort_key)
        after = None
        sync_token = None
        if params.cursor is not None:
            try:
                position = decode_cursor(params.cursor, sort.value, params.descending)
            except MalformedCursorError as error:
                raise InvalidCursorError(str(error)) from None
            after = Keyset(position.value, position.task_id)
            sync_token = position.sync_token
        if params.updated_since is not None and sync_token is None:
            # Taken before the rows are read, and carried by the cursor to every later page.
            sync_token = await self._tasks.sync_point(SYNC_OVERLAP)
        filters = TaskFilter(
            completed=params.completed_filter,
            priority=params.priority,
            due_before=params.due_before,
            due_after=params.due_after,
            search=params.q,
            updated_since=params.updated_since,
        )
        # One row more than asked tells whether a next page exists, without a COUNT.
        rows = await self._tasks.find_page(
            filters,
            sort,
            params.descending,
            params.limit + 1,
            after,
            include_deleted=params.include_deleted,
        )
        items = rows[: params.limit]
        next_cursor = None
        if len(rows) > params.limit:
            last = items[-1]
            next_cursor = encode_cursor(
                CursorPosition(
                    sort.value,
                    params.descending,
                    getattr(last, sort.value),
                    last.id,
                    sync_token if params.updated_since is not None else None,
                )
            )
        return TaskPage(items, next_cursor, sync_token if params.updated_since else None)

    async def replace(
        self, task_id: uuid.UUID, data: TaskUpdate, only_if: VersionCondition | None = None
    ) -> TaskRecord:
        task = await self._tasks.update(task_id, data.model_dump(), only_if=only_if)
        return await self._written(task_id, task)

    async def patch(
        self, task_id: uuid.UUID, changes: TaskPatch, only_if: VersionCondition | None = None
    ) -> TaskRecord:
        values = changes.model_dump(exclude_unset=True)
        if not values:
            # Nothing to write, so nothing to race: a read answers, precondition included.
            current = await self.get(task_id)
            if only_if is not None and not only_if.accepts(current.version):
                raise TaskVersionMismatchError(current.version)
            return current
        return await self._written(
            task_id, await self._tasks.update(task_id, values, only_if=only_if)
        )

    async def set_completion(
        self, task_id: uuid.UUID, completed: bool | None, only_if: VersionCondition | None = None
    ) -> TaskRecord:
        task = await self._tasks.set_completion(task_id, completed, only_if=only_if)
        return await self._written(task_id, task)

    async def delete(self, task_id: uuid.UUID, only_if: VersionCondition | None = None) -> None:
        # Together: a purge that fails undoes the delete too, and the client's retry is clean.
        async with self._atomic():
            await self._written(task_id, await self._tasks.delete(task_id, only_if=only_if))
            await self._tasks.purge_tombstones(self._tombstone_retention, TOMBSTONE_PURGE_BATCH)

    async def _written(self, task_id: uuid.UUID, task: TaskRecord | None) -> TaskRecord:
        """The written task, or why the conditional write changed nothing: 404 or 412."""
        if task is not None:
            return task
        # The write is over (it matched no row); this read only picks the error to report.
        current = await self._tasks.get(task_id)
        if current is None:
            raise TaskNotFoundError()
        raise TaskVersionMismatchError(current.version)


def _found(task: TaskRecord | None) -> TaskRecord:
    if task is None:
        raise TaskNotFoundError()
    return task
