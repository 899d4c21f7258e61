"""Run Alembic programmatically (from `dev`, `migrate` and the tests) against given Settings."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from tasks_api.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(settings: Settings) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["settings"] = settings
    config.attributes["configure_logger"] = False
    return config


def upgrade_to_head(settings: Settings) -> None:
    """Blocking (Alembic's async env runs its own event loop): call it off any running loop."""
    command.upgrade(alembic_config(settings), "head")


def downgrade_to_base(settings: Settings) -> None:
    command.downgrade(alembic_config(settings), "base")
