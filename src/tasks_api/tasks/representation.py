"""Tasks as JSON bytes, written straight from the repository's rows with orjson.

`TaskResponse` and `TaskTombstone` (schemas.py) are the contract: OpenAPI documents them and the
routes declare them. The rows come from our own table, whose columns and constraints already hold
every value to those types, so validating each row again only to write it out bought nothing:
on a list page that, and pydantic's writing of 50 models, was the largest single cost a profile
showed (commit d468817; bench/RESULTS.md has the before and after). orjson writes the same bytes
pydantic would (UUIDs and enums as strings, UTC times ending in `Z`);
tests/tasks/test_representation.py holds the two byte-equal for rows of every shape.
"""

import functools
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import orjson

from tasks_api.tasks.models import TaskRecord
from tasks_api.tasks.schemas import TaskResponse, TaskTombstone

# The fields in the models' order, which is the order clients see.
_TASK_FIELDS = tuple(TaskResponse.model_fields)
_TOMBSTONE_FIELDS = tuple(TaskTombstone.model_fields)
# A UTC time as `...Z`, as pydantic writes it (asyncpg returns timestamptz in UTC).
_OPTIONS = orjson.OPT_UTC_Z


def _text(value: object) -> str:
    # orjson's fallback for a type it does not know. Of a row's values only asyncpg's own UUID
    # class gets here, and becomes its canonical text; text, numbers, booleans, times and the
    # priority enum orjson writes itself, as pydantic does.
    return str(value)


@functools.cache  # one entry per column list (the repository selects one)
def _entry_maker(columns: tuple[str, ...]) -> Callable[[TaskRecord], dict[str, Any]]:
    """A row's JSON object: its values picked by position, under the model's field names."""
    live_values = itemgetter(*(columns.index(name) for name in _TASK_FIELDS))
    tombstone_values = itemgetter(*(columns.index(name) for name in _TOMBSTONE_FIELDS))
    deleted = columns.index("deleted")

    def entry(row: TaskRecord) -> dict[str, Any]:
        if row[deleted]:
            return dict(zip(_TOMBSTONE_FIELDS, tombstone_values(row), strict=True))
        return dict(zip(_TASK_FIELDS, live_values(row), strict=True))

    return entry


def task_json(task: TaskRecord) -> bytes:
    """One live task, as `TaskResponse`."""
    return orjson.dumps(_entry_maker(task._fields)(task), default=_text, option=_OPTIONS)


def task_document(task: TaskRecord) -> dict[str, Any]:
    """One live task as JSON-ready data: `task_json`, parsed. An idempotent create stores its
    response body in a JSONB column, which takes data rather than bytes."""
    document: dict[str, Any] = orjson.loads(task_json(task))
    return document


def page_json(tasks: Sequence[TaskRecord]) -> bytes:
    """A list page: live tasks as `TaskResponse`, deleted ones (delta sync) as `TaskTombstone`."""
    if not tasks:
        return b"[]"
    entry = _entry_maker(tasks[0]._fields)  # the same for every row of a result
    return orjson.dumps([entry(task) for task in tasks], default=_text, option=_OPTIONS)
