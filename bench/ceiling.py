"""The ceiling: the benchmark's endpoints written as thin as reasonable, as a yardstick.

Raw ASGI (no framework, no middleware), an asyncpg pool, PyJWT verifying the same token against
the same key, orjson, and the SQL the service's repository sends (the same columns, casts, owner
filter, `deleted_at IS NULL`, keyset row comparison and LIMIT n+1, writes with RETURNING, the toggle
as one UPDATE), so both use the same indexes and plans. The JSON bodies have the same fields in the
same order, byte for byte (`bench.checks` checks this before anything is measured).

What it leaves out is what the ratio measures: FastAPI's routing, dependency injection and
validation, pydantic models, SQLAlchemy's pool between the code and asyncpg (the service's
statements are SQLAlchemy Core, compiled once and run on the pool's asyncpg connection), and the
middleware (request id, size limits, CORS). Like the service,
every statement runs in a transaction of its own (autocommit). Only the endpoints and parameters
the benchmark uses are served: list (sorted by created_at or due_date; status, priority, limit,
cursor), get, create, patch, toggle, /health, /api/me.

Configured from the same environment variables as the service (DATABASE_URL, AUTH_JWKS_URL or
BETTER_AUTH_SECRET, AUTH_ISSUER, AUTH_AUDIENCE, AUTH_LEEWAY_SECONDS, DB_POOL_SIZE,
DB_MAX_OVERFLOW), so one environment serves both:
`uvicorn bench.ceiling:create_app --factory`.
"""

import base64
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
import httpx
import jwt
import orjson
import uuid6
from starlette.types import Receive, Scope, Send

PREFIX = "/api/tasks"
# GET /api/me: the response's fields and the claims they come from, as the service sends them.
_ME_FIELDS = (("id", "sub"), ("email", "email"), ("name", "name"))
MAX_BODY_BYTES = 65536
PRIORITY_RANKS = {"low": 1, "medium": 2, "high": 3}
PRIORITY_NAMES = {rank: name for name, rank in PRIORITY_RANKS.items()}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# The repository's RETURNING / SELECT list, column for column.
COLUMNS = (
    "tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, "
    "tasks.completed_at, tasks.priority, tasks.due_date, tasks.position, tasks.version, "
    "tasks.created_at, tasks.updated_at, tasks.deleted_at"
)
# Statements are put together from these constants and fixed fragments only; every value a
# request brings is a bind parameter (hence the S608 exemptions below).
OWNED_LIVE = "tasks.user_id = $1::VARCHAR AND tasks.deleted_at IS NULL"
GET_SQL = f"SELECT {COLUMNS} FROM tasks WHERE {OWNED_LIVE} AND tasks.id = $2::UUID"  # noqa: S608
INSERT_SQL = (
    "INSERT INTO tasks (id, user_id, title, description, completed, completed_at, priority, "  # noqa: S608
    "due_date, position, version, created_at, updated_at) VALUES ($1::UUID, $2::VARCHAR, "
    "$3::VARCHAR, $4::VARCHAR, $5::BOOLEAN, CASE WHEN $5::BOOLEAN THEN statement_timestamp() END, "
    "$6::SMALLINT, $7::TIMESTAMP WITH TIME ZONE, $8::INTEGER, 1, statement_timestamp(), "
    f"statement_timestamp()) RETURNING {COLUMNS}"
)
# SET expressions read the row as it was before the UPDATE, as in the repository.
TOGGLE_SQL = (
    "UPDATE tasks SET completed=NOT tasks.completed, completed_at=CASE WHEN tasks.completed "  # noqa: S608
    "THEN NULL ELSE statement_timestamp() END, version=(tasks.version + 1), "
    f"updated_at=statement_timestamp() WHERE {OWNED_LIVE} AND tasks.id = $2::UUID "
    f"RETURNING {COLUMNS}"
)
# The due-date sort key and its indexes: tasks without a date sort last in both directions.
DUE_DATE_KEYS = {
    False: ("coalesce(tasks.due_date, 'infinity'::timestamptz)", "'infinity'::timestamptz"),
    True: ("coalesce(tasks.due_date, '-infinity'::timestamptz)", "'-infinity'::timestamptz"),
}
# PATCH: field -> SET clause for a parameter; the column list is fixed, never taken from input.
PATCH_CLAUSES = {
    "title": "title=${}::VARCHAR",
    "description": "description=${}::VARCHAR",
    "priority": "priority=${}::SMALLINT",
    "due_date": "due_date=${}::TIMESTAMP WITH TIME ZONE",
    "position": "position=${}::INTEGER",
}

