"""Task errors, each a kind from `tasks_api.errors` with a human detail."""

from tasks_api.errors import BadRequestError, NotFoundError


class TaskNotFoundError(NotFoundError):
    code = "task_not_found"

    def __init__(self) -> None:
        # The same words whether the task never existed or belongs to someone else.
        super().__init__("No task with this id exists.")


class InvalidCursorError(BadRequestError):
    code = "invalid_cursor"
