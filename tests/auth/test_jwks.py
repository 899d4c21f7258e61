import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.auth.conftest import AppClient
from tests.auth.forged import b64url, compact_jwt, hmac_sha256
from tests.problems import assert_problem
from tests.tokens import JWKS_URL, JwksServer, TokenFactory, bearer, public_jwk

NEW_KID = "N3wK3yAfterRotation0000000000000"


async def test_jwks_is_fetched_once_and_cached(
    client: httpx.AsyncClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    for index in range(5):
        response = await client.get("/api/me", headers=bearer(tokens.ed25519(f"user-{index}")))
        assert response.status_code == 200

    assert jwks_server.requests == 1


async def test_concurrent_first_requests_share_one_jwks_fetch(
    client: httpx.AsyncClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    responses = await asyncio.gather(
        *(client.get("/api/me", headers=bearer(tokens.ed25519(f"u{i}"))) for i in range(10))
    )

    assert [response.status_code for response in responses] == [200] * 10
    assert jwks_server.requests == 1


@pytest.mark.parametrize("warm", [True, False], ids=["after-a-valid-token", "cold-cache"])
async def test_unknown_kids_refetch_jwks_at_most_once_per_interval(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory, warm: bool
) -> None:
    async with app_client(auth_jwks_min_refetch_seconds=60) as client:
        if warm:
            assert (await client.get("/api/me", headers=bearer(tokens.ed25519("u")))).is_success
        for index in range(10):
            token = tokens.ed25519("u", headers={"kid": f"made-up-kid-{index}"})
            response = await client.get("/api/me", headers=bearer(token))
            assert_problem(response, status=401, code="unknown_key")
        known = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))

    assert known.status_code == 200
    assert jwks_server.requests <= 2


async def test_rotated_key_is_accepted_after_refetch(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    new_key = Ed25519PrivateKey.generate()
    new_tokens = TokenFactory(new_key, kid=NEW_KID)

    async with app_client(auth_jwks_min_refetch_seconds=0) as client:
        before = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))
        jwks_server.keys.append(public_jwk(new_key, NEW_KID))
        after = await client.get("/api/me", headers=bearer(new_tokens.ed25519("u")))
        old_key_still = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))

    assert [before.status_code, after.status_code, old_key_still.status_code] == [200, 200, 200]
    assert jwks_server.requests == 2


async def test_key_removed_from_jwks_is_rejected_after_refetch(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    new_key = Ed25519PrivateKey.generate()
    new_tokens = TokenFactory(new_key, kid=NEW_KID)

    async with app_client(auth_jwks_min_refetch_seconds=0) as client:
        assert (await client.get("/api/me", headers=bearer(tokens.ed25519("u")))).is_success
        jwks_server.keys[:] = [public_jwk(new_key, NEW_KID)]  # Better-Auth's database was reset
        assert (await client.get("/api/me", headers=bearer(new_tokens.ed25519("u")))).is_success
        response = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))

    assert_problem(response, status=401, code="unknown_key")


def _assert_keys_unavailable(response: httpx.Response, token: str) -> None:
    assert_problem(response, status=503, code="auth_keys_unavailable")
    assert int(response.headers["retry-after"]) >= 1
    assert token not in response.text


async def test_jwks_down_with_nothing_cached_returns_503_with_retry_after(
    client: httpx.AsyncClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    jwks_server.status_code = 500
    token = tokens.ed25519("u")

    response = await client.get("/api/me", headers=bearer(token))

    _assert_keys_unavailable(response, token)


async def test_jwks_down_keeps_returning_503_not_401_until_the_next_fetch_is_due(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    jwks_server.status_code = 500
    token = tokens.ed25519("u")

    async with app_client(auth_jwks_min_refetch_seconds=60) as client:
        responses = [await client.get("/api/me", headers=bearer(token)) for _ in range(3)]

    for response in responses:
        _assert_keys_unavailable(response, token)
        assert int(response.headers["retry-after"]) <= 60
    assert jwks_server.requests == 1


async def test_jwks_recovery_is_picked_up_on_the_next_request(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    jwks_server.status_code = 500

    async with app_client(auth_jwks_min_refetch_seconds=0) as client:
        down = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))
        jwks_server.status_code = 200
        up = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))

    assert (down.status_code, up.status_code) == (503, 200)


