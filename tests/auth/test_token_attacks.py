"""Forged, broken and smuggled credentials: one table of attacks, each a 401 with its problem code.

Every case is sent to `GET /api/tasks`, a route that reads the database once the caller is known,
and must be answered before the database is touched: no statement, not even a pooled connection
checked out. The app here has its own engine (no test transaction in between), so the counts are
the app's own. Rate limits are off, or the per-address limit would turn the later 401s into 429s
(tests/test_rate_limits.py covers that interplay), and the header limit is at its maximum
(64 KiB), so that a 48 KB token reaches the verifier's own size cap. A 100 KB token never gets
that far: it is a 431 whatever the settings (tested below).
"""

import asyncio
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from asyncpg.connection import LoggedQuery
from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import FastAPI
from sqlalchemy import event

from tasks_api.auth.tokens import MAX_TOKEN_BYTES
from tasks_api.main import create_app
from tests.asgi import serving
from tests.auth.forged import (
    SUB,
    MakeToken,
    NowPlus,
    alg_none,
    b64url,
    b64url_json,
    ed25519,
    ed25519_header,
    foreign_key_header,
    hmac_with_public_jwk,
    hmac_with_public_key,
    hs256,
    literal,
    non_canonical_signature,
    session_token,
    signed_by_another_key,
    truncated_signature,
    two_segments,
    with_segments,
    with_sub,
    without_signature,
)
from tests.conftest import make_settings
from tests.problems import assert_problem
from tests.tokens import JWKS_URL, KID, OMIT, JwksServer, TokenFactory

EVIL = "https://evil.example"
# The most MAX_HEADER_BYTES allows: room for a 48 KB token, which the default would answer with 431.
LARGE_HEADER_LIMIT = 64 * 1024
# Generous for a loaded CI machine: a token that went through parsing and crypto would still be
# fast, so the proof that none ran is the spy in the test; this only catches a pathological path.
FAST_SECONDS = 1.0

AuthorizationValues = Callable[[TokenFactory], list[str]]


@dataclass(frozen=True)
class Attack:
    """A request that must get a 401 with this problem code, before any database work."""

    name: str
    token: MakeToken | None
    code: str
    # Instead of `Authorization: Bearer <token>`: the exact Authorization header(s) to send.
    authorization: AuthorizationValues | None = None

    def headers(self, tokens: TokenFactory) -> list[tuple[str, str]]:
        if self.authorization is not None:
            return [("Authorization", value) for value in self.authorization(tokens)]
        if self.token is None:
            return []
        return [("Authorization", f"Bearer {self.token(tokens)}")]


def _raw(*values: str | MakeToken) -> AuthorizationValues:
    """Authorization header values exactly as given (a builder's token with no scheme)."""

    def make(tokens: TokenFactory) -> list[str]:
        return [value if isinstance(value, str) else value(tokens) for value in values]

    return make


def _bearer(make_token: MakeToken) -> MakeToken:
    return lambda tokens: f"Bearer {make_token(tokens)}"


_VALID = ed25519()
_VALID_BEARER = _bearer(_VALID)
_MALLORY_BEARER: MakeToken = lambda tokens: f"Bearer {tokens.ed25519('mallory')}"  # noqa: E731


def _comma_joined(tokens: TokenFactory) -> str:
    # How some proxies merge repeated headers into one.
    return f"{tokens.ed25519(SUB)}, Bearer {tokens.ed25519('mallory')}"


