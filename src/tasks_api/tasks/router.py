"""`/api/tasks`: HTTP in, schemas out. No SQL and no business rules here."""

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Query, Request, Response, status

from tasks_api.conditional_requests import entity_tag
from tasks_api.idempotency.dependencies import (
    REPLAYED_HEADER,
    IdempotencyKeyHeader,
    IdempotencyServiceDep,
)
from tasks_api.idempotency.service import StoredResponse
from tasks_api.problem_details import problem_responses
from tasks_api.tasks.dependencies import ReadConditionDep, TaskServiceDep, WritePreconditionDep
from tasks_api.tasks.models import TaskRecord
from tasks_api.tasks.representation import page_json, task_document, task_json
from tasks_api.tasks.schemas import (
    CompletionChange,
    TaskChange,
    TaskCreate,
    TaskListParams,
    TaskPatch,
    TaskResponse,
    TaskUpdate,
)

# Mounted twice by main.py: at /api/tasks, and at /api/{user_id}/tasks for existing frontends.
router = APIRouter(tags=["tasks"])
PREFIX = "/api/tasks"
USER_SCOPED_PREFIX = "/api/{user_id}/tasks"

_AUTH = (401, 429, 503)
# Writes to an existing task: a malformed body or If-Match (400), a stale If-Match (412), a
# missing one when required (428), a body not sent as JSON (415).
_WRITE = (400, 404, 412, 413, 415, 422, 428, *_AUTH)
_ETAG_HEADER = {
    "ETag": {
        "description": "The task's version, for If-Match and If-None-Match.",
        "schema": {"type": "string"},
    }
}
SYNC_HEADER = "Sync-Token"


def _task_response(task: TaskRecord) -> Response:
    """The task as JSON, with the ETag that conditional requests compare against."""
    return Response(
        task_json(task), headers={"ETag": entity_tag(task.version)}, media_type="application/json"
    )


@router.get(
    "",
    response_model=list[TaskChange],
    responses={
        200: {
            "headers": {
                "Link": {
                    "description": 'The next page if any: `<url>; rel="next"` (RFC 8288).',
                    "schema": {"type": "string"},
                },
                SYNC_HEADER: {
                    "description": (
                        "With `updated_since`: send it as `updated_since` next time. The same on "
                        "every page of one sync."
                    ),
                    "schema": {"type": "string", "format": "date-time"},
                },
            }
        },
        **problem_responses(400, 422, *_AUTH),
    },
)
async def list_tasks(
    request: Request,
    params: Annotated[TaskListParams, Query()],
    tasks: TaskServiceDep,
) -> Response:
    """The caller's tasks, filtered and sorted, one page at a time (keyset pagination).

    Delta sync: with `updated_since`, only what changed after it, and with `include_deleted=true`
    deleted tasks too, as tombstones (`{"id", "deleted": true, "updated_at"}`).
    """
    page = await tasks.list_page(params)
    headers: dict[str, str] = {}
    if page.next_cursor is not None:
        next_url = request.url.include_query_params(cursor=page.next_cursor)
        headers["Link"] = f'<{next_url}>; rel="next"'
    if page.sync_token is not None:
        # `Z`, not `+00:00`: a `+` pasted into a query string unencoded would read as a space.
        headers[SYNC_HEADER] = page.sync_token.isoformat().replace("+00:00", "Z")
    return Response(page_json(page.items), headers=headers, media_type="application/json")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskResponse,
    responses={
        201: {
            "headers": {
                "Location": {"description": "The new task's URL.", "schema": {"type": "string"}},
                **_ETAG_HEADER,
                REPLAYED_HEADER: {
                    "description": (
                        "`true` when this is the stored response to an earlier request with the "
                        "same Idempotency-Key: nothing was created this time."
                    ),
                    "schema": {"type": "string", "enum": ["true"]},
                },
            }
        },
        # 400 and 422 also cover the Idempotency-Key (malformed; reused with another body), 409
        # its first request still running (retry after Retry-After).
        **problem_responses(400, 409, 413, 415, 422, *_AUTH),
    },
)
async def create_task(
    request: Request,
    data: TaskCreate,
    tasks: TaskServiceDep,
    idempotency: IdempotencyServiceDep,
    idempotency_key: IdempotencyKeyHeader,
) -> Response:
    """Create a task owned by the caller, only once per Idempotency-Key if you send one."""

    async def create() -> StoredResponse:
        task = await tasks.create(data)
        # The task's URL at /api/tasks, for either mount (url_for would try every route).
        location = f"{str(request.base_url).rstrip('/')}{PREFIX}/{task.id}"
        return StoredResponse(
            status.HTTP_201_CREATED,
            task_document(task),
            {"Location": location, "ETag": entity_tag(task.version)},
        )

    result = await idempotency.run(idempotency_key, data.model_dump(mode="json"), create)
    headers = dict(result.response.headers)
    if result.replayed:
        headers[REPLAYED_HEADER] = "true"
    # The JSON as stored rather than a model to serialise, so a replay is the first response.
    return Response(
        orjson.dumps(result.response.body),
        status_code=result.response.status_code,
        headers=headers,
        media_type="application/json",
    )