async def test_cached_key_keeps_working_while_jwks_is_down(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    async with app_client(auth_jwks_min_refetch_seconds=0) as client:
        assert (await client.get("/api/me", headers=bearer(tokens.ed25519("u")))).is_success
        jwks_server.status_code = 500
        # An unknown kid makes the cache try (and fail) to refetch; the known key survives.
        unrotated = tokens.ed25519("u", headers={"kid": "x"})
        unknown = await client.get("/api/me", headers=bearer(unrotated))
        known = await client.get("/api/me", headers=bearer(tokens.ed25519("cached-user")))

    assert jwks_server.requests == 2
    # Not a 401: the key may well be one the JWKS would serve, if it could be reached (a rotation
    # during the outage), and a 401 would make the client drop a good token.
    _assert_keys_unavailable(unknown, unrotated)
    assert known.status_code == 200
    assert known.json()["id"] == "cached-user"


async def test_flood_of_unknown_kids_costs_one_jwks_fetch(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    made_up = [tokens.ed25519("u", headers={"kid": f"flood-{index}"}) for index in range(200)]

    async with app_client(auth_jwks_min_refetch_seconds=60, rate_limit_enabled=False) as client:
        responses = await asyncio.gather(
            *(client.get("/api/me", headers=bearer(token)) for token in made_up)
        )
        known = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))

    for response in responses:
        assert_problem(response, status=401, code="unknown_key")
    assert known.status_code == 200
    assert jwks_server.requests == 1


