"""Idempotent creates: `POST /api/tasks` with an `Idempotency-Key` header (IETF httpapi draft)."""

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.config import Settings
from tasks_api.idempotency.models import IdempotencyKey
from tasks_api.idempotency.repository import PURGE_BATCH, IdempotencyRepository
from tasks_api.main import create_app
from tasks_api.models import metadata
from tests.asgi import serving
from tests.conftest import make_settings
from tests.factories import read_tasks
from tests.polling import eventually
from tests.problems import assert_database_unavailable, assert_problem
from tests.tokens import JwksServer, TokenFactory, bearer

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"
BODY = {"title": "Buy milk", "priority": "high"}


def keyed(headers: dict[str, str], key: str = KEY) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def stored_keys(session: AsyncSession, user_id: str) -> list[IdempotencyKey]:
    """The user's stored keys, read fresh from the database."""
    statement = (
        select(IdempotencyKey)
        .where(col(IdempotencyKey.user_id) == user_id)
        .order_by(col(IdempotencyKey.key))
        .execution_options(populate_existing=True)
    )
    return list((await session.exec(statement)).all())


async def age_keys(session: AsyncSession, user_id: str, by: timedelta) -> None:
    await session.exec(
        update(IdempotencyKey)
        .where(col(IdempotencyKey.user_id) == user_id)
        .values(created_at=col(IdempotencyKey.created_at) - by)
    )


def ttl(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.idempotency_key_ttl_seconds)


async def test_keyed_create_returns_201_and_stores_the_response_with_the_task(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    response = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))

    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    body = response.json()
    assert response.headers["location"] == f"http://testserver/api/tasks/{body['id']}"
    assert response.headers["etag"] == '"1"'
    assert [task["id"] for task in await read_tasks(session, owner_id)] == [body["id"]]
    (stored,) = await stored_keys(session, owner_id)
    assert stored.key == KEY
    assert stored.status_code == 201
    assert stored.response_body == body
    assert stored.response_headers == {
        "Location": response.headers["location"],
        "ETag": response.headers["etag"],
    }
    assert len(stored.fingerprint) == 64


async def test_create_without_a_key_stores_no_key_and_repeats_create_two_tasks(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    first = await client.post("/api/tasks", json=BODY, headers=owner_headers)
    second = await client.post("/api/tasks", json=BODY, headers=owner_headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in second.headers
    assert second.headers["etag"] == '"1"'
    assert len(await read_tasks(session, owner_id)) == 2
    assert await stored_keys(session, owner_id) == []


async def test_retry_after_success_replays_status_body_location_and_etag_and_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    first = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))
    # The same request as far as the API is concerned: other key order, white space, a field
    # the API ignores, a default sent explicitly, a title that trims to the same.
    same_request = (
        '{ "priority" : "high",\n "title": "  Buy milk ", "user_id": "x", "position": 0 }'
    )
    retry = await client.post(
        "/api/tasks",
        content=same_request,
        headers={**keyed(owner_headers), "Content-Type": "application/json"},
    )

    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["etag"] == first.headers["etag"]
    assert [task["id"] for task in await read_tasks(session, owner_id)] == [first.json()["id"]]
    assert len(await stored_keys(session, owner_id)) == 1


async def test_same_key_with_another_body_is_422_and_creates_nothing(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    first = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))

    reused = await client.post(
        "/api/tasks", json={**BODY, "title": "Buy bread"}, headers=keyed(owner_headers)
    )

    assert_problem(reused, 422, "idempotency_key_reused")
    assert "idempotent-replayed" not in reused.headers
    assert [task["id"] for task in await read_tasks(session, owner_id)] == [first.json()["id"]]
    (stored,) = await stored_keys(session, owner_id)
    assert stored.response_body == first.json()


