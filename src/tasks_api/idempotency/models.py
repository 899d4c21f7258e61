"""The `idempotency_keys` table: the stored first response to each (owner, Idempotency-Key)."""

from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, SmallInteger, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# The longest key accepted (and stored): the header is refused with a 400 beyond it.
KEY_MAX_LENGTH = 255


class IdempotencyKey(SQLModel, table=True):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        # The bounded purge finds expired rows of every owner through this index.
        Index(None, "created_at"),
    )

    # Keys are the client's, so they are unique per owner only: the primary key has both.
    user_id: str = Field(sa_type=Text, primary_key=True)
    key: str = Field(max_length=KEY_MAX_LENGTH, primary_key=True)
    # sha256 (hex) of the canonical JSON of the validated request body.
    fingerprint: str = Field(sa_type=Text, nullable=False)
    status_code: int = Field(sa_type=SmallInteger, nullable=False)
    response_body: dict[str, Any] = Field(sa_type=JSONB, nullable=False)
    # The headers a replay repeats (Location, ETag).
    response_headers: dict[str, str] = Field(sa_type=JSONB, nullable=False)
    # The database clock, like the `now()` the expiry check compares it with: one clock for every
    # process and replica.
    created_at: datetime = Field(
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )


# The table itself, for statements (see tasks.models.tasks_table on why not the ORM attributes).
idempotency_keys_table: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
