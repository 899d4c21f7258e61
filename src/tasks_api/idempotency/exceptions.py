"""Idempotency errors, each a kind from `tasks_api.errors` with a human detail."""

from tasks_api.errors import ConflictError, UnprocessableContentError

# Seconds a client waits before retrying a key that is in use: a create takes milliseconds.
RETRY_IN_PROGRESS_AFTER_SECONDS = 1


class IdempotencyKeyInProgressError(ConflictError):
    code = "idempotency_key_in_progress"

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed. Retry shortly to get "
            "its response.",
            headers={"Retry-After": str(RETRY_IN_PROGRESS_AFTER_SECONDS)},
        )


class IdempotencyKeyReusedError(UnprocessableContentError):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used with a different request body. Use a new key "
            "for a new request."
        )
