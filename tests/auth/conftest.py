"""`app_client`: an app built from custom auth settings, served over ASGI with the mock JWKS."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import httpx
import pytest

from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings
from tests.tokens import JwksServer


class AppClient(Protocol):
    def __call__(
        self, *, jwks_transport: httpx.AsyncBaseTransport | None = None, **overrides: object
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]: ...


@pytest.fixture
def app_client(database_url: str, jwks_server: JwksServer) -> AppClient:
    """Open a client on `create_app(make_settings(database_url, **overrides))`.

    The JWKS comes from `jwks_server` unless another transport is given. For auth-only routes
    (`/api/me`): the app keeps its own engine, which they never touch.
    """

    @asynccontextmanager
    async def open_client(
        *, jwks_transport: httpx.AsyncBaseTransport | None = None, **overrides: object
    ) -> AsyncIterator[httpx.AsyncClient]:
        settings = make_settings(database_url, **overrides)
        app = create_app(settings, jwks_transport=jwks_transport or jwks_server.transport)
        async with serving(app) as client:
            yield client

    return open_client
