"""`TaskServiceDep`: a task service bound to this request's database and the caller's id.

Also the conditional-request headers, turned into the version conditions the service takes.
"""

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Header, Request

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.conditional_requests import (
    MalformedConditionError,
    VersionCondition,
    parse_if_match,
    parse_if_none_match,
)
from tasks_api.database import DatabaseDep
from tasks_api.errors import InvalidPreconditionError, PreconditionRequiredError
from tasks_api.tasks.repository import TaskRepository
from tasks_api.tasks.service import TaskService


async def get_task_service(
    request: Request, database: DatabaseDep, user_id: CurrentUserId
) -> TaskService:
    retention_days: int = request.app.state.settings.tombstone_retention_days
    return TaskService(
        TaskRepository(database, user_id),
        atomic=database.atomic,
        tombstone_retention=timedelta(days=retention_days),
    )


TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]


async def get_write_precondition(
    request: Request,
    if_match: Annotated[
        str | None,
        Header(
            description=(
                'The ETag you last saw (`"3"`), or `*`. If the task has changed since, nothing '
                "is written and the answer is 412 with the current ETag."
            )
        ),
    ] = None,
) -> VersionCondition | None:
    if if_match is None:
        if request.app.state.settings.require_if_match:
            raise PreconditionRequiredError(
                "This service requires If-Match on changes: send the ETag of your last read."
            )
        return None  # last write wins
    try:
        return parse_if_match(if_match)
    except MalformedConditionError:
        # Not silently unconditional: the client meant to guard this write.
        raise InvalidPreconditionError(
            'If-Match must be * or a list of quoted entity tags, such as "3".'
        ) from None


async def get_read_condition(
    if_none_match: Annotated[
        str | None,
        Header(description="The ETag you hold: 304 Not Modified, with no body, while it matches."),
    ] = None,
) -> VersionCondition | None:
    if if_none_match is None:
        return None
    try:
        return parse_if_none_match(if_none_match)
    except MalformedConditionError:
        return None  # a cache validator we cannot read only costs a full response


WritePreconditionDep = Annotated[VersionCondition | None, Depends(get_write_precondition)]
ReadConditionDep = Annotated[VersionCondition | None, Depends(get_read_condition)]
