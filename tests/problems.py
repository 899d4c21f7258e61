"""The checks every problem+json response must pass, whatever the error."""

from typing import Any

import httpx

PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "request_id"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check the shape every error shares and return the body for further checks."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == "https://tasks-api.dev/problems/" + code.replace("_", "-")
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    if code == "validation_failed":
        assert body["errors"], "a validation problem lists its errors"
        for error in body["errors"]:
            assert error.keys() == {"loc", "msg", "type"}
    else:
        assert "errors" not in body
    return body


def without_request_id(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    body.pop("request_id")
    return body


def assert_database_unavailable(response: httpx.Response) -> None:
    """The 503 a client gets while the database cannot be reached: retry, after a pause."""
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"].isdigit()
