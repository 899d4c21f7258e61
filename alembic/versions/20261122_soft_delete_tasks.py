"""Soft delete: a deleted task stays as a tombstone (deleted_at) until its retention runs out.

Offline clients learn about deletions from delta sync (`GET /api/tasks?updated_since=...&
include_deleted=true`), so DELETE marks the row instead of removing it. Every other query excludes
tombstones in the repository.

- The list indexes become partial (`WHERE deleted_at IS NULL`): list queries say the same, so the
  planner keeps using them with no filter step, and a page never steps over tombstones.
- Except (user_id, updated_at, id), which stays whole: delta sync with tombstones reads live and
  deleted rows in that order. Lists by updated_at filter out the few tombstones (they are purged
  after their retention).
- A partial index over tombstones alone serves the bounded purge of expired ones.

The indexes are rebuilt in the migration's transaction (a lock on the table while it runs): fine
for this service's first deploys; a large live table would want CREATE INDEX CONCURRENTLY.

Revision ID: 5b2d8e91c4a7
Revises: 0ef135686f46
Create Date: 2026-11-22 03:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b2d8e91c4a7"
down_revision: str | None = "0ef135686f46"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The list indexes of the first revision that become partial: name -> columns.
LIST_INDEXES: dict[str, list[str | sa.TextClause]] = {
    "ix_tasks_user_id_created_at_id": ["user_id", "created_at", "id"],
    "ix_tasks_user_id_title_id": ["user_id", "title", "id"],
    "ix_tasks_user_id_priority_id": ["user_id", "priority", "id"],
    "ix_tasks_user_id_position_id": ["user_id", "position", "id"],
    "ix_tasks_user_id_due_date_asc_id": [
        "user_id",
        sa.text("COALESCE(due_date, 'infinity'::timestamptz)"),
        "id",
    ],
    "ix_tasks_user_id_due_date_desc_id": [
        "user_id",
        sa.text("COALESCE(due_date, '-infinity'::timestamptz)"),
        "id",
    ],
}


def upgrade() -> None:
    op.add_column("tasks", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    for name, columns in LIST_INDEXES.items():
        op.drop_index(name, table_name="tasks")
        op.create_index(name, "tasks", columns, postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_index(
        "ix_tasks_deleted_at",
        "tasks",
        ["deleted_at"],
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )


def downgrade() -> None:
    # Tombstones are deleted tasks: without the column they would come back to life.
    op.execute("DELETE FROM tasks WHERE deleted_at IS NOT NULL")
    op.drop_index("ix_tasks_deleted_at", table_name="tasks")
    for name, columns in LIST_INDEXES.items():
        op.drop_index(name, table_name="tasks")
        op.create_index(name, "tasks", columns)
    op.drop_column("tasks", "deleted_at")
