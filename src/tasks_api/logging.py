"""`configure_logging(settings)`: the one place where log handlers and formats are set."""

import json
import logging
from typing import Any

from tasks_api.config import Settings
from tasks_api.request_context import current_request_id

_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(
            {key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRS}
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_ONE_LINE = str.maketrans({"\r": "\\r", "\n": "\\n"})


class ReadableFormatter(logging.Formatter):
    """One line for people: time, level, logger, request id, message, then `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = current_request_id()
        message = record.getMessage()
        # Extras the message already says (the access line's method, path, status) are left out.
        fields = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and value is not None and str(value) not in message
        )
        parts = (
            self.formatTime(record, "%H:%M:%S"),
            f"{record.levelname:<7}",
            record.name.removeprefix("tasks_api."),
            f"[{request_id}]" if request_id is not None else "",
            message,
            fields,
        )
        # One event, one line: CR/LF from a request (a path, a header) cannot forge a line.
        line = " ".join(part for part in parts if part).translate(_ONE_LINE)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(ReadableFormatter() if settings.readable_logs else JsonFormatter())
    package_logger = logging.getLogger("tasks_api")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(settings.log_level)
    package_logger.propagate = False
