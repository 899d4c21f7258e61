"""The JSON the routes write from rows (representation.py) is, byte for byte, what pydantic writes
from the contract's models (TaskResponse, TaskTombstone), for rows of every shape.

The rows are real: inserted into PostgreSQL and read back through the repository, so they carry
the types asyncpg and SQLAlchemy hand the routes (asyncpg's UUID class, timestamptz in UTC, the
priority enum). Hypothesis picks the values: any storable text, times across the years Python
holds, with and without microseconds, every priority, int4's extremes.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import uuid6
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from tasks_api.tasks.models import Priority, TaskRecord, tasks_table
from tasks_api.tasks.repository import SortKey, TaskFilter, TaskRepository
from tasks_api.tasks.representation import page_json, task_json
from tasks_api.tasks.schemas import INT32_MAX, INT32_MIN, TaskChange, TaskResponse
from tests.conftest import database_on

OWNER = "representation-owner"
_CHANGES = TypeAdapter(list[TaskChange])

# Storable text: no NUL and no lone surrogates; quotes, backslashes, control characters, HTML and
# characters outside the BMP are where two JSON writers could differ.
_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)
# Times PostgreSQL and Python both hold, in UTC: timestamptz comes back in UTC whatever zone it
# was written in, so the zone written is not what varies. The first and last microsecond Python
# holds are left out: asyncpg writes them as -infinity and infinity.
_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
_whole_seconds = _times.map(lambda moment: moment.replace(microsecond=0))
_any_time = st.one_of(_times, _whole_seconds)


@st.composite
def _task_values(draw: st.DrawFn) -> dict[str, Any]:
    completed = draw(st.booleans())
    created = draw(_any_time)
    return {
        "id": uuid6.uuid7(),
        "user_id": OWNER,
        "title": draw(_text.filter(str.strip)),
        "description": draw(st.one_of(st.none(), _text)),
        "completed": completed,
        "completed_at": draw(_any_time) if completed else None,
        "priority": draw(st.sampled_from(Priority)),
        "due_date": draw(st.one_of(st.none(), _any_time)),
        "position": draw(st.integers(INT32_MIN, INT32_MAX)),
        "version": draw(st.integers(1, INT32_MAX)),
        "created_at": created,
        "updated_at": created + timedelta(microseconds=draw(st.integers(0, 10**9))),
        "deleted_at": draw(st.one_of(st.none(), _any_time)),
    }


async def _stored_rows(
    connection: AsyncConnection, values: list[dict[str, Any]]
) -> list[TaskRecord]:
    """The rows as the routes get them: a delta-sync page, tombstones included, oldest first."""
    await connection.execute(insert(tasks_table), values)
    page = await TaskRepository(database_on(connection), OWNER).find_page(
        TaskFilter(), SortKey.UPDATED_AT, descending=False, limit=len(values), include_deleted=True
    )
    assert len(page) == len(values)
    return list(page)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=st.lists(_task_values(), min_size=1, max_size=4))
async def test_rows_are_written_as_the_models_write_them(
    connection: AsyncConnection, values: list[dict[str, Any]]
) -> None:
    savepoint = await connection.begin_nested()
    try:
        rows = await _stored_rows(connection, values)
        assert page_json(rows) == _CHANGES.dump_json(_CHANGES.validate_python(rows))
        for row in rows:
            if not row.deleted:
                assert task_json(row) == TaskResponse.model_validate(row).model_dump_json().encode()
    finally:
        await savepoint.rollback()


async def test_an_empty_page_is_an_empty_array(connection: AsyncConnection) -> None:
    assert page_json([]) == b"[]"
    rows = await TaskRepository(database_on(connection), OWNER).find_page(
        TaskFilter(), SortKey.CREATED_AT, descending=True, limit=10
    )
    assert page_json(rows) == b"[]"


async def test_a_tombstone_carries_only_its_id_the_flag_and_the_time(
    connection: AsyncConnection,
) -> None:
    deleted_at = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
    task_id = uuid.UUID("01890a5d-ac96-774b-bcce-b302099a8057")
    (row,) = await _stored_rows(
        connection,
        [
            {
                "id": task_id,
                "user_id": OWNER,
                "title": "Gone",
                "created_at": deleted_at,
                "updated_at": deleted_at,
                "deleted_at": deleted_at,
            }
        ],
    )
    assert page_json([row]) == (
        b'[{"id":"01890a5d-ac96-774b-bcce-b302099a8057","deleted":true,'
        b'"updated_at":"2026-03-04T05:06:07.890000Z"}]'
    )
