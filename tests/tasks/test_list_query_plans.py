"""Every list query shape is an index range scan in the requested order: no sort of the owner's
tasks, however many there are, on the real planner with enough rows to matter."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from tasks_api.tasks.repository import Keyset, SortKey, TaskFilter, TaskRepository
from tests.conftest import database_on
from tests.statement_log import Logged, recording_statements

OWNER = "user-7"
SHAPES = [(key, descending) for key in SortKey for descending in (False, True)]


@pytest.fixture
async def many_tasks(connection: AsyncConnection) -> None:
    """100 000 tasks of 50 owners (2 000 each), a quarter without a due date, then ANALYZE."""
    await connection.execute(
        text(
            """
            INSERT INTO tasks (id, user_id, title, completed, priority, due_date, position,
                               version, created_at, updated_at)
            SELECT gen_random_uuid(), 'user-' || (n % 50), 'Task ' || md5(n::text), false,
                   1 + n % 3,
                   CASE WHEN n % 4 = 0 THEN NULL ELSE now() + n * interval '1 minute' END,
                   n % 100, 1, now() - n * interval '1 second', now() - n * interval '1 second'
            FROM generate_series(1, 100000) AS n
            """
        )
    )
    await connection.execute(text("ANALYZE tasks"))


@pytest.fixture
def captured(connection: AsyncConnection) -> Iterator[list[Logged]]:
    with recording_statements(connection) as log:
        yield log


async def _plan(connection: AsyncConnection, statement: str, parameters: Any) -> dict[str, Any]:
    raw = await connection.get_raw_connection()
    rows = await raw.driver_connection.fetch(f"EXPLAIN (FORMAT JSON) {statement}", *parameters)  # type: ignore[union-attr]
    document = rows[0][0]  # SQLAlchemy's asyncpg codecs may already have decoded the JSON
    plan: dict[str, Any] = (json.loads(document) if isinstance(document, str) else document)[0][
        "Plan"
    ]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _check_plan(nodes: list[dict[str, Any]], sort: SortKey, descending: bool, deep: bool) -> None:
    kinds = [node["Node Type"] for node in nodes]
    assert "Sort" not in kinds, kinds
    assert "Incremental Sort" not in kinds, kinds
    scans = [node for node in nodes if node["Node Type"] == "Index Scan"]
    assert len(scans) == 1, kinds
    scan = scans[0]
    assert scan["Index Name"].startswith(f"ix_tasks_user_id_{sort.value}")
    assert scan["Scan Direction"] == ("Backward" if descending else "Forward")
    if deep:
        # The keyset position is part of the index range, not a filter applied row by row.
        assert "ROW(" in scan["Index Cond"]
    if sort is SortKey.UPDATED_AT:
        # Its index also holds tombstones (for delta sync): they, and only they, are filtered.
        assert scan.get("Filter", "(deleted_at IS NULL)") == "(deleted_at IS NULL)"
    else:
        # The other list indexes hold live tasks only: nothing is filtered row by row.
        assert "Filter" not in scan


@pytest.mark.usefixtures("many_tasks")
async def test_every_list_shape_is_an_index_scan_without_sort_first_page_and_deep(
    connection: AsyncConnection, captured: list[Logged]
) -> None:
    repository = TaskRepository(database_on(connection), OWNER)
    for sort, descending in SHAPES:
        captured.clear()
        first_page = await repository.find_page(TaskFilter(), sort, descending, 51)
        middle = first_page[-1]
        after = Keyset(getattr(middle, sort.value), middle.id)
        await repository.find_page(TaskFilter(), sort, descending, 51, after)
        selects = [entry for entry in captured if entry[0].startswith("SELECT")]
        assert len(selects) == 2

        for (statement, parameters), deep in zip(selects, (False, True), strict=True):
            nodes = list(_nodes(await _plan(connection, statement, parameters)))
            try:
                _check_plan(nodes, sort, descending, deep)
            except AssertionError as error:
                shape = f"sort={sort.value} descending={descending} deep={deep}"
                raise AssertionError(f"{shape}: {error}") from None