async def test_a_body_that_fails_validation_uses_up_no_key(
    client: httpx.AsyncClient, session: AsyncSession, owner_headers: dict[str, str], owner_id: str
) -> None:
    invalid = await client.post("/api/tasks", json={"title": "   "}, headers=keyed(owner_headers))
    valid = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))

    assert_problem(invalid, 422, "validation_failed")
    assert valid.status_code == 201
    assert "idempotent-replayed" not in valid.headers
    assert len(await read_tasks(session, owner_id)) == 1


@pytest.mark.parametrize("retry_body", [BODY, {"title": "Something else"}], ids=["same", "other"])
async def test_a_key_older_than_the_ttl_counts_as_unused(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    owner_headers: dict[str, str],
    owner_id: str,
    retry_body: dict[str, Any],
) -> None:
    first = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))
    await age_keys(session, owner_id, ttl(settings) + timedelta(seconds=1))

    again = await client.post("/api/tasks", json=retry_body, headers=keyed(owner_headers))

    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert len(await read_tasks(session, owner_id)) == 2
    # The key now stands for the new task, with a fresh age.
    (stored,) = await stored_keys(session, owner_id)
    assert stored.response_body == again.json()
    replay = await client.post("/api/tasks", json=retry_body, headers=keyed(owner_headers))
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == again.json()


async def test_a_key_just_inside_the_ttl_still_replays(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    owner_headers: dict[str, str],
    owner_id: str,
) -> None:
    first = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))
    await age_keys(session, owner_id, ttl(settings) - timedelta(seconds=1))

    retry = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))

    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()


async def _expired_key_count(session: AsyncSession, settings: Settings) -> int:
    statement = select(func.count()).where(
        col(IdempotencyKey.created_at) < func.now() - ttl(settings)
    )
    count: int = (await session.exec(statement)).one()
    return count


async def test_storing_a_key_purges_a_bounded_batch_of_expired_keys_of_every_owner(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    owner_headers: dict[str, str],
    other_owner_id: str,
) -> None:
    long_ago = datetime.now(UTC) - ttl(settings) - timedelta(hours=1)
    rows: list[dict[str, Any]] = [
        {
            "user_id": other_owner_id,
            "key": f"old-{index}",
            "fingerprint": "0" * 64,
            "status_code": 201,
            "response_body": {},
            "response_headers": {},
            "created_at": long_ago,
        }
        for index in range(PURGE_BATCH + 50)
    ]
    rows.append({**rows[0], "key": "recent", "created_at": datetime.now(UTC)})
    await session.exec(insert(IdempotencyKey).values(rows))
    expired_before = await _expired_key_count(session, settings)
    assert expired_before >= PURGE_BATCH + 50

    response = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))

    assert response.status_code == 201
    assert await _expired_key_count(session, settings) == expired_before - PURGE_BATCH
    assert "recent" in {row.key for row in await stored_keys(session, other_owner_id)}


async def test_two_users_with_the_same_key_each_get_their_own_task(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    other_owner_headers: dict[str, str],
    other_owner_id: str,
) -> None:
    alices = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))
    bobs = await client.post("/api/tasks", json=BODY, headers=keyed(other_owner_headers))
    alices_retry = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))
    bobs_retry = await client.post("/api/tasks", json=BODY, headers=keyed(other_owner_headers))

    assert (alices.status_code, bobs.status_code) == (201, 201)
    assert "idempotent-replayed" not in bobs.headers
    assert bobs.json()["id"] != alices.json()["id"]
    assert bobs.json()["user_id"] == other_owner_id
    assert bobs.headers["location"] != alices.headers["location"]
    assert alices_retry.json() == alices.json()
    assert bobs_retry.json() == bobs.json()
    assert [task["id"] for task in await read_tasks(session, owner_id)] == [alices.json()["id"]]
    assert [task["id"] for task in await read_tasks(session, other_owner_id)] == [bobs.json()["id"]]


