"""The `tasks` table."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

import uuid6
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Index,
    SmallInteger,
    Table,
    Text,
    TypeDecorator,
    literal_column,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, SQLModel, func


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3}
_BY_RANK = {rank: priority for priority, rank in _RANKS.items()}


class PriorityRank(TypeDecorator[Priority]):
    """Stores a priority as its rank (1-3), so ORDER BY and keyset comparisons use a plain index."""

    impl = SmallInteger
    cache_ok = True

    def process_bind_param(self, value: Priority | None, dialect: Dialect) -> int | None:
        return None if value is None else Priority(value).rank

    def process_result_value(self, value: Any, dialect: Dialect) -> Priority | None:
        return None if value is None else _BY_RANK[value]


# Where tasks without a due date go: after every date going up, after every date going down.
_NO_DUE_DATE = {False: "'infinity'::timestamptz", True: "'-infinity'::timestamptz"}


# The condition of the list indexes: live tasks, the only ones lists show.
_LIVE = text("deleted_at IS NULL")


def _timestamptz() -> Any:
    return Column(DateTime(timezone=True), nullable=False)


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(
            "(completed AND completed_at IS NOT NULL) OR (NOT completed AND completed_at IS NULL)",
            name="completed_at_matches_completed",
        ),
        CheckConstraint("priority BETWEEN 1 AND 3", name="priority_rank"),
        # Every list query is "this owner's live tasks, ordered by <key>, then id". One index per
        # sort key, led by user_id and over live rows only, serves both the WHERE and the ORDER BY
        # (scanned backwards for desc), with no tombstones to step over.
        Index(None, "user_id", "created_at", "id", postgresql_where=_LIVE),
        # Except updated_at's: delta sync with tombstones (include_deleted=true) reads live and
        # deleted rows in this order, so it covers both, and lists filter the few tombstones out.
        Index(None, "user_id", "updated_at", "id"),
        Index(None, "user_id", "title", "id", postgresql_where=_LIVE),
        Index(None, "user_id", "priority", "id", postgresql_where=_LIVE),
        Index(None, "user_id", "position", "id", postgresql_where=_LIVE),
        # Tasks without a due date sort last both ways: by COALESCE(due_date, +/-infinity), an
        # expression that is never NULL, so keyset comparisons stay index range conditions.
        # Expression indexes are named here: the naming convention has no column names for them.
        Index(
            "ix_tasks_user_id_due_date_asc_id",
            "user_id",
            text(f"COALESCE(due_date, {_NO_DUE_DATE[False]})"),
            "id",
            postgresql_where=_LIVE,
        ),
        Index(
            "ix_tasks_user_id_due_date_desc_id",
            "user_id",
            text(f"COALESCE(due_date, {_NO_DUE_DATE[True]})"),
            "id",
            postgresql_where=_LIVE,
        ),
        # Tombstones only (a small set): the bounded purge of expired ones finds them here.
        Index(None, "deleted_at", postgresql_where=text("deleted_at IS NOT NULL")),
    )

    id: uuid.UUID = Field(default_factory=uuid6.uuid7, primary_key=True)
    user_id: str = Field(sa_type=Text, nullable=False)
    title: str = Field(max_length=500, nullable=False)
    description: str | None = Field(default=None, sa_type=Text, nullable=True)
    completed: bool = Field(
        default=False, nullable=False, sa_column_kwargs={"server_default": text("false")}
    )
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    priority: Priority = Field(
        default=Priority.MEDIUM,
        sa_type=PriorityRank,
        nullable=False,
        sa_column_kwargs={"server_default": text("2")},
    )
    due_date: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    position: int = Field(default=0, nullable=False, sa_column_kwargs={"server_default": text("0")})
    version: int = Field(default=1, nullable=False, sa_column_kwargs={"server_default": text("1")})
    created_at: datetime = Field(sa_column=_timestamptz())
    updated_at: datetime = Field(sa_column=_timestamptz())
    # Set when deleted: the row stays as a tombstone for delta sync, hidden from everything else.
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


# The table itself, for statements: built from its columns rather than the class's ORM attributes,
# a statement compiles without the ORM's compile step, a cost paid on every execution.
tasks_table: Table = Task.__table__  # type: ignore[attr-defined]


class TaskRecord(Protocol):
    """A row of `tasks` as the repository returns it (a compiled statement's named tuple, or a
    SQLAlchemy Core row inside an atomic block): the columns above and `deleted`, read-only, by
    name. The service and the router read tasks only through this."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def completed(self) -> bool: ...
    @property
    def completed_at(self) -> datetime | None: ...
    @property
    def priority(self) -> Priority: ...
    @property
    def due_date(self) -> datetime | None: ...
    @property
    def position(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
    @property
    def deleted_at(self) -> datetime | None: ...
    @property
    def deleted(self) -> bool: ...  # deleted_at IS NOT NULL, computed by the statement
    # A Row is also a tuple of its values, in the order of its column names.
    @property
    def _fields(self) -> tuple[str, ...]: ...
    def __getitem__(self, position: int) -> Any: ...


def no_due_date_sorts_as(descending: bool) -> ColumnElement[datetime]:
    return literal_column(_NO_DUE_DATE[descending], DateTime(timezone=True))


def due_date_sort_key(descending: bool) -> ColumnElement[datetime]:
    """The due-date sort expression, the same SQL as its index, so the planner uses it."""
    return func.coalesce(tasks_table.c.due_date, no_due_date_sorts_as(descending))
