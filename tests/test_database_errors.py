"""Slow or unreachable database: a 503 problem with Retry-After, quickly, never a 500 or a hang."""

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import func, select

from tasks_api.config import Settings
from tasks_api.database import SessionDep
from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings
from tests.problems import assert_problem
from tests.tokens import JwksServer


async def _sleep_in_database(session: SessionDep, seconds: float) -> dict[str, str]:
    await session.exec(select(func.pg_sleep(seconds)))
    return {"slept": str(seconds)}


@pytest.fixture
async def slow_query_client(
    database_url: str, jwks_server: JwksServer
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings: Settings = make_settings(
        database_url, db_statement_timeout_seconds=0.5, db_pool_size=1, db_max_overflow=0
    )
    app = create_app(settings, jwks_transport=jwks_server.transport)
    # A route that exists only in this test, running a statement of the caller's length.
    app.add_api_route("/test/sleep", _sleep_in_database)
    async with serving(app) as client:
        yield app, client


async def test_statement_past_the_timeout_returns_503_quickly_and_frees_its_connection(
    slow_query_client: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = slow_query_client

    started = time.monotonic()
    response = await client.get("/test/sleep", params={"seconds": 5})
    elapsed = time.monotonic() - started

    assert_problem(response, 503, "database_unavailable")
    assert response.headers["retry-after"].isdigit()
    assert elapsed < 3
    # The pool has a single connection: the next request can only succeed if it was given back.
    assert (await client.get("/test/sleep", params={"seconds": 0})).status_code == 200
    assert app.state.engine.pool.checkedout() == 0
