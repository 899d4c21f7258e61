import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.auth.conftest import AppClient
from tests.problems import assert_problem
from tests.tokens import OMIT, TokenFactory, bearer


@pytest.mark.parametrize("algorithm", ["EdDSA", "HS256"])
async def test_me_returns_identity_from_the_token(
    client: httpx.AsyncClient, tokens: TokenFactory, algorithm: str
) -> None:
    sign = tokens.ed25519 if algorithm == "EdDSA" else tokens.hs256
    token = sign("DWkcv8yqyI3jvDIwvaKRg3B3296MlD06", email="ada@example.com", name="Ada")

    response = await client.get("/api/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {
        "id": "DWkcv8yqyI3jvDIwvaKRg3B3296MlD06",
        "email": "ada@example.com",
        "name": "Ada",
    }
    assert token not in response.text


@pytest.mark.parametrize(
    ("email", "name"),
    [
        pytest.param(OMIT, OMIT, id="absent"),
        pytest.param(None, None, id="null"),
        pytest.param(42, ["not", "a", "name"], id="not-strings"),
    ],
)
async def test_me_returns_null_email_and_name_when_token_lacks_them(
    client: httpx.AsyncClient, tokens: TokenFactory, email: object, name: object
) -> None:
    token = tokens.ed25519("minimal-user", email=email, name=name)

    response = await client.get("/api/me", headers=bearer(token))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "minimal-user"
    assert body.get("email") is None
    assert body.get("name") is None


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
async def test_bearer_scheme_is_case_insensitive(
    client: httpx.AsyncClient, tokens: TokenFactory, scheme: str
) -> None:
    token = tokens.ed25519("case-user")

    response = await client.get("/api/me", headers={"Authorization": f"{scheme} {token}"})

    assert response.status_code == 200
    assert response.json()["id"] == "case-user"


Sign = Callable[[TokenFactory, int], str]
_SIGNERS: list[object] = [
    pytest.param(lambda tokens, exp: tokens.ed25519("leeway-user", exp=exp), id="ed25519"),
    pytest.param(lambda tokens, exp: tokens.hs256("leeway-user", exp=exp), id="hs256"),
]


@pytest.mark.parametrize("sign", _SIGNERS)
async def test_token_expired_within_leeway_is_accepted(
    client: httpx.AsyncClient, tokens: TokenFactory, sign: Sign
) -> None:
    token = sign(tokens, int(time.time()) - 10)

    response = await client.get("/api/me", headers=bearer(token))

    assert response.status_code == 200


@pytest.mark.parametrize("sign", _SIGNERS)
async def test_token_expired_beyond_leeway_returns_401_token_expired(
    client: httpx.AsyncClient, tokens: TokenFactory, sign: Sign
) -> None:
    token = sign(tokens, int(time.time()) - 120)

    response = await client.get("/api/me", headers=bearer(token))

    assert_problem(response, status=401, code="token_expired")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_token_from_slightly_ahead_clock_is_accepted(
    client: httpx.AsyncClient, tokens: TokenFactory, claim: str
) -> None:
    ahead: dict[str, Any] = {claim: int(time.time()) + 10}
    token = tokens.ed25519("skewed-user", **ahead)

    response = await client.get("/api/me", headers=bearer(token))

    assert response.status_code == 200


async def test_leeway_comes_from_settings(app_client: AppClient, tokens: TokenFactory) -> None:
    token = tokens.ed25519("strict-user", exp=int(time.time()) - 10)

    async with app_client(auth_leeway_seconds=0) as client:
        response = await client.get("/api/me", headers=bearer(token))

    assert_problem(response, status=401, code="token_expired")


async def test_iss_and_aud_are_not_checked_when_not_configured(
    app_client: AppClient, tokens: TokenFactory
) -> None:
    without = tokens.ed25519("free-user", iss=OMIT, aud=OMIT)
    elsewhere = tokens.ed25519(
        "free-user", iss="https://other.example", aud="https://other.example"
    )

    async with app_client(auth_issuer=None, auth_audience=None) as client:
        responses = [await client.get("/api/me", headers=bearer(t)) for t in (without, elsewhere)]

    assert [response.status_code for response in responses] == [200, 200]


async def test_hs256_token_returns_401_when_no_shared_secret_is_configured(
    app_client: AppClient, tokens: TokenFactory
) -> None:
    async with app_client(better_auth_secret=None) as client:
        response = await client.get("/api/me", headers=bearer(tokens.hs256("hs-user")))

    assert_problem(response, status=401, code="unsupported_algorithm")


async def test_ed25519_token_returns_401_when_no_jwks_is_configured(
    app_client: AppClient, tokens: TokenFactory
) -> None:
    async with app_client(auth_jwks_url=None) as client:
        response = await client.get("/api/me", headers=bearer(tokens.ed25519("jwks-user")))

    assert_problem(response, status=401, code="unsupported_algorithm")
