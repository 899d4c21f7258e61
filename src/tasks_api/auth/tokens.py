"""Verify Better-Auth JWTs with PyJWT and return typed claims.

Two key sources, each pinned to its own algorithms so one can never stand in for the other:
Better-Auth's JWKS (asymmetric: EdDSA, ES256, ES512, RS256, PS256) and a shared secret (HS256).

Verified tokens are remembered (`VerifiedTokenCache`): a client sends the same token on every
request for its whole life (Better-Auth's last 15 minutes), and an Ed25519 check costs about
150 us, half of the whole GET of the benchmark's thin ceiling app (bench/RESULTS.md). The cache
is keyed by the token's exact text, holds only tokens that passed every check, forgets each one
at its `exp`, and trusts an entry only while the key that verified it is still the key the JWKS
serves under its `kid`: a key removed or replaced at the source stops its tokens at the next
request, exactly as without the cache.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cachetools
import httpx
import jwt

from tasks_api.config import Settings
from tasks_api.errors import ServiceUnavailableError, UnauthenticatedError
from tasks_api.text import storage_problem

logger = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = frozenset({"EdDSA", "ES256", "ES512", "RS256", "PS256"})
SHARED_SECRET_ALGORITHM = "HS256"  # noqa: S105  # an algorithm name
# Real tokens are well under 2 KiB. Anything far larger is refused before any parsing or crypto.
MAX_TOKEN_BYTES = 8192


@dataclass(frozen=True)
class TokenClaims:
    sub: str
    email: str | None = None
    name: str | None = None


class JwksUnavailableError(ServiceUnavailableError):
    code = "auth_keys_unavailable"


class JwksCache:
    """Better-Auth's public keys by `kid`, fetched with httpx and refreshed on an unknown `kid`.

    Refetches are rate-limited: a flood of tokens with made-up `kid`s costs at most one request
    to the JWKS endpoint per `min_refetch_seconds`.
    """

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        max_age: float,
        min_refetch: float,
        timeout: float,
        on_fetch: Callable[[bool], None] | None = None,
    ) -> None:
        """`on_fetch(ok)` is told the outcome of every fetch (for metrics)."""
        self._on_fetch = on_fetch
        self._url = url
        self._client = client
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._timeout = timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        # True from a failed fetch until the next successful one: the endpoint is down.
        self._failing = False
        self._lock = asyncio.Lock()

    async def get(self, kid: str) -> jwt.PyJWK | None:
        if self._is_fresh() and kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if not (self._is_fresh() and kid in self._keys) and self._may_refetch():
                await self._refresh()
        key = self._keys.get(kid)
        if key is None and self._failing:
            # The last fetch failed (and the next may not be due yet), so the key may be one the
            # JWKS would serve, rotated in during the outage: an outage on our side, not a bad
            # token, so no 401 that would make the client drop a valid token.
            raise self._unavailable()
        return key

    def _unavailable(self) -> JwksUnavailableError:
        waited = 0.0 if self._attempted_at is None else time.monotonic() - self._attempted_at
        return JwksUnavailableError(
            "The sign-in service's keys cannot be fetched right now. Please retry shortly.",
            retry_after_seconds=max(1, math.ceil(self._min_refetch - waited)),
        )

    def _is_fresh(self) -> bool:
        return self._fetched_at is not None and time.monotonic() - self._fetched_at < self._max_age

    def _may_refetch(self) -> bool:
        return (
            self._attempted_at is None or time.monotonic() - self._attempted_at >= self._min_refetch
        )

    async def _refresh(self) -> None:
        self._attempted_at = time.monotonic()
        try:
            # A bound on the whole fetch: httpx's timeout applies to each network operation, so a
            # server that trickles bytes could hold the lock, and every request queued on it.
            async with asyncio.timeout(self._timeout):
                response = await self._client.get(self._url)
                response.raise_for_status()
                keys = _parse_jwks(response.json())
        except (httpx.HTTPError, ValueError, TimeoutError) as error:
            if self._on_fetch is not None:
                self._on_fetch(False)
            # Once per outage, not once per attempt: requests keep retrying while it lasts.
            log = logger.debug if self._failing else logger.warning
            log("JWKS fetch from %s failed: %s", self._url, type(error).__name__)
            self._failing = True
            return  # keep serving with the keys we have, if any
        if self._on_fetch is not None:
            self._on_fetch(True)
        if self._failing:
            logger.info("JWKS fetch from %s works again", self._url)
        self._failing = False
        self._keys = keys
        self._fetched_at = time.monotonic()
        logger.info("JWKS loaded: %d key(s)", len(keys))


def _parse_jwks(document: Any) -> dict[str, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWKError:
            logger.warning("skipping unusable JWKS key %s", entry.get("kid"))
            continue
        if key.algorithm_name in ASYMMETRIC_ALGORITHMS:
            keys[entry["kid"]] = key
    return keys


@dataclass(frozen=True)
class _SigningKey:
    material: Any  # what PyJWT verifies with: a key object, or the shared secret
    algorithm: str
    # The JWKS entry the material came from; None for the shared secret.
    jwk: jwt.PyJWK | None = None
    kid: str | None = None


@dataclass(frozen=True)
class _VerifiedToken:
    claims: TokenClaims
    key: _SigningKey
    expires_at: float  # the token's `exp`, in seconds since the epoch


class VerifiedTokenCache:
    """Tokens that passed verification, by their exact text, each until its own `exp`.

    A bounded LRU (cachetools' TLRUCache): the least recently used entry makes room for a new
    one, and an expired one is never returned. Only verified tokens go in, so a flood of forged
    ones cannot evict real users' entries faster than they could by signing in.
    """

    def __init__(self, max_entries: int) -> None:
        self._entries: cachetools.TLRUCache[str, _VerifiedToken] = cachetools.TLRUCache(
            maxsize=max_entries,
            ttu=lambda _token, entry, _now: entry.expires_at,
            timer=time.time,  # `exp` is wall-clock time
        )

    def get(self, token: str) -> _VerifiedToken | None:
        return self._entries.get(token)

    def put(self, token: str, entry: _VerifiedToken) -> None:
        if self._entries.maxsize > 0:  # 0 turns the cache off (TLRUCache would refuse the item)
            self._entries[token] = entry

    def forget(self, token: str) -> None:
        self._entries.pop(token, None)

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    def __init__(self, settings: Settings, jwks: JwksCache | None) -> None:
        self._settings = settings
        self._jwks = jwks
        secret = settings.better_auth_secret
        self._secret = secret.get_secret_value() if secret is not None else None
        self._jwt = jwt.PyJWT(
            {"verify_aud": settings.auth_audience is not None, "require": ["exp", "sub"]}
        )
        self.cache = VerifiedTokenCache(settings.auth_token_cache_size)

    async def verify(self, token: str) -> TokenClaims:
        if len(token) > MAX_TOKEN_BYTES:
            raise UnauthenticatedError("The token is too large.", code="malformed_token")
        cached = self.cache.get(token)
        if cached is not None:
            if await self._still_current(cached.key):
                return cached.claims
            self.cache.forget(token)  # its key was rotated out: verify again, and likely refuse
        return await self._verify_uncached(token)

    async def _still_current(self, key: _SigningKey) -> bool:
        """Whether the key that verified a cached token is still the one its source serves."""
        if key.kid is None or self._jwks is None:
            return True  # the shared secret, fixed for the life of the process
        return await self._jwks.get(key.kid) is key.jwk

    async def _verify_uncached(self, token: str) -> TokenClaims:
        if token.count(".") == 1:
            raise UnauthenticatedError(
                "This looks like a Better-Auth session token, not a JWT. "
                "Send the JWT from GET /api/auth/token instead.",
                code="session_token_not_jwt",
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:  # DecodeError, and a non-string `kid` or unknown `crit`
            raise UnauthenticatedError(
                "The token is not a well-formed JWT.", code="malformed_token"
            ) from None
        key = await self._key_for(header)
        try:
            payload = self._jwt.decode(
                token,
                key.material,
                algorithms=[key.algorithm],
                issuer=self._settings.auth_issuer,
                audience=self._settings.auth_audience,
                leeway=self._settings.auth_leeway_seconds,
            )
        except jwt.PyJWTError as error:
            raise _rejection(error) from None
        claims = _claims(payload)
        # PyJWT has checked that `exp` is a number. Kept until `exp` itself, not `exp` plus the
        # leeway: a token near its end is verified afresh, and the leeway applied there.
        self.cache.put(token, _VerifiedToken(claims, key, float(payload["exp"])))
        return claims

    async def _key_for(self, header: dict[str, Any]) -> _SigningKey:
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):  # e.g. a list, which a frozenset lookup can't hash
            algorithm = ""
        if algorithm == SHARED_SECRET_ALGORITHM and self._secret is not None:
            return _SigningKey(self._secret, algorithm)
        if algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            if not isinstance(kid, str) or not kid:
                raise UnauthenticatedError(
                    "The token names no signing key (kid).", code="unknown_key"
                )
            key = await self._jwks.get(kid)
            if key is None:
                raise UnauthenticatedError(
                    "The token's signing key is not known.", code="unknown_key"
                )
            if key.algorithm_name != algorithm:
                raise UnauthenticatedError(
                    "The token's algorithm does not match its key.", code="invalid_signature"
                )
            return _SigningKey(key.key, algorithm, jwk=key, kid=kid)
        raise UnauthenticatedError(
            "The token's signing algorithm is not accepted.", code="unsupported_algorithm"
        )


_REJECTIONS: list[tuple[type[jwt.PyJWTError], str, str]] = [
    (jwt.ExpiredSignatureError, "token_expired", "The token has expired."),
    (jwt.ImmatureSignatureError, "token_not_yet_valid", "The token is not valid yet."),
    (jwt.InvalidIssuedAtError, "token_not_yet_valid", "The token's issue time is in the future."),
    (jwt.InvalidIssuerError, "invalid_issuer", "The token was issued by someone else."),
    (jwt.InvalidAudienceError, "invalid_audience", "The token is meant for another audience."),
    (jwt.MissingRequiredClaimError, "missing_claim", "The token lacks a required claim."),
    (jwt.InvalidSignatureError, "invalid_signature", "The token's signature is not valid."),
    (jwt.DecodeError, "malformed_token", "The token is not a well-formed JWT."),
]


def _rejection(error: jwt.PyJWTError) -> UnauthenticatedError:
    for kind, code, detail in _REJECTIONS:
        if isinstance(error, kind):
            if isinstance(error, jwt.MissingRequiredClaimError):
                detail = f"The token lacks the required '{error.claim}' claim."
            return UnauthenticatedError(detail, code=code)
    return UnauthenticatedError("The token is not valid.", code="invalid_token")


def _claims(payload: dict[str, Any]) -> TokenClaims:
    sub = payload.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise UnauthenticatedError(
            "The token's subject (sub) is missing or empty.", code="missing_claim"
        )
    if storage_problem(sub) is not None:
        # The owner column could not hold it (NUL, lone surrogate): a 401 now, not a 500 at the
        # first query. Only a key holder can sign such a token, but it is still not a usable one.
        raise UnauthenticatedError(
            "The token's subject (sub) is not a usable user id.", code="invalid_token"
        )
    email, name = payload.get("email"), payload.get("name")
    return TokenClaims(
        sub=sub,
        email=email if isinstance(email, str) else None,
        name=name if isinstance(name, str) else None,
    )


def issue_development_token(
    secret: str,
    sub: str,
    *,
    ttl_seconds: int,
    email: str | None = None,
    name: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token shaped like Better-Auth's, for curl and the Swagger UI in development."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": sub, "iat": now, "exp": now + ttl_seconds}
    if email is not None:
        claims["email"] = email
    if name is not None:
        claims["name"] = name
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=SHARED_SECRET_ALGORITHM)
