"""The task routes as data (method, URL, what a body needs), so one test can run against several."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest


@dataclass(frozen=True)
class Route:
    """A route named by its operation id, with the fields every JSON body to it must carry."""

    operation: str
    method: str
    path: str = "/api/tasks/{task_id}"
    required: Mapping[str, Any] = field(default_factory=dict)

    def url(self, task_id: object) -> str:
        return self.path.format(task_id=task_id)

    def body(self, **fields: Any) -> dict[str, Any]:
        """A JSON body: `fields` over the ones this route requires."""
        return {**self.required, **fields}

    async def send(
        self, client: httpx.AsyncClient, task_id: object, auth: dict[str, str], **request: Any
    ) -> httpx.Response:
        """The request, with httpx's own options (`json`, `content`, more `headers`)."""
        headers = {**auth, **request.pop("headers", {})}
        return await client.request(self.method, self.url(task_id), headers=headers, **request)


CREATE_TASK = Route("create_task", "POST", "/api/tasks")
GET_TASK = Route("get_task", "GET")
# "A task" is the factory's title, so a PUT that is about another field keeps the title.
UPDATE_TASK = Route("update_task", "PUT", required={"title": "A task"})
PATCH_TASK = Route("patch_task", "PATCH")
TOGGLE_TASK_COMPLETION = Route("toggle_task_completion", "PATCH", "/api/tasks/{task_id}/complete")
DELETE_TASK = Route("delete_task", "DELETE")

# Every write to an existing task, each with a body that changes it (None: the route takes none),
# as pytest parameters named after the route.
WRITES_TO_A_TASK = [
    pytest.param(route, body, id=route.operation)
    for route, body in [
        (UPDATE_TASK, {"title": "Changed"}),
        (PATCH_TASK, {"title": "Changed"}),
        (TOGGLE_TASK_COMPLETION, {}),
        (DELETE_TASK, None),
    ]
]
