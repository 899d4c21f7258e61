"""Every table module, imported once, so Alembic and the tests see the complete metadata."""

from tasks_api.database import metadata
from tasks_api.idempotency.models import IdempotencyKey
from tasks_api.tasks.models import Task

__all__ = ["IdempotencyKey", "Task", "metadata"]
