"""Schemathesis against the app's own OpenAPI document: every operation, every method, over ASGI.

Each response must be documented: no 5xx, a documented status code and content type, a body that
validates against its documented schema (problem bodies included) and documented headers that
match theirs. Schemathesis's other stateless checks run too: schema-violating requests are
refused, undocumented methods get 405 with `Allow`, and a 2xx needs the token.

How it is wired, and why:

- The document is `export_openapi.openapi_schema()`, the app's own (the committed contract is
  compared with it by test_openapi_contract.py). It is loaded at import, because
  `schemathesis.pytest.from_fixture` does not run under pytest 9.2 (it writes `Node._nodeid`,
  which is gone); the app under test is built by a fixture and reached through `APP_UNDER_TEST`.
- Schemathesis calls the app in-process on its own event loop thread, and runs its lifespan
  there, so the app uses its real pool, its real commits and the real PostgreSQL. Rows stay
  committed in the run's database, under user ids fresh to the run. Rate limits are off: the
  fuzzer would exhaust them.
- Every request goes through real token verification. The auth provider picks a caller from a
  hash of the generated case, so a shrunk or replayed case keeps its caller: Alice or Bob (real
  Ed25519 tokens), a token signed with the wrong key, or no token at all. Schemathesis adds its own
  cases without a token, and checks once per operation that one without a token is refused.
- Paths with a task id get one of six tasks that exist (three per user) half the time, so the
  routes' 200s and cross-owner 404s are reached, not only 404s for random ids.
- Fixed seed, no example database: a failure reproduces on the next run. `MAX_EXAMPLES` bounds
  the random phase per operation and generation mode; the deterministic coverage phase (bounds,
  missing and wrong-typed values) comes on top.
"""

import hashlib
import uuid
from collections.abc import Iterator
from enum import Enum
from typing import Any, TypeAlias

import hypothesis
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st
from schemathesis.checks import positive_data_acceptance
from schemathesis.core import NotSet
from schemathesis.core.failures import AcceptedNegativeData, Failure
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Receive, Scope, Send

from tasks_api.export_openapi import openapi_schema
from tasks_api.main import create_app
from tests.conftest import make_settings
from tests.factories import make_task
from tests.tokens import KID, JwksServer, TokenFactory, public_jwk

SEED = 20260512
MAX_EXAMPLES = 150

# Generic in the operation type, which nothing here depends on.
Case: TypeAlias = schemathesis.Case[Any]

# Fresh for every run: the rows the fuzzer writes are committed.
_RUN = uuid.uuid4().hex[:8]
ALICE, BOB = f"fuzz-alice-{_RUN}", f"fuzz-bob-{_RUN}"
KNOWN_TASKS = {owner: [uuid.uuid4() for _ in range(3)] for owner in (ALICE, BOB)}
KNOWN_TASK_IDS = [str(task_id) for ids in KNOWN_TASKS.values() for task_id in ids]

# The fuzz app's JWKS serves this key; FORGER's key has the same `kid` but is not served.
SIGNER = TokenFactory(Ed25519PrivateKey.generate())
FORGER = TokenFactory(Ed25519PrivateKey.generate())