ATTACKS = [
    # Which key verifies the token is decided by us, never by the token.
    Attack("alg-none", alg_none("none"), "unsupported_algorithm"),
    Attack("alg-None", alg_none("None"), "unsupported_algorithm"),
    Attack("alg-NONE", alg_none("NONE"), "unsupported_algorithm"),
    Attack("alg-nOnE", alg_none("nOnE"), "unsupported_algorithm"),
    Attack("alg-none-with-signature", alg_none("none", signed=True), "unsupported_algorithm"),
    Attack("alg-lowercase-eddsa", ed25519_header(alg="eddsa", kid=KID), "unsupported_algorithm"),
    Attack("alg-not-a-string", ed25519_header(alg=["EdDSA"], kid=KID), "unsupported_algorithm"),
    Attack("alg-missing", ed25519_header(kid=KID), "unsupported_algorithm"),
    Attack("alg-not-matching-key", ed25519_header(alg="ES256", kid=KID), "invalid_signature"),
    Attack("hs256-keyed-raw-public", hmac_with_public_key(Encoding.Raw), "invalid_signature"),
    Attack("hs256-keyed-pem-public", hmac_with_public_key(Encoding.PEM), "invalid_signature"),
    Attack("hs256-keyed-public-jwk", hmac_with_public_jwk, "invalid_signature"),
    Attack("hs256-wrong-secret", hs256(secret="x" * 48), "invalid_signature"),
    # Keys are looked up by kid in the fetched JWKS and nowhere else.
    Attack("unknown-kid", ed25519(headers={"kid": "no-such-key"}), "unknown_key"),
    Attack("kid-path", ed25519(headers={"kid": "../../etc/passwd"}), "unknown_key"),
    Attack("kid-sql", ed25519(headers={"kid": "' OR 1=1--"}), "unknown_key"),
    Attack("kid-crlf", ed25519(headers={"kid": "k\r\nSet-Cookie: a=b"}), "unknown_key"),
    Attack("kid-url", ed25519(headers={"kid": f"{EVIL}/jwks"}), "unknown_key"),
    Attack("kid-empty", ed25519_header(alg="EdDSA", kid=""), "unknown_key"),
    Attack("kid-missing", ed25519_header(alg="EdDSA"), "unknown_key"),
    Attack("kid-not-a-string", ed25519_header(alg="EdDSA", kid=7), "malformed_token"),
    Attack("jku-elsewhere", foreign_key_header("evil", jku=f"{EVIL}/jwks"), "unknown_key"),
    Attack("jku-with-known-kid", foreign_key_header(KID, jku=f"{EVIL}/jwks"), "invalid_signature"),
    Attack("x5u-elsewhere", foreign_key_header(KID, x5u=f"{EVIL}/cert.pem"), "invalid_signature"),
    Attack("x5c-embedded", foreign_key_header(KID, x5c=["MIIBIjANBgkq"]), "invalid_signature"),
    Attack("jwk-embedded", foreign_key_header("evil", jwk="attacker"), "unknown_key"),
    Attack("jwk-embedded-known-kid", foreign_key_header(KID, jwk="attacker"), "invalid_signature"),
    Attack("unknown-crit", ed25519_header(alg="EdDSA", kid=KID, crit=["x"]), "malformed_token"),
    # Signatures.
    Attack("signed-by-another-key", signed_by_another_key, "invalid_signature"),
    Attack("truncated-signature", truncated_signature, "invalid_signature"),
    Attack("non-canonical-signature", non_canonical_signature, "malformed_token"),
    Attack("empty-signature", without_signature, "invalid_signature"),
    # Claims.
    Attack("expired", ed25519(exp=NowPlus(-120)), "token_expired"),
    Attack("expired-hs256", hs256(exp=NowPlus(-120)), "token_expired"),
    Attack("nbf-in-future", ed25519(nbf=NowPlus(120)), "token_not_yet_valid"),
    Attack("iat-in-future", ed25519(iat=NowPlus(120)), "token_not_yet_valid"),
    Attack("wrong-issuer", ed25519(iss=f"{EVIL}"), "invalid_issuer"),
    Attack("missing-issuer", ed25519(iss=OMIT), "missing_claim"),
    Attack("wrong-audience", ed25519(aud="https://other.example"), "invalid_audience"),
    Attack("wrong-audience-hs256", hs256(aud="https://other.example"), "invalid_audience"),
    Attack("missing-audience", ed25519(aud=OMIT), "missing_claim"),
    Attack("missing-exp", ed25519(exp=OMIT), "missing_claim"),
    Attack("missing-exp-hs256", hs256(exp=OMIT), "missing_claim"),
    Attack("null-exp", ed25519(exp=None), "missing_claim"),
    Attack("non-numeric-exp", ed25519(exp="soon"), "malformed_token"),
    Attack("missing-sub", with_sub(OMIT), "missing_claim"),
    Attack("null-sub", with_sub(None), "missing_claim"),
    Attack("empty-sub", with_sub(""), "missing_claim"),
    Attack("blank-sub", with_sub("   "), "missing_claim"),
    Attack("numeric-sub", with_sub(12345), "invalid_token"),
    Attack("list-sub", with_sub([SUB]), "invalid_token"),
    Attack("object-sub", with_sub({"id": SUB}), "invalid_token"),
    Attack("sub-with-nul", with_sub("alice\x00' OR '1'='1"), "invalid_token"),
    Attack("sub-lone-surrogate", with_sub("alice\ud800"), "invalid_token"),
    # Shapes that are not a JWS at all.
    Attack("not-a-jwt", literal("not-a-jwt"), "malformed_token"),
    Attack("two-segments", two_segments, "session_token_not_jwt"),
    Attack("session-token", session_token, "session_token_not_jwt"),
    Attack("four-segments", lambda t: t.ed25519(SUB) + ".extra", "malformed_token"),
    Attack("garbage-segments", literal("abc.def.ghi"), "malformed_token"),
    Attack("non-base64-segments", literal("!!!.@@@.###"), "malformed_token"),
    Attack("non-base64-header", with_segments(header="e30*"), "malformed_token"),
    Attack("non-base64-payload", with_segments(payload="e30*"), "malformed_token"),
    Attack("header-not-json", with_segments(header=b64url(b"{alg: EdDSA")), "malformed_token"),
    Attack("header-json-list", with_segments(header=b64url_json(["EdDSA"])), "malformed_token"),
    Attack("payload-not-json", with_segments(payload=b64url(b"sub=alice")), "malformed_token"),
    Attack("payload-json-list", with_segments(payload=b64url_json([SUB])), "malformed_token"),
    Attack("oversized-8k", ed25519(padding="x" * MAX_TOKEN_BYTES), "malformed_token"),
    Attack("oversized-48k", ed25519(padding="x" * 36_000), "malformed_token"),
    # The Authorization header itself.
    Attack("missing-header", None, "missing_token"),
    Attack("bearer-without-token", None, "invalid_token", _raw("Bearer")),
    Attack("bearer-and-space", None, "invalid_token", _raw("Bearer ")),
    Attack("basic-scheme", None, "unsupported_scheme", _raw("Basic dXNlcjpwYXNzd29yZA==")),
    Attack("no-scheme", None, "unsupported_scheme", _raw(_VALID)),
    Attack("two-tokens-in-one-header", _comma_joined, "malformed_token"),
    # Which of two headers counts differs between proxies and frameworks: refuse the request.
    Attack("two-headers-valid-first", None, "invalid_token", _raw(_VALID_BEARER, "Bearer x.y.z")),
    Attack("two-headers-valid-last", None, "invalid_token", _raw("Bearer x.y.z", _VALID_BEARER)),
    Attack("two-headers-two-users", None, "invalid_token", _raw(_VALID_BEARER, _MALLORY_BEARER)),
    Attack("two-headers-basic-too", None, "invalid_token", _raw(_VALID_BEARER, "Basic dXNlcg==")),
]  # fmt: skip


