import httpx
import pytest

from tasks_api.main import EXPOSED_HEADERS

APP_ORIGIN = "http://localhost:3000"


async def test_preflight_from_the_app_origin_allows_bearer_and_json(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/api/tasks",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed_headers
    assert "content-type" in allowed_headers


async def test_response_to_the_app_origin_exposes_the_headers_a_client_reads(
    client: httpx.AsyncClient, owner_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/api/tasks",
        json={"title": "From the browser"},
        headers={**owner_headers, "Origin": APP_ORIGIN},
    )

    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = {
        name.strip().lower()
        for name in response.headers["access-control-expose-headers"].split(",")
    }
    assert exposed == {name.lower() for name in EXPOSED_HEADERS}
    assert {"location", "link", "etag", "x-request-id", "retry-after"} <= exposed


@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost:3001", "null"])
async def test_other_origins_get_no_cors_grant(client: httpx.AsyncClient, origin: str) -> None:
    preflight = await client.options(
        "/api/tasks",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    simple = await client.get("/health", headers={"Origin": origin})

    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers
