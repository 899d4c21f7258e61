import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.auth.forged import b64url, compact_jwt, hmac_sha256
from tests.factories import make_task
from tests.problems import assert_problem
from tests.tokens import KID, OMIT, TokenFactory, bearer

SUB = "DWkcv8yqyI3jvDIwvaKRg3B3296MlD06"
MakeToken = Callable[[TokenFactory], str]


@dataclass(frozen=True)
class NowPlus:
    """A time claim relative to when the token is signed, not to when the table was built."""

    seconds: int


def _resolve(claims: dict[str, Any]) -> dict[str, Any]:
    now = int(time.time())
    return {
        name: now + value.seconds if isinstance(value, NowPlus) else value
        for name, value in claims.items()
    }


def _ed25519(**claims: Any) -> MakeToken:
    return lambda tokens: tokens.ed25519(SUB, **_resolve(claims))


def _hs256(**claims: Any) -> MakeToken:
    return lambda tokens: tokens.hs256(SUB, **_resolve(claims))


def _signed_by_another_key(tokens: TokenFactory, sub: str = SUB) -> str:
    # Same kid as the served key, so only the signature check can catch it.
    return TokenFactory(Ed25519PrivateKey.generate()).ed25519(sub)


def _hmac_with_public_key(encoding: Encoding) -> MakeToken:
    """Algorithm confusion: HMAC keyed with the (public) verification key, kid and all."""
    public_format = (
        PublicFormat.Raw if encoding is Encoding.Raw else PublicFormat.SubjectPublicKeyInfo
    )

    def make(tokens: TokenFactory) -> str:
        secret = tokens.private_key.public_key().public_bytes(encoding, public_format)
        header = {"alg": "HS256", "kid": KID, "typ": "JWT"}
        return compact_jwt(header, tokens.claims(SUB), hmac_sha256(secret))

    return make


def _alg_none(tokens: TokenFactory) -> str:
    return compact_jwt({"alg": "none", "typ": "JWT"}, tokens.claims(SUB))


def _ed25519_header(**header: Any) -> MakeToken:
    """Signed with the served key, under a header PyJWT would not write."""
    return lambda tokens: compact_jwt(header, tokens.claims(SUB), tokens.private_key.sign)


def _with_sub(sub: object) -> MakeToken:
    # `sub` is also TokenFactory's positional argument, so these claims are built by hand.
    def make(tokens: TokenFactory) -> str:
        claims = {**tokens.claims(SUB), "sub": sub}
        if sub is OMIT:
            del claims["sub"]
        return compact_jwt({"alg": "EdDSA", "kid": KID}, claims, tokens.private_key.sign)

    return make


def _session_token(tokens: TokenFactory) -> str:
    # Better-Auth's `<32-char id>.<base64 HMAC-SHA256>` session token.
    return f"{'a' * 32}.{b64url(hmac_sha256(b'better-auth-secret')(b'a' * 32))}="


def _literal(token: str) -> MakeToken:
    return lambda tokens: token


@dataclass(frozen=True)
class Rejection:
    """A request that must get a 401 with this problem code."""

    name: str
    make_token: MakeToken | None
    code: str
    scheme: str | None = "Bearer"

    def headers(self, tokens: TokenFactory) -> dict[str, str]:
        if self.make_token is None:
            return {}
        token = self.make_token(tokens)
        return {"Authorization": token if self.scheme is None else f"{self.scheme} {token}"}


