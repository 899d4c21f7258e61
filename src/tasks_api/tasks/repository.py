"""`TaskRepository`: every statement about tasks, each one scoped to the owner it was built for.

Deleted tasks stay as tombstones (`deleted_at`) for delta sync; every statement but the sync query
excludes them, so to the rest of the service a deleted task is a missing one.

Statements run through SQLAlchemy Core (`database.Statements`) and return rows (`TaskRecord`):
no ORM session, so no identity map or per-object state on the hot path. `Task` still defines the
table; statements are built from its columns (`tasks_table`).

Timestamps come from the database clock (`statement_timestamp()`, when the writing statement
started): one clock for every process and replica, which delta sync relies on (see `sync_point`).
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

import uuid6
from sqlalchemy import (
    Boolean,
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    text,
    tuple_,
    update,
)
from sqlalchemy import (
    select as core_select,
)
from sqlalchemy.engine import Result
from sqlalchemy.sql import Select

from tasks_api.conditional_requests import VersionCondition
from tasks_api.database import Statements
from tasks_api.tasks.models import (
    Priority,
    TaskRecord,
    due_date_sort_key,
    no_due_date_sorts_as,
    tasks_table,
)


def _now() -> ColumnElement[datetime]:
    """The database's time at the start of the current statement: every write's timestamp."""
    return func.statement_timestamp()


_tasks = tasks_table
_c = _tasks.c
# Every column in the table's order, and `deleted`: what reads select and writes return. With
# `deleted` in the row, a row converts to its response (a task or a tombstone) by its attributes
# alone, and no attribute the response reads is missing from it.
_COLUMNS = (*_tasks.columns, _c.deleted_at.is_not(None).label("deleted"))
# The most frequent statement, built once with the owner and the id as bind parameters: its shape
# never changes, so SQLAlchemy finds its compiled form without rebuilding and re-keying it.
_GET_LIVE = core_select(*_COLUMNS).where(
    _c.user_id == bindparam("owner_id"), _c.deleted_at.is_(None), _c.id == bindparam("task_id")
)
# The create, built once the same way: the writable fields, the new id and the owner are bind
# parameters; the times come from the database clock.
_completed = bindparam("completed", type_=Boolean)
_INSERT = (
    insert(_tasks)
    .values(
        title=bindparam("title"),
        description=bindparam("description"),
        priority=bindparam("priority"),
        due_date=bindparam("due_date"),
        position=bindparam("position"),
        id=bindparam("id"),
        user_id=bindparam("owner_id"),
        completed=_completed,
        completed_at=case((_completed, _now()), else_=None),
        created_at=_now(),
        updated_at=_now(),
    )
    .returning(*_COLUMNS)
)


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
    updated_since: datetime | None = None


@dataclass(frozen=True)
class Keyset:
    """Where the previous page ended: the sort key's value and the id of its last row."""

    value: Any
    task_id: uuid.UUID


