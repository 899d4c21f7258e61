"""Three users drive the real API at random; a plain in-memory model says what each should see.

A Hypothesis `RuleBasedStateMachine` creates, reads (with If-None-Match), lists (every filter,
sort, order and page size, following `Link: rel="next"` to the end), searches, replaces, patches,
toggles and deletes tasks, with and without If-Match, runs delta syncs, follows other users'
next-page links, and has each user try every route on the others' task ids and on deleted ones.
After every step each user's whole list must be exactly the model's, field for field, in one of
the 22 sort orders in turn.

The model (`Expected`, `written_fields`, `listed`, `changed_since`) is written out from the README
and the spec, not from the code: it predicts every field a client controls, and takes ids and
timestamps from the responses that stamped them. Titles use only lower-case letters, so their
order is the same under any database collation (the spec does not pick one).

The app runs in-process with its real lifespan and real commits, on an event loop owned by the
machine (Hypothesis's stateful API is synchronous). Each run uses fresh user ids, so runs never
see each other's rows. Budget: 100 runs of at most 30 steps, about a minute on two cores. It is
derandomized, so a failure reproduces; it is then shrunk (for up to Hypothesis's five minutes) to
a short list of steps, printed as code.
"""

import asyncio
import contextlib
import dataclasses
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uuid6
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tasks_api.main import create_app
from tests.asgi import serving
from tests.conftest import make_settings
from tests.problems import assert_problem, without_request_id
from tests.tasks.routes import (
    DELETE_TASK,
    GET_TASK,
    PATCH_TASK,
    TOGGLE_TASK_COMPLETION,
    UPDATE_TASK,
    Route,
)
from tests.tokens import JwksServer, TokenFactory, bearer

# --- The model ------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RANK = {"low": 1, "medium": 2, "high": 3}
WRITABLE = ("title", "description", "priority", "due_date", "completed", "position")
# What PUT (and POST) give a writable field that the body leaves out.
DEFAULTS: dict[str, Any] = {
    "description": None,
    "priority": "medium",
    "due_date": None,
    "completed": False,
    "position": 0,
}
RESPONSE_FIELDS = {
    "id",
    "user_id",
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "due_date",
    "position",
    "version",
    "created_at",
    "updated_at",
    "deleted",
}


@dataclass
class Expected:
    """One task as its owner must see it.

    The writable fields and `version` are the model's prediction; `id`, `created_at` and
    `updated_at` are what the API answered when it stamped them; `completed_at` follows from them.
    """

    id: uuid.UUID
    title: str
    description: str | None
    completed: bool
    priority: str
    due_date: datetime | None
    position: int
    version: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class Tombstone:
    """A deleted task, as a delta sync with `include_deleted=true` reports it."""

    id: uuid.UUID
    updated_at: datetime


Change = Expected | Tombstone


def instant(text: str) -> datetime:
    """An instant as the API reads one: RFC 3339 with an offset, or a plain date (midnight UTC)."""
    if len(text) == len("2026-03-01"):
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
    return datetime.fromisoformat(text).astimezone(UTC)


def rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def written_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The writable fields that a valid request body sets, in the model's terms.

    Anything else in the body (`id`, `user_id`, `version`, timestamps) is ignored, as the README
    promises; titles are trimmed.
    """
    fields: dict[str, Any] = {}
    for name in WRITABLE:
        if name not in body:
            continue
        value = body[name]
        if name == "title":
            value = value.strip()
        elif name == "due_date" and value is not None:
            value = instant(value)
        fields[name] = value
    return fields


def completed_at(before: Expected | None, completed: bool, stamp: datetime) -> datetime | None:
    """Stamped when a task becomes complete, kept while it stays complete, cleared on reopening."""
    if not completed:
        return None
    if before is not None and before.completed:
        return before.completed_at
    return stamp


def matches(task: Expected, params: Mapping[str, str | int]) -> bool:
    """The list filters: all of them at once, due bounds exclusive, `q` a literal substring."""
    wanted = {"pending": False, "completed": True}.get(str(params.get("status", "all")))
    if "completed" in params:
        wanted = params["completed"] == "true"
    if wanted is not None and task.completed != wanted:
        return False
    if "priority" in params and task.priority != params["priority"]:
        return False
    if "due_before" in params and (
        task.due_date is None or not task.due_date < instant(str(params["due_before"]))
    ):
        return False
    if "due_after" in params and (
        task.due_date is None or not task.due_date > instant(str(params["due_after"]))
    ):
        return False
    if "q" in params:
        needle = str(params["q"]).lower()
        haystacks = [task.title.lower(), (task.description or "").lower()]
        if not any(needle in haystack for haystack in haystacks):
            return False
    return True


def in_order(tasks: Iterable[Expected], sort: str, descending: bool) -> list[Expected]:
    """By `sort` (priority by rank), ties by id in the same direction, no value last both ways."""

    def value(task: Expected) -> Any:
        found = getattr(task, sort)
        return RANK[found] if sort == "priority" else found

    tasks = list(tasks)
    valued = [task for task in tasks if value(task) is not None]
    missing = [task for task in tasks if value(task) is None]
    valued.sort(key=lambda task: (value(task), task.id), reverse=descending)
    missing.sort(key=lambda task: task.id, reverse=descending)
    return valued + missing


def listed(tasks: Iterable[Expected], params: Mapping[str, str | int]) -> list[Expected]:
    """Every page of `GET /api/tasks?<params>` joined: the matching tasks in the list's order.

    `sort` defaults to created_at (`created` is its alias); `order` defaults to desc for the two
    timestamps and asc for everything else.
    """
    sort = str(params.get("sort", "created_at"))
    if sort == "created":
        sort = "created_at"
    if "order" in params:
        descending = params["order"] == "desc"
    else:
        descending = sort in {"created_at", "updated_at"}
    return in_order([task for task in tasks if matches(task, params)], sort, descending)


def continued(
    boundary: Expected, tasks: Iterable[Expected], params: Mapping[str, str | int]
) -> list[Expected]:
    """What a cursor that ended on `boundary` leads to in a list of `tasks`: the ones after it.

    A cursor is only a position (sort value and id), so this holds whoever's list it came from.
    """
    ordered = listed([*(task for task in tasks if task.id != boundary.id), boundary], params)
    return ordered[ordered.index(boundary) + 1 :]


def changed_since(
    tasks: Iterable[Expected], tombstones: Mapping[uuid.UUID, datetime], since: datetime
) -> list[Change]:
    """A delta sync from `since`: live tasks and tombstones with a later `updated_at`, oldest
    change first (ties by id). Pass no tombstones for a sync without `include_deleted`."""
    changes: list[Change] = [task for task in tasks if task.updated_at > since]
    changes += [Tombstone(task_id, at) for task_id, at in tombstones.items() if at > since]
    return sorted(changes, key=lambda change: (change.updated_at, change.id))


def observed(body: Mapping[str, Any], owner: str) -> Expected:
    """A task from the API, in the model's terms; also checks the fields the model does not keep."""
    assert body.keys() == RESPONSE_FIELDS, body
    assert body["user_id"] == owner
    assert body["deleted"] is False

    def moment(value: str | None) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)

    return Expected(
        id=uuid.UUID(body["id"]),
        title=body["title"],
        description=body["description"],
        completed=body["completed"],
        priority=body["priority"],
        due_date=moment(body["due_date"]),
        position=body["position"],
        version=body["version"],
        created_at=datetime.fromisoformat(body["created_at"]),
        updated_at=datetime.fromisoformat(body["updated_at"]),
        completed_at=moment(body["completed_at"]),
    )


def observed_change(body: Mapping[str, Any], owner: str) -> Change:
    if body.get("deleted") is True:
        assert body.keys() == {"id", "deleted", "updated_at"}, body
        return Tombstone(uuid.UUID(body["id"]), datetime.fromisoformat(body["updated_at"]))
    return observed(body, owner)


# --- What the users send --------------------------------------------------------------------

USERS = st.integers(min_value=0, max_value=2)
# Few distinct values, so ties, filter hits and exclusive bounds come up often.
TITLES = st.tuples(
    st.sampled_from(["", " ", "  "]),
    st.text("abc", min_size=1, max_size=3),
    st.sampled_from(["", " "]),
).map("".join)
# Text for descriptions and searches: both cases, LIKE's own wildcards and escape, characters
# that a query string or the next-page link could garble, and some that are not ASCII.
DESCRIPTIONS = st.text("aAbBc éÉ%_\\+&☕", max_size=6)
SEARCHES = st.text("aAbBcCéÉ%_\\+&☕ ", min_size=1, max_size=2)
PRIORITIES = st.sampled_from(["low", "medium", "high"])
POSITIONS = st.sampled_from([-(2**31), -1, 0, 1, 2, 2**31 - 1])
DAY = datetime(2026, 3, 1, tzinfo=UTC)
# Few, so that due dates often equal each other and the (exclusive) bounds of a filter; and the
# first and last days a client can send, next to the sort's stand-ins for "no due date".
INSTANTS = [
    DAY - timedelta(hours=12),
    DAY,
    DAY + timedelta(microseconds=1),
    DAY + timedelta(days=1),
    datetime(1, 1, 1, 12, tzinfo=UTC),
    datetime(9999, 12, 31, 12, tzinfo=UTC),
]


