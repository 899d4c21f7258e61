"""`IdempotencyKeyHeader` (the parsed Idempotency-Key) and `IdempotencyServiceDep`."""

import re
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Header, Request

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.database import DatabaseDep
from tasks_api.errors import InvalidIdempotencyKeyError
from tasks_api.idempotency.models import KEY_MAX_LENGTH
from tasks_api.idempotency.repository import IdempotencyRepository
from tasks_api.idempotency.service import IdempotencyService

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

# Printable ASCII: a key is the client's opaque token (a UUID, typically), compared byte for byte.
# A Structured Field string as the draft writes it ("...", quotes included) fits as well.
_VALID_KEY = re.compile(rf"[\x20-\x7e]{{1,{KEY_MAX_LENGTH}}}")


async def get_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_KEY_HEADER,
            description=(
                "Your unique id for this create (a UUID, say; 1-255 printable ASCII characters). "
                "Retrying with the same key and body returns the first response, marked "
                "`Idempotent-Replayed: true`, instead of creating another task. Keys are kept "
                "for IDEMPOTENCY_KEY_TTL_SECONDS (a day by default)."
            ),
        ),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if not _VALID_KEY.fullmatch(idempotency_key):
        # The value is not echoed back: it may be anything, control characters included.
        raise InvalidIdempotencyKeyError(
            f"Idempotency-Key must be 1-{KEY_MAX_LENGTH} printable ASCII characters."
        )
    return idempotency_key


IdempotencyKeyHeader = Annotated[str | None, Depends(get_idempotency_key)]


async def get_idempotency_service(
    request: Request, database: DatabaseDep, user_id: CurrentUserId
) -> IdempotencyService:
    ttl_seconds: int = request.app.state.settings.idempotency_key_ttl_seconds
    return IdempotencyService(
        IdempotencyRepository(database, user_id),
        atomic=database.atomic,
        ttl=timedelta(seconds=ttl_seconds),
    )


IdempotencyServiceDep = Annotated[IdempotencyService, Depends(get_idempotency_service)]
