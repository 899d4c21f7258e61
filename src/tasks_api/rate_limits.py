"""Per-user and per-address rate limits, counted with the `limits` library.

Why `limits`: it implements the counting strategies over interchangeable storages (process memory
for a single process, Redis so that every replica counts the same requests, with atomic Lua
scripts), and it is maintained. A hand-written counter is where races hide.

Strategy: moving window (`MovingWindowRateLimiter`). A request counts for exactly one window
after it was made, so there is no burst of twice the limit around a fixed window's boundary.
Refused requests are not recorded, so retrying too early never pushes the next slot further away.
It keeps one entry per request in the window, which is fine at per-minute limits.

Storage failures fail open: when Redis is down or slow, requests are served without limits and
without RateLimit-* headers. The limiter protects the service from abuse; an outage of it must not
become an outage of the API. The warning is logged at most once a minute, not once per request.
A refused connection fails at once; a Redis that hangs costs a request up to three attempts of
REDIS_TIMEOUT_SECONDS (coredis retries connection errors and timeouts twice). After a failure the
storage is left alone for STORAGE_RETRY_SECONDS, so a hung Redis slows one request in that time,
not every one.

Response headers (RateLimit-Limit, -Remaining, -Reset, -Policy, after
draft-ietf-httpapi-ratelimit-headers) come from a pure ASGI middleware reading the status that the
auth dependency leaves in the request scope: FastAPI does not merge a dependency's `Response`
headers into a route that returns its own response (DELETE's 204), nor into an error response.
The one response without them is an unhandled 500, which Starlette sends from outside every
middleware.
"""

import logging
import math
import time
from dataclasses import dataclass
from typing import Self

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage, Storage
from limits.aio.storage.redis.coredis import CoredisBridge
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tasks_api.config import Settings, rate_limit_storage_uri

logger = logging.getLogger(__name__)

RATE_LIMIT_HEADERS = [
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
]
# The key under which the auth dependency leaves a `RateLimitStatus` in the ASGI scope's state.
STATE_KEY = "rate_limit"
# Redis is on the path of every request: a slow one is given up on quickly (then: fail open).
REDIS_TIMEOUT_SECONDS = 0.5
STORAGE_WARNING_INTERVAL_SECONDS = 60.0
STORAGE_RETRY_SECONDS = 5.0
# StorageError wraps the client's own errors; socket and timeout errors are listed in case one
# escapes unwrapped. Anything else is a bug and surfaces as a 500.
_STORAGE_ERRORS = (StorageError, OSError, TimeoutError)


@dataclass(frozen=True)
class RateLimitStatus:
    """One bucket after a request was counted (or refused) against it."""

    allowed: bool
    limit: int
    remaining: int
    # Whole seconds until the oldest request in the window leaves it and frees a slot (>= 1).
    reset_seconds: int
    window_seconds: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }


class RateLimiter:
    """The two buckets: one per verified user, one per client address for rejected tokens."""

    def __init__(
        self, storage: Storage, *, per_user: RateLimitItem, per_address: RateLimitItem
    ) -> None:
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._per_user = per_user
        self._per_address = per_address
        self._warned_at: float | None = None
        self._failing = False
        self._retry_at = 0.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        uri = rate_limit_storage_uri(settings.rate_limit_storage_url)
        options: dict[str, float] = {}
        if uri.startswith("async+redis"):
            options = {
                "connect_timeout": REDIS_TIMEOUT_SECONDS,
                "stream_timeout": REDIS_TIMEOUT_SECONDS,
            }
        # Nothing connects here: the Redis client opens its connections on first use.
        storage = storage_from_string(uri, wrap_exceptions=True, **options)
        if not isinstance(storage, Storage):
            raise TypeError(f"{uri.split(':', 1)[0]} is not an async storage")
        return cls(
            storage,
            per_user=parse(settings.rate_limit_per_user),
            per_address=parse(settings.rate_limit_per_address),
        )

    async def hit_user(self, user_id: str) -> RateLimitStatus | None:
        """Count a request with a verified token. None: the storage failed, do not limit."""
        return await self._hit(self._per_user, "user", user_id)

    async def hit_address(self, address: str) -> RateLimitStatus | None:
        """Count a request without a valid token. None: the storage failed, do not limit."""
        return await self._hit(self._per_address, "address", address)

    async def close(self) -> None:
        """Close the Redis connections; the memory storage holds nothing to close."""
        if isinstance(self._storage, RedisStorage) and isinstance(
            self._storage.bridge, CoredisBridge
        ):
            self._storage.bridge.get_connection().connection_pool.disconnect()

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> RateLimitStatus | None:
        if self._failing and time.monotonic() < self._retry_at:
            return None
        try:
            allowed = await self._strategy.hit(item, *identifiers)
            stats = await self._strategy.get_window_stats(item, *identifiers)
        except _STORAGE_ERRORS as error:
            self._storage_failed(error)
            return None
        if self._failing:
            self._failing = False
            logger.info("rate-limit storage reachable again; limits apply")
        return RateLimitStatus(
            allowed=allowed,
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_seconds=max(1, math.ceil(stats.reset_time - time.time())),
            window_seconds=item.get_expiry(),
        )

    def _storage_failed(self, error: Exception) -> None:
        self._failing = True
        now = time.monotonic()
        self._retry_at = now + STORAGE_RETRY_SECONDS
        if self._warned_at is None or now - self._warned_at >= STORAGE_WARNING_INTERVAL_SECONDS:
            self._warned_at = now
            cause = error.storage_error if isinstance(error, StorageError) else error
            # The type only: a client error's text may include the storage URL.
            logger.warning(
                "rate-limit storage unavailable (%s): serving requests without limits",
                type(cause).__name__,
            )


class RateLimitHeadersMiddleware:
    """Adds the RateLimit-* headers of the bucket a request was counted against to its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = scope.get("state", {}).get(STATE_KEY)
                if isinstance(status, RateLimitStatus):
                    headers = MutableHeaders(scope=message)
                    for name, value in status.headers().items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