JSON_HEADERS = [(b"content-type", b"application/json")]
PROBLEM_HEADERS = [(b"content-type", b"application/problem+json")]


class HttpError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class CeilingConfig:
    database_url: str
    jwks_url: str | None
    secret: str | None
    issuer: str | None
    audience: str | None
    leeway_seconds: int
    pool_size: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "CeilingConfig":
        return cls(
            # asyncpg takes the libpq form of the URL, without SQLAlchemy's driver suffix.
            database_url=environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://"),
            jwks_url=environ.get("AUTH_JWKS_URL"),
            secret=environ.get("BETTER_AUTH_SECRET"),
            issuer=environ.get("AUTH_ISSUER"),
            audience=environ.get("AUTH_AUDIENCE"),
            leeway_seconds=int(environ.get("AUTH_LEEWAY_SECONDS", "30")),
            # The service keeps DB_POOL_SIZE connections and opens DB_MAX_OVERFLOW more under load.
            pool_size=int(environ.get("DB_POOL_SIZE", "10"))
            + int(environ.get("DB_MAX_OVERFLOW", "0")),
        )


def encode_cursor(value: datetime | None, task_id: uuid.UUID | str) -> str:
    """The ceiling's keyset cursor: the sort key's value and the id (no checksum, no sort)."""
    payload = orjson.dumps([value, str(task_id)], option=orjson.OPT_UTC_Z)
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime | None, uuid.UUID]:
    try:
        value, task_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return (None if value is None else datetime.fromisoformat(value)), uuid.UUID(task_id)
    except (ValueError, TypeError):
        raise HttpError(400, "invalid_cursor", "The cursor is malformed.") from None


class TokenCheck:
    """PyJWT verification as the service does it: pinned algorithm, exp and sub required,
    iss and aud checked when configured."""

    def __init__(self, config: CeilingConfig, jwks: Mapping[str, jwt.PyJWK]) -> None:
        self._config = config
        self._jwks = jwks
        self._jwt = jwt.PyJWT(
            {"verify_aud": config.audience is not None, "require": ["exp", "sub"]}
        )

    def user_id(self, authorization: bytes | None) -> str:
        sub: str = self.claims(authorization)["sub"]
        return sub

    def claims(self, authorization: bytes | None) -> dict[str, Any]:
        if authorization is None or authorization[:7].lower() != b"bearer ":
            raise HttpError(401, "missing_token", "Send Authorization: Bearer <JWT>.")
        token = authorization[7:].decode("latin-1").strip()
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            key: Any
            if algorithm == "HS256" and self._config.secret is not None:
                key = self._config.secret
            else:
                jwk = self._jwks.get(str(header.get("kid")))
                if jwk is None or jwk.algorithm_name != algorithm:
                    raise HttpError(401, "unknown_key", "The token's signing key is not known.")
                key = jwk.key
            claims = self._jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                issuer=self._config.issuer,
                audience=self._config.audience,
                leeway=self._config.leeway_seconds,
            )
        except jwt.PyJWTError:
            raise HttpError(401, "invalid_token", "The token is not valid.") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise HttpError(401, "missing_claim", "The token has no subject.")
        return claims


