"""The app served in-process: its real lifespan and an httpx client over ASGI."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession


@asynccontextmanager
async def serving(
    app: FastAPI,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    raise_app_exceptions: bool = True,
) -> AsyncIterator[httpx.AsyncClient]:
    """Run the lifespan and yield a client. `sessionmaker` replaces the app's after start-up."""
    async with app.router.lifespan_context(app):
        if sessionmaker is not None:
            app.state.sessionmaker = sessionmaker
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
