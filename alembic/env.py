"""Alembic environment, async. The URL comes from Settings (or from the caller's config)."""

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tasks_api.config import Settings, get_settings
from tasks_api.database import create_engine
from tasks_api.migrations import MIGRATION_LOCK_KEY
from tasks_api.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _settings() -> Settings:
    settings: Settings = config.attributes.get("settings") or get_settings()
    if settings.database_url is None:
        raise SystemExit(
            "DATABASE_URL is not set. Set it, or run `uv run tasks-api migrate`, "
            "which uses the embedded development database."
        )
    return settings


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
        on_version_apply=_record_applied,
    )


def _record_applied(*, step: Any, **_: Any) -> None:
    # Read back by migrations.upgrade_to_head, so `migrate` can say what it did.
    applied = config.attributes.get("applied_revisions")
    if applied is not None and step.is_upgrade:
        applied.extend(step.up_revision_ids)


def run_migrations_offline() -> None:
    _configure(url=_settings().database_target.url.render_as_string(hide_password=False))
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        # Before Alembic reads the current revision: concurrent runs queue here, and each later
        # one finds the work done (see tasks_api/migrations.py).
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine(_settings())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
