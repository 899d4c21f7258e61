"""Every error as `application/problem+json` (RFC 9457), with a stable `code` and the request id.

Hand-written rather than a library: the existing packages render the RFC fields but not our
`code`/`request_id`/`errors` members or the `WWW-Authenticate` and `Retry-After` headers, and the
whole mapping is this one module.
"""

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from tasks_api.errors import AppError
from tasks_api.request_context import REQUEST_ID_HEADER

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Problem types are identifiers (RFC 9457 section 3.1.1): the code, as a URI.
PROBLEM_BASE = "https://tasks-api.dev/problems/"


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem, plus `code` (stable, snake_case) and `request_id`."""

    type: str = Field(examples=[PROBLEM_BASE + "task-not-found"])
    title: str
    status: int
    detail: str
    code: str = Field(examples=["task_not_found"])
    request_id: str | None = None
    errors: list[FieldError] | None = Field(default=None, description="Validation errors only.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting problem bodies for the given statuses."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code.replace("_", "-"),
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request.state, "request_id", None),
    }
    if errors is not None:
        body["errors"] = errors
    response = JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)
    if body["request_id"] is not None:
        # Also on a 500, which Starlette sends from outside the request-id middleware.
        response.headers[REQUEST_ID_HEADER] = body["request_id"]
    return response


async def _app_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, AppError)
    return problem_response(
        request,
        status=error.status,
        code=error.code,
        title=error.title,
        detail=error.detail,
        headers=error.headers,
    )


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    if isinstance(error.body, bytes):
        # FastAPI parses a body as JSON only when Content-Type says so (application/json or
        # */*+json) and hands any other body to validation as raw bytes. That is the wrong media
        # type, not a wrong value: say so (RFC 9110 15.5.16), and which one to use (Accept).
        return problem_response(
            request,
            status=415,
            code="unsupported_media_type",
            detail="Send the body as JSON, with Content-Type: application/json.",
            headers={"Accept": "application/json"},
        )
    errors = [
        {"loc": list(item.get("loc", ())), "msg": item.get("msg", ""), "type": item.get("type", "")}
        for item in error.errors()
    ]
    if any(item["type"] == "json_invalid" for item in errors):
        return _malformed_json(request)
    return problem_response(
        request,
        status=422,
        code="validation_failed",
        detail="The request did not pass validation; see `errors`.",
        errors=errors,
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    status = error.status_code
    headers = dict(error.headers or {})
    if status == 400 and error.__cause__ is not None:
        # FastAPI's "error parsing the body": bytes that are not UTF-8, or not JSON at all.
        return _malformed_json(request)
    if status == 405:
        # RFC 9110: Allow lists every method the path supports, not just the first route's.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    detail = {
        404: "No resource lives at this path.",
        405: f"{request.method} is not allowed on this path.",
    }.get(status, str(error.detail))
    return problem_response(
        request,
        status=status,
        code=_HTTP_CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_")),
        detail=detail,
        headers=headers,
    )


def _allowed_methods(request: Request) -> list[str]:
    # Read from the (cached) OpenAPI document: FastAPI's router internals are not a stable API.
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), request.url.path):
            methods.update(method.upper() for method in operations)
    return sorted(methods)


def _malformed_json(request: Request) -> JSONResponse:
    return problem_response(
        request, status=400, code="malformed_json", detail="The request body is not valid JSON."
    )


async def _unhandled(request: Request, error: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=error)
    return problem_response(
        request,
        status=500,
        code="internal_error",
        detail="Something went wrong on our side. The request id helps us find out what.",
    )


def _document_problem_schema(app: FastAPI) -> None:
    """Add `Problem` to the OpenAPI components: the responses above refer to it by name only, so
    that FastAPI does not also list them as `application/json`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in components:
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(problem.pop("$defs", {}))
            components["Problem"] = problem
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override point


def add_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)
    _document_problem_schema(app)
