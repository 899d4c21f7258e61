"""`TaskRepository`: every statement about tasks, each one scoped to the owner it was built for.

Deleted tasks stay as tombstones (`deleted_at`) for delta sync; every statement but the sync query
excludes them, so to the rest of the service a deleted task is a missing one.

Statements are SQLAlchemy Core, built from the table's columns (`tasks_table`) and return rows
(`TaskRecord`): no ORM session, so no identity map or per-object state on the hot path. Those of
the task routes are built once and compiled once (`CompiledStatement`), and run on asyncpg
directly; the maintenance statements run through SQLAlchemy (`RequestDatabase.execute`).

Timestamps come from the database clock (`statement_timestamp()`, when the writing statement
started): one clock for every process and replica, which delta sync relies on (see `sync_point`).
"""

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, cast

import uuid6
from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    Integer,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    text,
    tuple_,
    update,
)
from sqlalchemy import (
    select as core_select,
)
from sqlalchemy.sql import Update

from tasks_api.compiled_statements import CompiledStatement
from tasks_api.conditional_requests import VersionCondition
from tasks_api.database import RequestDatabase
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
# The task routes' statements are built and compiled once per shape, with the values as bind
# parameters (`owner_id` always), and kept: building one through SQLAlchemy's expression language,
# then finding its compiled form, cost more than running it (a write's profile showed almost half
# of its time there). The maintenance statements (`sync_point`, `purge_tombstones`) run rarely and
# are built per call.
_OWNED = _c.user_id == bindparam("owner_id")
_OWNED_LIVE = (_OWNED, _c.deleted_at.is_(None))
_THE_TASK = _c.id == bindparam("task_id")
_GET_LIVE = CompiledStatement(core_select(*_COLUMNS).where(*_OWNED_LIVE, _THE_TASK))
# The create, built once the same way: the writable fields, the new id and the owner are bind
# parameters; the times come from the database clock, the first version is 1.
_completed = bindparam("completed", type_=Boolean)
_INSERT = CompiledStatement(
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
        version=1,
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

    def __init__(self, database: RequestDatabase, owner_id: str) -> None:
        self._database = database
        self._owner_id = owner_id

    async def get(self, task_id: uuid.UUID) -> TaskRecord | None:
        parameters = {"owner_id": self._owner_id, "task_id": task_id}
        return _one_or_none(await self._database.fetch(_GET_LIVE, parameters))

    async def add(self, values: Mapping[str, Any]) -> TaskRecord:
        """Insert a task with every writable field in `values`; the database stamps its times."""
        parameters = {**values, "id": uuid6.uuid7(), "owner_id": self._owner_id}
        (task,) = await self._database.fetch(_INSERT, parameters)
        return cast(TaskRecord, task)

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
        parameters = {
            "owner_id": self._owner_id,
            "limit": limit,
            **_filter_values(filters),
        }
        boundary = None
        if after is not None:
            parameters["after_id"] = after.task_id
            boundary = _Boundary.NO_DUE_DATE
            if after.value is not None:
                parameters["after_value"] = after.value
                boundary = _Boundary.VALUE
        statement = _page_statement(
            sort, descending, frozenset(parameters) & _FILTER_NAMES, boundary, include_deleted
        )
        return cast(Sequence[TaskRecord], await self._database.fetch(statement, parameters))

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
        versions = _required_versions(only_if)
        statement = _write_statement(frozenset(values), versions is not None)
        return await self._update_returning(statement, task_id, versions, values)

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
        versions = _required_versions(only_if)
        return await self._update_returning(_FLIP[versions is not None], task_id, versions)

    async def delete(
        self, task_id: uuid.UUID, *, only_if: VersionCondition | None = None
    ) -> TaskRecord | None:
        """Turn the task into a tombstone (a new version, stamped now); None if there was none."""
        versions = _required_versions(only_if)
        return await self._update_returning(_TOMBSTONE[versions is not None], task_id, versions)

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
        statement: CompiledStatement,
        task_id: uuid.UUID,
        versions: frozenset[int] | None,
        values: Mapping[str, Any] | None = None,
    ) -> TaskRecord | None:
        """Run an UPDATE built by `_changing`, guarded exactly when `versions` is given."""
        # The owner and the task last, so that no written value can stand in for them.
        parameters = {**(values or {}), "owner_id": self._owner_id, "task_id": task_id}
        if versions is not None:
            parameters["versions"] = sorted(versions)
        return _one_or_none(await self._database.fetch(statement, parameters))


def _one_or_none(rows: Sequence[Any]) -> TaskRecord | None:
    """The row of a statement that finds one by its key, or None."""
    return cast(TaskRecord, rows[0]) if rows else None


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


# The filters by the parameter each one binds, in TaskFilter's terms.
_FILTER_CONDITIONS: dict[str, ColumnElement[bool]] = {
    "completed": _c.completed == bindparam("completed"),
    "priority": _c.priority == bindparam("priority"),
    "due_before": _c.due_date < bindparam("due_before"),
    "due_after": _c.due_date > bindparam("due_after"),
    "updated_since": _c.updated_at > bindparam("updated_since"),
    # Case-insensitive substring of either text; the pattern escapes LIKE's wildcards.
    "pattern": or_(
        _c.title.ilike(bindparam("pattern"), escape="\\"),
        _c.description.ilike(bindparam("pattern"), escape="\\"),
    ),
}
_FILTER_NAMES = frozenset(_FILTER_CONDITIONS)