@router.get(
    "/{task_id}",
    response_model=TaskResponse,
    responses={
        200: {"headers": _ETAG_HEADER},
        304: {
            "description": "Not modified: the ETag in If-None-Match is current.",
            "headers": _ETAG_HEADER,
        },
        **problem_responses(404, 422, *_AUTH),
    },
)
async def get_task(task_id: uuid.UUID, tasks: TaskServiceDep, cached: ReadConditionDep) -> Response:
    """One of the caller's tasks."""
    task = await tasks.get(task_id)
    if cached is not None and cached.accepts(task.version):
        return Response(
            status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": entity_tag(task.version)}
        )
    return _task_response(task)


@router.put(
    "/{task_id}",
    response_model=TaskResponse,
    responses={200: {"headers": _ETAG_HEADER}, **problem_responses(*_WRITE)},
)
async def update_task(
    task_id: uuid.UUID,
    data: TaskUpdate,
    tasks: TaskServiceDep,
    only_if: WritePreconditionDep,
) -> Response:
    """Replace every writable field; omitted optional fields return to their defaults."""
    return _task_response(await tasks.replace(task_id, data, only_if))


@router.patch(
    "/{task_id}",
    response_model=TaskResponse,
    responses={200: {"headers": _ETAG_HEADER}, **problem_responses(*_WRITE)},
)
async def patch_task(
    task_id: uuid.UUID,
    changes: TaskPatch,
    tasks: TaskServiceDep,
    only_if: WritePreconditionDep,
) -> Response:
    """Change only the fields sent; `null` clears `description` or `due_date`."""
    return _task_response(await tasks.patch(task_id, changes, only_if))


@router.patch(
    "/{task_id}/complete",
    response_model=TaskResponse,
    responses={200: {"headers": _ETAG_HEADER}, **problem_responses(*_WRITE)},
)
async def toggle_task_completion(
    task_id: uuid.UUID,
    tasks: TaskServiceDep,
    only_if: WritePreconditionDep,
    change: Annotated[CompletionChange | None, Body()] = None,
) -> Response:
    """Flip completion, or set it with `{"completed": true|false}`, in one atomic update."""
    completed = change.completed if change is not None else None
    return _task_response(await tasks.set_completion(task_id, completed, only_if))


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(400, 404, 412, 422, 428, *_AUTH),
)
async def delete_task(
    task_id: uuid.UUID, tasks: TaskServiceDep, only_if: WritePreconditionDep
) -> None:
    """Delete one of the caller's tasks (delta sync reports it as a tombstone for a while)."""
    await tasks.delete(task_id, only_if)