@pytest.mark.parametrize(
    "key",
    ["", "k" * 256, "abc\x01def", "tab\there", "del\x7f", "clé".encode()],
    ids=["empty", "256-characters", "control-character", "tab", "delete", "non-ascii"],
)
async def test_an_invalid_key_is_400_and_creates_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    owner_headers: dict[str, str],
    owner_id: str,
    key: str | bytes,
) -> None:
    raw_headers = {name.encode(): value.encode() for name, value in owner_headers.items()}
    raw_headers[b"Idempotency-Key"] = key if isinstance(key, bytes) else key.encode()
    response = await client.post("/api/tasks", json=BODY, headers=raw_headers)

    problem = assert_problem(response, 400, "invalid_idempotency_key")
    assert "255 printable ASCII" in problem["detail"]
    assert await read_tasks(session, owner_id) == []
    assert await stored_keys(session, owner_id) == []


async def test_a_key_of_255_printable_characters_is_accepted(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    longest = ("".join(chr(code) for code in range(0x20, 0x7F)) * 3)[:255]

    response = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers, longest))

    assert response.status_code == 201


async def test_a_key_in_use_by_another_transaction_is_409_with_retry_after_and_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    engine: AsyncEngine,
    owner_headers: dict[str, str],
    owner_id: str,
) -> None:
    # Another request with this key, still running: it holds the key's lock in its transaction.
    async with engine.connect() as other_connection:
        await other_connection.begin()
        assert await IdempotencyRepository(other_connection, owner_id).try_lock(KEY)

        busy = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))

        assert_problem(busy, 409, "idempotency_key_in_progress")
        assert busy.headers["retry-after"] == "1"
        assert await read_tasks(session, owner_id) == []
        assert await stored_keys(session, owner_id) == []
        await other_connection.rollback()

    after = await client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))
    assert after.status_code == 201


async def test_a_retry_while_another_request_holds_the_key_still_gets_the_stored_response(
    live_client: httpx.AsyncClient,
    engine: AsyncEngine,
    owner_headers: dict[str, str],
    owner_id: str,
) -> None:
    # Committed for real, which releases the lock the first request took.
    first = await live_client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))

    # Another retry of the same request, holding the key's lock while it replays.
    async with engine.connect() as other_connection:
        await other_connection.begin()
        assert await IdempotencyRepository(other_connection, owner_id).try_lock(KEY)

        retry = await live_client.post("/api/tasks", json=BODY, headers=keyed(owner_headers))
        await other_connection.rollback()

    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()


