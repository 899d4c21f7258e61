"""Create the tasks table.

Every list query is "one owner's tasks, filtered, ordered by a sort key then id, after a keyset
position". So each sort key gets a composite index (user_id, <key>, id): the equality on user_id and
the ORDER BY (forward, or a backward scan for descending) come straight from the index, the keyset
predicate `(key, id) > (:key, :id)` is a range on it, and LIMIT stops early. No sort of the owner's
whole set is needed, however many tasks they have.

- due_date sorts tasks without a date last in both directions, by an expression that is never
  NULL: COALESCE(due_date, 'infinity') ascending and COALESCE(due_date, '-infinity') descending.
  Each has an index, and the keyset predicate stays a single row comparison (an index range)
  instead of "(due_date, id) > (...) OR due_date IS NULL", which can only be a filter.
- Descending orders are plain DESC with no NULLS clause, so a backward scan serves them.
- priority is stored as a rank (1 low, 2 medium, 3 high), so sorting by it is an integer comparison.
- Filters (completed, priority, due range) are applied on top of the chosen index; the text search
  (`q`, ILIKE on title/description) scans within the owner's rows only.

Revision ID: 0ef135686f46
Revises:
Create Date: 2026-11-22 01:29:54.491922+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0ef135686f46"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("completed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "priority",
            sa.SmallInteger(),
            server_default=sa.text("2"),
            nullable=False,
        ),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("position", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(completed AND completed_at IS NOT NULL) OR (NOT completed AND completed_at IS NULL)",
            name=op.f("ck_tasks_completed_at_matches_completed"),
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 3", name=op.f("ck_tasks_priority_rank")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(
        op.f("ix_tasks_user_id_created_at_id"),
        "tasks",
        ["user_id", "created_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_tasks_user_id_due_date_asc_id",
        "tasks",
        ["user_id", sa.text("COALESCE(due_date, 'infinity'::timestamptz)"), "id"],
        unique=False,
    )
    op.create_index(
        "ix_tasks_user_id_due_date_desc_id",
        "tasks",
        ["user_id", sa.text("COALESCE(due_date, '-infinity'::timestamptz)"), "id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tasks_user_id_position_id"), "tasks", ["user_id", "position", "id"], unique=False
    )
    op.create_index(
        op.f("ix_tasks_user_id_priority_id"), "tasks", ["user_id", "priority", "id"], unique=False
    )
    op.create_index(
        op.f("ix_tasks_user_id_title_id"), "tasks", ["user_id", "title", "id"], unique=False
    )
    op.create_index(
        op.f("ix_tasks_user_id_updated_at_id"),
        "tasks",
        ["user_id", "updated_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tasks_user_id_updated_at_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_user_id_title_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_user_id_priority_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_user_id_position_id"), table_name="tasks")
    op.drop_index("ix_tasks_user_id_due_date_desc_id", table_name="tasks")
    op.drop_index("ix_tasks_user_id_due_date_asc_id", table_name="tasks")
    op.drop_index(op.f("ix_tasks_user_id_created_at_id"), table_name="tasks")
    op.drop_table("tasks")