def _renderings(moment: datetime) -> st.SearchStrategy[str]:
    """One instant written the ways a client may write it."""
    forms = [
        rfc3339(moment),
        moment.astimezone(timezone(timedelta(hours=2))).isoformat(),
        moment.astimezone(timezone(-timedelta(hours=5, minutes=30))).isoformat(),
    ]
    if moment.timetz() == time(tzinfo=UTC):
        forms.append(moment.date().isoformat())
    return st.sampled_from(forms)


DUE_DATES = st.sampled_from(INSTANTS).flatmap(_renderings)
FULL_BODIES = st.fixed_dictionaries(
    {"title": TITLES},
    optional={
        "description": DESCRIPTIONS | st.none(),
        "priority": PRIORITIES,
        "due_date": DUE_DATES | st.none(),
        "completed": st.booleans(),
        "position": POSITIONS,
    },
)
PATCH_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "title": TITLES,
        "description": DESCRIPTIONS | st.none(),
        "priority": PRIORITIES,
        "due_date": DUE_DATES | st.none(),
        "completed": st.booleans(),
        "position": POSITIONS,
    },
)
# Each one 422, and nothing changes.
INVALID_PATCHES: list[dict[str, Any]] = [
    {"title": "   "},
    {"title": None},
    {"priority": None},
    {"priority": "urgent"},
    {"completed": "true"},
    {"position": 2**31},
    {"due_date": "2026-03-01T00:00:00"},
    {"description": "nul\x00byte"},
]
TOGGLE_BODIES = st.sampled_from([None, {}, {"completed": True}, {"completed": False}])
SORTS = ["created_at", "created", "updated_at", "title", "due_date", "priority", "position"]
ORDERS = ["asc", "desc"]
# Every sort key with its default order and with both explicit ones. The invariant looks at each
# user's whole list in one of these per step, in turn.
VIEWS: list[dict[str, str]] = [
    {},
    *[{"sort": sort} for sort in SORTS],
    *[{"sort": sort, "order": order} for sort in SORTS for order in ORDERS],
]
# List filters. Two rules draw them, so that completion filters (the ones a UI uses most) come
# up as often as the others: Hypothesis leans towards the first of several alternatives.
COMPLETION_FILTERS = st.sampled_from(
    [
        {"status": "all"},
        {"status": "pending"},
        {"status": "completed"},
        {"completed": "true"},
        {"completed": "false"},
        {"status": "completed", "completed": "true"},
        {"status": "all", "completed": "false"},
    ]
)
OTHER_FILTERS: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.fixed_dictionaries({"due_before": DUE_DATES}),
    st.fixed_dictionaries({"q": SEARCHES}),
    st.fixed_dictionaries({"due_after": DUE_DATES}),
    st.fixed_dictionaries({"priority": PRIORITIES}),
    st.fixed_dictionaries({"due_after": DUE_DATES, "due_before": DUE_DATES}),
)
# Sometimes a second filter, to see that filters combine.
ALSO_FILTERS: st.SearchStrategy[dict[str, str]] = st.one_of(
    st.just({}),
    COMPLETION_FILTERS,
    st.fixed_dictionaries({"q": SEARCHES}),
    st.fixed_dictionaries({"priority": PRIORITIES}),
)
# A small page first, for the same reason: paging is what this is about.
PAGE_SIZES = st.sampled_from([{"limit": 2}, {}, {"limit": 1}, {"limit": 3}, {"limit": 5}])


@st.composite
def list_params(
    draw: st.DrawFn, *filters: st.SearchStrategy[dict[str, str]]
) -> dict[str, str | int]:
    """The given filters, an ordering and a page size."""
    params: dict[str, str | int] = {}
    for part in filters:
        params.update(draw(part))
    params.update(draw(st.sampled_from(VIEWS)))
    params.update(draw(PAGE_SIZES))
    return params


