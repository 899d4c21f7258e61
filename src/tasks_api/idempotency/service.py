"""`IdempotencyService`: run an operation once per (owner, Idempotency-Key), replay it after.

Follows the IETF httpapi draft "The Idempotency-Key HTTP Header Field". With a key, everything
happens in one transaction (`atomic`), so the operation's writes and the stored response commit
together or not at all: a failed request leaves no key behind and the key can be used again.

The response is stored as data (status, JSON body, headers) and replayed as it was first sent,
even if the resource has changed or gone since. The service knows nothing of HTTP beyond that.
"""

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tasks_api.database import Atomic
from tasks_api.idempotency.exceptions import (
    IdempotencyKeyInProgressError,
    IdempotencyKeyReusedError,
)
from tasks_api.idempotency.repository import IdempotencyRepository

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredResponse:
    """A response as stored for a replay. `body` is JSON-ready (already in JSON mode)."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class IdempotentResult:
    response: StoredResponse
    # True when `response` is the stored answer to an earlier request with the same key.
    replayed: bool


def fingerprint(payload: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a validated request body.

    Canonical: sorted keys, no white space. Taken after validation, so bodies that differ only in
    white space, key order, fields the API ignores, defaults left out or sent, or text that
    validation trims, are the same request.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyService:
    def __init__(
        self, repository: IdempotencyRepository, *, atomic: Atomic, ttl: timedelta
    ) -> None:
        self._keys = repository
        self._atomic = atomic
        self._ttl = ttl

    async def run(
        self,
        key: str | None,
        payload: Mapping[str, Any],
        operation: Callable[[], Awaitable[StoredResponse]],
    ) -> IdempotentResult:
        """`operation`'s response, or the stored one when this key has been used with this body.
        Without a key, just `operation`'s response.

        Raises IdempotencyKeyInProgressError while another transaction holds the key, and
        IdempotencyKeyReusedError when the key was used with a different body.
        """
        if key is None:
            return IdempotentResult(await operation(), replayed=False)
        async with self._atomic():
            return await self._run_once(key, payload, operation)

    async def _run_once(
        self,
        key: str,
        payload: Mapping[str, Any],
        operation: Callable[[], Awaitable[StoredResponse]],
    ) -> IdempotentResult:
        # Never waits: a concurrent request with this key is answered at once rather than holding
        # a pooled connection while the first one runs.
        locked = await self._keys.try_lock(key)
        request_fingerprint = fingerprint(payload)
        stored = await self._keys.find(key, self._ttl)
        if stored is not None and not stored.expired:
            # A committed response never changes, so it is replayed with or without the lock:
            # retries that arrive together (all waiting the same Retry-After) all get it.
            if stored.fingerprint != request_fingerprint:
                logger.info("idempotency key reused with a different body")
                raise IdempotencyKeyReusedError()
            response = StoredResponse(
                stored.status_code, stored.response_body, stored.response_headers
            )
            return IdempotentResult(response, replayed=True)
        # Nothing to replay yet: only the lock's holder may run the operation and store the key.
        if not locked:
            logger.info("idempotency key in use by a concurrent request")
            raise IdempotencyKeyInProgressError()
        if stored is not None:
            # Expired: as if it had never been used.
            await self._keys.delete(key)

        response = await operation()
        await self._keys.add(
            key,
            fingerprint=request_fingerprint,
            status_code=response.status_code,
            response_body=response.body,
            response_headers=response.headers,
        )
        # No cron job: each stored key clears a bounded batch of expired ones.
        await self._keys.purge_expired(self._ttl)
        return IdempotentResult(response, replayed=False)