class Ceiling:
    """The ASGI application. The pool and the token check are built by the lifespan."""

    def __init__(self, config: CeilingConfig) -> None:
        self._config = config
        self._pool: Any = None
        self._tokens: TokenCheck | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._pool is not None:
                    await self._pool.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        jwks: dict[str, jwt.PyJWK] = {}
        if self._config.jwks_url is not None:
            # Once at start: the service caches its keys for an hour, so neither fetches them
            # per request.
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(self._config.jwks_url)
                response.raise_for_status()
            for key in jwt.PyJWKSet.from_dict(response.json()).keys:
                if key.key_id is not None:
                    jwks[key.key_id] = key
        self._tokens = TokenCheck(self._config, jwks)
        self._pool = await asyncpg.create_pool(
            self._config.database_url,
            min_size=min(5, self._config.pool_size),
            max_size=self._config.pool_size,
            # As the service: the database cancels a statement that runs past 10 s.
            command_timeout=10,
        )

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        try:
            if path == "/health":
                await _send_json(send, 200, {"status": "ok"})
                return
            if path == "/api/me":
                assert self._tokens is not None
                claims = self._tokens.claims(_header(scope, b"authorization"))
                me = {name: claims.get(claim) for name, claim in _ME_FIELDS}
                await _send_json(send, 200, me)
                return
            if not path.startswith(PREFIX):
                raise HttpError(404, "not_found", "No such route.")
            assert self._tokens is not None
            user_id = self._tokens.user_id(_header(scope, b"authorization"))
            rest = path[len(PREFIX) :]
            if rest == "" and method == "GET":
                await self._list(scope, send, user_id)
            elif rest == "" and method == "POST":
                await self._create(scope, receive, send, user_id)
            elif rest.endswith("/complete") and method == "PATCH":
                await self._toggle(send, user_id, _task_id(rest.removesuffix("/complete")))
            elif method == "GET":
                await self._get(send, user_id, _task_id(rest))
            elif method == "PATCH":
                await self._patch(receive, send, user_id, _task_id(rest))
            else:
                raise HttpError(405, "method_not_allowed", "Not served by the ceiling.")
        except HttpError as error:
            await _send_problem(send, error)

    async def _list(self, scope: Scope, send: Send, user_id: str) -> None:
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        sort = query.get("sort", "created_at")
        if sort not in {"created_at", "created", "due_date"}:
            raise HttpError(
                422, "validation_failed", "The ceiling sorts by created_at or due_date."
            )
        by_due_date = sort == "due_date"
        order = query.get("order", "asc" if by_due_date else "desc")
        if order not in {"asc", "desc"}:
            raise HttpError(422, "validation_failed", "order is asc or desc.")
        descending = order == "desc"
        limit = _int_in(query.get("limit", "100"), 1, 500, "limit")

        conditions = [OWNED_LIVE]
        args: list[Any] = [user_id]
        status = query.get("status", "all")
        if status in {"pending", "completed"}:
            conditions.append(f"tasks.completed IS {'true' if status == 'completed' else 'false'}")
        elif status != "all":
            raise HttpError(422, "validation_failed", "status is all, pending or completed.")
        if "priority" in query:
            args.append(_priority_rank(query["priority"]))
            conditions.append(f"tasks.priority = ${len(args)}::SMALLINT")
        key, no_due_date = DUE_DATE_KEYS[descending] if by_due_date else ("tasks.created_at", "")
        if "cursor" in query:
            value, after_id = decode_cursor(query["cursor"])
            if value is None and not by_due_date:
                raise HttpError(400, "invalid_cursor", "The cursor is malformed.")
            if value is None:
                boundary = no_due_date
            else:
                args.append(value)
                boundary = f"${len(args)}::TIMESTAMP WITH TIME ZONE"
            args.append(after_id)
            comparison = "<" if descending else ">"
            conditions.append(f"({key}, tasks.id) {comparison} ({boundary}, ${len(args)}::UUID)")
        direction = "DESC" if descending else "ASC"
        args.append(limit + 1)  # one more row than asked says whether there is a next page
        sql = (
            f"SELECT {COLUMNS} FROM tasks WHERE {' AND '.join(conditions)} "  # noqa: S608
            f"ORDER BY {key} {direction}, tasks.id {direction} LIMIT ${len(args)}::INTEGER"
        )
        rows = await self._pool.fetch(sql, *args)
        headers = list(JSON_HEADERS)
        if len(rows) > limit:
            last = rows[limit - 1]
            query["cursor"] = encode_cursor(
                last["due_date" if by_due_date else "created_at"], last["id"]
            )
            next_url = f"{_base_url(scope)}{PREFIX}?{urlencode(query)}"
            headers.append((b"link", f'<{next_url}>; rel="next"'.encode()))
        body = orjson.dumps([_task(row) for row in rows[:limit]], option=orjson.OPT_UTC_Z)
        await _send(send, 200, headers, body)

    async def _get(self, send: Send, user_id: str, task_id: uuid.UUID) -> None:
        await _send_task(send, 200, await self._pool.fetchrow(GET_SQL, user_id, task_id))

    async def _create(self, scope: Scope, receive: Receive, send: Send, user_id: str) -> None:
        fields = _task_fields(await _read_json(receive), partial=False)
        row = await self._pool.fetchrow(
            INSERT_SQL,
            uuid6.uuid7(),
            user_id,
            fields["title"],
            fields.get("description"),
            fields.get("completed", False),
            fields.get("priority", PRIORITY_RANKS["medium"]),
            fields.get("due_date"),
            fields.get("position", 0),
        )
        location = f"{_base_url(scope)}{PREFIX}/{row['id']}"
        await _send_task(send, 201, row, [(b"location", location.encode())])

    async def _patch(self, receive: Receive, send: Send, user_id: str, task_id: uuid.UUID) -> None:
        fields = _task_fields(await _read_json(receive), partial=True)
        if not fields:
            # Nothing to write: the current task, as the service answers an empty PATCH.
            await self._get(send, user_id, task_id)
            return
        args: list[Any] = [user_id, task_id]
        clauses = []
        for name, clause in PATCH_CLAUSES.items():
            if name in fields:
                args.append(fields[name])
                clauses.append(clause.format(len(args)))
        if "completed" in fields:
            # Kept when already complete, stamped when it becomes complete, cleared on reopening.
            args.append(fields["completed"])
            clauses.append(f"completed=${len(args)}::BOOLEAN")
            clauses.append(
                "completed_at=CASE WHEN tasks.completed THEN tasks.completed_at "
                "ELSE statement_timestamp() END"
                if fields["completed"]
                else "completed_at=NULL"
            )
        sql = (
            f"UPDATE tasks SET {', '.join(clauses)}, version=(tasks.version + 1), "  # noqa: S608
            f"updated_at=statement_timestamp() WHERE {OWNED_LIVE} AND tasks.id = $2::UUID "
            f"RETURNING {COLUMNS}"
        )
        await _send_task(send, 200, await self._pool.fetchrow(sql, *args))

    async def _toggle(self, send: Send, user_id: str, task_id: uuid.UUID) -> None:
        await _send_task(send, 200, await self._pool.fetchrow(TOGGLE_SQL, user_id, task_id))


