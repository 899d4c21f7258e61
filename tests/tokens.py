"""Real signed test tokens: an Ed25519 key pair served as the JWKS, and the HS256 secret."""

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ISSUER = "http://127.0.0.1:3000"
JWKS_URL = f"{ISSUER}/api/auth/jwks"
HS256_SECRET = "test-shared-secret-of-a-sensible-length-0123456789"
KID = "R6WbrF0kWfSeonYY10MT504s9I1RBnj1"


def public_jwk(private_key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private_key.public_key()))
    # Shaped like Better-Auth's: alg and kid, no `use`.
    return {**jwk, "alg": "EdDSA", "kid": kid}


@dataclass
class JwksServer:
    """Better-Auth's /api/auth/jwks, served through an httpx mock transport."""

    keys: list[dict[str, Any]]
    requests: int = 0
    status_code: int = 200
    handler_hook: Callable[[], None] | None = field(default=None)

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.requests += 1
        if self.status_code != 200:
            return httpx.Response(self.status_code)
        return httpx.Response(200, json={"keys": self.keys})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


@dataclass(frozen=True)
class TokenFactory:
    private_key: Ed25519PrivateKey
    kid: str = KID

    def claims(self, sub: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iat": now,
            "name": f"User {sub}",
            "email": f"{sub}@example.com",
            "emailVerified": False,
            "image": None,
            "id": sub,
            "sub": sub,
            "exp": now + 900,
            "iss": ISSUER,
            "aud": ISSUER,
        }
        claims.update(overrides)
        return {key: value for key, value in claims.items() if value is not _OMIT}

    def ed25519(self, sub: str, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        return jwt.encode(
            self.claims(sub, **claims),
            self.private_key,
            algorithm="EdDSA",
            headers={"kid": self.kid, **(headers or {})},
        )

    def hs256(self, sub: str, *, secret: str = HS256_SECRET, **claims: Any) -> str:
        return jwt.encode(self.claims(sub, **claims), secret, algorithm="HS256")


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Any = _Omit()
_OMIT = OMIT


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
