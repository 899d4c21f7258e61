"""`IdempotencyRepository`: the statements about idempotency keys, scoped to one owner.

The one exception is `purge_expired`, a bounded maintenance delete across owners (see there).
Expiry is judged by the database clock (`now()`), the same clock that stamps `created_at`.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, literal_column, select

from tasks_api.database import Statements
from tasks_api.idempotency.models import idempotency_keys_table

_keys = idempotency_keys_table
_c = _keys.c
# Expired rows removed per stored key, at most: a create stays fast whatever the backlog, and
# keys are stored far more often than a batch expires, so the backlog drains.
PURGE_BATCH = 100


@dataclass(frozen=True)
class StoredKey:
    fingerprint: str
    status_code: int
    response_body: dict[str, Any]
    response_headers: dict[str, str]
    # Older than the TTL by the database clock: to be treated as if it were not there.
    expired: bool


def _expired(ttl: timedelta) -> ColumnElement[bool]:
    return _c.created_at < func.now() - ttl


class IdempotencyRepository:
    """Reads and writes the idempotency keys of one owner; another owner's key is no key."""

    def __init__(self, database: Statements, owner_id: str) -> None:
        self._database = database
        self._owner_id = owner_id

    def _owned(self, key: str) -> list[ColumnElement[bool]]:
        return [_c.user_id == self._owner_id, _c.key == key]

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
        acquired: bool = (await self._database.execute(select(lock))).scalar_one()
        return acquired

    async def find(self, key: str, ttl: timedelta) -> StoredKey | None:
        statement = select(
            _c.fingerprint,
            _c.status_code,
            _c.response_body,
            _c.response_headers,
            _expired(ttl).label("expired"),
        ).where(*self._owned(key))
        found = (await self._database.execute(statement)).one_or_none()
        if found is None:
            return None
        return StoredKey(
            found.fingerprint,
            found.status_code,
            found.response_body,
            found.response_headers,
            bool(found.expired),
        )

    async def delete(self, key: str) -> None:
        await self._database.execute(delete(_keys).where(*self._owned(key)))

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
        await self._database.execute(
            insert(_keys).values(
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
            select(ctid)
            .select_from(_keys)
            .where(_expired(ttl))
            .order_by(_c.created_at)
            .limit(PURGE_BATCH)
            .with_for_update(skip_locked=True)
        )
        await self._database.execute(delete(_keys).where(ctid.in_(batch)))
