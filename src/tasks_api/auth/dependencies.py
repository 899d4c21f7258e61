"""`CurrentUserId`: the only way code learns who is calling, from the verified token's `sub`.

Also where requests meet the rate limits (rate_limits.py): after verification, a valid token
counts against its user and a rejected one against the client address.
"""

from typing import Annotated, NewType

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tasks_api.auth.tokens import TokenClaims, TokenVerifier
from tasks_api.errors import ForbiddenError, RateLimitExceededError, UnauthenticatedError
from tasks_api.rate_limits import STATE_KEY, RateLimiter, RateLimitStatus

UserId = NewType("UserId", str)

_SCHEME = "HTTPBearer"  # the security scheme's name in the OpenAPI document
_DESCRIPTION = "The JWT from Better-Auth's GET /api/auth/token (dev: `tasks-api token`)."


class _VerifiedBearer(HTTPBearer):
    """FastAPI's HTTPBearer, which reads the credentials and documents the scheme in OpenAPI,
    with the verification in the same call: one dependency for FastAPI to solve instead of two
    on every request (about 10 us each, measured on a bare route).

    auto_error=False: a missing header becomes our 401 problem, not FastAPI's 403.
    """

    def __init__(self) -> None:
        super().__init__(scheme_name=_SCHEME, description=_DESCRIPTION, auto_error=False)

    # Returns the verified claims where HTTPBearer returns the raw credentials.
    async def __call__(self, request: Request) -> TokenClaims:  # type: ignore[override]
        return await _authenticate(request, await super().__call__(request))


class _VerifiedBearerUser(_VerifiedBearer):
    """The same, handing the route only the user id (`sub`)."""

    async def __call__(self, request: Request) -> UserId:  # type: ignore[override]
        return UserId((await super().__call__(request)).sub)


# A route takes one of the two, never both: each verifies and counts against the rate limit, and
# tests/test_rate_limits.py expects one hit per request.
CurrentClaims = Annotated[TokenClaims, Depends(_VerifiedBearer())]
CurrentUserId = Annotated[UserId, Depends(_VerifiedBearerUser())]


async def _authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> TokenClaims:
    limiter: RateLimiter | None = request.app.state.rate_limiter
    try:
        claims = await _verify(request, credentials)
    except UnauthenticatedError:
        # Only rejected requests count against the address, which slows down token guessing;
        # valid ones count against their user alone, since many users may share one NAT address.
        if limiter is not None:
            _enforce(
                request,
                await limiter.hit_address(request.client.host if request.client else "unknown"),
                "Too many requests without a valid token from this address.",
            )
        raise
    # For the access log line; never the token itself.
    request.state.user_id = claims.sub
    if limiter is not None:
        _enforce(request, await limiter.hit_user(claims.sub), "Too many requests for this user.")
    return claims


def _enforce(request: Request, status: RateLimitStatus | None, detail: str) -> None:
    if status is None:
        return  # the limiter's storage failed: serve unlimited (fail open, see rate_limits.py)
    # For RateLimitHeadersMiddleware, which adds the headers to whatever response follows.
    setattr(request.state, STATE_KEY, status)
    if not status.allowed:
        raise RateLimitExceededError(
            f"{detail} Retry in {status.reset_seconds} s.",
            retry_after_seconds=status.reset_seconds,
        )


async def _verify(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> TokenClaims:
    if len(request.headers.getlist("authorization")) > 1:
        # HTTPBearer reads the first; a proxy, a cache or a log may read another. Rather than pick
        # one, refuse the request: which credentials it carries is ambiguous.
        raise UnauthenticatedError("Send one Authorization header, not several.")
    if credentials is None:
        # RFC 6750 3.1: a request without Bearer credentials (none, or another scheme such as
        # Basic) gets a challenge without an error code.
        header = request.headers.get("authorization", "")
        if header.split(" ", 1)[0].lower() == "bearer":
            raise UnauthenticatedError("The Bearer token is empty.", code="invalid_token")
        if header:
            raise UnauthenticatedError(
                "Use the Bearer scheme: Authorization: Bearer <JWT>.",
                code="unsupported_scheme",
                credentials_sent=False,
            )
        raise UnauthenticatedError(
            "Send a Bearer token: Authorization: Bearer <JWT>.",
            code="missing_token",
            credentials_sent=False,
        )
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(credentials.credentials)


async def require_path_user(
    user_id: Annotated[
        str,
        Path(description="Must be the caller's own id (the token's `sub`); used for nothing else."),
    ],
    caller: CurrentUserId,
) -> None:
    """For frontends that put the user in the path (`/api/{user_id}/tasks`): the path must name
    the caller. Only the token says who the caller is; the path is checked, never trusted."""
    if user_id != caller:
        raise ForbiddenError(
            "The user id in the path is not the signed-in user's.", code="user_mismatch"
        )