class AppUnderTest:
    """The ASGI app schemathesis calls: forwards to the app the `fuzz_app` fixture built."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "the fuzz_app fixture builds the app"
        await self.app(scope, receive, send)


APP_UNDER_TEST = AppUnderTest()
# Refusals a schema-violating request may get: schemathesis's list, plus the size limits (spec.md
# "Request size limits"), which come first when the violation is a value too long to send.
REFUSALS = (400, 401, 403, 404, 405, 406, 409, 413, 414, 415, 422, 428, 431)
CONFIG = {
    "seed": SEED,
    "checks": {"negative_data_rejection": {"expected-statuses": [str(s) for s in REFUSALS]}},
}
schema = schemathesis.openapi.from_dict(
    openapi_schema(), config=schemathesis.Config.from_dict(CONFIG)
)
schema.app = APP_UNDER_TEST


class Caller(Enum):
    ALICE = "alice"
    BOB = "bob"
    FORGED_TOKEN = "forged"
    ANONYMOUS = "anonymous"


# Mostly real users, so most requests get past authentication and reach the route.
_CALLERS = [Caller.ALICE] * 3 + [Caller.BOB] * 3 + [Caller.FORGED_TOKEN, Caller.ANONYMOUS]


# The run's own ids, as names that are the same in every run.
_STABLE_NAMES = {
    ALICE: "alice",
    BOB: "bob",
    **{task_id: f"known-{index}" for index, task_id in enumerate(KNOWN_TASK_IDS)},
}


def _digest(case: Case) -> bytes:
    """A hash of what was generated for the case, the same in every run: the run's own ids count
    by their stable names (a case may come back with its user id set), and no object address
    (NotSet's repr) comes into it."""
    path = {
        name: _STABLE_NAMES.get(value, value) if isinstance(value, str) else value
        for name, value in (case.path_parameters or {}).items()
    }
    body = None if isinstance(case.body, NotSet) else case.body
    generated = repr((case.method, path, case.query, body))
    return hashlib.sha256(generated.encode()).digest()


@schema.auth(refresh_interval=None)  # no caching: the caller changes from case to case
class Callers:
    def get(self, case: Case, context: schemathesis.AuthContext) -> Caller:
        return _CALLERS[_digest(case)[0] % len(_CALLERS)]

    def set(self, case: Case, caller: Caller, context: schemathesis.AuthContext) -> None:
        now_and_then = _digest(case)[1] % 8 == 0
        user = {Caller.ALICE: ALICE, Caller.BOB: BOB}.get(caller)
        if caller is Caller.ANONYMOUS:
            case.headers.pop("Authorization", None)
        elif user is None:
            case.headers["Authorization"] = f"Bearer {FORGER.ed25519(ALICE)}"
        else:
            case.headers["Authorization"] = f"Bearer {SIGNER.ed25519(user)}"
        path_parameters = case.path_parameters or {}
        if user is not None and "user_id" in path_parameters:
            # /api/{user_id}/tasks: the path names the caller, now and then someone else (403).
            path_parameters["user_id"] = (BOB if user == ALICE else ALICE) if now_and_then else user


@schema.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """Half the well-formed task ids become one of the tasks that exist."""
    if not path_parameters or not _is_uuid(path_parameters.get("task_id")):
        return st.just(path_parameters)
    existing = st.sampled_from(KNOWN_TASK_IDS).map(
        lambda task_id: {**path_parameters, "task_id": task_id}
    )
    return st.one_of(st.just(path_parameters), existing)


@schema.hook
def filter_failure(
    context: schemathesis.HookContext,
    failure: Failure,
    case: Case,
    response: schemathesis.Response,
) -> bool:
    """Every failure counts but one the spec decides: a title over 500 characters only because
    of the white space around it is trimmed and stored ("Titles are trimmed and 1-500
    characters"). JSON Schema's maxLength cannot say "after trimming"."""
    return not (isinstance(failure, AcceptedNegativeData) and _only_trimmed(case, response))


def _only_trimmed(case: Case, response: schemathesis.Response) -> bool:
    sent = case.body.get("title") if isinstance(case.body, dict) else None
    if not isinstance(sent, str) or response.status_code not in {200, 201}:
        return False
    stored = response.json()["title"]
    before, found, after = sent.partition(stored)
    return bool(found) and len(stored) <= 500 and not (before + after).strip()


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def fuzz_app(database_url: str) -> Iterator[None]:
    jwks = JwksServer(keys=[public_jwk(SIGNER.private_key, KID)])
    settings = make_settings(database_url, rate_limit_enabled=False)
    APP_UNDER_TEST.app = create_app(settings, jwks_transport=jwks.transport)
    yield
    APP_UNDER_TEST.app = None


@pytest.fixture(scope="module")
async def known_tasks(engine: AsyncEngine) -> None:
    async with AsyncSession(engine) as session:
        for owner, task_ids in KNOWN_TASKS.items():
            for task_id in task_ids:
                await make_task(session, owner, id=task_id, title=f"Known {task_id}")
        await session.commit()


@pytest.mark.slow
@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, database=None)
def test_every_response_is_documented(case: Case, fuzz_app: None, known_tasks: None) -> None:
    # Every check but one. A schema-valid request may still be refused: rules between fields
    # (`include_deleted` needs `updated_since`), an unknown cursor, a title of white space only,
    # or NUL characters are 400/422 by design (spec.md), and JSON Schema cannot say so.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
