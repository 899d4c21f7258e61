"""Log lines: JSON objects in production, readable text in development, the request id on every
line logged while a request is handled."""

import json
import re

import pytest

from tasks_api.config import Environment
from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings

# No server listens here: a request logs a "database unavailable" warning, then its access line.
NO_SERVER_URL = "postgresql://postgres@/postgres?host=/nonexistent"


def _lines(captured: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in captured.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("environment", "log_format", "readable"),
    [
        (Environment.DEVELOPMENT, None, True),
        (Environment.TEST, None, False),
        (Environment.PRODUCTION, None, False),
        (Environment.PRODUCTION, "text", True),
        (Environment.DEVELOPMENT, "json", False),
    ],
)
def test_the_format_follows_the_environment_unless_set(
    environment: Environment, log_format: str | None, readable: bool
) -> None:
    settings = make_settings(NO_SERVER_URL, environment=environment, log_format=log_format)

    assert settings.readable_logs is readable


async def test_json_lines_carry_the_request_id_on_every_line_of_the_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(NO_SERVER_URL, log_format="json", rate_limit_enabled=False))
    async with serving(app) as client:
        capsys.readouterr()  # start-up lines
        response = await client.get("/health/ready", headers={"X-Request-ID": "req-42"})

    during = [json.loads(line) for line in _lines(capsys) if "req-42" in line]
    assert response.status_code == 503
    assert [entry["message"] for entry in during] == [
        "readiness check failed: FileNotFoundError",
        "GET /health/ready 503",
    ]
    assert all(entry["request_id"] == "req-42" for entry in during)
    assert during[1]["status"] == 503


async def test_readable_lines_carry_the_request_id_and_the_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(NO_SERVER_URL, log_format="text", rate_limit_enabled=False))
    async with serving(app) as client:
        capsys.readouterr()
        await client.get("/health/ready", headers={"X-Request-ID": "req-43"})

    warning, access = [line for line in _lines(capsys) if "[req-43]" in line]
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d WARNING health \[req-43\] readiness check failed: FileNotFoundError",
        warning,
    ), warning
    # The message already says method, path and status; the other fields follow as key=value.
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO    request_context \[req-43\] GET /health/ready 503 "
        r"duration_ms=[\d.]+",
        access,
    ), access
    assert not any(line.lstrip().startswith("{") for line in _lines(capsys))


async def test_lines_outside_a_request_have_no_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(NO_SERVER_URL, log_format="json"))
    async with serving(app):
        pass

    entries = [json.loads(line) for line in _lines(capsys)]
    assert [entry["message"] for entry in entries] == [
        "started (test)",
        "stopped; database pool disposed",
    ]
    assert all("request_id" not in entry for entry in entries)


async def test_a_readable_line_cannot_be_split_by_crlf_from_the_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(NO_SERVER_URL, log_format="text"))
    async with serving(app) as client:
        capsys.readouterr()
        await client.get("/nowhere%0D%0A12:00:00 INFO    forged line")

    (line,) = [line for line in _lines(capsys) if "nowhere" in line]
    assert "/nowhere\\r\\n12:00:00 INFO    forged line 404" in line
