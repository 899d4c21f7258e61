import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tasks_api.config import Settings
from tasks_api.database import create_engine
from tasks_api.migrations import (
    MIGRATION_LOCK_KEY,
    alembic_config,
    downgrade_to_base,
    upgrade_to_head,
)
from tasks_api.models import metadata
from tests.commands import cli_environment
from tests.conftest import make_settings, raw_connection


@pytest.fixture
def empty_database_settings(empty_database_url: str) -> Settings:
    return make_settings(empty_database_url)


async def _public_tables(settings: Settings) -> set[str]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
                )
            )
            return {row.table_name for row in rows}
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_round_trips_on_a_fresh_database(
    empty_database_settings: Settings,
) -> None:
    settings = empty_database_settings
    assert await _public_tables(settings) == set()

    # Alembic's async env runs its own event loop, so it must run off this one.
    await asyncio.to_thread(upgrade_to_head, settings)
    assert await _public_tables(settings) == {"alembic_version", "idempotency_keys", "tasks"}

    await asyncio.to_thread(downgrade_to_base, settings)
    assert await _public_tables(settings) == {"alembic_version"}

    await asyncio.to_thread(upgrade_to_head, settings)
    assert await _public_tables(settings) == {"alembic_version", "idempotency_keys", "tasks"}


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_models_match_the_head_revision(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)

    assert differences == [], "the models and the migrations differ: autogenerate a revision"


async def test_every_index_of_the_models_exists_after_migrating(engine: AsyncEngine) -> None:
    # Autogenerate skips expression indexes (due_date DESC NULLS LAST), so compare names too.
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")
        )
        migrated = {row.indexname for row in rows}

    modelled = {index.name for index in metadata.tables["tasks"].indexes}
    assert migrated == modelled | {"pk_tasks"}
    assert "ix_tasks_user_id_due_date_desc_id" in migrated


async def _waiting_for_the_migration_lock(connection: asyncpg.Connection) -> int:
    count: int = await connection.fetchval(
        # A bigint advisory key is stored as its high and low 32 bits.
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND (classid::bigint << 32 | objid::bigint) = $1",
        MIGRATION_LOCK_KEY,
    )
    return count


async def test_concurrent_migrate_commands_apply_each_migration_exactly_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Replicas all running `tasks-api migrate` on deploy: one migrates, the others find it done."""
    replicas = 4
    environment = cli_environment(DATABASE_URL=empty_database_url, DATA_DIR=str(tmp_path))
    holder = await raw_connection(empty_database_url)
    try:
        # Hold the lock in a transaction while every replica starts, so all of them queue on it
        # and race the moment it is released (a transaction: PgBouncer keeps it on one server).
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        processes = [
            await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "tasks_api.cli", "migrate"),
                cwd=tmp_path,
                env=environment,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(replicas)
        ]
        deadline = time.monotonic() + 60
        while await _waiting_for_the_migration_lock(holder) < replicas:
            assert time.monotonic() < deadline, "the replicas never queued on the lock"
            assert all(process.returncode is None for process in processes), "a replica exited"
            await asyncio.sleep(0.05)
        await transaction.commit()
        async with asyncio.timeout(60):
            results = [await process.communicate() for process in processes]
    finally:
        await holder.close()

    assert [process.returncode for process in processes] == [0] * replicas, results
    outputs = [stdout.decode() for stdout, _ in results]
    assert all("database is at the latest migration" in stdout for stdout in outputs)
    revisions = [script.revision for script in _scripts().walk_revisions()]
    migrated = [stdout for stdout in outputs if "applied" in stdout]
    assert len(migrated) == 1, outputs
    assert f"applied {len(revisions)} migration(s)" in migrated[0]
    settings = make_settings(empty_database_url)
    assert await _public_tables(settings) == {"alembic_version", "idempotency_keys", "tasks"}
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            versions = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert [row.version_num for row in versions] == [_scripts().get_current_head()]
    finally:
        await engine.dispose()


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(make_settings("postgresql://unused/db")))
