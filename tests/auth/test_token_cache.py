"""The verified-token cache: a token is checked once, then trusted until its `exp`, and only while
the key that verified it is still the key the JWKS serves under its `kid`."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tasks_api.auth.tokens import JwksCache, TokenVerifier
from tasks_api.errors import UnauthenticatedError
from tests.auth.conftest import AppClient
from tests.auth.forged import b64url
from tests.conftest import make_settings
from tests.problems import assert_problem
from tests.tokens import JWKS_URL, KID, JwksServer, TokenFactory, bearer, public_jwk

# Keys older than a second are refetched, at once: a test waits JWKS_STALE_WAIT to see a refetch.
JWKS_STALE_AFTER_1S: dict[str, object] = {
    "auth_jwks_cache_seconds": 1,
    "auth_jwks_min_refetch_seconds": 0,
}
JWKS_STALE_WAIT = 1.1


@asynccontextmanager
async def open_verifier(
    database_url: str, jwks_server: JwksServer, **overrides: object
) -> AsyncIterator[TokenVerifier]:
    """The app's verifier, built as `create_app` builds it, with the test JWKS behind it."""
    settings = make_settings(database_url, **overrides)
    async with httpx.AsyncClient(transport=jwks_server.transport) as http:
        jwks = JwksCache(
            JWKS_URL,
            http,
            max_age=settings.auth_jwks_cache_seconds,
            min_refetch=settings.auth_jwks_min_refetch_seconds,
            timeout=settings.auth_jwks_timeout_seconds,
        )
        yield TokenVerifier(settings, jwks)


async def test_a_token_is_verified_once_then_served_from_the_cache(
    database_url: str, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    token = tokens.ed25519("alice")
    async with open_verifier(database_url, jwks_server) as verifier:
        first = await verifier.verify(token)
        again = [await verifier.verify(token) for _ in range(3)]

    assert first.sub == "alice"
    # A fresh verification builds new claims; the very same object means no second check ran.
    assert all(claims is first for claims in again)
    assert len(verifier.cache) == 1


async def test_hs256_tokens_are_cached_too(
    database_url: str, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    token = tokens.hs256("bob")
    async with open_verifier(database_url, jwks_server) as verifier:
        first = await verifier.verify(token)
        assert await verifier.verify(token) is first


async def test_rejected_tokens_are_never_cached(
    database_url: str, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    header, payload, _ = tokens.ed25519("carol").split(".")
    forged = f"{header}.{payload}.{b64url(bytes(64))}"
    expired = tokens.ed25519("carol", exp=int(time.time()) - 3600)
    foreign = tokens.ed25519("carol", iss="https://elsewhere.example")
    async with open_verifier(database_url, jwks_server) as verifier:
        for token in (forged, expired, foreign, forged):
            with pytest.raises(UnauthenticatedError):
                await verifier.verify(token)

    assert len(verifier.cache) == 0


async def test_the_cache_holds_at_most_its_size_and_keeps_the_recently_used(
    database_url: str, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    user_tokens = [tokens.ed25519(f"user-{index}") for index in range(10)]
    async with open_verifier(database_url, jwks_server, auth_token_cache_size=3) as verifier:
        kept = await verifier.verify(user_tokens[0])
        first_claims = {}
        for token in user_tokens[1:]:
            first_claims[token] = await verifier.verify(token)
            assert await verifier.verify(user_tokens[0]) is kept  # used again: stays
        evicted = await verifier.verify(user_tokens[1])

    assert len(verifier.cache) == 3
    # Pushed out long ago, so verified afresh (new claims): correct, just slower.
    assert evicted.sub == "user-1"
    assert evicted is not first_claims[user_tokens[1]]


async def test_size_zero_turns_the_cache_off(
    database_url: str, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    token = tokens.ed25519("dave")
    async with open_verifier(database_url, jwks_server, auth_token_cache_size=0) as verifier:
        first = await verifier.verify(token)
        second = await verifier.verify(token)

    assert first == second
    assert first is not second
    assert len(verifier.cache) == 0


async def test_a_cached_token_is_refused_once_it_expires(
    app_client: AppClient, tokens: TokenFactory
) -> None:
    expires_at = int(time.time()) + 2
    token = tokens.ed25519("erin", exp=expires_at)

    async with app_client(auth_leeway_seconds=0) as client:
        before = await client.get("/api/me", headers=bearer(token))
        await asyncio.sleep(expires_at - time.time() + 0.2)
        after = await client.get("/api/me", headers=bearer(token))

    assert before.status_code == 200
    assert_problem(after, status=401, code="token_expired")


async def test_a_cached_token_is_refused_once_its_key_leaves_the_jwks(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    new_key = Ed25519PrivateKey.generate()
    token = tokens.ed25519("frank")

    async with app_client(auth_jwks_min_refetch_seconds=0) as client:
        cached = await client.get("/api/me", headers=bearer(token))
        # The key is revoked at the source, and a token of the new key makes the service refetch.
        jwks_server.keys[:] = [public_jwk(new_key, "new-key")]
        new_token = TokenFactory(new_key, "new-key").ed25519("frank")
        new = await client.get("/api/me", headers=bearer(new_token))
        after = await client.get("/api/me", headers=bearer(token))

    assert (cached.status_code, new.status_code) == (200, 200)
    assert_problem(after, status=401, code="unknown_key")


async def test_a_cached_token_is_refused_when_its_kid_now_names_another_key(
    database_url: str, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    token = tokens.ed25519("grace")
    async with open_verifier(database_url, jwks_server, **JWKS_STALE_AFTER_1S) as verifier:
        assert (await verifier.verify(token)).sub == "grace"
        # Same kid, other key material: only a refetch (here: the JWKS growing stale) can see it.
        jwks_server.keys[:] = [public_jwk(Ed25519PrivateKey.generate(), KID)]
        await asyncio.sleep(JWKS_STALE_WAIT)
        with pytest.raises(UnauthenticatedError) as refused:
            await verifier.verify(token)

    assert refused.value.code == "invalid_signature"
    assert jwks_server.requests == 2
    assert len(verifier.cache) == 0


async def test_a_cached_token_survives_a_refetch_that_keeps_its_key(
    database_url: str, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    token = tokens.ed25519("heidi")
    async with open_verifier(database_url, jwks_server, **JWKS_STALE_AFTER_1S) as verifier:
        first = await verifier.verify(token)
        await asyncio.sleep(JWKS_STALE_WAIT)
        again = await verifier.verify(token)

    # The refetched key is a new object: the token is checked once more against it, and passes.
    assert again == first
    assert again is not first
    assert len(verifier.cache) == 1
    assert jwks_server.requests == 2
