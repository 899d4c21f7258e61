"""The app served in-process: its real lifespan and an httpx client over ASGI."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from tasks_api.database import Connections


@asynccontextmanager
async def serving(
    app: FastAPI,
    *,
    connections: Connections | None = None,
    raise_app_exceptions: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the lifespan and yield a client. `connections` replaces the app's (how each request
    gets its connection) after start-up."""
    async with app.router.lifespan_context(app):
        if connections is not None:
            app.state.connections = connections
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
