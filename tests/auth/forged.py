"""Hand-built compact JWTs for what PyJWT refuses to encode: alg none, odd headers, HMAC keys."""

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

Signer = Callable[[bytes], bytes]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def compact_jwt(header: dict[str, Any], claims: dict[str, Any], sign: Signer | None = None) -> str:
    """`header.claims.signature`; an empty signature when `sign` is None (as for `alg: none`)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = sign(signing_input.encode("ascii")) if sign is not None else b""
    return f"{signing_input}.{b64url(signature)}"


def hmac_sha256(secret: bytes) -> Signer:
    def sign(message: bytes) -> bytes:
        return hmac.new(secret, message, hashlib.sha256).digest()

    return sign
