"""The committed OpenAPI contract is what the app serves; every operation documents its errors."""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tasks_api.export_openapi import CONTRACT_PATH, openapi_schema, render

REGENERATE = "run `uv run python -m tasks_api.export_openapi` and commit the result"
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CAMEL_CASE = re.compile(r"[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)*")
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def committed_text() -> str:
    assert CONTRACT_PATH.exists(), f"{CONTRACT_PATH} is missing: {REGENERATE}"
    return CONTRACT_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def contract(committed_text: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(committed_text)
    return document


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def test_committed_contract_is_the_apps_schema(app: FastAPI, contract: dict[str, Any]) -> None:
    # Through JSON, as the file went, so tuples and the like compare as what a client reads.
    served = json.loads(json.dumps(app.openapi()))

    assert served == contract, f"the API changed but its contract did not: {REGENERATE}"


def test_committed_contract_is_formatted_as_the_exporter_writes_it(committed_text: str) -> None:
    assert committed_text == render(openapi_schema()), f"contract edited by hand? {REGENERATE}"


def test_contract_path_is_the_spec_folder(project_root: Path) -> None:
    assert project_root / "specs" / "001-tasks-api" / "contracts" / "openapi.json" == CONTRACT_PATH


def test_every_operation_has_a_unique_camel_case_operation_id(contract: dict[str, Any]) -> None:
    ids = [operation.get("operationId", "") for _, _, operation in _operations(contract)]

    assert ids
    assert [op_id for op_id in ids if not CAMEL_CASE.fullmatch(op_id)] == []
    assert len(ids) == len(set(ids))


def test_every_api_operation_requires_a_bearer_token_and_documents_401(
    contract: dict[str, Any],
) -> None:
    missing = [
        f"{method} {path}"
        for method, path, operation in _operations(contract)
        if path.startswith("/api/")
        and (
            "401" not in operation["responses"] or operation.get("security") != [{"HTTPBearer": []}]
        )
    ]

    assert missing == []


def test_every_operation_with_input_documents_422(contract: dict[str, Any]) -> None:
    missing = [
        f"{method} {path}"
        for method, path, operation in _operations(contract)
        if (operation.get("parameters") or "requestBody" in operation)
        and "422" not in operation["responses"]
    ]

    assert missing == []


def test_health_probes_need_no_token(contract: dict[str, Any]) -> None:
    probes = [
        operation for _, path, operation in _operations(contract) if path.startswith("/health")
    ]

    assert len(probes) == 2
    assert all("security" not in operation for operation in probes)
    assert all("401" not in operation["responses"] for operation in probes)


def test_every_error_response_is_a_problem_document(contract: dict[str, Any]) -> None:
    wrong = [
        f"{method} {path} {status}"
        for method, path, operation in _operations(contract)
        for status, response in operation["responses"].items()
        if status >= "400"
        and response.get("content", {}).get("application/problem+json", {}).get("schema")
        != PROBLEM_REF
    ]

    assert wrong == []