def _cases(attacks: list[Attack]) -> list[object]:
    return [pytest.param(attack, id=attack.name) for attack in attacks]


def _named(*names: str) -> list[Attack]:
    chosen = [attack for attack in ATTACKS if attack.name in names]
    assert len(chosen) == len(names)
    return chosen


@dataclass
class Outbound:
    """Everything the app tried to fetch, through its JWKS client or urllib."""

    urls: list[str] = field(default_factory=list)


@dataclass
class DatabaseActivity:
    """Statements the app's engine ran, and connections it took from its pool."""

    statements: list[str] = field(default_factory=list)
    checkouts: int = 0

    def record_statement(self, *args: Any) -> None:
        # before_cursor_execute(conn, cursor, statement, parameters, context, executemany)
        self.statements.append(args[2])

    def record_checkout(self, dbapi_connection: Any, *args: Any) -> None:
        self.checkouts += 1
        # Compiled statements run on the asyncpg connection directly, where no SQLAlchemy event
        # sees them; asyncpg reports them to its query loggers (a set: added once), at the event
        # loop's next turn.
        dbapi_connection.driver_connection.add_query_logger(self.record_query)

    def record_query(self, query: LoggedQuery) -> None:
        self.statements.append(query.query)

    @property
    def untouched(self) -> bool:
        return not self.statements and self.checkouts == 0


