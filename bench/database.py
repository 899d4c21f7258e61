"""The benchmark's database: a PostgreSQL server, a fresh database built by the migrations, and
the seeded tasks.

Seeding is one set-based INSERT over generate_series. The users' rows are interleaved in the
heap (row g belongs to the big user when g is a multiple of 10, ...) and created_at grows with g,
as if they had been written over time side by side; ids are UUID7 derived from created_at, as the
service makes them. The secondary indexes are dropped before the load and recreated from their
own definitions (pg_indexes) after it: building each once is far faster than maintaining all of
them row by row, and the result is the same DDL the migrations created. VACUUM ANALYZE then gives
the planner statistics and the visibility map a settled table would have.
"""

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pydantic import SecretStr
from sqlalchemy import make_url

from tasks_api import embedded_postgres
from tasks_api.config import Environment, Settings
from tasks_api.migrations import upgrade_to_head

SMALL_USER = "bench-small"
LARGE_USER = "bench-large"
# Creates go to a user of their own, so the read scenarios' users keep their sizes.
WRITER_USER = "bench-writer"
OTHER_USERS_PREFIX = "bench-other-"
# About this many tasks per other user.
TASKS_PER_OTHER_USER = 100
# Ids of the big user that get, patch and toggle pick from at random.
MAX_SAMPLE_IDS = 10_000


@dataclass(frozen=True)
class DataSize:
    name: str
    total_tasks: int
    large_user_tasks: int
    small_user_tasks: int = 200

    @property
    def large_stride(self) -> int:
        return self.total_tasks // self.large_user_tasks

    @property
    def small_stride(self) -> int:
        return self.total_tasks // self.small_user_tasks


FULL = DataSize("full", total_tasks=1_000_000, large_user_tasks=100_000)
SMALL = DataSize("small", total_tasks=20_000, large_user_tasks=2_000)


@contextmanager
def postgres_server(configured_url: str | None) -> Iterator[str]:
    """A server URL: BENCH_DATABASE_URL's when given, else an embedded server for this run."""
    if configured_url:
        yield configured_url
        return
    # Its own temporary folder, as in the tests: the server may run as another user than us.
    data_root = Path(tempfile.mkdtemp(prefix="tasks-api-bench-pg-"))
    server = embedded_postgres.start(data_root / "data", keep_data=False)
    try:
        yield embedded_postgres.database_url(server)
    finally:
        server.cleanup()
        shutil.rmtree(data_root, ignore_errors=True)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped at the end; yields its URL."""
    name = f"tasks_api_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin_execute(server_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


def migrate(database_url: str) -> None:
    """`alembic upgrade head`, as `tasks-api migrate` runs it."""
    settings = Settings(
        _env_file=None,
        environment=Environment.TEST,
        database_url=SecretStr(database_url),
        # Migrations verify no token; the setting is only required outside development.
        better_auth_secret=SecretStr("unused-by-migrations"),
    )
    upgrade_to_head(settings)


def seed(database_url: str, size: DataSize) -> list[str]:
    """Load the tasks, recreate the indexes, VACUUM ANALYZE; return sample ids of the big user."""
    return asyncio.run(_seed(database_url, size))


def postgres_version(database_url: str) -> str:
    async def fetch() -> str:
        connection = await asyncpg.connect(_libpq_url(database_url))
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    return asyncio.run(fetch())


# Columns per row g. Priorities, completion and due dates vary independently of the owner (the
# strides 10 and 5000 share no factor with 3, 7 or 11), so each user gets every combination.
_INSERT = """
INSERT INTO tasks (id, user_id, title, description, completed, completed_at, priority, due_date,
                   position, version, created_at, updated_at)
SELECT
    -- UUID7: 48 bits of milliseconds since the epoch, then random bits, version nibble 7.
    encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM created_at) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid,
    user_id, 'Task number ' || g || ' of the benchmark',
    CASE WHEN g % 3 = 0 THEN 'Some details about what needs doing, and why, for task ' || g END,
    completed, CASE WHEN completed THEN created_at + interval '1 hour' END,
    1 + (g % 11) % 3,
    CASE WHEN g % 4 = 0 THEN NULL
         ELSE timestamptz '2026-01-01 09:00+00' + (g % 500) * interval '1 day' END,
    g, CASE WHEN completed THEN 2 ELSE 1 END,
    created_at, CASE WHEN completed THEN created_at + interval '1 hour' ELSE created_at END
FROM (
    SELECT g,
           CASE WHEN g % $2::integer = 0 THEN $4::text
                WHEN g % $3::integer = 1 THEN $5::text
                ELSE $6::text || (g % $7::integer) END AS user_id,
           g % 7 < 2 AS completed,
           timestamptz '2025-01-01 00:00+00' + g * interval '5 seconds' AS created_at
    FROM generate_series(1, $1::integer) AS g
) AS rows
"""


async def _seed(database_url: str, size: DataSize) -> list[str]:
    other_users = max(1, size.total_tasks // TASKS_PER_OTHER_USER)
    connection = await asyncpg.connect(_libpq_url(database_url))
    try:
        # For the index builds after the load.
        await connection.execute("SET maintenance_work_mem = '256MB'")
        indexes = await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'tasks' AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint WHERE conrelid = 'tasks'::regclass)"
        )
        async with connection.transaction():
            for index in indexes:
                await connection.execute(f'DROP INDEX "{index["indexname"]}"')
            await connection.execute(
                _INSERT,
                size.total_tasks,
                size.large_stride,
                size.small_stride,
                LARGE_USER,
                SMALL_USER,
                OTHER_USERS_PREFIX,
                other_users,
            )
            for index in indexes:
                await connection.execute(index["indexdef"])
        await connection.execute("VACUUM (ANALYZE) tasks")
        counts = dict(
            await connection.fetch(
                "SELECT user_id, count(*) FROM tasks WHERE user_id IN ($1, $2) GROUP BY user_id",
                SMALL_USER,
                LARGE_USER,
            )
        )
        expected = {SMALL_USER: size.small_user_tasks, LARGE_USER: size.large_user_tasks}
        if counts != expected:
            raise RuntimeError(f"seeded {counts}, expected {expected}")
        rows = await connection.fetch(
            "SELECT id FROM tasks WHERE user_id = $1 ORDER BY random() LIMIT $2",
            LARGE_USER,
            MAX_SAMPLE_IDS,
        )
        return [str(row["id"]) for row in rows]
    finally:
        await connection.close()


async def _admin_execute(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(_libpq_url(server_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def configured_server_url() -> str | None:
    """BENCH_DATABASE_URL: a server whose role may CREATE DATABASE."""
    return os.environ.get("BENCH_DATABASE_URL") or None
