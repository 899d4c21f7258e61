"""Alembic environment, async. The URL comes from Settings (or from the caller's config)."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from tasks_api.config import Settings, get_settings
from tasks_api.database import create_engine
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
    )


def run_migrations_offline() -> None:
    _configure(url=_settings().database_target.url.render_as_string(hide_password=False))
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
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
