"""Bearer tokens beyond the attack table (test_token_attacks.py): what a rejection leaves behind
(nothing written, nothing logged) and where the size limit lies."""

import logging
import time
from collections.abc import Callable

import httpx
import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from tasks_api.tasks.models import Task
from tests.auth.forged import SUB, NowPlus, ed25519, session_token, signed_by_another_key
from tests.factories import make_task
from tests.problems import assert_problem
from tests.tokens import TokenFactory, bearer


async def test_session_token_problem_points_to_the_token_endpoint(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    response = await client.get("/api/me", headers=bearer(session_token(tokens)))

    body = assert_problem(response, status=401, code="session_token_not_jwt")
    assert "/api/auth/token" in body["detail"]


async def test_token_just_under_size_limit_is_verified(
    client: httpx.AsyncClient, tokens: TokenFactory
) -> None:
    size = 8192
    while len(fitting := tokens.ed25519(SUB, padding="x" * size)) > 8192:
        size -= 1
    assert len(fitting) >= 8190

    response = await client.get("/api/me", headers=bearer(fitting))

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        pytest.param(
            lambda t, sub: t.ed25519(sub, exp=int(time.time()) - 120), "token_expired", id="expired"
        ),
        pytest.param(signed_by_another_key, "invalid_signature", id="forged"),
        pytest.param(
            lambda t, sub: t.hs256(sub, secret="y" * 48), "invalid_signature", id="hs256-secret"
        ),
        pytest.param(
            lambda t, sub: t.ed25519(sub, aud="https://other.example"), "invalid_audience", id="aud"
        ),
    ],
)
async def test_rejected_request_writes_nothing(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tokens: TokenFactory,
    owner_id: str,
    make_token: Callable[[TokenFactory, str], str],
    code: str,
) -> None:
    response = await client.post(
        "/api/tasks",
        json={"title": "Should not exist"},
        headers=bearer(make_token(tokens, owner_id)),
    )

    assert_problem(response, status=401, code=code)
    stored = (await session.exec(select(Task).where(Task.user_id == owner_id))).all()
    assert stored == []


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", {"title": "Overwritten"}),
        ("PATCH", "", {"title": "Patched"}),
        ("PATCH", "/complete", {"completed": True}),
        ("DELETE", "", None),
    ],
)
async def test_rejected_request_leaves_existing_task_untouched(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tokens: TokenFactory,
    owner_id: str,
    method: str,
    suffix: str,
    body: dict[str, object] | None,
) -> None:
    task = await make_task(session, owner_id, title="Original")
    expired = tokens.ed25519(owner_id, exp=int(time.time()) - 120)

    response = await client.request(
        method, f"/api/tasks/{task.id}{suffix}", json=body, headers=bearer(expired)
    )

    assert_problem(response, status=401, code="token_expired")
    await session.refresh(task)
    assert (task.title, task.completed, task.version) == ("Original", False, 1)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__}")


async def test_tokens_never_reach_the_logs(client: httpx.AsyncClient, tokens: TokenFactory) -> None:
    sent = [tokens.ed25519(SUB), ed25519(exp=NowPlus(-120))(tokens), session_token(tokens)]
    package_logger = logging.getLogger("tasks_api")
    records, level = _Records(), package_logger.level
    package_logger.addHandler(records)
    package_logger.setLevel(logging.DEBUG)
    try:
        for token in sent:
            await client.get("/api/me", headers=bearer(token))
    finally:
        package_logger.removeHandler(records)
        package_logger.setLevel(level)

    assert records.lines
    for token in sent:
        assert not [line for line in records.lines if token in line]
