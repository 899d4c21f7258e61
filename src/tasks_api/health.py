"""Liveness and readiness probes. Neither needs a token."""

import asyncio
import logging

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tasks_api.database import is_database_unavailable
from tasks_api.errors import DatabaseUnavailableError
from tasks_api.problem_details import problem_responses

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    status: str


@router.get("")
async def get_liveness() -> HealthStatus:
    """The process is up. Does not touch the database."""
    return HealthStatus(status="ok")


@router.get("/ready", responses=problem_responses(503))
async def get_readiness(request: Request) -> HealthStatus:
    """The database answers: the instance can take traffic."""
    engine: AsyncEngine = request.app.state.engine
    timeout = request.app.state.settings.db_connect_timeout_seconds
    try:
        async with asyncio.timeout(timeout), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        logger.warning("readiness check failed: %s", type(error).__name__)
        raise DatabaseUnavailableError("The database is not reachable.") from error
    return HealthStatus(status="ok")
