"""Fixtures shared by the task tests."""

from datetime import UTC, datetime

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Priority, Task
from tests.factories import EARLIER, make_task


@pytest.fixture
async def task(session: AsyncSession, owner_id: str) -> Task:
    """The owner's task: every writable field away from its default, completed at EARLIER."""
    return await make_task(
        session,
        owner_id,
        title="Water the plants 🌱",
        description="Balcony first",
        priority=Priority.HIGH,
        due_date=datetime(2026, 12, 24, 16, 30, tzinfo=UTC),
        completed=True,
        completed_at=EARLIER,
        position=7,
    )
