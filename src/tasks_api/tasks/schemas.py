"""The API contract for tasks: request bodies, responses and list query parameters.

None of these inherit from the table class, so a column change never changes the API by accident.
Request models ignore fields they do not declare: the server-owned ones (`id`, `user_id`,
timestamps, `version`) may be sent by existing frontends and never take effect.
"""

import re
import uuid
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)

from tasks_api.tasks.models import Priority
from tasks_api.text import storage_problem

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _storable_text(value: str) -> str:
    # PostgreSQL would reject these in the database; refusing them here makes them a 422.
    problem = storage_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _date_as_midnight_utc(value: Any) -> Any:
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        # pydantic would read a number (or, in a query string, digits) as a Unix timestamp; the
        # contract says RFC 3339.
        raise ValueError("must be an RFC 3339 date-time or a YYYY-MM-DD date string")
    if isinstance(value, str) and _PLAIN_DATE.fullmatch(value):
        return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(
            "must include a time zone offset (RFC 3339), or be a plain YYYY-MM-DD date"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


# Lengths are checked after trimming, and counted in characters (code points), as PostgreSQL does.
TaskTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    AfterValidator(_storable_text),
    Field(
        description="1-500 characters; surrounding white space is trimmed.", examples=["Buy milk"]
    ),
]
TaskDescription = Annotated[str, StringConstraints(max_length=5000), AfterValidator(_storable_text)]


def _json_number(value: Any) -> Any:
    # JSON Schema's integer includes 3.0, but a `true` or "12" is a client bug, not a position.
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


TaskPosition = Annotated[
    int,
    Field(ge=INT32_MIN, le=INT32_MAX, description="Manual display order."),
    BeforeValidator(_json_number),
]
TaskCompleted = Annotated[bool, Strict()]
DueDate = Annotated[
    datetime,
    BeforeValidator(_date_as_midnight_utc),
    AfterValidator(_aware_utc),
    Field(description="RFC 3339 date-time, or YYYY-MM-DD taken as midnight UTC."),
]


def _finite(value: datetime) -> datetime:
    # asyncpg writes the first and last microsecond Python holds (0001-01-01T00:00:00Z and
    # 9999-12-31T23:59:59.999999Z) as PostgreSQL's -infinity and infinity, and reads them back
    # without a time zone: such a due date would come back without its offset, sort among the
    # tasks without one and break the next page's cursor. A filter may use them: there they mean
    # what the infinities mean.
    if value.replace(tzinfo=None) in {datetime.min, datetime.max}:
        raise ValueError("is out of range")
    return value


# A due date to store, not just to compare with.
StoredDueDate = Annotated[DueDate, AfterValidator(_finite)]
SearchText = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_storable_text)
]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ResponseModel(BaseModel):
    # A response always carries every field, defaults included: the schema says they're required,
    # so generated clients don't type them as optional.
    model_config = ConfigDict(
        from_attributes=True, json_schema_serialization_defaults_required=True
    )


class TaskCreate(RequestModel):
    title: TaskTitle
    description: TaskDescription | None = None
    priority: Priority = Priority.MEDIUM
    due_date: StoredDueDate | None = None
    completed: TaskCompleted = False
    position: TaskPosition = 0


class TaskUpdate(TaskCreate):
    """PUT: replaces every writable field; an omitted optional field returns to its default."""


_NOT_NULLABLE = ("title", "priority", "completed", "position")


def _offer_no_null(schema: dict[str, Any]) -> None:
    """In the contract, these fields may be left out but never be null: drop the `null` branch
    and the `default: null` that `X | None = None` would document."""
    for name in _NOT_NULLABLE:
        field = schema["properties"][name]
        branches = [branch for branch in field.pop("anyOf") if branch != {"type": "null"}]
        field.pop("default", None)
        field.update(branches[0])


class TaskPatch(RequestModel):
    """PATCH: only the fields sent change; `null` clears `description` or `due_date`."""

    model_config = ConfigDict(json_schema_extra=lambda schema: _offer_no_null(schema))

    title: TaskTitle | None = None
    description: TaskDescription | None = None
    priority: Priority | None = None
    due_date: StoredDueDate | None = None
    completed: TaskCompleted | None = None
    position: TaskPosition | None = None

    @field_validator(*_NOT_NULLABLE, mode="before")
    @classmethod
    def _refuse_null(cls, value: Any) -> Any:
        # Runs only for fields that were sent: a field left out stays unset, not null.
        if value is None:
            raise ValueError("may not be null")
        return value


