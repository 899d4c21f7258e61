"""Liveness and readiness. The database going away and back: tests/test_database_outage.py."""

import httpx

from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings
from tests.problems import assert_database_unavailable

# A Unix socket directory where no server listens: any attempt to connect fails at once.
NO_SERVER_URL = "postgresql://postgres@/postgres?host=/nonexistent"


async def test_liveness_is_ok_without_touching_the_database() -> None:
    app = create_app(make_settings(NO_SERVER_URL))

    async with serving(app) as client:
        liveness = await client.get("/health")
        readiness = await client.get("/health/ready")

    assert liveness.status_code == 200
    assert liveness.json() == {"status": "ok"}
    # The same app cannot reach its database, so /health really did not try.
    assert_database_unavailable(readiness)


async def test_readiness_is_ok_when_the_database_answers(live_client: httpx.AsyncClient) -> None:
    response = await live_client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_health_needs_no_token(live_client: httpx.AsyncClient) -> None:
    response = await live_client.get("/health", headers={"Authorization": "Bearer not-a-jwt"})

    assert response.status_code == 200