class TaskRepository:
    """Reads and writes the tasks of one owner. Another owner's row is the same as no row: None.

    Writes take `only_if`, the versions an If-Match accepts: the condition joins the UPDATE's
    WHERE clause, so a write either happens on an accepted version or not at all.
    """

    def __init__(self, database: Statements, owner_id: str) -> None:
        self._database = database
        self._owner_id = owner_id

    def _owned(self) -> ColumnElement[bool]:
        return _c.user_id == self._owner_id

    def _live(self) -> ColumnElement[bool]:
        return and_(self._owned(), _c.deleted_at.is_(None))

    async def get(self, task_id: uuid.UUID) -> TaskRecord | None:
        parameters = {"owner_id": self._owner_id, "task_id": task_id}
        return _one_or_none(await self._database.execute(_GET_LIVE, parameters))

    async def add(self, values: Mapping[str, Any]) -> TaskRecord:
        """Insert a task with every writable field in `values`; the database stamps its times."""
        parameters = {**values, "id": uuid6.uuid7(), "owner_id": self._owner_id}
        return cast(TaskRecord, (await self._database.execute(_INSERT, parameters)).one())

    async def find_page(
        self,
        filters: TaskFilter,
        sort: SortKey,
        descending: bool,
        limit: int,
        after: Keyset | None = None,
        *,
        include_deleted: bool = False,
    ) -> Sequence[TaskRecord]:
        key = _sort_expression(sort, descending)
        # Tombstones are listed only in a delta sync that asks for them.
        scope = self._owned() if include_deleted else self._live()
        statement: Select[Any] = core_select(*_COLUMNS).where(scope, *_filter_conditions(filters))
        if after is not None:
            statement = statement.where(_after(key, descending, after))
        statement = statement.order_by(*_order_by(key, descending)).limit(limit)
        return cast(Sequence[TaskRecord], (await self._database.execute(statement)).all())

    async def update(
        self,
        task_id: uuid.UUID,
        values: Mapping[str, Any],
        *,
        only_if: VersionCondition | None = None,
    ) -> TaskRecord | None:
        """Write `values` in one UPDATE ... RETURNING, bumping `version` and `updated_at`.

        A `completed` value also sets `completed_at`: kept when the task was already complete,
        stamped now when it becomes complete, cleared when it is reopened.
        """
        changes: dict[str, Any] = dict(values)
        if "completed" in changes:
            changes["completed_at"] = (
                case((_c.completed, _c.completed_at), else_=_now())
                if changes["completed"]
                else None
            )
        return await self._update_returning(task_id, changes, only_if)

    async def set_completion(
        self,
        task_id: uuid.UUID,
        completed: bool | None,
        *,
        only_if: VersionCondition | None = None,
    ) -> TaskRecord | None:
        """Set completion, or flip it when `completed` is None, atomically in the database.

        Because the new value is computed from the row inside the UPDATE, concurrent toggles are
        serialised by the row lock and none of them is lost.
        """
        if completed is not None:
            return await self.update(task_id, {"completed": completed}, only_if=only_if)
        # SET expressions read the row as it was before the UPDATE.
        flipped = {
            "completed": ~_c.completed,
            "completed_at": case((_c.completed, None), else_=_now()),
        }
        return await self._update_returning(task_id, flipped, only_if)

    async def delete(
        self, task_id: uuid.UUID, *, only_if: VersionCondition | None = None
    ) -> TaskRecord | None:
        """Turn the task into a tombstone (a new version, stamped now); None if there was none."""
        return await self._update_returning(task_id, {"deleted_at": _now()}, only_if)

    async def sync_point(self, overlap: timedelta) -> datetime:
        """The instant a delta sync can safely resume from: every change not yet visible to this
        request's next statement will carry a later `updated_at`.

        `updated_at` is when the writing statement started, which is no earlier than its
        transaction's start, and a transaction may commit well after that. So the point is the
        oldest start among this role's transactions still running, or now, whichever is
        earlier, minus a small overlap: a change stamped in that very microsecond is sent again
        rather than missed.
        """
        oldest_running = text(
            "(SELECT min(xact_start) FROM pg_stat_activity"
            " WHERE datname = current_database() AND usename = current_user"
            " AND pid <> pg_backend_pid())"
        )
        statement = core_select(func.least(_now(), oldest_running) - overlap)
        point: datetime = (await self._database.execute(statement)).scalar_one()
        return point

    async def purge_tombstones(self, older_than: timedelta, batch: int) -> None:
        """Remove at most `batch` tombstones deleted more than `older_than` ago, of any owner.

        Maintenance, not a query on anyone's behalf: it returns nothing, and it is the one
        statement here not scoped to the owner. Bounded, so the delete that triggers it stays
        fast; deletions happen far more often than a batch expires, so the backlog drains.
        """
        # Oldest first: a range of the tombstone index. SKIP LOCKED: concurrent purges take
        # different rows instead of waiting on (or deadlocking over) the same ones.
        expired = (
            core_select(_c.id)
            .where(_c.deleted_at < _now() - older_than)
            .order_by(_c.deleted_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        await self._database.execute(delete(_tasks).where(_c.id.in_(expired)))

    async def _update_returning(
        self,
        task_id: uuid.UUID,
        changes: Mapping[str, Any],
        only_if: VersionCondition | None,
    ) -> TaskRecord | None:
        conditions = [self._live(), _c.id == task_id]
        if only_if is not None and not only_if.any_version:
            conditions.append(_c.version.in_(only_if.versions))
        statement = (
            update(_tasks)
            .where(*conditions)
            .values(**changes, version=_c.version + 1, updated_at=_now())
            .returning(*_COLUMNS)
        )
        return _one_or_none(await self._database.execute(statement))


def _one_or_none(result: Result[Any]) -> TaskRecord | None:
    return cast(TaskRecord | None, result.one_or_none())


def _sort_expression(sort: SortKey, descending: bool) -> ColumnElement[Any]:
    """What a list is ordered by. Never NULL, so the keyset predicate is one row comparison that
    the matching index can range-scan."""
    if sort is SortKey.DUE_DATE:
        # Tasks without a due date come last in both directions: they sort as +infinity going
        # up and -infinity going down. Both expressions have an index of their own.
        return due_date_sort_key(descending)
    return _SORT_COLUMNS[sort]


# The plain columns of the other sort keys.
_SORT_COLUMNS: dict[SortKey, ColumnElement[Any]] = {
    key: _c[key.value] for key in SortKey if key is not SortKey.DUE_DATE
}


def _filter_conditions(filters: TaskFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.completed is not None:
        conditions.append(_c.completed.is_(filters.completed))
    if filters.priority is not None:
        conditions.append(_c.priority == filters.priority)
    if filters.due_before is not None:
        conditions.append(_c.due_date < filters.due_before)
    if filters.due_after is not None:
        conditions.append(_c.due_date > filters.due_after)
    if filters.updated_since is not None:
        conditions.append(_c.updated_at > filters.updated_since)
    if filters.search:
        pattern = f"%{_escape_like(filters.search)}%"
        conditions.append(
            or_(
                _c.title.ilike(pattern, escape="\\"),
                _c.description.ilike(pattern, escape="\\"),
            )
        )
    return conditions


def _escape_like(text: str) -> str:
    """Make `%`, `_` and `\\` match themselves, so a search for "50%" means exactly that."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _order_by(key: ColumnElement[Any], descending: bool) -> list[ColumnElement[Any]]:
    # Plain ASC/DESC (no NULLS clause): a backward scan of an ascending index serves DESC.
    if descending:
        return [key.desc(), _c.id.desc()]
    return [key.asc(), _c.id.asc()]


def _after(key: ColumnElement[Any], descending: bool, after: Keyset) -> ColumnElement[bool]:
    if after.value is None:
        boundary_value: ColumnElement[Any] = no_due_date_sorts_as(descending)
    else:
        boundary_value = literal(after.value, key.type)
    row, boundary = tuple_(key, _c.id), tuple_(boundary_value, literal(after.task_id))
    return row < boundary if descending else row > boundary
