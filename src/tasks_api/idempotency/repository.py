"""`IdempotencyRepository`: the statements about idempotency keys, scoped to one owner.

The one exception is `purge_expired`, a bounded maintenance delete across owners (see there).
Expiry is judged by the database clock (`now()`), the same clock that stamps `created_at`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, literal_column
from sqlalchemy import select as core_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.idempotency.models import IdempotencyKey

# Expired rows removed per stored key, at most: a create stays fast whatever the backlog, and
# keys are stored far more often than a batch expires, so the backlog drains.
PURGE_BATCH = 100


@dataclass(frozen=True)
class StoredKey:
    row: IdempotencyKey
    # Older than the TTL by the database clock: to be treated as if it were not there.
    expired: bool


# Deleted rows are never read again in the request, so SQLAlchemy need not find them in the
# session: by default it would fetch the deleted keys back (RETURNING) to do so.
_NO_SYNC: dict[str, Any] = {"synchronize_session": False}


def _expired(ttl: timedelta) -> ColumnElement[bool]:
    return col(IdempotencyKey.created_at) < func.now() - ttl


class IdempotencyRepository:
    """Reads and writes the idempotency keys of one owner; another owner's key is no key."""

    def __init__(self, session: AsyncSession, owner_id: str) -> None:
        self._session = session
        self._owner_id = owner_id

    def _owned(self, key: str) -> list[ColumnElement[bool]]:
        return [col(IdempotencyKey.user_id) == self._owner_id, col(IdempotencyKey.key) == key]

    async def try_lock(self, key: str) -> bool:
        """Take the transaction's advisory lock on this owner's key, without waiting.

        Transaction-scoped, so the commit or rollback releases it and nothing outlives the
        transaction on the connection, which keeps it safe behind PgBouncer's transaction pooling.
        The key holds printable ASCII only, so the last control character in the hashed text
        marks where the owner's id ends: two different (owner, key) pairs never hash the same
        text. A 64-bit hash collision would only answer a spurious "in progress".
        """
        lock = func.pg_try_advisory_xact_lock(
            func.hashtextextended(f"{self._owner_id}\x01{key}", 0)
        )
        result = await self._session.exec(core_select(lock))  # type: ignore[call-overload]
        acquired: bool = result.scalar_one()
        return acquired

    async def find(self, key: str, ttl: timedelta) -> StoredKey | None:
        statement = select(IdempotencyKey, _expired(ttl)).where(*self._owned(key))
        found = (await self._session.exec(statement)).one_or_none()
        if found is None:
            return None
        row, expired = found
        return StoredKey(row, bool(expired))

    async def delete(self, key: str) -> None:
        await self._session.exec(
            delete(IdempotencyKey).where(*self._owned(key)).execution_options(**_NO_SYNC)
        )

    async def add(
        self,
        key: str,
        *,
        fingerprint: str,
        status_code: int,
        response_body: Mapping[str, Any],
        response_headers: Mapping[str, str],
    ) -> None:
        """Store the response; `created_at` is the database's `now()`. A second row for the same
        key is an IntegrityError, which the caller's advisory lock rules out."""
        await self._session.exec(
            insert(IdempotencyKey).values(
                user_id=self._owner_id,
                key=key,
                fingerprint=fingerprint,
                status_code=status_code,
                response_body=dict(response_body),
                response_headers=dict(response_headers),
            )
        )

    async def purge_expired(self, ttl: timedelta) -> None:
        """Remove at most `PURGE_BATCH` expired keys, of any owner.

        Maintenance, not a query on anyone's behalf: it returns nothing, and it is the one
        statement here not scoped to the owner. Oldest first, so the batch is a range of the
        created_at index however the rows lie in the table. SKIP LOCKED leaves rows that another
        transaction holds (its own expired key, or another purge's batch) to that transaction,
        so concurrent purges never wait for each other or deadlock over the same rows.
        """
        ctid: ColumnElement[Any] = literal_column("ctid")
        batch = (
            core_select(ctid)
            .select_from(IdempotencyKey)
            .where(_expired(ttl))
            .order_by(col(IdempotencyKey.created_at))
            .limit(PURGE_BATCH)
            .with_for_update(skip_locked=True)
        )
        await self._session.exec(
            delete(IdempotencyKey).where(ctid.in_(batch)).execution_options(**_NO_SYNC)
        )