BAD_TOKENS = [
    Rejection("malformed", _literal("not-a-jwt"), "malformed_token"),
    Rejection("three-garbage-segments", _literal("abc.def.ghi"), "malformed_token"),
    Rejection("four-segments", lambda t: t.ed25519(SUB) + ".extra", "malformed_token"),
    Rejection("bearer-without-token", _literal(""), "invalid_token"),
    Rejection("expired", _ed25519(exp=NowPlus(-120)), "token_expired"),
    Rejection("expired-hs256", _hs256(exp=NowPlus(-120)), "token_expired"),
    Rejection("nbf-in-future", _ed25519(nbf=NowPlus(120)), "token_not_yet_valid"),
    Rejection("iat-in-future", _ed25519(iat=NowPlus(120)), "token_not_yet_valid"),
    Rejection("wrong-issuer", _ed25519(iss="https://evil.example"), "invalid_issuer"),
    Rejection("missing-issuer", _ed25519(iss=OMIT), "missing_claim"),
    Rejection("wrong-audience", _ed25519(aud="https://other.example"), "invalid_audience"),
    Rejection("wrong-audience-hs256", _hs256(aud="https://other.example"), "invalid_audience"),
    Rejection("missing-audience", _ed25519(aud=OMIT), "missing_claim"),
    Rejection("missing-exp", _ed25519(exp=OMIT), "missing_claim"),
    Rejection("missing-exp-hs256", _hs256(exp=OMIT), "missing_claim"),
    Rejection("null-exp", _ed25519(exp=None), "missing_claim"),
    Rejection("non-numeric-exp", _ed25519(exp="soon"), "malformed_token"),
    Rejection("missing-sub", _with_sub(OMIT), "missing_claim"),
    Rejection("empty-sub", _with_sub(""), "missing_claim"),
    Rejection("blank-sub", _with_sub("   "), "missing_claim"),
    Rejection("non-string-sub", _with_sub(12345), "invalid_token"),
    Rejection("wrong-signature", _signed_by_another_key, "invalid_signature"),
    Rejection("hs256-wrong-secret", _hs256(secret="x" * 48), "invalid_signature"),
    Rejection("alg-none", _alg_none, "unsupported_algorithm"),
    Rejection("hs256-keyed-raw-public", _hmac_with_public_key(Encoding.Raw), "invalid_signature"),
    Rejection("hs256-keyed-pem-public", _hmac_with_public_key(Encoding.PEM), "invalid_signature"),
    Rejection("alg-not-matching-key", _ed25519_header(alg="ES256", kid=KID), "invalid_signature"),
    Rejection("alg-not-a-string", _ed25519_header(alg=["EdDSA"], kid=KID), "unsupported_algorithm"),
    Rejection("alg-missing", _ed25519_header(kid=KID), "unsupported_algorithm"),
    Rejection("unknown-kid", _ed25519(headers={"kid": "no-such-key"}), "unknown_key"),
    Rejection("no-kid", _ed25519_header(alg="EdDSA"), "unknown_key"),
    Rejection("kid-not-a-string", _ed25519_header(alg="EdDSA", kid=7), "malformed_token"),
    Rejection("unknown-crit", _ed25519_header(alg="EdDSA", kid=KID, crit=["x"]), "malformed_token"),
    Rejection("session-token", _session_token, "session_token_not_jwt"),
    Rejection("oversized", _ed25519(padding="x" * 9000), "malformed_token"),
]  # fmt: skip
NO_TOKEN = Rejection("missing-header", None, "missing_token")
NOT_BEARER = [
    Rejection(
        "basic-scheme", _literal("dXNlcjpwYXNzd29yZA=="), "unsupported_scheme", scheme="Basic"
    ),
    Rejection("no-scheme", _ed25519(), "unsupported_scheme", scheme=None),
]


def _cases(rejections: list[Rejection]) -> list[object]:
    return [pytest.param(rejection, id=rejection.name) for rejection in rejections]


def _named(*names: str) -> list[Rejection]:
    return [rejection for rejection in BAD_TOKENS if rejection.name in names]


@pytest.mark.parametrize("rejection", _cases(BAD_TOKENS))
async def test_bad_token_returns_401_problem_with_invalid_token_challenge(
    client: httpx.AsyncClient, tokens: TokenFactory, rejection: Rejection
) -> None:
    headers = rejection.headers(tokens)

    response = await client.get("/api/me", headers=headers)

    assert_problem(response, status=401, code=rejection.code)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="tasks-api"')
    assert 'error="invalid_token"' in challenge
    token = headers["Authorization"].split(" ")[-1]
    if token:
        assert token not in response.text
        assert token not in str(response.headers)


