"""Engine, sessions and the per-request transaction.

Nothing connects at import time: `main.create_app` builds the engine in its lifespan.
"""

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import asyncpg
import uuid6
from fastapi import Depends, Request
from sqlalchemy import MetaData, event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.config import Settings
from tasks_api.errors import DatabaseUnavailableError

logger = logging.getLogger(__name__)

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
    asyncpg.ConnectionDoesNotExistError,
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
    if isinstance(error, exc.DBAPIError):
        sqlstate = getattr(error.orig, "sqlstate", None)
        unavailable = isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
        return error.connection_invalidated or unavailable
    return False


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


def create_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_target.url,
        connect_args=connect_args(settings),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_recycle=settings.db_pool_recycle_seconds,
        pool_pre_ping=settings.db_pool_pre_ping,
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
    statement: measured in bench/RESULTS.md, it was a third of a GET's cost. What only a ping
    would catch is a peer that vanished without closing the socket, and a ping would hang on
    that as long as a statement does (DB_CONNECT_TIMEOUT_SECONDS, DB_STATEMENT_TIMEOUT_SECONDS).
    """
    if dbapi_connection.driver_connection.is_closed():
        raise exc.DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay readable after the commit without lazy I/O.
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction per request: commit on success, roll back on any error."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    try:
        async with sessionmaker() as session, session.begin():
            yield session
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        logger.warning("database unavailable: %s", type(error).__name__)
        raise DatabaseUnavailableError(
            "The database is not reachable right now. Please retry shortly."
        ) from error


# Function scope: the commit finishes before the response is sent, so a failed commit is an error
# response rather than a silent loss. Always use this alias (the scope is part of the cache key).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