@dataclass
class GuardedApp:
    app: FastAPI
    client: httpx.AsyncClient
    database: DatabaseActivity
    outbound: Outbound


@pytest.fixture
def outbound(monkeypatch: pytest.MonkeyPatch) -> Outbound:
    """Records every URL the app asks for; urllib (which PyJWT's own JWKS client would use) is
    answered with an error, so nothing leaves the process."""
    seen = Outbound()

    def urlopen(url: object, *args: object, **kwargs: object) -> None:
        seen.urls.append(str(getattr(url, "full_url", url)))
        raise OSError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return seen


@pytest.fixture
async def guarded(
    database_url: str, jwks_server: JwksServer, outbound: Outbound
) -> AsyncIterator[GuardedApp]:
    """The app with its own engine, database activity counted, outbound requests recorded."""

    def handle(request: httpx.Request) -> httpx.Response:
        outbound.urls.append(str(request.url))
        if str(request.url) != JWKS_URL:
            return httpx.Response(404)
        return jwks_server.handle(request)

    settings = make_settings(
        database_url, rate_limit_enabled=False, max_header_bytes=LARGE_HEADER_LIMIT
    )
    app = create_app(settings, jwks_transport=httpx.MockTransport(handle))
    async with serving(app) as client:
        activity = DatabaseActivity()
        engine = app.state.engine.sync_engine
        event.listen(engine, "before_cursor_execute", activity.record_statement)
        event.listen(engine, "checkout", activity.record_checkout)  # the pool's, via the engine
        yield GuardedApp(app, client, activity, outbound)


def _assert_challenge(response: httpx.Response, code: str) -> None:
    challenge = response.headers["www-authenticate"]
    if code in {"missing_token", "unsupported_scheme"}:
        # RFC 6750 3.1: no Bearer credentials were sent, so the challenge carries no error code.
        assert challenge == 'Bearer realm="tasks-api"'
    else:
        assert challenge.startswith('Bearer realm="tasks-api"')
        assert 'error="invalid_token"' in challenge


def _assert_not_echoed(response: httpx.Response, headers: list[tuple[str, str]]) -> None:
    for _, value in headers:
        credentials = value.split(" ", 1)[-1]
        if len(credentials) >= 8:
            assert credentials not in response.text
            assert credentials not in str(response.headers)


async def test_the_guard_sees_the_database_work_of_an_accepted_token(
    guarded: GuardedApp, tokens: TokenFactory
) -> None:
    accepted = await guarded.client.get(
        "/api/tasks", headers={"Authorization": f"Bearer {tokens.ed25519(SUB)}"}
    )

    assert accepted.status_code == 200
    await asyncio.sleep(0)  # asyncpg's query loggers run at the loop's next turn
    assert guarded.database.checkouts >= 1
    assert any("FROM tasks" in statement for statement in guarded.database.statements)
    assert guarded.outbound.urls == [JWKS_URL]