async def test_unknown_kids_refetch_no_more_often_than_the_minimum_interval(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    interval = 0.1

    async with app_client(
        auth_jwks_min_refetch_seconds=interval, rate_limit_enabled=False
    ) as client:
        started = time.monotonic()
        for wave in range(6):
            made_up = [tokens.ed25519("u", headers={"kid": f"w{wave}-{i}"}) for i in range(30)]
            await asyncio.gather(*(client.get("/api/me", headers=bearer(t)) for t in made_up))
            await asyncio.sleep(interval / 2)
        elapsed = time.monotonic() - started

    # One fetch to start with, then at most one per interval; and refetching does resume.
    assert 2 <= jwks_server.requests <= 1 + elapsed / interval


@dataclass
class SlowJwks:
    """The JWKS endpoint, answering after `delay` seconds (a hung server: longer than any
    timeout). httpx applies no timeouts of its own to a mock transport, so only the app's own
    bound can cut the wait short."""

    server: JwksServer
    delay: float = 0.0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.delay)
        return self.server.handle(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


HUNG_SECONDS = 30.0
JWKS_TIMEOUT = 0.2


async def test_hung_jwks_gets_503_within_the_timeout_not_a_hang(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    slow = SlowJwks(jwks_server, delay=HUNG_SECONDS)
    token = tokens.ed25519("u")

    async with app_client(
        jwks_transport=slow.transport, auth_jwks_timeout_seconds=JWKS_TIMEOUT
    ) as client:
        started = time.monotonic()
        async with asyncio.timeout(5):  # a failure of this test, not a hung suite
            response = await client.get("/api/me", headers=bearer(token))
        elapsed = time.monotonic() - started

    _assert_keys_unavailable(response, token)
    assert JWKS_TIMEOUT <= elapsed < JWKS_TIMEOUT + 1


async def test_cached_key_is_served_at_once_while_a_refetch_hangs(
    app_client: AppClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    slow = SlowJwks(jwks_server)
    unrotated = tokens.ed25519("u", headers={"kid": "rotated-during-outage"})

    async with app_client(
        jwks_transport=slow.transport,
        auth_jwks_timeout_seconds=JWKS_TIMEOUT,
        auth_jwks_min_refetch_seconds=0,
    ) as client:
        assert (await client.get("/api/me", headers=bearer(tokens.ed25519("u")))).is_success
        slow.delay = HUNG_SECONDS
        async with asyncio.timeout(5):
            refetching = asyncio.create_task(client.get("/api/me", headers=bearer(unrotated)))
            await asyncio.sleep(0.05)  # the refetch is under way, holding the cache's lock
            started = time.monotonic()
            cached = await client.get("/api/me", headers=bearer(tokens.ed25519("cached-user")))
            cached_took = time.monotonic() - started
            assert not refetching.done()
            needs_fetch = await refetching

    assert cached.status_code == 200
    assert cached_took < JWKS_TIMEOUT / 2
    _assert_keys_unavailable(needs_fetch, unrotated)


async def test_jwks_outage_is_logged_once_not_per_request(
    app_client: AppClient,
    jwks_server: JwksServer,
    tokens: TokenFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    package_logger = logging.getLogger("tasks_api")  # its records do not propagate to the root

    async with app_client(auth_jwks_min_refetch_seconds=0) as client:
        package_logger.addHandler(caplog.handler)  # after create_app, which resets the handlers
        try:
            jwks_server.status_code = 503
            down = [
                await client.get("/api/me", headers=bearer(tokens.ed25519("u"))) for _ in "12345"
            ]
            jwks_server.status_code = 200
            up = await client.get("/api/me", headers=bearer(tokens.ed25519("u")))
        finally:
            package_logger.removeHandler(caplog.handler)

    assert [response.status_code for response in down] == [503] * 5
    assert up.status_code == 200
    assert jwks_server.requests == 6  # every request tried: the interval is 0
    from_cache = [record for record in caplog.records if record.name == "tasks_api.auth.tokens"]
    warnings = [record for record in from_cache if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, [record.getMessage() for record in warnings]
    assert JWKS_URL in warnings[0].getMessage()
    assert any("again" in record.getMessage() for record in from_cache)


def _timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectTimeout("JWKS endpoint did not answer", request=request)


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(lambda request: httpx.Response(200, text="<html>login</html>"), id="not-json"),
        pytest.param(lambda request: httpx.Response(200, json={"nope": []}), id="not-a-jwks"),
        pytest.param(lambda request: httpx.Response(404), id="not-found"),
        pytest.param(_timeout, id="timeout"),
    ],
)
async def test_unusable_jwks_response_returns_503(
    app_client: AppClient,
    tokens: TokenFactory,
    handler: Callable[[httpx.Request], httpx.Response],
) -> None:
    token = tokens.ed25519("u")

    async with app_client(jwks_transport=httpx.MockTransport(handler)) as client:
        response = await client.get("/api/me", headers=bearer(token))

    _assert_keys_unavailable(response, token)


def _jwk(to_jwk: Callable[[Any], str], public_key: Any, algorithm: str, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(to_jwk(public_key))
    return {**jwk, "alg": algorithm, "kid": kid}


@pytest.mark.parametrize(
    ("algorithm", "generate", "to_jwk"),
    [
        pytest.param(
            "ES256",
            lambda: ec.generate_private_key(ec.SECP256R1()),
            jwt.algorithms.ECAlgorithm.to_jwk,
            id="es256",
        ),
        pytest.param(
            "RS256",
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
            jwt.algorithms.RSAAlgorithm.to_jwk,
            id="rs256",
        ),
    ],
)
async def test_other_better_auth_key_types_from_jwks_are_accepted(
    client: httpx.AsyncClient,
    jwks_server: JwksServer,
    tokens: TokenFactory,
    algorithm: str,
    generate: Callable[[], Any],
    to_jwk: Callable[[Any], str],
) -> None:
    private_key = generate()
    jwks_server.keys.append(_jwk(to_jwk, private_key.public_key(), algorithm, NEW_KID))
    token = jwt.encode(
        tokens.claims("u"), private_key, algorithm=algorithm, headers={"kid": NEW_KID}
    )

    response = await client.get("/api/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["id"] == "u"


async def test_symmetric_key_published_in_jwks_is_never_used(
    client: httpx.AsyncClient, jwks_server: JwksServer, tokens: TokenFactory
) -> None:
    leaked = b"published-by-mistake-0123456789abcdef"
    jwks_server.keys.append({"kty": "oct", "k": b64url(leaked), "alg": "HS256", "kid": "sym"})
    token = compact_jwt({"alg": "HS256", "kid": "sym"}, tokens.claims("u"), hmac_sha256(leaked))

    response = await client.get("/api/me", headers=bearer(token))

    assert_problem(response, status=401, code="invalid_signature")
