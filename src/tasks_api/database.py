"""Engine, pool checks and the per-request connection and transaction.

Nothing connects at import time: `main.create_app` builds the engine in its lifespan.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar

import asyncpg
import uuid6
from fastapi import Depends, Request
from sqlalchemy import Connection, Executable, MetaData, Result, event, exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_only, greenlet_spawn
from sqlmodel import SQLModel

from tasks_api.compiled_statements import CompiledStatement
from tasks_api.config import Settings
from tasks_api.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Constraint and index names come from here, so migrations stay reproducible. Only expression
# indexes, which the convention cannot name, are named in the model.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata

# Failures that mean "the database is not reachable right now", as opposed to a bad query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    exc.TimeoutError,  # the pool's bounded wait ran out
    exc.InterfaceError,
    exc.OperationalError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,  # a closed connection, as SQLAlchemy's InterfaceError above wraps it
    # asyncpg out of step with the server on this connection: seen behind PgBouncer while
    # PostgreSQL restarted, on pooled connections whose last statement had succeeded. The
    # connection is dropped (`_leaves_connection_unusable`), and a retry gets another.
    asyncpg.InternalClientError,
    asyncpg.TooManyConnectionsError,
)

# SQLSTATEs that mean "not now" whatever the statement: connection exceptions (class 08), the
# server shutting down or starting up (57P01-57P03), too many connections (53300), a statement
# cancelled by a timeout (57014). SQLAlchemy reports some of them as a plain DBAPIError.
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "57014")


def is_database_unavailable(error: BaseException) -> bool:
    """True for failures that a retry after a pause may cure, as opposed to a bad statement."""
    if isinstance(error, CONNECTION_ERRORS):
        return True
    cause: BaseException | None = error
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        cause = error.orig  # asyncpg's own error, which `fetch` sees unwrapped
        if isinstance(cause, CONNECTION_ERRORS):
            return True
    sqlstate = getattr(cause, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def connect_args(settings: Settings) -> dict[str, Any]:
    target = settings.database_target
    args: dict[str, Any] = {
        "timeout": settings.db_connect_timeout_seconds,
        # Enforced by asyncpg on the client, which cancels the query server-side when it expires.
        # A `statement_timeout` startup parameter would do the same, but Neon's pooler rejects
        # startup parameters.
        "command_timeout": settings.db_statement_timeout_seconds,
    }
    ssl_setting = target.ssl_setting()
    if ssl_setting is not None:
        args["ssl"] = ssl_setting
    if settings.uses_pgbouncer:
        # PgBouncer in transaction mode hands each transaction a different server connection, so a
        # statement prepared on one is unknown (or already exists) on the next. Turn both caches off
        # and give each prepared statement a unique name.
        # https://docs.sqlalchemy.org/en/20/dialects/postgresql.html#prepared-statement-name-with-pgbouncer
        args["statement_cache_size"] = 0
        args["prepared_statement_cache_size"] = 0
        args["prepared_statement_name_func"] = lambda: f"__asyncpg_{uuid6.uuid7()}__"
    return args


def create_engine(settings: Settings, **options: Any) -> AsyncEngine:
    """The engine and its pool; its connections open transactions as usual (migrations, scripts,
    tests). The app's engine comes from `create_request_engine`. `options`: more of
    `create_async_engine`'s."""
    engine = create_async_engine(
        settings.database_target.url,
        connect_args=connect_args(settings),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_pre_ping=settings.db_pool_pre_ping,
        **options,
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed_connection)
    return engine


