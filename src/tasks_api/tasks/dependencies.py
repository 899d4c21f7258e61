"""`TaskServiceDep`: a task service bound to this request's session and the caller's id."""

from typing import Annotated

from fastapi import Depends

from tasks_api.auth.dependencies import CurrentUserId
from tasks_api.database import SessionDep
from tasks_api.tasks.repository import TaskRepository
from tasks_api.tasks.service import TaskService


async def get_task_service(session: SessionDep, user_id: CurrentUserId) -> TaskService:
    return TaskService(TaskRepository(session, user_id))


TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]
