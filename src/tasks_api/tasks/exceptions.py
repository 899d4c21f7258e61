"""Task errors, each a kind from `tasks_api.errors` with a human detail."""

from tasks_api.conditional_requests import entity_tag
from tasks_api.errors import BadRequestError, NotFoundError, PreconditionFailedError


class TaskNotFoundError(NotFoundError):
    code = "task_not_found"

    def __init__(self) -> None:
        # The same words whether the task never existed or belongs to someone else.
        super().__init__("No task with this id exists.")


class InvalidCursorError(BadRequestError):
    code = "invalid_cursor"


class TaskVersionMismatchError(PreconditionFailedError):
    def __init__(self, current_version: int) -> None:
        # The current ETag lets the client fetch, merge and retry without a second round trip.
        super().__init__(
            "The task has changed since you read it (If-Match does not match its ETag). "
            "Read it again, then retry with its new ETag.",
            headers={"ETag": entity_tag(current_version)},
        )
