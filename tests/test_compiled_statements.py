"""Compiled statements (`compiled_statements.CompiledStatement`): the SQL SQLAlchemy's engine
would send, the parameters in its order and converted as its types convert them, rows converted
back, and the statements that cannot be run this way refused when they are built."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import Integer, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tasks_api.compiled_statements import CompiledStatement
from tasks_api.database import is_database_unavailable
from tasks_api.tasks import repository
from tasks_api.tasks.models import Priority, tasks_table

_c = tasks_table.c


def _every_task_statement() -> Iterator[CompiledStatement]:
    yield repository._GET_LIVE
    yield repository._INSERT
    yield from repository._FLIP.values()
    yield from repository._TOMBSTONE.values()
    for guarded in (False, True):
        yield repository._write_statement(frozenset({"title", "priority", "completed"}), guarded)
    for sort in repository.SortKey:
        for boundary in (None, *repository._Boundary):
            filters = frozenset({"completed", "priority", "pattern"})
            yield repository._page_statement(sort, True, filters, boundary, False)


async def test_the_sql_is_what_the_engines_own_dialect_writes(
    engine: AsyncEngine, connection: AsyncConnection
) -> None:
    # The engine's dialect has met the server (`connection` has connected), so anything that
    # depends on the server's version would show here.
    assert engine.dialect.server_version_info is not None
    for compiled in _every_task_statement():
        assert compiled.sql == str(compiled.statement.compile(dialect=engine.dialect))


async def test_parameters_are_ordered_and_converted_and_rows_converted_back(
    connection: AsyncConnection,
) -> None:
    statement = CompiledStatement(
        select(_c.priority, (_c.position + 1).label("next_position")).where(
            _c.user_id == bindparam("owner_id"), _c.priority == bindparam("priority")
        )
    )
    arguments = statement.arguments({"priority": Priority.HIGH, "owner_id": "someone"})
    # The constant 1 of `position + 1` is bound first, as the SQL reads; the priority as its rank.
    assert arguments == [1, "someone", 3]
    rows = statement.rows([(3, 8), (1, 1)])
    assert rows == [(Priority.HIGH, 8), (Priority.LOW, 1)]
    assert rows[0].priority is Priority.HIGH
    assert rows[0].next_position == 8
    assert rows[0]._fields == ("priority", "next_position")


async def test_a_row_reads_the_same_as_sqlalchemys(connection: AsyncConnection) -> None:
    task_id = uuid.uuid4()
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await connection.execute(
        insert(tasks_table).values(
            id=task_id,
            user_id="reader",
            title="Compared",
            priority=Priority.LOW,
            completed=True,
            completed_at=now,
            position=-4,
            version=7,
            created_at=now,
            updated_at=now,
        )
    )
    parameters = {"owner_id": "reader", "task_id": task_id}
    compiled = repository._GET_LIVE
    expected = (await connection.execute(compiled.statement, parameters)).one()
    raw = await connection.get_raw_connection()
    records = await raw.driver_connection.fetch(  # type: ignore[union-attr]
        compiled.sql, *compiled.arguments(parameters)
    )
    (row,) = compiled.rows(records)
    assert row._fields == expected._fields
    assert tuple(row) == tuple(expected)
    assert row.priority is Priority.LOW


def test_a_statement_that_needs_a_python_side_default_is_refused() -> None:
    # `version` has a Python-side default, which SQLAlchemy's execution would fill in.
    leaves_out_version = insert(tasks_table).values(
        id=bindparam("id"), user_id="someone", title="t", priority=2, position=0
    )
    with pytest.raises(TypeError, match="version"):
        CompiledStatement(leaves_out_version.returning(_c.id))


def test_an_expanding_in_list_is_refused() -> None:
    expanding = select(_c.id).where(_c.version.in_(bindparam("versions", expanding=True)))
    with pytest.raises(TypeError, match="ANY"):
        CompiledStatement(expanding)


def test_a_column_whose_conversion_needs_a_result_is_refused() -> None:
    # SQLAlchemy types integer division as Numeric, which asyncpg's dialect converts by the
    # result's type code: nothing to work out once, in advance.
    divided = select((_c.position / bindparam("by", type_=Integer)).label("share"))
    with pytest.raises(TypeError, match="'share'"):
        CompiledStatement(divided)


def test_a_missing_parameter_is_a_key_error() -> None:
    statement = CompiledStatement(select(_c.id).limit(bindparam("limit", type_=Integer)))
    with pytest.raises(KeyError):
        statement.arguments({})


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (asyncpg.AdminShutdownError("terminating connection"), True),  # 57P01
        (asyncpg.QueryCanceledError("canceling statement"), True),  # 57014
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), True),
        (asyncpg.InterfaceError("connection is closed"), True),
        (asyncpg.UniqueViolationError("duplicate key"), False),
        (asyncpg.InvalidTextRepresentationError("bad uuid"), False),
    ],
)
def test_asyncpgs_own_errors_are_judged_as_sqlalchemys_wrapped_ones_are(
    error: Exception, unavailable: bool
) -> None:
    assert is_database_unavailable(error) is unavailable