async def test_preflight_allows_the_idempotency_key_header(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/tasks",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )

    assert response.status_code == 200
    assert "idempotency-key" in response.headers["access-control-allow-headers"].lower()


async def test_every_index_of_the_idempotency_keys_model_exists_after_migrating(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'idempotency_keys'")
        )
        migrated = {row.indexname for row in rows}

    modelled = {index.name for index in metadata.tables["idempotency_keys"].indexes}
    assert migrated == modelled | {"pk_idempotency_keys"}
    assert "ix_idempotency_keys_created_at" in migrated


# Real commits and a real pool from here on: these tests use fresh user ids.

CLIENTS = 50
MAX_ATTEMPTS = 20


@pytest.fixture
def unlimited_app(database_url: str, jwks_server: JwksServer) -> FastAPI:
    """Real pool and commits, no rate limit: 50 clients retrying must not meet a 429."""
    settings = make_settings(
        database_url, rate_limit_enabled=False, db_pool_size=10, db_max_overflow=10
    )
    return create_app(settings, jwks_transport=jwks_server.transport)


async def _create_until_answered(
    client: httpx.AsyncClient, headers: dict[str, str], statuses: Counter[int]
) -> httpx.Response:
    """POST until the answer is not "in progress", honouring Retry-After as a client should."""
    for _ in range(MAX_ATTEMPTS):
        response = await client.post("/api/tasks", json=BODY, headers=headers)
        statuses[response.status_code] += 1
        if response.status_code != 409:
            return response
        assert_problem(response, 409, "idempotency_key_in_progress")
        # The full second the server asks for: scaling it down would test a client that ignores it.
        await asyncio.sleep(int(response.headers["retry-after"]))
    raise AssertionError(f"still in progress after {MAX_ATTEMPTS} attempts")


async def test_fifty_concurrent_creates_with_one_key_make_exactly_one_task(
    unlimited_app: FastAPI,
    session: AsyncSession,
    tokens: TokenFactory,
    owner_id: str,
) -> None:
    headers = keyed(bearer(tokens.ed25519(owner_id)))
    statuses: Counter[int] = Counter()

    async with serving(unlimited_app) as client:
        responses = await asyncio.gather(
            *(_create_until_answered(client, headers, statuses) for _ in range(CLIENTS))
        )

    assert [response.status_code for response in responses] == [201] * CLIENTS, statuses
    (task,) = await read_tasks(session, owner_id)
    assert all(response.json() == task for response in responses)
    assert {response.headers["location"] for response in responses} == {
        f"http://testserver/api/tasks/{task['id']}"
    }
    assert {response.headers["etag"] for response in responses} == {'"1"'}
    replayed = Counter(response.headers.get("idempotent-replayed") for response in responses)
    assert replayed == {None: 1, "true": CLIENTS - 1}
    assert len(await stored_keys(session, owner_id)) == 1
    # Only 201s and 409s: no 500 from a duplicate key, no 503 from waiting on a lock.
    assert set(statuses) <= {201, 409}, statuses


async def _blocked_on_the_key_after_writing_the_task(session: AsyncSession) -> bool:
    """True while a backend holds its insert into `tasks` and waits to insert into
    `idempotency_keys`: the request is past the task's write and before the key's."""
    statement = text(
        "SELECT count(*) FROM pg_locks AS waiting"
        " JOIN pg_locks AS written ON written.pid = waiting.pid"
        "  AND written.relation = 'tasks'::regclass"
        "  AND written.mode = 'RowExclusiveLock' AND written.granted"
        " WHERE waiting.relation = 'idempotency_keys'::regclass"
        "  AND waiting.mode = 'RowExclusiveLock' AND NOT waiting.granted"
    )
    count: int = (await session.exec(statement)).scalar_one()  # type: ignore[call-overload]
    return count > 0


async def test_a_create_that_fails_after_its_task_is_written_leaves_neither_task_nor_key(
    database_url: str,
    jwks_server: JwksServer,
    engine: AsyncEngine,
    session: AsyncSession,
    tokens: TokenFactory,
    owner_id: str,
) -> None:
    """No valid body breaks a database constraint (validation mirrors every one), so the failure
    is a slow database: a table lock held elsewhere (a migration, say) outlasts the statement
    timeout while the key is stored, after the task was inserted."""
    app = create_app(
        make_settings(database_url, db_statement_timeout_seconds=2),
        jwks_transport=jwks_server.transport,
    )
    headers = keyed(bearer(tokens.ed25519(owner_id)))
    async with serving(app) as client:
        async with engine.connect() as holder:
            await holder.begin()
            await holder.execute(text("LOCK TABLE idempotency_keys IN SHARE MODE"))
            request = asyncio.create_task(client.post("/api/tasks", json=BODY, headers=headers))
            await eventually(lambda: _blocked_on_the_key_after_writing_the_task(session))
            failed = await request
            await holder.rollback()

        assert_database_unavailable(failed)
        assert await read_tasks(session, owner_id) == []
        assert await stored_keys(session, owner_id) == []

        retry = await client.post("/api/tasks", json=BODY, headers=headers)

    assert retry.status_code == 201
    assert "idempotent-replayed" not in retry.headers
    assert [task["id"] for task in await read_tasks(session, owner_id)] == [retry.json()["id"]]
    (stored,) = await stored_keys(session, owner_id)
    assert stored.response_body == retry.json()
