"""Tasks as JSON bytes, written straight from the repository's rows with orjson.

`TaskResponse` and `TaskTombstone` (schemas.py) are the contract: OpenAPI documents them and the
routes declare them. The rows come from our own table, whose columns and constraints already hold
every value to those types, so validating each row again only to write it out bought nothing:
on a list page that, and pydantic's writing of 50 models, was the largest single cost a profile
showed (bench/RESULTS.md). orjson writes the same bytes pydantic would (UUIDs and enums as strings,
UTC times ending in `Z`); tests/tasks/test_representation.py holds the two byte-equal for rows of
every shape.
"""

from collections.abc import Sequence
from typing import Any

import orjson

from tasks_api.tasks.models import TaskRecord
from tasks_api.tasks.schemas import TaskResponse, TaskTombstone

# The fields in the models' order, which is the order clients see.
_TASK_FIELDS = tuple(TaskResponse.model_fields)
_TOMBSTONE_FIELDS = tuple(TaskTombstone.model_fields)
# A UTC time as `...Z`, as pydantic writes it (asyncpg returns timestamptz in UTC).
_OPTIONS = orjson.OPT_UTC_Z


def task_json(task: TaskRecord) -> bytes:
    """One live task, as `TaskResponse`."""
    return orjson.dumps(_entry(dict(zip(task._fields, task, strict=True))), option=_OPTIONS)


def task_document(task: TaskRecord) -> dict[str, Any]:
    """One live task as JSON-ready data (what an idempotent create stores): `task_json`, parsed."""
    document: dict[str, Any] = orjson.loads(task_json(task))
    return document


def page_json(tasks: Sequence[TaskRecord]) -> bytes:
    """A list page: live tasks as `TaskResponse`, deleted ones (delta sync) as `TaskTombstone`."""
    if not tasks:
        return b"[]"
    names = tasks[0]._fields  # the same for every row of a result; asking per row costs
    entries = [_entry(dict(zip(names, task, strict=True))) for task in tasks]
    return orjson.dumps(entries, option=_OPTIONS)


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    # asyncpg's own UUID class, which orjson does not know, becomes its canonical text.
    row["id"] = str(row["id"])
    fields = _TOMBSTONE_FIELDS if row["deleted"] else _TASK_FIELDS
    return {name: row[name] for name in fields}