async def test_missing_header_returns_401_missing_token_without_error_attribute(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/me")

    assert_problem(response, status=401, code="missing_token")
    assert response.headers["www-authenticate"] == 'Bearer realm="tasks-api"'


@pytest.mark.parametrize("rejection", _cases(NOT_BEARER))
async def test_other_scheme_returns_401_challenge_without_error_attribute(
    client: httpx.AsyncClient, tokens: TokenFactory, rejection: Rejection
) -> None:
    response = await client.get("/api/me", headers=rejection.headers(tokens))

    assert_problem(response, status=401, code="unsupported_scheme")
    assert response.headers["www-authenticate"] == 'Bearer realm="tasks-api"'


async def test_session_token_problem_points_to_the_token_endpoint(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.get("/api/me", headers=bearer(_session_token(tokens)))

    body = assert_problem(response, status=401, code="session_token_not_jwt")
    assert "/api/auth/token" in body["detail"]


async def test_token_just_under_size_limit_is_verified(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    size = 8192
    while len(fitting := tokens.ed25519(SUB, padding="x" * size)) > 8192:
        size -= 1
    assert len(fitting) >= 8190

    response = await client.get("/api/me", headers=bearer(fitting))

    assert response.status_code == 200


def _api_operations(app: FastAPI) -> Iterator[tuple[str, str]]:
    # From the OpenAPI document, so a route added later is covered without editing this test.
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/"):
            for method in operations:
                yield method.upper(), path.replace("{task_id}", str(uuid.uuid4()))


@pytest.mark.parametrize(
    "rejection",
    _cases([NO_TOKEN, *NOT_BEARER, *_named("malformed", "expired", "wrong-signature")]),
)
async def test_every_api_route_returns_401_never_403_or_500(
    app: FastAPI, client: httpx.AsyncClient, tokens: TokenFactory, rejection: Rejection
) -> None:
    operations = list(_api_operations(app))
    assert ("GET", "/api/me") in operations
    assert ("POST", "/api/tasks") in operations

    for method, path in operations:
        response = await client.request(
            method, path, headers=rejection.headers(tokens), json={"title": "Never stored"}
        )

        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["code"] == rejection.code


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        pytest.param(
            lambda t, sub: t.ed25519(sub, exp=int(time.time()) - 120), "token_expired", id="expired"
        ),
        pytest.param(_signed_by_another_key, "invalid_signature", id="forged"),
        pytest.param(
            lambda t, sub: t.hs256(sub, secret="y" * 48), "invalid_signature", id="hs256-secret"
        ),
        pytest.param(
            lambda t, sub: t.ed25519(sub, aud="https://other.example"), "invalid_audience", id="aud"
        ),
    ],
)
async def test_rejected_request_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tokens: TokenFactory,
    owner_id: str,
    make_token: Callable[[TokenFactory, str], str],
    code: str,
) -> None:
    response = await client.post(
        "/api/tasks",
        json={"title": "Should not exist"},
        headers=bearer(make_token(tokens, owner_id)),
    )

    assert_problem(response, status=401, code=code)
    stored = (await session.exec(select(Task).where(Task.user_id == owner_id))).all()
    assert stored == []


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", {"title": "Overwritten"}),
        ("PATCH", "", {"title": "Patched"}),
        ("PATCH", "/complete", {"completed": True}),
        ("DELETE", "", None),
    ],
)
async def test_rejected_request_leaves_existing_task_untouched(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tokens: TokenFactory,
    owner_id: str,
    method: str,
    suffix: str,
    body: dict[str, object] | None,
) -> None:
    task = await make_task(session, owner_id, title="Original")
    expired = tokens.ed25519(owner_id, exp=int(time.time()) - 120)

    response = await client.request(
        method, f"/api/tasks/{task.id}{suffix}", json=body, headers=bearer(expired)
    )

    assert_problem(response, status=401, code="token_expired")
    await session.refresh(task)
    assert (task.title, task.completed, task.version) == ("Original", False, 1)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__}")


async def test_tokens_never_reach_the_logs(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    sent = [tokens.ed25519(SUB), _ed25519(exp=NowPlus(-120))(tokens), _session_token(tokens)]
    package_logger = logging.getLogger("tasks_api")
    records, level = _Records(), package_logger.level
    package_logger.addHandler(records)
    package_logger.setLevel(logging.DEBUG)
    try:
        for token in sent:
            await client.get("/api/me", headers=bearer(token))
    finally:
        package_logger.removeHandler(records)
        package_logger.setLevel(level)

    assert records.lines
    for token in sent:
        assert not [line for line in records.lines if token in line]
