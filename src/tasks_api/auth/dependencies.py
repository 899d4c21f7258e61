"""`CurrentUserId`: the only way code learns who is calling, from the verified token's `sub`."""

from typing import Annotated, NewType

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tasks_api.auth.tokens import TokenClaims, TokenVerifier
from tasks_api.errors import UnauthenticatedError

UserId = NewType("UserId", str)

# auto_error=False: a missing header becomes our 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(
    auto_error=False,
    description="The JWT from Better-Auth's GET /api/auth/token (dev: `tasks-api token`).",
)


async def get_token_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
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
    claims = await verifier.verify(credentials.credentials)
    # For the access log line; never the token itself.
    request.state.user_id = claims.sub
    return claims


CurrentClaims = Annotated[TokenClaims, Depends(get_token_claims)]


async def get_current_user_id(claims: CurrentClaims) -> UserId:
    return UserId(claims.sub)


CurrentUserId = Annotated[UserId, Depends(get_current_user_id)]