@pytest.mark.parametrize("attack", _cases(ATTACKS))
async def test_attack_returns_401_problem_before_any_database_work(
    guarded: GuardedApp, tokens: TokenFactory, attack: Attack
) -> None:
    headers = attack.headers(tokens)

    response = await guarded.client.get("/api/tasks", headers=headers)

    assert_problem(response, status=401, code=attack.code)
    _assert_challenge(response, attack.code)
    _assert_not_echoed(response, headers)
    assert guarded.database.untouched, guarded.database
    # Whatever the header says (jku, x5u, jwk, a URL as kid), only the configured JWKS is fetched.
    assert set(guarded.outbound.urls) <= {JWKS_URL}


def test_the_table_covers_at_least_25_attacks_with_unique_names() -> None:
    names = [attack.name for attack in ATTACKS]
    assert len(names) >= 25
    assert len(set(names)) == len(names)


def _api_operations(app: FastAPI) -> Iterator[tuple[str, str]]:
    # From the OpenAPI document, so a route added later is covered without editing this test.
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/"):
            concrete = path.replace("{task_id}", str(uuid.uuid4())).replace("{user_id}", SUB)
            for method in operations:
                yield method.upper(), concrete


@pytest.mark.parametrize(
    "attack",
    _cases(
        _named(
            "missing-header",
            "basic-scheme",
            "no-scheme",
            "not-a-jwt",
            "expired",
            "signed-by-another-key",
            "alg-none",
            "two-headers-valid-first",
        )
    ),
)
async def test_every_api_route_returns_401_never_403_or_500_and_touches_no_data(
    guarded: GuardedApp, tokens: TokenFactory, attack: Attack
) -> None:
    operations = list(_api_operations(guarded.app))
    assert ("GET", "/api/me") in operations
    assert ("POST", "/api/tasks") in operations

    for method, path in operations:
        response = await guarded.client.request(
            method, path, headers=attack.headers(tokens), json={"title": "Never stored"}
        )

        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["code"] == attack.code
    assert guarded.database.untouched, guarded.database


@dataclass
class CallCounter:
    calls: int = 0


def _count_calls(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> CallCounter:
    counter = CallCounter()
    original = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        counter.calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return counter


def _spy_on_parsing_and_crypto(monkeypatch: pytest.MonkeyPatch) -> tuple[CallCounter, ...]:
    """Count header parsing and signature verification, the work an oversized token must skip."""
    return (
        _count_calls(monkeypatch, jwt, "get_unverified_header"),
        _count_calls(monkeypatch, jwt.PyJWT, "decode"),
    )


async def test_spies_see_the_parsing_and_crypto_of_an_ordinary_token(
    guarded: GuardedApp, tokens: TokenFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed, verified = _spy_on_parsing_and_crypto(monkeypatch)

    response = await guarded.client.get("/api/me", headers=_authorization(tokens.ed25519(SUB)))

    assert response.status_code == 200
    assert (parsed.calls, verified.calls) == (1, 1)


@pytest.mark.parametrize(
    ("padding", "status", "code"),
    [
        # Within the header limit: the verifier's own cap (8 KiB) refuses it.
        pytest.param(36_000, 401, "malformed_token", id="48-kb"),
        # Over the largest header limit there is: refused before any route or dependency runs.
        pytest.param(100_000, 431, "headers_too_large", id="100-kb"),
    ],
)
async def test_huge_token_is_refused_quickly_before_any_parsing_or_crypto(
    guarded: GuardedApp,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
    padding: int,
    status: int,
    code: str,
) -> None:
    huge = tokens.ed25519(SUB, padding="x" * padding)
    assert len(huge) > padding
    parsed, verified = _spy_on_parsing_and_crypto(monkeypatch)

    started = time.perf_counter()
    response = await guarded.client.get("/api/tasks", headers=_authorization(huge))
    elapsed = time.perf_counter() - started

    assert_problem(response, status=status, code=code)
    assert (parsed.calls, verified.calls) == (0, 0)
    assert elapsed < FAST_SECONDS
    assert huge not in response.text
    assert guarded.database.untouched


def _authorization(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
