"""Create the idempotency_keys table: the first response to each (owner, Idempotency-Key).

`POST /api/tasks` with an `Idempotency-Key` header stores its response here in the same
transaction as the task, so a retry with the same key and body replays it instead of creating a
second task. The primary key (user_id, key) makes keys unique per owner, since clients pick them.
`fingerprint` is the sha256 of the canonical request body, which tells a retry from a reuse of
the key for another request. `created_at` comes from the database clock (`now()`), the clock the
expiry check uses; the index on it serves the bounded purge of expired rows of every owner that
each new key triggers (there is no cron job).

Revision ID: 9c4f1a7e3d62
Revises: 5b2d8e91c4a7
Create Date: 2026-11-22 04:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "9c4f1a7e3d62"
down_revision: str | None = "5b2d8e91c4a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("response_headers", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_idempotency_keys_created_at"), "idempotency_keys", ["created_at"], unique=False
    )


def downgrade() -> None:
    # Only stored responses are lost: a retry after the downgrade creates a task again.
    op.drop_index(op.f("ix_idempotency_keys_created_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
