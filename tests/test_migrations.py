import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tasks_api.config import Settings
from tasks_api.database import create_engine
from tasks_api.migrations import downgrade_to_base, upgrade_to_head
from tasks_api.models import metadata
from tests.conftest import admin_execute, make_settings, with_database


@pytest.fixture
async def empty_database_settings(postgres_server_url: str) -> AsyncIterator[Settings]:
    """Settings for a brand-new, empty database on the test server, dropped afterwards."""
    name = f"tasks_api_migrations_{uuid.uuid4().hex[:12]}"
    await admin_execute(postgres_server_url, f'CREATE DATABASE "{name}"')
    yield make_settings(with_database(postgres_server_url, name))
    await admin_execute(postgres_server_url, f'DROP DATABASE "{name}" WITH (FORCE)')


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
    assert await _public_tables(settings) == {"alembic_version", "tasks"}

    await asyncio.to_thread(downgrade_to_base, settings)
    assert await _public_tables(settings) == {"alembic_version"}

    await asyncio.to_thread(upgrade_to_head, settings)
    assert await _public_tables(settings) == {"alembic_version", "tasks"}


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
