import httpx

from tasks_api.tasks.models import Task
from tests.problems import assert_problem


async def test_get_task_returns_every_field(
    client: httpx.AsyncClient, owner_headers: dict[str, str], owner_id: str, task: Task
) -> None:
    response = await client.get(f"/api/tasks/{task.id}", headers=owner_headers)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["etag"] == '"1"'
    assert response.json() == {
        "id": str(task.id),
        "user_id": owner_id,
        "title": "Water the plants 🌱",
        "description": "Balcony first",
        "completed": True,
        "completed_at": "2025-06-01T00:00:00Z",
        "priority": "high",
        "due_date": "2026-12-24T16:30:00Z",
        "position": 7,
        "version": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "deleted": False,
    }


async def test_get_task_without_token_returns_401(client: httpx.AsyncClient, task: Task) -> None:
    response = await client.get(f"/api/tasks/{task.id}")

    assert_problem(response, 401, "missing_token")
