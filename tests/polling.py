"""Waiting, in tests, for something that another task or process makes true."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], *, within: float = 15, what: str = ""
) -> None:
    """Return once `condition()` (plain or async) holds; fail the test after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        holds = condition()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what or condition}")
        await asyncio.sleep(0.01)
