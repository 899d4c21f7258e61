"""The SQL a test's connection runs, in the order it runs it.

Two paths reach the database: SQLAlchemy's execution (its cursor events see each statement) and
compiled statements fetched on the asyncpg connection directly, which `savepoint_connections`
reports here because no SQLAlchemy event sees them.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

# Where on the connection's `info` a log is kept while one is recording.
_LOG = "tests.statement_log"

Logged = tuple[str, Sequence[Any]]


@contextmanager
def recording_statements(connection: AsyncConnection) -> Iterator[list[Logged]]:
    """(SQL, parameters) of every statement `connection` runs inside the block."""
    log: list[Logged] = []

    def on_cursor(*args: Any) -> None:
        # before_cursor_execute(conn, cursor, statement, parameters, context, executemany)
        log.append((args[2], args[3]))

    event.listen(connection.sync_engine, "before_cursor_execute", on_cursor)
    connection.info[_LOG] = log
    try:
        yield log
    finally:
        del connection.info[_LOG]
        event.remove(connection.sync_engine, "before_cursor_execute", on_cursor)


def log_fetch(connection: AsyncConnection, sql: str, arguments: Sequence[Any]) -> None:
    """Report a compiled statement run on `connection`'s asyncpg connection."""
    log: list[Logged] | None = connection.info.get(_LOG)
    if log is not None:
        log.append((sql, arguments))
