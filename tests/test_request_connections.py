"""The connections requests run their statements on (`database.Connections`), built as the app
builds them (`create_request_engine`): a single statement commits on its own, and an atomic
block is one transaction at READ COMMITTED that lands whole or not at all; a compiled statement
that fails other than by the server's answer does not leave its connection in the pool. The
PgBouncer leg of CI runs these through PgBouncer, where every statement gets a transaction of its
own instead of autocommit.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Float, Integer, Text, bindparam, cast, event, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tasks_api.compiled_statements import CompiledStatement
from tasks_api.config import Settings
from tasks_api.database import Connections, RequestDatabase, create_request_engine
from tasks_api.errors import DatabaseUnavailableError
from tasks_api.tasks.models import Priority
from tasks_api.tasks.repository import TaskRepository
from tests.conftest import raw_connection

_NEW_TASK: dict[str, Any] = {
    "title": "Written through the request connections",
    "description": None,
    "priority": Priority.MEDIUM,
    "due_date": None,
    "position": 0,
    "completed": False,
}


@pytest.fixture
async def request_engine(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, Connections]]:
    # One pooled connection, so that every statement of a test runs on the same one, and
    # statements time out quickly.
    settings = settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_statement_timeout_seconds": 0.3}
    )
    engine, connections = create_request_engine(settings)
    try:
        yield engine, connections
    finally:
        await engine.dispose()


@pytest.fixture
def database(request_engine: tuple[AsyncEngine, Connections]) -> RequestDatabase:
    return RequestDatabase(request_engine[1])


@pytest.fixture
def checked_out(request_engine: tuple[AsyncEngine, Connections]) -> list[object]:
    """The asyncpg connection of every checkout from the pool, in order (through PgBouncer, the
    server's backend process says nothing about which client connection was used)."""
    connections: list[object] = []

    def on_checkout(dbapi_connection: Any, *args: Any) -> None:
        connections.append(dbapi_connection.driver_connection)

    event.listen(request_engine[0].sync_engine.pool, "checkout", on_checkout)
    return connections


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[str]:
    """A fresh owner; what the test wrote for it is deleted afterwards (these writes commit)."""
    owner_id = f"connections-{uuid.uuid4().hex[:12]}"
    yield owner_id
    connection = await raw_connection(database_url)
    try:
        await connection.execute("DELETE FROM tasks WHERE user_id = $1", owner_id)
    finally:
        await connection.close()


async def _committed_tasks(database_url: str, owner_id: str) -> int:
    """What another session sees: only committed rows."""
    connection = await raw_connection(database_url)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM tasks WHERE user_id = $1", owner_id
        )
    finally:
        await connection.close()
    return count


async def test_a_single_statement_commits_on_its_own(
    database: RequestDatabase, owner: str, database_url: str
) -> None:
    task = await TaskRepository(database, owner).add(_NEW_TASK)

    assert task.user_id == owner
    assert await _committed_tasks(database_url, owner) == 1


async def test_an_atomic_block_is_one_read_committed_transaction(
    database: RequestDatabase, owner: str, database_url: str
) -> None:
    async with database.atomic():
        await TaskRepository(database, owner).add(_NEW_TASK)
        level = (await database.execute(text("SHOW transaction_isolation"))).scalar_one()
        seen_elsewhere = await _committed_tasks(database_url, owner)

    assert level == "read committed"
    assert seen_elsewhere == 0  # not before the block ends: one transaction
    assert await _committed_tasks(database_url, owner) == 1


async def test_an_atomic_block_that_raises_leaves_nothing(
    database: RequestDatabase, owner: str, database_url: str
) -> None:
    async def insert_then_fail() -> None:
        async with database.atomic():
            await TaskRepository(database, owner).add(_NEW_TASK)
            raise RuntimeError("after the insert")

    with pytest.raises(RuntimeError, match="after the insert"):
        await insert_then_fail()

    assert await _committed_tasks(database_url, owner) == 0
    # The pooled connection is back in autocommit afterwards: a single statement commits again.
    await TaskRepository(database, owner).add(_NEW_TASK)
    assert await _committed_tasks(database_url, owner) == 1


# A statement of a given length, and one that fails on the server.
_SLEEP = CompiledStatement(select(func.pg_sleep(bindparam("seconds", type_=Float)).label("slept")))
_NUMBER = CompiledStatement(select(cast(bindparam("text", type_=Text), Integer).label("number")))


async def test_an_error_the_server_answered_keeps_the_connection(
    database: RequestDatabase, checked_out: list[object]
) -> None:
    with pytest.raises(asyncpg.InvalidTextRepresentationError):
        await database.fetch(_NUMBER, {"text": "seven"})
    (row,) = await database.fetch(_NUMBER, {"text": "7"})

    assert row.number == 7
    first, second = checked_out
    assert second is first


async def test_a_statement_that_timed_out_does_not_leave_its_connection_in_the_pool(
    database: RequestDatabase, checked_out: list[object]
) -> None:
    with pytest.raises(DatabaseUnavailableError):
        await database.fetch(_SLEEP, {"seconds": 5})
    # The only pooled connection may be mid-cancel: a new one serves the next statement.
    (row,) = await database.fetch(_NUMBER, {"text": "7"})

    assert row.number == 7
    first, second = checked_out
    assert second is not first