class CompletionChange(RequestModel):
    """Body of the completion toggle: omit it (or `completed`) to flip the current state."""

    completed: TaskCompleted | None = None


class TaskResponse(ResponseModel):
    id: uuid.UUID
    user_id: str
    title: str
    description: str | None
    completed: bool
    completed_at: datetime | None
    priority: Priority
    due_date: datetime | None
    position: int
    version: int
    created_at: datetime
    updated_at: datetime
    # Always false here; true marks a TaskTombstone in a delta sync. Lets clients tell them apart.
    deleted: Literal[False] = False


class TaskTombstone(ResponseModel):
    """A deleted task, as delta sync reports it (`include_deleted=true`)."""

    id: uuid.UUID
    deleted: Literal[True] = True
    updated_at: datetime = Field(description="When it was deleted.")


# One entry of a delta sync: a live task or a tombstone, told apart by `deleted` (a boolean
# literal in each). Not an OpenAPI `discriminator`: its tags are strings, and generated clients
# (openapi-typescript) would type `deleted` as "true"/"false" instead of true/false.
TaskChange = TaskResponse | TaskTombstone


TaskStatus = Literal["all", "pending", "completed"]
TaskSort = Literal[
    "created_at", "created", "updated_at", "title", "due_date", "priority", "position"
]
SortOrder = Literal["asc", "desc"]


class TaskListParams(RequestModel):
    """Query parameters of `GET /api/tasks`."""

    status: TaskStatus = Field(default="all", description="Which tasks to return by completion.")
    completed: bool | None = Field(default=None, description="Same as status=completed|pending.")
    priority: Priority | None = None
    due_before: DueDate | None = Field(
        default=None, description="Only tasks due before this instant."
    )
    due_after: DueDate | None = Field(
        default=None, description="Only tasks due after this instant."
    )
    q: SearchText | None = Field(
        default=None, description="Case-insensitive substring of title or description (literal)."
    )
    updated_since: DueDate | None = Field(
        default=None,
        description=(
            "Delta sync: only tasks changed after this instant (send the previous response's "
            "`Sync-Token`; `1970-01-01T00:00:00Z` the first time). Sorts by updated_at, oldest "
            "first, unless `sort`/`order` say otherwise."
        ),
    )
    include_deleted: bool = Field(
        default=False,
        description="With `updated_since`: also tasks deleted since then, as tombstones.",
    )
    sort: TaskSort | None = Field(
        default=None, description="Default: created_at; updated_at with `updated_since`."
    )
    order: SortOrder | None = Field(
        default=None,
        description=(
            "Default: desc for created_at/updated_at, asc for the others; asc with `updated_since`."
        ),
    )
    limit: int = Field(default=100, ge=1, le=500)
    cursor: str | None = Field(
        # Room for a cursor that ends on a 500-character title of 4-byte characters.
        default=None,
        max_length=4096,
        description="Opaque; from the `Link: rel=next` header.",
    )

    @model_validator(mode="after")
    def _status_agrees_with_completed(self) -> Self:
        contradicts = self.completed != (self.status == "completed")
        if self.completed is not None and self.status != "all" and contradicts:
            raise ValueError("status and completed contradict each other")
        return self

    @model_validator(mode="after")
    def _deleted_only_in_a_sync(self) -> Self:
        if self.include_deleted and self.updated_since is None:
            raise ValueError("include_deleted needs updated_since (tombstones are for delta sync)")
        return self

    @property
    def completed_filter(self) -> bool | None:
        if self.completed is not None:
            return self.completed
        return None if self.status == "all" else self.status == "completed"

    @property
    def sort_key(self) -> str:
        if self.sort is None:
            return "updated_at" if self.updated_since is not None else "created_at"
        return "created_at" if self.sort == "created" else self.sort

    @property
    def descending(self) -> bool:
        if self.order is not None:
            return self.order == "desc"
        if self.updated_since is not None:
            return False  # a sync reads changes oldest first
        return self.sort_key in {"created_at", "updated_at"}