# How a write is guarded: by If-Match with the current ETag, a stale or weak one (strong
# comparison: never matches), `*`, a list holding the current one, or not at all.
IF_MATCH = st.sampled_from(["none", "current", "any", "list", "stale", "weak"])
IF_MATCH_ACCEPTS = {"none", "current", "any", "list"}


def if_match(choice: str, version: int) -> dict[str, str]:
    tags = {
        "none": None,
        "current": f'"{version}"',
        "any": "*",
        "list": f'"{version + 7}", "{version}"',
        "stale": f'"{version - 1}"',
        "weak": f'W/"{version}"',
    }
    tag = tags[choice]
    return {} if tag is None else {"If-Match": tag}


@dataclass(frozen=True)
class Probe:
    """One request to a task URL: route, body (None: no body at all) and extra headers."""

    route: Route
    body: dict[str, Any] | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)


def probes(version: int) -> st.SearchStrategy[Probe]:
    """Every kind of request to someone else's (or a deleted) task, guarded or not."""
    guards = st.sampled_from(["none", "current", "any", "stale"]).map(
        lambda choice: if_match(choice, version)
    )
    cached = st.sampled_from([{}, {"If-None-Match": f'"{version}"'}, {"If-None-Match": "*"}])
    return st.one_of(
        st.builds(Probe, st.just(GET_TASK), st.none(), cached),
        st.builds(Probe, st.just(UPDATE_TASK), FULL_BODIES, guards),
        st.builds(Probe, st.just(PATCH_TASK), PATCH_BODIES, guards),
        st.builds(Probe, st.just(TOGGLE_TASK_COMPLETION), TOGGLE_BODIES, guards),
        st.builds(Probe, st.just(DELETE_TASK), st.none(), guards),
    )


NEXT_LINK = re.compile(r'<(?P<url>[^<>]+)>; rel="next"')


def _comparable_headers(response: httpx.Response) -> dict[str, str]:
    # The request id differs by design, and with it the body's length.
    return {
        name: value
        for name, value in response.headers.items()
        if name not in {"x-request-id", "content-length"}
    }


# --- The machine ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """What a machine needs from the pytest fixtures."""

    database_url: str
    tokens: TokenFactory
    jwks_transport: httpx.AsyncBaseTransport


