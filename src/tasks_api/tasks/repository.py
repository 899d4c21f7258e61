"""`TaskRepository`: every statement about tasks, each one scoped to the owner it was built for."""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, case, delete, literal, or_, tuple_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from tasks_api.tasks.models import Priority, Task, due_date_sort_key, no_due_date_sorts_as


class SortKey(StrEnum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    TITLE = "title"
    DUE_DATE = "due_date"
    PRIORITY = "priority"
    POSITION = "position"


@dataclass(frozen=True)
class TaskFilter:
    completed: bool | None = None
    priority: Priority | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    search: str | None = None


@dataclass(frozen=True)
class Keyset:
    """Where the previous page ended: the sort key's value and the id of its last row."""

    value: Any
    task_id: uuid.UUID


class TaskRepository:
    """Reads and writes the tasks of one owner. Another owner's row is the same as no row: None."""

    def __init__(self, session: AsyncSession, owner_id: str) -> None:
        self._session = session
        self._owner_id = owner_id

    def _owned(self) -> ColumnElement[bool]:
        return col(Task.user_id) == self._owner_id

    def _select(self) -> SelectOfScalar[Task]:
        return select(Task).where(self._owned())

    async def get(self, task_id: uuid.UUID) -> Task | None:
        result = await self._session.exec(self._select().where(col(Task.id) == task_id))
        return result.one_or_none()

    async def add(self, task: Task) -> Task:
        task.user_id = self._owner_id
        self._session.add(task)
        await self._session.flush()
        return task

    async def find_page(
        self,
        filters: TaskFilter,
        sort: SortKey,
        descending: bool,
        limit: int,
        after: Keyset | None = None,
    ) -> Sequence[Task]:
        key = _sort_expression(sort, descending)
        statement = self._select().where(*_filter_conditions(filters))
        if after is not None:
            statement = statement.where(_after(key, descending, after))
        result = await self._session.exec(
            statement.order_by(*_order_by(key, descending)).limit(limit)
        )
        return result.all()

    async def update(
        self, task_id: uuid.UUID, values: Mapping[str, Any], now: datetime
    ) -> Task | None:
        """Write `values` in one UPDATE ... RETURNING, bumping `version` and `updated_at`.

        A `completed` value also sets `completed_at`: kept when the task was already complete,
        stamped with `now` when it becomes complete, cleared when it is reopened.
        """
        changes: dict[str, Any] = dict(values)
        if "completed" in changes:
            changes["completed_at"] = (
                case((col(Task.completed), col(Task.completed_at)), else_=now)
                if changes["completed"]
                else None
            )
        return await self._update_returning(task_id, changes, now)

    async def set_completion(
        self, task_id: uuid.UUID, completed: bool | None, now: datetime
    ) -> Task | None:
        """Set completion, or flip it when `completed` is None, atomically in the database.

        Because the new value is computed from the row inside the UPDATE, concurrent toggles are
        serialised by the row lock and none of them is lost.
        """
        if completed is not None:
            return await self.update(task_id, {"completed": completed}, now)
        # SET expressions read the row as it was before the UPDATE.
        flipped = {
            "completed": ~col(Task.completed),
            "completed_at": case((col(Task.completed), None), else_=now),
        }
        return await self._update_returning(task_id, flipped, now)

    async def delete(self, task_id: uuid.UUID) -> bool:
        statement = (
            delete(Task).where(self._owned(), col(Task.id) == task_id).returning(col(Task.id))
        )
        result = await self._session.exec(statement)
        return result.scalar_one_or_none() is not None

    async def _update_returning(
        self, task_id: uuid.UUID, changes: Mapping[str, Any], now: datetime
    ) -> Task | None:
        statement = (
            update(Task)
            .where(self._owned(), col(Task.id) == task_id)
            .values(**changes, version=col(Task.version) + 1, updated_at=now)
            .returning(Task)
            .execution_options(populate_existing=True, synchronize_session=False)
        )
        result = await self._session.exec(statement)
        return result.scalar_one_or_none()


def _sort_expression(sort: SortKey, descending: bool) -> ColumnElement[Any]:
    """What a list is ordered by. Never NULL, so the keyset predicate is one row comparison that
    the matching index can range-scan."""
    if sort is SortKey.DUE_DATE:
        # Tasks without a due date come last in both directions: they sort as +infinity going
        # up and -infinity going down. Both expressions have an index of their own.
        return due_date_sort_key(descending)
    return _SORT_COLUMNS[sort]


# The plain columns; `.expression` is the Core column that comparisons and ORDER BY take.
_SORT_COLUMNS: dict[SortKey, ColumnElement[Any]] = {
    key: getattr(Task, key.value).expression for key in SortKey if key is not SortKey.DUE_DATE
}


def _filter_conditions(filters: TaskFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.completed is not None:
        conditions.append(col(Task.completed).is_(filters.completed))
    if filters.priority is not None:
        conditions.append(col(Task.priority) == filters.priority)
    if filters.due_before is not None:
        conditions.append(col(Task.due_date) < filters.due_before)
    if filters.due_after is not None:
        conditions.append(col(Task.due_date) > filters.due_after)
    if filters.search:
        pattern = f"%{_escape_like(filters.search)}%"
        conditions.append(
            or_(
                col(Task.title).ilike(pattern, escape="\\"),
                col(Task.description).ilike(pattern, escape="\\"),
            )
        )
    return conditions


def _escape_like(text: str) -> str:
    """Make `%`, `_` and `\\` match themselves, so a search for "50%" means exactly that."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _order_by(key: ColumnElement[Any], descending: bool) -> list[ColumnElement[Any]]:
    # Plain ASC/DESC (no NULLS clause): a backward scan of an ascending index serves DESC.
    if descending:
        return [key.desc(), col(Task.id).desc()]
    return [key.asc(), col(Task.id).asc()]


def _after(key: ColumnElement[Any], descending: bool, after: Keyset) -> ColumnElement[bool]:
    if after.value is None:
        boundary_value: ColumnElement[Any] = no_due_date_sorts_as(descending)
    else:
        boundary_value = literal(after.value, key.type)
    row, boundary = tuple_(key, col(Task.id)), tuple_(boundary_value, literal(after.task_id))
    return row < boundary if descending else row > boundary
