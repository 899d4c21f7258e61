"""Error kinds the service raises. Each knows its title, HTTP status and stable code.

Plain Python: no FastAPI here, so services raise these without knowing about HTTP.
"""

from collections.abc import Mapping


class AppError(Exception):
    status: int = 500
    title: str = "Internal server error"
    code: str = "internal_error"

    def __init__(
        self, detail: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})


class BadRequestError(AppError):
    status = 400
    title = "Bad request"
    code = "bad_request"


class UnauthenticatedError(AppError):
    """401 with an RFC 6750 challenge. `code` becomes the problem code; `error` the challenge's."""

    status = 401
    title = "Unauthorized"
    code = "invalid_token"

    def __init__(
        self, detail: str, *, code: str | None = None, credentials_sent: bool = True
    ) -> None:
        challenge = 'Bearer realm="tasks-api"'
        if credentials_sent:
            # The description is a fixed sentence of ours, never the token, so no quoting issues.
            challenge += f', error="invalid_token", error_description="{detail}"'
        super().__init__(detail, code=code, headers={"WWW-Authenticate": challenge})


class ForbiddenError(AppError):
    status = 403
    title = "Forbidden"
    code = "forbidden"


class NotFoundError(AppError):
    status = 404
    title = "Not found"
    code = "not_found"


class ConflictError(AppError):
    status = 409
    title = "Conflict"
    code = "conflict"


class UnprocessableContentError(AppError):
    status = 422
    title = "Unprocessable content"
    code = "unprocessable_content"


# Idempotent requests (idempotency/): the Idempotency-Key header is not one we can store.
class InvalidIdempotencyKeyError(BadRequestError):
    code = "invalid_idempotency_key"


# Conditional requests (conditional_requests.py, RFC 9110 section 13 and RFC 6585).
class PreconditionFailedError(AppError):
    status = 412
    title = "Precondition failed"
    code = "precondition_failed"


class InvalidPreconditionError(BadRequestError):
    code = "invalid_precondition"


class PreconditionRequiredError(AppError):
    status = 428
    title = "Precondition required"
    code = "precondition_required"


# Request size limits (request_limits.py). Titles are RFC 9110/6585's reason phrases.
class ContentTooLargeError(AppError):
    status = 413
    title = "Content too large"
    code = "body_too_large"


class UriTooLongError(AppError):
    status = 414
    title = "URI too long"
    code = "query_too_long"


class HeaderFieldsTooLargeError(AppError):
    status = 431
    title = "Request header fields too large"
    code = "headers_too_large"


class RateLimitExceededError(AppError):
    status = 429
    title = "Too many requests"
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class ServiceUnavailableError(AppError):
    status = 503
    title = "Service unavailable"
    code = "service_unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)})


class DatabaseUnavailableError(ServiceUnavailableError):
    code = "database_unavailable"
