"""Tokens for the benchmark's users, and the key set the servers verify them with.

By default the harness signs EdDSA tokens, as Better-Auth does, and serves the public key as a
JWKS from a tiny HTTP server on a loopback port: the service then runs its production path
(AUTH_JWKS_URL, a cached key, an Ed25519 verification per request). `--auth hs256` uses a shared
BETTER_AUTH_SECRET instead, which costs less per request and needs no key server.
"""

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

AuthMode = Literal["eddsa", "hs256"]
JWKS_PATH = "/api/auth/jwks"
KEY_ID = "bench-key-1"
# Longer than any full run, so no token expires in the middle of a measurement.
TOKEN_LIFETIME_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Signer:
    """Mints tokens and says how the servers must be configured to accept them."""

    mode: AuthMode
    issuer: str
    private_key: Ed25519PrivateKey | None = None
    secret: str | None = None

    def token(self, sub: str) -> str:
        now = int(time.time())
        # Shaped like Better-Auth's jwt() plugin: its claims, its issuer and audience.
        claims: dict[str, Any] = {
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "sub": sub,
            "id": sub,
            "email": f"{sub}@example.com",
            "name": sub,
            "emailVerified": True,
            "iss": self.issuer,
            "aud": self.issuer,
        }
        if self.private_key is not None:
            return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": KEY_ID})
        assert self.secret is not None
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def environment(self) -> dict[str, str]:
        """The settings both servers read (the ceiling uses the service's variable names)."""
        keys = (
            {"AUTH_JWKS_URL": self.issuer + JWKS_PATH}
            if self.secret is None
            else {"BETTER_AUTH_SECRET": self.secret}
        )
        return {**keys, "AUTH_ISSUER": self.issuer, "AUTH_AUDIENCE": self.issuer}


@contextmanager
def signer(mode: AuthMode) -> Iterator[Signer]:
    """A signer; in EdDSA mode with its JWKS served on a loopback port until the block ends."""
    if mode == "hs256":
        yield Signer(mode, "http://127.0.0.1", secret=secrets.token_urlsafe(32))
        return
    private_key = Ed25519PrivateKey.generate()
    public_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(private_key.public_key()))
    document = json.dumps({"keys": [{**public_jwk, "alg": "EdDSA", "kid": KEY_ID}]}).encode()

    class JwksHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == JWKS_PATH
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # each server fetches once per worker; nothing worth printing

    server = ThreadingHTTPServer(("127.0.0.1", 0), JwksHandler)
    thread = threading.Thread(target=server.serve_forever, name="jwks", daemon=True)
    thread.start()
    try:
        yield Signer(mode, f"http://127.0.0.1:{server.server_port}", private_key=private_key)
    finally:
        server.shutdown()
        server.server_close()
