"""Every error is an RFC 9457 problem, and every response carries an X-Request-ID."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tasks_api.tasks.dependencies import get_task_service
from tasks_api.tasks.service import TaskService
from tests.asgi import serving
from tests.problems import PROBLEM_FIELDS, assert_problem

SOME_TASK_ID = "0195f3a1-7c2e-7d4b-9a61-2f0c1e7b9a10"


async def test_unknown_route_returns_404_problem(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.get("/api/nothing-here", headers=owner_headers)

    assert_problem(response, 404, "not_found")


# RFC 9110 section 15.5.6: Allow lists every method the resource supports.
@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("GET", f"/api/tasks/{SOME_TASK_ID}/complete", {"PATCH"}, id="get-complete"),
        pytest.param("PUT", "/api/tasks", {"GET", "POST"}, id="put-list"),
        pytest.param("DELETE", "/api/tasks", {"GET", "POST"}, id="delete-list"),
        pytest.param(
            "POST",
            f"/api/tasks/{SOME_TASK_ID}",
            {"GET", "PUT", "PATCH", "DELETE"},
            id="post-task",
        ),
    ],
)
async def test_wrong_method_returns_405_problem_with_allow_header(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    method: str,
    path: str,
    allowed: set[str],
) -> None:
    response = await client.request(method, path, headers=owner_headers, json={"title": "x"})

    body = assert_problem(response, 405, "method_not_allowed")
    assert {name.strip() for name in response.headers["allow"].split(",")} == allowed
    assert method in body["detail"]


@pytest.mark.parametrize(
    "request_id",
    ["abc-123", "0195f3a1-7c2e-7d4b-9a61-2f0c1e7b9a10", "trace.span:1_2", "x" * 128],
)
async def test_well_formed_request_id_is_echoed_in_header_and_problem(
    client: httpx.AsyncClient, request_id: str
) -> None:
    response = await client.get(f"/api/tasks/{uuid.uuid4()}", headers={"X-Request-ID": request_id})

    assert response.headers["x-request-id"] == request_id
    assert assert_problem(response, 401, "missing_token")["request_id"] == request_id


@pytest.mark.parametrize(
    "request_id",
    ["", "x" * 129, "x" * 300, "has spaces", "semi;colon", "a,b", 'quote"d', "tab\tbed"],
    ids=["empty", "129-chars", "300-chars", "spaces", "semicolon", "comma", "quote", "tab"],
)
async def test_malformed_request_id_is_replaced_by_a_generated_one(
    client: httpx.AsyncClient, request_id: str
) -> None:
    response = await client.get(f"/api/tasks/{uuid.uuid4()}", headers={"X-Request-ID": request_id})

    generated = response.headers["x-request-id"]
    assert generated != request_id
    assert uuid.UUID(generated).version == 7
    assert assert_problem(response, 401, "missing_token")["request_id"] == generated


async def test_request_id_is_generated_when_none_is_sent(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    first = await client.get("/api/tasks", headers=owner_headers)
    second = await client.get("/api/tasks", headers=owner_headers)

    assert uuid.UUID(first.headers["x-request-id"]).version == 7
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/health", None, 200),
        ("GET", "/api/tasks", None, 200),
        ("POST", "/api/tasks", {"title": "Has an id"}, 201),
        ("GET", "/api/tasks/not-a-uuid", None, 422),
        ("GET", f"/api/tasks/{SOME_TASK_ID}", None, 404),
        ("GET", "/nowhere", None, 404),
        ("PUT", "/api/tasks", None, 405),
        ("POST", "/api/tasks", {"title": ""}, 422),
    ],
)
async def test_every_response_has_a_request_id(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
) -> None:
    response = await client.request(method, path, json=body, headers=owner_headers)

    assert response.status_code == status
    assert uuid.UUID(response.headers["x-request-id"]).version == 7


async def test_request_id_is_sent_on_a_204_response(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    created = await client.post("/api/tasks", json={"title": "Bye"}, headers=owner_headers)

    response = await client.delete(created.headers["location"], headers=owner_headers)

    assert response.status_code == 204
    assert uuid.UUID(response.headers["x-request-id"]).version == 7


async def test_request_id_is_sent_on_a_401_response(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks", headers={"X-Request-ID": "from-the-client"})

    assert response.headers["x-request-id"] == "from-the-client"
    assert_problem(response, 401, "missing_token")


async def _broken_task_service() -> TaskService:
    raise RuntimeError("secret internal detail")


@pytest.fixture
async def failing_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client for an app whose task routes raise an unexpected exception."""
    app.dependency_overrides[get_task_service] = _broken_task_service
    # Starlette re-raises after answering with the 500; the client should see the response.
    async with serving(app, raise_app_exceptions=False) as client:
        yield client


async def test_unhandled_error_returns_generic_500_problem_with_request_id(
    failing_client: httpx.AsyncClient,
) -> None:
    response = await failing_client.get(
        f"/api/tasks/{uuid.uuid4()}", headers={"X-Request-ID": "trace-500"}
    )

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("x-request-id") == "trace-500"
    body = response.json()
    assert body.keys() >= PROBLEM_FIELDS
    assert (body["status"], body["code"], body["request_id"]) == (
        500,
        "internal_error",
        "trace-500",
    )
    assert "secret internal detail" not in response.text
    assert "RuntimeError" not in response.text
