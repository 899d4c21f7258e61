"""50 concurrent clients through a real PgBouncer in transaction pooling mode.

PgBouncer here has 3 server connections for the app's 30 pooled client connections, so consecutive
transactions of one client connection land on different server connections: any statement state
kept on a connection (asyncpg's named prepared statements) breaks. The service's PgBouncer-safe
settings must make that a non-event; the control test shows the same load fails without them.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import make_url

from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings
from tests.pgbouncer import PgBouncer
from tests.tokens import JwksServer, TokenFactory, bearer

CLIENTS = 50
ROUNDS = 4
SERVER_CONNECTIONS = 3


@pytest.fixture(scope="module")
def bouncer(postgres_server_url: str) -> Iterator[PgBouncer]:
    with PgBouncer(postgres_server_url, pool_size=SERVER_CONNECTIONS) as bouncer:
        yield bouncer


@pytest.fixture
def bouncer_database_url(bouncer: PgBouncer, database_url: str) -> str:
    return bouncer.url(make_url(database_url).database)


async def _one_client(
    client: httpx.AsyncClient, headers: dict[str, str], statuses: Counter[int]
) -> dict[str, str]:
    """Mixed creates, lists, gets, patches, toggles, deletes. Returns the titles it should keep."""
    kept: dict[str, str] = {}

    async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
        response = await client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
        statuses[response.status_code] += 1
        return response

    for round_number in range(ROUNDS):
        kept_task = await call("POST", "/api/tasks", json={"title": f"keep {round_number}"})
        dropped = await call("POST", "/api/tasks", json={"title": f"drop {round_number}"})
        if kept_task.status_code != 201 or dropped.status_code != 201:
            continue
        kept_id, dropped_id = kept_task.json()["id"], dropped.json()["id"]
        await call("GET", "/api/tasks", params={"limit": 50, "sort": "title"})
        await call("GET", f"/api/tasks/{kept_id}")
        patched = await call(
            "PATCH", f"/api/tasks/{kept_id}", json={"title": f"kept {round_number}"}
        )
        if patched.status_code == 200:
            kept[kept_id] = f"kept {round_number}"
        await call("PATCH", f"/api/tasks/{kept_id}/complete")
        await call("DELETE", f"/api/tasks/{dropped_id}")
    return kept


def _app(url: str, pooler: str, jwks_server: JwksServer) -> FastAPI:
    settings = make_settings(url, database_pooler=pooler, db_pool_size=20, db_max_overflow=10)
    return create_app(settings, jwks_transport=jwks_server.transport)


async def _hammer(
    app: FastAPI, tokens: TokenFactory, run: str
) -> tuple[Counter[int], list[tuple[dict[str, str], dict[str, str]]]]:
    statuses: Counter[int] = Counter()
    headers = [bearer(tokens.ed25519(f"load-{run}-{index}")) for index in range(CLIENTS)]
    async with serving(app, raise_app_exceptions=False) as client:
        expected = await asyncio.gather(
            *(_one_client(client, client_headers, statuses) for client_headers in headers)
        )
        # What each client finally sees, read back through the same PgBouncer.
        stored: list[dict[str, str]] = []
        for client_headers in headers:
            listing = await client.get("/api/tasks", headers=client_headers, params={"limit": 100})
            tasks = listing.json() if listing.status_code == 200 else []
            stored.append({task["id"]: task["title"] for task in tasks})
    return statuses, list(zip(expected, stored, strict=True))


async def test_fifty_concurrent_clients_through_pgbouncer_get_no_errors(
    bouncer_database_url: str, tokens: TokenFactory, jwks_server: JwksServer
) -> None:
    app = _app(bouncer_database_url, "pgbouncer", jwks_server)

    statuses, outcomes = await _hammer(app, tokens, run="safe")

    requests_per_client = ROUNDS * 7
    assert statuses == {
        201: CLIENTS * ROUNDS * 2,
        200: CLIENTS * ROUNDS * 4,
        204: CLIENTS * ROUNDS,
    }, statuses
    assert sum(statuses.values()) == CLIENTS * requests_per_client
    for expected, stored in outcomes:
        assert len(expected) == ROUNDS
        assert stored == expected


async def test_the_same_load_without_the_pgbouncer_settings_fails(
    bouncer_database_url: str,
    tokens: TokenFactory,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The control: proves the load above really shares server connections between clients."""
    app = _app(bouncer_database_url, "none", jwks_server)
    package_logger = logging.getLogger("tasks_api")  # its records do not propagate to the root
    package_logger.addHandler(caplog.handler)
    try:
        statuses, _ = await _hammer(app, tokens, run="unsafe")
    finally:
        package_logger.removeHandler(caplog.handler)

    assert statuses[500] > 0, statuses
    logged = "\n".join(
        str(record.exc_info[1]) for record in caplog.records if record.exc_info is not None
    )
    assert "prepared statement" in logged
