"""Forged and broken tokens: hand-built compact JWTs for what PyJWT refuses to encode (alg none,
odd headers, HMAC keyed with a public key), and the builders the attack table is made of.

A builder is a `MakeToken`: given the test's `TokenFactory`, it returns the token to send. Time
claims are `NowPlus`, resolved when the token is signed rather than when the table is built.
"""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.tokens import KID, OMIT, TokenFactory

Signer = Callable[[bytes], bytes]
MakeToken = Callable[[TokenFactory], str]

SUB = "DWkcv8yqyI3jvDIwvaKRg3B3296MlD06"


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


def ed25519(*, headers: dict[str, Any] | None = None, **claims: Any) -> MakeToken:
    """Signed with the served key (PyJWT's own encoding), with these claims changed."""
    return lambda tokens: tokens.ed25519(SUB, headers=headers, **_resolve(claims))


def hs256(**claims: Any) -> MakeToken:
    return lambda tokens: tokens.hs256(SUB, **_resolve(claims))


def signed_by_another_key(tokens: TokenFactory, sub: str = SUB) -> str:
    # Same kid as the served key, so only the signature check can catch it.
    return TokenFactory(Ed25519PrivateKey.generate()).ed25519(sub)


def hmac_with_public_key(encoding: Encoding) -> MakeToken:
    """Algorithm confusion: HMAC keyed with the (public) verification key, kid and all."""
    public_format = (
        PublicFormat.Raw if encoding is Encoding.Raw else PublicFormat.SubjectPublicKeyInfo
    )

    def make(tokens: TokenFactory) -> str:
        secret = tokens.private_key.public_key().public_bytes(encoding, public_format)
        header = {"alg": "HS256", "kid": KID, "typ": "JWT"}
        return compact_jwt(header, tokens.claims(SUB), hmac_sha256(secret))

    return make


def hmac_with_public_jwk(tokens: TokenFactory) -> str:
    """Algorithm confusion with the key as the JWKS serves it: the JWK's JSON as the secret."""
    public = tokens.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "x": b64url(public), "kty": "OKP", "alg": "EdDSA", "kid": KID}
    secret = json.dumps(jwk, separators=(",", ":")).encode()
    return compact_jwt({"alg": "HS256", "kid": KID}, tokens.claims(SUB), hmac_sha256(secret))


def alg_none(spelling: str = "none", *, signed: bool = False) -> MakeToken:
    """`alg: none` in any spelling; unsigned, or with the served key's signature attached anyway."""

    def make(tokens: TokenFactory) -> str:
        sign = tokens.private_key.sign if signed else None
        return compact_jwt({"alg": spelling, "typ": "JWT", "kid": KID}, tokens.claims(SUB), sign)

    return make


def ed25519_header(**header: Any) -> MakeToken:
    """Signed with the served key, under a header PyJWT would not write."""
    return lambda tokens: compact_jwt(header, tokens.claims(SUB), tokens.private_key.sign)


def foreign_key_header(kid: str, **header: Any) -> MakeToken:
    """Signed with an attacker's key, under a header that says where to find it (`jku`, `x5u`,
    `jwk`...): honouring any of those would let the token vouch for itself."""

    def make(tokens: TokenFactory) -> str:
        attacker = Ed25519PrivateKey.generate()
        public = attacker.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        fields = {"alg": "EdDSA", "kid": kid, **header}
        if fields.get("jwk") == "attacker":
            fields["jwk"] = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public), "kid": kid}
        return compact_jwt(fields, tokens.claims(SUB), attacker.sign)

    return make


def with_sub(sub: object) -> MakeToken:
    # `sub` is also TokenFactory's positional argument, so these claims are built by hand.
    def make(tokens: TokenFactory) -> str:
        claims = {**tokens.claims(SUB), "sub": sub}
        if sub is OMIT:
            del claims["sub"]
        return compact_jwt({"alg": "EdDSA", "kid": KID}, claims, tokens.private_key.sign)

    return make


def with_segments(header: str | None = None, payload: str | None = None) -> MakeToken:
    """A token with its header or payload segment replaced by raw text, signed by the served key
    over what it carries: only the parsing can refuse it."""

    def make(tokens: TokenFactory) -> str:
        real_header, real_payload, _ = tokens.ed25519(SUB).split(".")
        signing_input = f"{header or real_header}.{payload or real_payload}"
        return f"{signing_input}.{b64url(tokens.private_key.sign(signing_input.encode()))}"

    return make


def _split_signature(tokens: TokenFactory) -> tuple[str, bytes]:
    signing_input, signature = tokens.ed25519(SUB).rsplit(".", 1)
    return signing_input, base64.urlsafe_b64decode(signature + "==")


def truncated_signature(tokens: TokenFactory) -> str:
    """Half the signature's bytes (32 of Ed25519's 64), canonically encoded: only the signature
    check can refuse it. (Cutting the text instead leaves stray bits, which is malformed.)"""
    signing_input, signature = _split_signature(tokens)
    return f"{signing_input}.{b64url(signature[:32])}"


def non_canonical_signature(tokens: TokenFactory) -> str:
    """The valid signature with the unused low bits of its last character set: the same bytes to
    a lenient decoder, another string to anyone comparing tokens."""
    signing_input, signature = _split_signature(tokens)
    text = b64url(signature)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 64 bytes are 86 characters, 516 bits: the last character's low 4 bits are padding, zero.
    return f"{signing_input}.{text[:-1]}{alphabet[alphabet.index(text[-1]) | 1]}"


def without_signature(tokens: TokenFactory) -> str:
    return tokens.ed25519(SUB).rsplit(".", 1)[0] + "."


def two_segments(tokens: TokenFactory) -> str:
    """A JWT with its signature dropped, dot and all: indistinguishable from a session token."""
    return tokens.ed25519(SUB).rsplit(".", 1)[0]


def session_token(tokens: TokenFactory) -> str:
    # Better-Auth's `<32-char id>.<base64 HMAC-SHA256>` session token.
    return f"{'a' * 32}.{b64url(hmac_sha256(b'better-auth-secret')(b'a' * 32))}="


def literal(token: str) -> MakeToken:
    return lambda tokens: token
