import json
import logging

import httpx
import pytest

from tasks_api.logging import JsonFormatter

ACCESS_LOGGER = "tasks_api.request_context"


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == ACCESS_LOGGER]


async def test_each_request_logs_one_line_with_user_and_no_token_or_text(
    client: httpx.AsyncClient,
    owner_headers: dict[str, str],
    owner_token: str,
    owner_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="tasks_api")
    response = await client.post(
        "/api/tasks", json={"title": "secret plans"}, headers=owner_headers
    )

    records = _access_records(caplog)
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["method"] == "POST"
    assert line["path"] == "/api/tasks"
    assert line["status"] == 201
    assert line["user_id"] == owner_id
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"
    everything = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert owner_token not in everything
    assert "secret plans" not in everything
    assert response.headers["x-request-id"]


async def test_rejected_request_is_logged_without_user_and_without_token(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks_api")
    await client.get("/api/tasks", headers={"Authorization": "Bearer not-a-token"})

    records = _access_records(caplog)
    assert [(record.status, record.user_id) for record in records] == [(401, None)]  # type: ignore[attr-defined]
    assert "not-a-token" not in "\n".join(
        JsonFormatter().format(record) for record in caplog.records
    )


def test_json_formatter_writes_one_object_per_line_with_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "tasks_api.x",
            "levelname": "INFO",
            "msg": "hello %s",
            "args": ("world",),
            "task_id": "t1",
        }
    )

    output = JsonFormatter().format(record)

    assert "\n" not in output
    assert json.loads(output) | {"time": None} == {
        "time": None,
        "level": "INFO",
        "logger": "tasks_api.x",
        "message": "hello world",
        "task_id": "t1",
    }