class ManyUsers(RuleBasedStateMachine):
    """Three users, one app, and the model of what each of them must see."""

    def __init__(self, environment: Environment) -> None:
        super().__init__()
        run = uuid.uuid4().hex[:10]
        self.users = [f"many-{run}-{name}" for name in ("ann", "ben", "cai")]
        self.auth = [bearer(environment.tokens.ed25519(user)) for user in self.users]
        # The model: each user's live tasks by id, and deleted ones with their tombstone's time.
        self.tasks: list[dict[uuid.UUID, Expected]] = [{} for _ in self.users]
        self.tombstones: list[dict[uuid.UUID, datetime]] = [{} for _ in self.users]
        self.sync_tokens: list[list[datetime]] = [[] for _ in self.users]
        # The latest Sync-Token handed out: every later write must be stamped after it.
        self.sync_horizon = EPOCH
        # Steps checked so far: picks the invariant's view of the lists.
        self.checks = 0
        app = create_app(
            # WARNING: the access log line per request would only slow the run down.
            make_settings(environment.database_url, rate_limit_enabled=False, log_level="WARNING"),
            jwks_transport=environment.jwks_transport,
        )
        # Our own loop, not pytest-asyncio's; a loop_factory keeps it from becoming the
        # thread's current loop, which would disturb the session loop of the other tests.
        self.runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self.exits = contextlib.AsyncExitStack()
        self.client = self.runner.run(self.exits.enter_async_context(serving(app)))

    def teardown(self) -> None:
        try:
            self.runner.run(self.exits.aclose())
        finally:
            self.runner.close()

    # --- Plumbing ---

    def send(
        self,
        user: int,
        method: str,
        url: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        request = self.client.request(
            method, url, json=body, params=params, headers={**self.auth[user], **(headers or {})}
        )
        return self.runner.run(request)

    def walk(
        self, user: int, params: Mapping[str, str | int], start: str = "/api/tasks"
    ) -> list[httpx.Response]:
        """Every page of a list, following `Link: rel="next"`; checks the pages' sizes and links.

        `start` is where to begin: the list itself, or the URL of a later page.
        """
        pages = [self.send(user, "GET", start, params=None if "?" in start else params)]
        while True:
            assert pages[-1].status_code == 200, pages[-1].text
            link = pages[-1].headers.get("link")
            if link is None:
                break
            match = NEXT_LINK.fullmatch(link)
            assert match is not None, link
            kept = parse_qs(urlsplit(match["url"]).query)
            assert kept.pop("cursor")
            assert kept == {name: [str(value)] for name, value in params.items()}
            assert len(pages) < 200, "the walk does not end"
            pages.append(self.send(user, "GET", match["url"]))
        limit = int(params.get("limit", 100))
        sizes = [len(page.json()) for page in pages]
        assert all(size == limit for size in sizes[:-1]), sizes
        assert 0 < sizes[-1] <= limit or sizes == [0], sizes
        return pages

    def listing(
        self, user: int, params: Mapping[str, str | int], start: str = "/api/tasks"
    ) -> list[Expected]:
        pages = self.walk(user, params, start)
        assert all("sync-token" not in page.headers for page in pages)
        return [observed(item, self.users[user]) for page in pages for item in page.json()]

    def sync(self, user: int, params: Mapping[str, str | int]) -> list[Change]:
        """A delta sync, every page; remembers its Sync-Token, which every page must share."""
        pages = self.walk(user, params)
        (token,) = {page.headers["sync-token"] for page in pages}
        assert token.endswith("Z"), token
        self.sync_tokens[user].append(instant(token))
        self.sync_horizon = max(self.sync_horizon, instant(token))
        return [observed_change(item, self.users[user]) for page in pages for item in page.json()]

    def stamped(self, moment: datetime) -> None:
        """A write's timestamp: later than any Sync-Token already handed out (the spec's promise
        that a sync never misses a change committed after it read)."""
        assert moment > self.sync_horizon, (moment, self.sync_horizon)

    def assert_looks_missing(self, user: int, task_id: uuid.UUID, probe: Probe) -> None:
        """`task_id` answers exactly like an id that never existed: the same 404 and headers."""
        answers = [
            self.send(
                user,
                probe.route.method,
                probe.route.url(target),
                body=probe.body,
                headers=probe.headers,
            )
            for target in (task_id, uuid6.uuid7())
        ]
        there, nowhere = answers
        assert_problem(there, 404, "task_not_found")
        assert without_request_id(there) == without_request_id(nowhere)
        assert _comparable_headers(there) == _comparable_headers(nowhere)

    def users_with_tasks(self) -> list[int]:
        return [user for user, tasks in enumerate(self.tasks) if tasks]

    def pick_task(self, data: st.DataObject) -> tuple[int, Expected]:
        user = data.draw(st.sampled_from(self.users_with_tasks()), label="user")
        task_id = data.draw(st.sampled_from(list(self.tasks[user])), label="task")
        return user, self.tasks[user][task_id]

    def forged(self, user: int, data: st.DataObject) -> dict[str, Any]:
        """Server-owned fields a hostile client may add, pointing at another user: ignored."""
        if not data.draw(st.booleans(), label="forge server-owned fields"):
            return {}
        other = (user + 1) % len(self.users)
        someone_elses = [str(task_id) for task_id in self.tasks[other]] or [str(uuid6.uuid7())]
        return {
            "user_id": self.users[other],
            "id": data.draw(st.sampled_from(someone_elses), label="forged id"),
            "version": 99,
            "created_at": "2000-01-01T00:00:00Z",
            "completed_at": "2000-01-01T00:00:00Z",
        }

    def create(self, user: int, body: dict[str, Any]) -> None:
        response = self.send(user, "POST", "/api/tasks", body=body)
        assert response.status_code == 201, response.text
        got = observed(response.json(), self.users[user])
        fields = {**DEFAULTS, **written_fields(body)}
        expected = Expected(
            id=got.id,
            version=1,
            created_at=got.created_at,
            updated_at=got.created_at,
            completed_at=completed_at(None, fields["completed"], got.created_at),
            **fields,
        )
        assert got == expected
        assert got.id not in self.tasks[user]
        assert response.headers["location"] == f"http://testserver/api/tasks/{got.id}"
        assert response.headers["etag"] == '"1"'
        self.stamped(got.created_at)
        self.tasks[user][got.id] = got

    def expect_write(
        self,
        user: int,
        before: Expected,
        changes: Mapping[str, Any],
        guard: str,
        response: httpx.Response,
    ) -> None:
        """A write answers with `before` plus `changes`, one version later and stamped now; or,
        when If-Match did not match, 412 with the current ETag and no change at all."""
        if guard not in IF_MATCH_ACCEPTS:
            assert_problem(response, 412, "precondition_failed")
            assert response.headers["etag"] == f'"{before.version}"'
            return
        assert response.status_code == 200, response.text
        got = observed(response.json(), self.users[user])
        expected = dataclasses.replace(
            before, **changes, version=before.version + 1, updated_at=got.updated_at
        )
        expected.completed_at = completed_at(before, expected.completed, got.updated_at)
        assert got == expected
        assert got.updated_at > before.updated_at
        assert response.headers["etag"] == f'"{got.version}"'
        self.stamped(got.updated_at)
        self.tasks[user][got.id] = got

    # --- Rules ---

    @initialize(bodies=st.lists(st.lists(FULL_BODIES, max_size=4), min_size=3, max_size=3))
    def some_tasks_to_begin_with(self, bodies: list[list[dict[str, Any]]]) -> None:
        for user, owned in enumerate(bodies):
            for body in owned:
                self.create(user, body)

    @rule(user=USERS, body=FULL_BODIES, data=st.data())
    def create_task(self, user: int, body: dict[str, Any], data: st.DataObject) -> None:
        self.create(user, {**self.forged(user, data), **body})

    @precondition(lambda self: self.users_with_tasks())
    @rule(data=st.data())
    def read_task(self, data: st.DataObject) -> None:
        user, task = self.pick_task(data)
        cached = data.draw(
            st.sampled_from(["none", "current", "weak", "any", "stale", "unreadable"]),
            label="If-None-Match",
        )
        tag = {
            "none": None,
            "current": f'"{task.version}"',
            "weak": f'W/"{task.version}"',  # weak comparison: matches
            "any": "*",
            "stale": f'"{task.version + 1}"',
            "unreadable": "3",  # not an entity tag: ignored
        }[cached]
        headers = {} if tag is None else {"If-None-Match": tag}
        response = self.send(user, "GET", GET_TASK.url(task.id), headers=headers)
        assert response.headers["etag"] == f'"{task.version}"'
        if cached in {"current", "weak", "any"}:
            assert response.status_code == 304
            assert response.content == b""
        else:
            assert response.status_code == 200, response.text
            assert observed(response.json(), self.users[user]) == task

    @rule(params=list_params(OTHER_FILTERS, ALSO_FILTERS))
    def list_tasks(self, params: dict[str, str | int]) -> None:
        self.everyone_lists(params)

    @rule(params=list_params(COMPLETION_FILTERS))
    def list_tasks_by_completion(self, params: dict[str, str | int]) -> None:
        self.everyone_lists(params)

    @precondition(lambda self: self.users_with_tasks())
    @rule(data=st.data(), ordering=st.sampled_from(VIEWS), page=PAGE_SIZES)
    def search_for_a_piece_of_a_task(
        self, data: st.DataObject, ordering: dict[str, str], page: dict[str, int]
    ) -> None:
        """Everyone searches for part of one task's title or description, in some case: the
        owner finds it, the others find only their own tasks."""
        _, task = self.pick_task(data)
        texts = [text for text in (task.title, task.description) if text]
        text = data.draw(st.sampled_from(texts), label="text")
        start = data.draw(st.integers(0, len(text) - 1), label="start")
        end = data.draw(st.integers(start + 1, len(text)), label="end")
        piece = text[start:end]
        q = data.draw(st.sampled_from([piece, piece.upper(), piece.swapcase()]), label="q")
        self.everyone_lists({"q": q, **ordering, **page})

    @precondition(lambda self: self.due_dates())
    @rule(
        data=st.data(),
        bound=st.sampled_from(["due_before", "due_after"]),
        ordering=st.sampled_from(VIEWS),
        page=PAGE_SIZES,
    )
    def filter_at_a_due_date(
        self, data: st.DataObject, bound: str, ordering: dict[str, str], page: dict[str, int]
    ) -> None:
        """Everyone lists with a due bound exactly at some task's due date: bounds are exclusive."""
        due = data.draw(st.sampled_from(self.due_dates()), label="due date")
        self.everyone_lists({bound: data.draw(_renderings(due)), **ordering, **page})

    def due_dates(self) -> list[datetime]:
        return sorted(
            {task.due_date for tasks in self.tasks for task in tasks.values() if task.due_date}
        )

    def everyone_lists(self, params: Mapping[str, str | int]) -> None:
        # Everyone runs the same query, and each gets only their own tasks.
        for user, tasks in enumerate(self.tasks):
            assert self.listing(user, params) == listed(tasks.values(), params)

    @precondition(lambda self: self.users_with_tasks())
    @rule(
        params=list_params(ALSO_FILTERS),
        limit=st.integers(min_value=1, max_value=3),
        data=st.data(),
    )
    def follow_a_cursor_from_another_list(
        self, params: dict[str, str | int], limit: int, data: st.DataObject
    ) -> None:
        """Someone's next-page link, followed by anyone: only a position in the follower's list."""
        owner = data.draw(st.sampled_from(self.users_with_tasks()), label="owner")
        follower = data.draw(USERS, label="follower")
        params = {**params, "limit": limit}
        first = self.send(owner, "GET", "/api/tasks", params=params)
        assert first.status_code == 200, first.text
        page = [observed(item, self.users[owner]) for item in first.json()]
        assert page == listed(self.tasks[owner].values(), params)[:limit]
        if "link" not in first.headers:
            return
        boundary = page[-1]
        link = NEXT_LINK.fullmatch(first.headers["link"])
        assert link is not None
        expected = continued(boundary, self.tasks[follower].values(), params)
        assert self.listing(follower, params, start=link["url"]) == expected

    @precondition(lambda self: self.users_with_tasks())
    @rule(data=st.data(), body=FULL_BODIES, guard=IF_MATCH)
    def replace_task(self, data: st.DataObject, body: dict[str, Any], guard: str) -> None:
        user, before = self.pick_task(data)
        response = self.send(
            user,
            "PUT",
            UPDATE_TASK.url(before.id),
            body={**self.forged(user, data), **body},
            headers=if_match(guard, before.version),
        )
        changes = {**DEFAULTS, **written_fields(body)}
        self.expect_write(user, before, changes, guard, response)

    @precondition(lambda self: self.users_with_tasks())
    @rule(data=st.data(), body=PATCH_BODIES, guard=IF_MATCH)
    def patch_task(self, data: st.DataObject, body: dict[str, Any], guard: str) -> None:
        user, before = self.pick_task(data)
        headers = if_match(guard, before.version)
        response = self.send(
            user,
            "PATCH",
            PATCH_TASK.url(before.id),
            body={**self.forged(user, data), **body},
            headers=headers,
        )
        if body:
            self.expect_write(user, before, written_fields(body), guard, response)
        elif guard in IF_MATCH_ACCEPTS:
            # Nothing to change: the task as it is, same version, nothing written.
            assert response.status_code == 200, response.text
            assert observed(response.json(), self.users[user]) == before
            assert response.headers["etag"] == f'"{before.version}"'
        else:
            assert_problem(response, 412, "precondition_failed")
            assert response.headers["etag"] == f'"{before.version}"'

    @precondition(lambda self: self.users_with_tasks())
    @rule(data=st.data(), body=st.sampled_from(INVALID_PATCHES), guard=IF_MATCH)
    def patch_task_with_an_invalid_body(
        self, data: st.DataObject, body: dict[str, Any], guard: str
    ) -> None:
        user, before = self.pick_task(data)
        response = self.send(
            user,
            "PATCH",
            PATCH_TASK.url(before.id),
            body=body,
            headers=if_match(guard, before.version),
        )
        # Refused before anything is read or written; the invariant checks nothing changed.
        assert_problem(response, 422, "validation_failed")

    @precondition(lambda self: self.users_with_tasks())
    @rule(data=st.data(), body=TOGGLE_BODIES, guard=IF_MATCH)
    def toggle_completion(
        self, data: st.DataObject, body: dict[str, bool] | None, guard: str
    ) -> None:
        user, before = self.pick_task(data)
        response = self.send(
            user,
            "PATCH",
            TOGGLE_TASK_COMPLETION.url(before.id),
            body=body,
            headers=if_match(guard, before.version),
        )
        completed = (body or {}).get("completed", not before.completed)
        self.expect_write(user, before, {"completed": completed}, guard, response)

    @precondition(lambda self: self.users_with_tasks())
    @rule(data=st.data(), guard=IF_MATCH)
    def delete_task(self, data: st.DataObject, guard: str) -> None:
        user, before = self.pick_task(data)
        response = self.send(
            user, "DELETE", DELETE_TASK.url(before.id), headers=if_match(guard, before.version)
        )
        if guard not in IF_MATCH_ACCEPTS:
            assert_problem(response, 412, "precondition_failed")
            assert response.headers["etag"] == f'"{before.version}"'
            return
        assert response.status_code == 204, response.text
        assert response.content == b""
        del self.tasks[user][before.id]
        # A 204 has no body: learn the tombstone's time from a sync that must report it.
        since = {"updated_since": rfc3339(before.updated_at), "include_deleted": "true"}
        reported = [
            change for change in self.sync(user, {**since, "limit": 500}) if change.id == before.id
        ]
        assert len(reported) == 1, reported
        (tombstone,) = reported
        assert isinstance(tombstone, Tombstone), tombstone
        assert tombstone.updated_at > before.updated_at
        self.tombstones[user][before.id] = tombstone.updated_at

    @rule(
        user=USERS,
        include_deleted=st.booleans(),
        limit=st.sampled_from([1, 2, 5, 100]),
        data=st.data(),
    )
    def delta_sync(self, user: int, include_deleted: bool, limit: int, data: st.DataObject) -> None:
        # Since the beginning, since a task's last change (exclusive), or since a Sync-Token.
        starts = [
            EPOCH,
            *(task.updated_at for task in self.tasks[user].values()),
            *self.tombstones[user].values(),
            *self.sync_tokens[user],
        ]
        since = data.draw(st.sampled_from(starts), label="updated_since")
        params: dict[str, str | int] = {"updated_since": rfc3339(since), "limit": limit}
        if include_deleted:
            params["include_deleted"] = "true"
        tombstones = self.tombstones[user] if include_deleted else {}
        assert self.sync(user, params) == changed_since(
            self.tasks[user].values(), tombstones, since
        )

    @precondition(lambda self: any(self.missing_to(user) for user in range(len(self.users))))
    @rule(data=st.data())
    def touch_a_task_that_is_not_yours(self, data: st.DataObject) -> None:
        """Another user's task, live or deleted, or one's own deleted task: like no task at all."""
        user = data.draw(
            st.sampled_from([user for user in range(len(self.users)) if self.missing_to(user)]),
            label="user",
        )
        task_id = data.draw(st.sampled_from(self.missing_to(user)), label="task")
        # The victim's current ETag, as if it had leaked; a tombstone's is never shown, so any.
        versions = {task.id: task.version for tasks in self.tasks for task in tasks.values()}
        version = versions.get(task_id, 1)
        probe = data.draw(probes(version), label="request")
        self.assert_looks_missing(user, task_id, probe)

    def missing_to(self, user: int) -> list[uuid.UUID]:
        """Ids that must not exist for `user`: everyone else's tasks, and every tombstone."""
        others = [
            task_id for other, tasks in enumerate(self.tasks) if other != user for task_id in tasks
        ]
        return others + [task_id for tombstones in self.tombstones for task_id in tombstones]

    @invariant()
    def each_user_sees_exactly_the_model(self) -> None:
        # Four a page, so every check also walks the keyset pages of a longer list.
        view: dict[str, str | int] = {**VIEWS[self.checks % len(VIEWS)], "limit": 4}
        self.checks += 1
        for user, tasks in enumerate(self.tasks):
            assert self.listing(user, view) == listed(tasks.values(), view), view


@pytest.mark.slow
def test_many_users_see_exactly_their_own_tasks(
    database_url: str, tokens: TokenFactory, jwks_server: JwksServer
) -> None:
    environment = Environment(database_url, tokens, jwks_server.transport)

    class ThisRun(ManyUsers):
        # Hypothesis builds the machine without arguments; this one knows the fixtures.
        def __init__(self) -> None:
            super().__init__(environment)

    run_state_machine_as_test(
        ThisRun,
        settings=settings(
            max_examples=100,
            stateful_step_count=30,
            derandomize=True,
            database=None,
            deadline=None,
            # Every step is real HTTP and SQL: slow by Hypothesis's standards, and meant to be.
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
