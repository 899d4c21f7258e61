"""`/api/me`: who the token says the caller is."""

from fastapi import APIRouter
from pydantic import BaseModel

from tasks_api.auth.dependencies import CurrentClaims
from tasks_api.problem_details import problem_responses

router = APIRouter(prefix="/api", tags=["identity"])


class MeResponse(BaseModel):
    id: str
    email: str | None = None
    name: str | None = None


@router.get("/me", responses=problem_responses(401, 429, 503))
async def get_me(claims: CurrentClaims) -> MeResponse:
    """The caller's identity, as carried by the token."""
    return MeResponse(id=claims.sub, email=claims.email, name=claims.name)