def create_app() -> Ceiling:
    """The uvicorn factory (`--factory`), configured from the environment."""
    return Ceiling(CeilingConfig.from_environment())


def _task(row: Any) -> dict[str, Any]:
    # The service's TaskResponse, field for field and in the same order.
    return {
        # asyncpg's own UUID type, which orjson does not know.
        "id": str(row["id"]),
        "user_id": row["user_id"],
        "title": row["title"],
        "description": row["description"],
        "completed": row["completed"],
        "completed_at": row["completed_at"],
        "priority": PRIORITY_NAMES[row["priority"]],
        "due_date": row["due_date"],
        "position": row["position"],
        "version": row["version"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "deleted": False,
    }


def _task_fields(body: Any, *, partial: bool) -> dict[str, Any]:
    """The writable fields present in a JSON body, validated with the service's rules, as SQL
    parameters. Unknown fields are ignored; in a PATCH, null is refused where the column can't hold
    it."""
    if not isinstance(body, dict):
        raise HttpError(422, "validation_failed", "The body must be a JSON object.")
    fields: dict[str, Any] = {}
    if "title" in body or not partial:
        title = body.get("title")
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= 500:
            raise HttpError(422, "validation_failed", "title: 1-500 characters.")
        fields["title"] = title.strip()
    if "description" in body:
        description = body["description"]
        if description is not None and (
            not isinstance(description, str) or len(description) > 5000
        ):
            raise HttpError(422, "validation_failed", "description: at most 5000 characters.")
        fields["description"] = description
    if "priority" in body:
        fields["priority"] = _priority_rank(body["priority"])
    if "due_date" in body:
        fields["due_date"] = None if body["due_date"] is None else _due_date(body["due_date"])
    if "completed" in body:
        if not isinstance(body["completed"], bool):
            raise HttpError(422, "validation_failed", "completed: true or false.")
        fields["completed"] = body["completed"]
    if "position" in body:
        position = body["position"]
        if isinstance(position, bool) or not isinstance(position, int):
            raise HttpError(422, "validation_failed", "position: an integer.")
        if not INT32_MIN <= position <= INT32_MAX:
            raise HttpError(422, "validation_failed", "position: a 32-bit integer.")
        fields["position"] = position
    return fields


def _priority_rank(value: Any) -> int:
    if not isinstance(value, str) or value not in PRIORITY_RANKS:
        raise HttpError(422, "validation_failed", "priority: low, medium or high.")
    return PRIORITY_RANKS[value]


def _due_date(value: Any) -> datetime:
    if not isinstance(value, str):
        raise HttpError(422, "validation_failed", "due_date: an RFC 3339 date-time or a date.")
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise HttpError(422, "validation_failed", "due_date: not a date-time.") from None
    if parsed.tzinfo is None:
        raise HttpError(422, "validation_failed", "due_date: include a time zone offset.")
    return parsed.astimezone(UTC)


def _int_in(text: str, low: int, high: int, name: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = low - 1
    if not low <= number <= high:
        raise HttpError(422, "validation_failed", f"{name}: {low}-{high}.")
    return number


def _task_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.removeprefix("/"))
    except ValueError:
        raise HttpError(422, "validation_failed", "task_id: a UUID.") from None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _base_url(scope: Scope) -> str:
    host = _header(scope, b"host") or b"127.0.0.1"
    return f"{scope.get('scheme', 'http')}://{host.decode('latin-1')}"


async def _read_json(receive: Receive) -> Any:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            raise HttpError(413, "body_too_large", "The body is too large.")
        if not message.get("more_body", False):
            break
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise HttpError(422, "validation_failed", "The body is not JSON.") from None


async def _send_task(
    send: Send, status: int, row: Any, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    if row is None:
        # Missing and someone else's are the same 404, as in the service.
        raise HttpError(404, "task_not_found", "No such task.")
    headers = [*JSON_HEADERS, (b"etag", f'"{row["version"]}"'.encode()), *(extra_headers or [])]
    await _send(send, status, headers, orjson.dumps(_task(row), option=orjson.OPT_UTC_Z))


async def _send_json(send: Send, status: int, content: Any) -> None:
    await _send(send, status, JSON_HEADERS, orjson.dumps(content))


async def _send_problem(send: Send, error: HttpError) -> None:
    body = {"status": error.status, "code": error.code, "detail": str(error)}
    headers = list(PROBLEM_HEADERS)
    if error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await _send(send, error.status, headers, orjson.dumps(body))


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
