"""Keyset cursors: where a page ended, bound to the sort it was made for, opaque to clients.

A cursor carries no authority (every query is filtered by the token's owner), so it needs no
secret: a short checksum is enough to turn garbage and hand edits into a clean 400.
"""

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tasks_api.text import storage_problem

_CHECKSUM_BYTES = 8


class MalformedCursorError(ValueError):
    """The cursor was not made by this service, was altered, or belongs to another sort."""


@dataclass(frozen=True)
class CursorPosition:
    sort: str
    descending: bool
    value: Any
    task_id: uuid.UUID
    # In a delta sync, the first page's Sync-Token, so that every page hands out the same one.
    sync_token: datetime | None = None


def encode_cursor(position: CursorPosition) -> str:
    value = position.value
    if isinstance(value, datetime):
        value = {"t": value.isoformat()}
    fields: list[Any] = [position.sort, position.descending, value, str(position.task_id)]
    if position.sync_token is not None:
        fields.append(position.sync_token.isoformat())
    payload = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(_checksum(payload) + payload).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, descending: bool) -> CursorPosition:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise MalformedCursorError("cursor is not valid base64url") from None
    checksum, payload = raw[:_CHECKSUM_BYTES], raw[_CHECKSUM_BYTES:]
    if checksum != _checksum(payload):
        raise MalformedCursorError("cursor was not issued by this service or has been altered")
    position = _parse(payload)
    if (position.sort, position.descending) != (sort, descending):
        raise MalformedCursorError(
            "cursor belongs to a different sort or order; start from the first page"
        )
    if not _VALUE_CHECKS[sort](position.value):
        raise MalformedCursorError("cursor is malformed")
    return position


def _parse(payload: bytes) -> CursorPosition:
    try:
        fields = json.loads(payload)
        if not isinstance(fields, list) or len(fields) not in {4, 5}:
            raise TypeError("not a four- or five-item list")
        made_for_sort, made_descending, value, task_id, *sync = fields
        if not (
            isinstance(made_for_sort, str)
            and isinstance(made_descending, bool)
            and isinstance(task_id, str)
            and all(isinstance(token, str) for token in sync)
        ):
            raise TypeError("wrongly typed fields")
        if isinstance(value, dict):
            value = _in_utc(datetime.fromisoformat(value["t"]))
        sync_token = _in_utc(datetime.fromisoformat(sync[0])) if sync else None
        if sync_token is not None and not _is_aware_datetime(sync_token):
            raise TypeError("sync token without a time zone")
        return CursorPosition(made_for_sort, made_descending, value, uuid.UUID(task_id), sync_token)
    except (ValueError, TypeError, KeyError, OverflowError):
        raise MalformedCursorError("cursor is malformed") from None


def _in_utc(value: datetime) -> datetime:
    """An aware time in UTC. A hand-made one at the edge of the calendar (year 1 at +14:00) has no
    UTC equivalent: OverflowError here, a 400, rather than in the database driver, a 500. A naive
    one is left for the value checks to refuse."""
    return value.astimezone(UTC) if value.tzinfo is not None else value


def _is_aware_datetime(value: Any) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


# The checksum is not a secret, so a hand-made cursor can pass it: its value must still have the
# type of the sort key before it reaches SQL.
_VALUE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "created_at": _is_aware_datetime,
    "updated_at": _is_aware_datetime,
    "due_date": lambda value: value is None or _is_aware_datetime(value),
    "title": lambda value: (
        isinstance(value, str) and len(value) <= 500 and storage_problem(value) is None
    ),
    "priority": lambda value: isinstance(value, str) and value in {"low", "medium", "high"},
    "position": lambda value: (
        isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31
    ),
}


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_BYTES, person=b"tasks-cursor").digest()
