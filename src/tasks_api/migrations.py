"""Run Alembic programmatically (from `dev`, `migrate` and the tests) against given Settings.

Several replicas may run `tasks-api migrate` at the same moment on deploy. `alembic/env.py` takes
a transaction-level advisory lock before it reads the current revision, so one of them migrates
and the others wait, then find the database at head and do nothing. A transaction-level lock (not
a session-level one) is released by COMMIT or ROLLBACK, so it also holds through PgBouncer in
transaction mode, where a session-level lock could be left behind on a pooled server connection.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config

from tasks_api.config import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# pg_advisory_xact_lock key: any constant, as long as nothing else in the database uses it.
MIGRATION_LOCK_KEY = 0x7461736B73  # "tasks" in ASCII


def alembic_config(settings: Settings) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["settings"] = settings
    config.attributes["configure_logger"] = False
    config.attributes["applied_revisions"] = []
    return config


def upgrade_to_head(settings: Settings) -> list[str]:
    """Apply what is missing and return the revisions this call applied (empty: at head already).

    Blocking (Alembic's async env runs its own event loop): call it off any running loop.
    """
    config = alembic_config(settings)
    command.upgrade(config, "head")
    applied: list[str] = config.attributes["applied_revisions"]
    return applied


def downgrade_to_base(settings: Settings) -> None:
    command.downgrade(alembic_config(settings), "base")