def _filter_values(filters: TaskFilter) -> dict[str, Any]:
    """The bind parameters of the filters that are set."""
    values = {
        name: getattr(filters, name)
        for name in ("completed", "priority", "due_before", "due_after", "updated_since")
        if getattr(filters, name) is not None
    }
    if filters.search:
        values["pattern"] = f"%{_escape_like(filters.search)}%"
    return values


def _escape_like(text: str) -> str:
    """Make `%`, `_` and `\\` match themselves, so a search for "50%" means exactly that."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Boundary(Enum):
    """Where a later page starts: after a sort value, or among the tasks without a due date."""

    VALUE = "value"
    NO_DUE_DATE = "no_due_date"


# 6 sorts x 2 orders x 64 filter sets x 3 starts x 2 scopes is 4608 shapes in theory; clients
# use a handful, and a shape that fell out of the cache is only built again.
@functools.lru_cache(maxsize=1024)
def _page_statement(
    sort: SortKey,
    descending: bool,
    filters: frozenset[str],
    boundary: _Boundary | None,
    include_deleted: bool,
) -> CompiledStatement:
    """A page's SELECT for one shape; binds `owner_id`, `limit`, the filters' values and, past
    the first page, `after_id` (and `after_value`)."""
    key = _sort_expression(sort, descending)
    # Tombstones are listed only in a delta sync that asks for them.
    scope = (_OWNED,) if include_deleted else _OWNED_LIVE
    conditions = [_FILTER_CONDITIONS[name] for name in sorted(filters)]
    if boundary is not None:
        conditions.append(_after(key, descending, boundary))
    return CompiledStatement(
        core_select(*_COLUMNS)
        .where(*scope, *conditions)
        .order_by(*_order_by(key, descending))
        .limit(bindparam("limit", type_=Integer))
    )


def _order_by(key: ColumnElement[Any], descending: bool) -> list[ColumnElement[Any]]:
    # Plain ASC/DESC (no NULLS clause): a backward scan of an ascending index serves DESC.
    if descending:
        return [key.desc(), _c.id.desc()]
    return [key.asc(), _c.id.asc()]


def _after(key: ColumnElement[Any], descending: bool, boundary: _Boundary) -> ColumnElement[bool]:
    if boundary is _Boundary.NO_DUE_DATE:
        boundary_value: ColumnElement[Any] = no_due_date_sorts_as(descending)
    else:
        boundary_value = bindparam("after_value", type_=key.type)
    row = tuple_(key, _c.id)
    start = tuple_(boundary_value, bindparam("after_id", type_=_c.id.type))
    return row < start if descending else row > start


def _required_versions(only_if: VersionCondition | None) -> frozenset[int] | None:
    """The versions a write must find (If-Match with tags), or None when any will do (no
    If-Match, or `*`: the task must exist, which every UPDATE here requires anyway)."""
    if only_if is None or only_if.any_version:
        return None
    return only_if.versions


def _changing(values: Mapping[str, Any], guarded: bool) -> Update:
    """An UPDATE of the owner's live task `task_id` (and, when guarded, at one of `versions`)
    that bumps `version` and `updated_at` and returns the row."""
    conditions = [*_OWNED_LIVE, _THE_TASK]
    if guarded:
        # One array parameter, so one statement whatever the number of versions.
        conditions.append(_c.version == any_(bindparam("versions", type_=ARRAY(Integer))))
    return (
        update(_tasks)
        .where(*conditions)
        .values(**values, version=_c.version + 1, updated_at=_now())
        .returning(*_COLUMNS)
    )


@functools.lru_cache(maxsize=256)  # 2^6 sets of writable fields x guarded or not
def _write_statement(fields: frozenset[str], guarded: bool) -> CompiledStatement:
    """The UPDATE writing `fields`, each from the bind parameter of its name."""
    values: dict[str, Any] = {name: bindparam(name, type_=_c[name].type) for name in fields}
    if "completed" in fields:
        # Kept when already complete, stamped now when it becomes complete, cleared when it is
        # reopened: one expression for either value, so one statement per set of fields.
        values["completed_at"] = case(
            (values["completed"], case((_c.completed, _c.completed_at), else_=_now())),
            else_=None,
        )
    return CompiledStatement(_changing(values, guarded))


# SET expressions read the row as it was before the UPDATE.
_FLIP = {
    guarded: CompiledStatement(
        _changing(
            {"completed": ~_c.completed, "completed_at": case((_c.completed, None), else_=_now())},
            guarded,
        )
    )
    for guarded in (False, True)
}
_TOMBSTONE = {
    guarded: CompiledStatement(_changing({"deleted_at": _now()}, guarded))
    for guarded in (False, True)
}
