"""`/api/tasks`: HTTP in, schemas out. No SQL and no business rules here."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from tasks_api.problem_details import problem_responses
from tasks_api.tasks.dependencies import TaskServiceDep
from tasks_api.tasks.schemas import (
    CompletionChange,
    TaskCreate,
    TaskListParams,
    TaskPatch,
    TaskResponse,
    TaskUpdate,
)

router = APIRouter(prefix="/api/tasks", tags=["tasks"])

_AUTH = (401, 429, 503)


@router.get(
    "",
    responses={
        200: {
            "headers": {
                "Link": {
                    "description": 'The next page if any: `<url>; rel="next"` (RFC 8288).',
                    "schema": {"type": "string"},
                }
            }
        },
        **problem_responses(400, 422, *_AUTH),
    },
)
async def list_tasks(
    request: Request,
    response: Response,
    params: Annotated[TaskListParams, Query()],
    tasks: TaskServiceDep,
) -> list[TaskResponse]:
    """The caller's tasks, filtered and sorted, one page at a time (keyset pagination)."""
    page = await tasks.list_page(params)
    if page.next_cursor is not None:
        next_url = request.url.include_query_params(cursor=page.next_cursor)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return [TaskResponse.model_validate(task) for task in page.items]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {
            "headers": {
                "Location": {"description": "The new task's URL.", "schema": {"type": "string"}}
            }
        },
        **problem_responses(400, 413, 422, *_AUTH),
    },
)
async def create_task(
    request: Request, response: Response, data: TaskCreate, tasks: TaskServiceDep
) -> TaskResponse:
    """Create a task owned by the caller."""
    task = await tasks.create(data)
    response.headers["Location"] = str(request.url_for("get_task", task_id=task.id))
    return TaskResponse.model_validate(task)


@router.get("/{task_id}", responses=problem_responses(404, 422, *_AUTH))
async def get_task(task_id: uuid.UUID, tasks: TaskServiceDep) -> TaskResponse:
    """One of the caller's tasks."""
    return TaskResponse.model_validate(await tasks.get(task_id))


@router.put("/{task_id}", responses=problem_responses(400, 404, 413, 422, *_AUTH))
async def update_task(task_id: uuid.UUID, data: TaskUpdate, tasks: TaskServiceDep) -> TaskResponse:
    """Replace every writable field; omitted optional fields return to their defaults."""
    return TaskResponse.model_validate(await tasks.replace(task_id, data))


@router.patch("/{task_id}", responses=problem_responses(400, 404, 413, 422, *_AUTH))
async def patch_task(task_id: uuid.UUID, changes: TaskPatch, tasks: TaskServiceDep) -> TaskResponse:
    """Change only the fields sent; `null` clears `description` or `due_date`."""
    return TaskResponse.model_validate(await tasks.patch(task_id, changes))


@router.patch("/{task_id}/complete", responses=problem_responses(400, 404, 413, 422, *_AUTH))
async def toggle_task_completion(
    task_id: uuid.UUID,
    tasks: TaskServiceDep,
    change: Annotated[CompletionChange | None, Body()] = None,
) -> TaskResponse:
    """Flip completion, or set it with `{"completed": true|false}`, in one atomic update."""
    completed = change.completed if change is not None else None
    return TaskResponse.model_validate(await tasks.set_completion(task_id, completed))


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404, 422, *_AUTH),
)
async def delete_task(task_id: uuid.UUID, tasks: TaskServiceDep) -> None:
    """Delete one of the caller's tasks."""
    await tasks.delete(task_id)