def _replace_closed_connection(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """Hand out no connection the server has already closed, without a round trip to ask.

    A server that restarts, a pooler that drops idle clients, or Neon suspending its compute all
    close the socket, and asyncpg notices that as soon as the event loop reads the EOF, while the
    connection sits in the pool. Raising DisconnectionError at checkout makes the pool discard it
    and connect afresh (SQLAlchemy's documented "pessimistic" handling).

    This replaces `pool_pre_ping` (DB_POOL_PRE_PING, off by default), whose ping costs three
    round trips with asyncpg (BEGIN, an empty statement, ROLLBACK) before every request's first
    statement: three of the six a GET made. What only a ping
    would catch is a peer that vanished without closing the socket, and a ping would hang on
    that as long as a statement does (DB_CONNECT_TIMEOUT_SECONDS, DB_STATEMENT_TIMEOUT_SECONDS).
    """
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


# A context manager that hands out a pooled connection and gives it back on exit.
OpenConnection = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
# Runs one statement on a pooled connection of its own and returns its result, read in full.
RunStatement = Callable[[Executable, Mapping[str, Any] | None], Awaitable[Result[Any]]]
# Runs SQL (asyncpg's, `$1` parameters) with its arguments on a pooled connection of its own and
# returns asyncpg's records.
FetchRecords = Callable[[str, Sequence[Any]], Awaitable[list[asyncpg.Record]]]
# A block whose statements land together or not at all (`RequestDatabase.atomic`).
Atomic = Callable[[], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Connections:
    """How requests get their connections. Tests substitute savepoints on their own connection.

    `run`: one statement on a connection of its own, in autocommit: no BEGIN and no COMMIT
    around it, two round trips fewer. One statement is atomic on its own; PostgreSQL runs it in a
    transaction of its own. `fetch`: the same for a compiled statement's SQL, which runs on the
    pooled asyncpg connection directly (`compiled_statements`). Behind PgBouncer in transaction
    mode each statement gets a BEGIN and COMMIT after all: there asyncpg's prepare and execute of
    one statement must share a server connection, which only a transaction guarantees (the
    PgBouncer suite fails without it).
    `transaction`: a connection in one transaction, committed when the block exits cleanly and
    rolled back when it raises.
    """

    run: RunStatement
    fetch: FetchRecords
    transaction: OpenConnection

    @classmethod
    def _for_engine(
        cls, engine: AsyncEngine, settings: Settings, *, autocommit: bool
    ) -> "Connections":
        """`autocommit`: whether `engine`'s own isolation level is AUTOCOMMIT."""
        queue = _FairQueue(
            settings.db_pool_size + settings.db_max_overflow, settings.db_pool_timeout_seconds
        )
        open_for_statement: Callable[[], AbstractContextManager[Connection]] = (
            engine.sync_engine.begin
        )
        open_transaction = engine.begin
        if autocommit:
            open_for_statement = engine.sync_engine.connect
            # A copy of the engine sharing its pool, whose checkout leaves autocommit for the
            # block (asyncpg: no round trip) and whose checkin returns to it. PostgreSQL's
            # default level, named because the engine's own is autocommit.
            open_transaction = engine.execution_options(isolation_level="READ COMMITTED").begin

        def run_sync(statement: Executable, parameters: Mapping[str, Any] | None) -> Result[Any]:
            with open_for_statement() as connection:
                return connection.execute(statement, parameters)

        fetch_on = _fetch if autocommit else _fetch_in_transaction

        def fetch_sync(sql: str, arguments: Sequence[Any]) -> list[asyncpg.Record]:
            # The pool's checkout and checkin as for `run` (the closed-connection check, the
            # overflow, the reset, which finds no transaction open); in between, asyncpg alone.
            connection = engine.sync_engine.raw_connection()
            try:
                return await_only(fetch_on(connection.driver_connection, sql, arguments))
            except BaseException as error:
                if _leaves_connection_unusable(error):
                    # What SQLAlchemy's execution does on a disconnect: close the connection and
                    # keep it out of the pool, here for anything but an error the server answered
                    # with, since asyncpg may be mid-exchange (a timeout's cancel behind
                    # PgBouncer left one that refused the next statement).
                    connection.invalidate(error if isinstance(error, Exception) else None)
                raise
            finally:
                connection.close()

        async def run(statement: Executable, parameters: Mapping[str, Any] | None) -> Result[Any]:
            return await queue.in_one_pass(run_sync, statement, parameters)

        async def fetch(sql: str, arguments: Sequence[Any]) -> list[asyncpg.Record]:
            return await queue.in_one_pass(fetch_sync, sql, arguments)

        return cls(run=run, fetch=fetch, transaction=queue.in_turn(open_transaction))


def _leaves_connection_unusable(error: BaseException) -> bool:
    """Whether a connection that raised `error` must not serve another statement: the server's
    own answer to a statement (a constraint, a bad value) leaves it ready for the next, anything
    else (a timeout, a cancellation, a broken socket, a shutdown) may not."""
    return not isinstance(error, asyncpg.PostgresError) or is_database_unavailable(error)


async def _fetch(connection: asyncpg.Connection, sql: str, arguments: Sequence[Any]) -> list[Any]:
    records: list[Any] = await connection.fetch(sql, *arguments)
    return records


async def _fetch_in_transaction(
    connection: asyncpg.Connection, sql: str, arguments: Sequence[Any]
) -> list[Any]:
    """Behind PgBouncer: asyncpg, with its statement cache off there, prepares and runs an
    unnamed statement in two exchanges, which must reach the same server connection."""
    async with connection.transaction():
        records: list[Any] = await connection.fetch(sql, *arguments)
    return records


def create_request_engine(settings: Settings) -> tuple[AsyncEngine, Connections]:
    """The app's engine and the connections its requests take from it, built together because
    the connections rely on the engine's level.

    Not behind PgBouncer (see `Connections`), the level is AUTOCOMMIT: the engine's own rather
    than an option set at each checkout, because setting it on the way out of the pool and back
    on the way in cost about 80 us per statement in a micro-timing of the GET's (most of it
    SQLAlchemy's reset on checkin).
    """
    if settings.uses_pgbouncer:
        engine = create_engine(settings)
        return engine, Connections._for_engine(engine, settings, autocommit=False)
    engine = create_engine(settings, isolation_level="AUTOCOMMIT")
    return engine, Connections._for_engine(engine, settings, autocommit=True)


class _FairQueue:
    """First come, first served for the pool's connections.

    SQLAlchemy's async pool hands a connection that is given back to whoever asks next, even
    while others have been waiting for one, and a waiter that lost that race goes to the back of
    the queue again (asyncio.Queue). Under load some requests waited many times the median: in
    quick benchmark runs just before and after this queue, get_task's p99 went from 7 to 1.4
    times its p50. asyncio.Semaphore serves its waiters in order and lets no newcomer
    pass them, so requests queue here, and each finds a connection free in the pool when its turn
    comes. The wait is bounded by DB_POOL_TIMEOUT_SECONDS, as the pool's own would be (then 503).
    """

    def __init__(self, size: int, timeout: float) -> None:
        self._turns = asyncio.Semaphore(size)
        self._timeout = timeout

    async def take_turn(self) -> None:
        if not self._turns.locked():
            await self._turns.acquire()  # a connection is free: no wait, so no timer to set
            return
        async with asyncio.timeout(self._timeout):
            await self._turns.acquire()

    def end_turn(self) -> None:
        self._turns.release()

    async def in_one_pass(self, work: Callable[..., _T], *args: Any) -> _T:
        """In turn, `work`: synchronous SQLAlchemy (checkout, statement, checkin) in one pass
        through SQLAlchemy's greenlet bridge, where its AsyncConnection switches for each of
        them (plus a task to shield the close): about 50 us less per statement in a
        micro-timing. `greenlet_spawn` is what SQLAlchemy's own asyncio extension is built on,
        but not documented API: pyproject.toml keeps SQLAlchemy below 2.2, and the tests that
        run the app with its lifespan (PgBouncer, outages, many users) go through here."""
        await self.take_turn()
        try:
            result: _T = await greenlet_spawn(work, *args)
            return result
        finally:
            self.end_turn()

    def in_turn(self, open_connection: OpenConnection) -> OpenConnection:
        @asynccontextmanager
        async def opened() -> AsyncIterator[AsyncConnection]:
            await self.take_turn()
            try:
                async with open_connection() as connection:
                    yield connection
            finally:
                self.end_turn()

        return opened


class Statements(Protocol):
    """What a repository that builds its statements per call runs them on (the idempotency
    records'): `RequestDatabase` in the app, or a plain `AsyncConnection` (tests, scripts).
    `TaskRepository` takes a `RequestDatabase`, for its compiled statements (`fetch`)."""

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None, /
    ) -> Result[Any]: ...


class RequestDatabase:
    """The database as one request's repositories and services see it.

    A statement takes a pooled connection, runs on its own (autocommit: it commits when it
    completes) and gives the connection straight back. Statements that must land together or not
    at all run inside `atomic()`, on one connection in one transaction. The services say which
    those are: an idempotent create (key lock, lookup, insert, stored response) and a delete (the
    tombstone and the purge). Everything else is one statement per write, and reads at READ
    COMMITTED take a snapshot per statement inside a transaction block or outside it alike.

    Why not one connection and one transaction for the whole request: a BEGIN and a COMMIT are
    two round trips of their own, and a worker interleaves dozens of requests on one event loop,
    so a connection held from the first dependency to the last line of the handler waits on
    every other request's Python work and the pool runs dry long before the database is busy.
    """

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self._transaction: AsyncConnection | None = None

    async def execute(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None, /
    ) -> Result[Any]:
        try:
            if self._transaction is not None:
                return await self._transaction.execute(statement, parameters)
            # The result is buffered (asyncpg reads every row), so it outlives the connection.
            return await self._connections.run(statement, parameters)
        except Exception as error:
            if is_database_unavailable(error):
                raise _unavailable(error) from error
            raise

    async def fetch(
        self, statement: CompiledStatement, parameters: Mapping[str, Any], /
    ) -> Sequence[Any]:
        """The rows of a compiled statement: named tuples, or SQLAlchemy's rows inside
        `atomic()`, which has SQLAlchemy run it in the block's transaction. Either reads the
        same by position and by attribute."""
        try:
            if self._transaction is not None:
                return (await self._transaction.execute(statement.statement, parameters)).all()
            arguments = statement.arguments(parameters)
            return statement.rows(await self._connections.fetch(statement.sql, arguments))
        except Exception as error:
            if is_database_unavailable(error):
                raise _unavailable(error) from error
            raise

    @asynccontextmanager
    async def atomic(self) -> AsyncIterator[None]:
        """Run the block's statements in one transaction: committed when the block ends, rolled
        back if it raises. A block inside another joins it."""
        if self._transaction is not None:
            yield
            return
        try:
            async with self._connections.transaction() as connection:
                self._transaction = connection
                try:
                    yield
                finally:
                    self._transaction = None
        except Exception as error:
            # Connecting, BEGIN or COMMIT; the block's own statements were seen by `execute`.
            if is_database_unavailable(error):
                raise _unavailable(error) from error
            raise


def _unavailable(error: Exception) -> DatabaseUnavailableError:
    """A database that cannot be reached, whichever statement found out: the 503 problem, which
    the app's handlers answer inside the middleware (so it keeps its request id and CORS
    headers)."""
    logger.warning("database unavailable: %s", type(error).__name__)
    return DatabaseUnavailableError(
        "The database is not reachable right now. Please retry shortly."
    )


async def get_database(request: Request) -> RequestDatabase:
    """The request's `RequestDatabase`.

    SQLAlchemy Core, not an ORM session: the repositories write their own statements and read
    rows, so an identity map, unit of work and instance state would only add cost to every
    request (they showed all over a profile of the session-based version). A plain function, not
    a generator with the 503 translation around the request: FastAPI runs a generator dependency
    through an exit stack, a cost every task request paid (about 40 us in a micro-timing, commit
    d468817); nothing is left to clean up, since each statement gives its connection back.
    """
    return RequestDatabase(request.app.state.connections)


DatabaseDep = Annotated[RequestDatabase, Depends(get_database)]
