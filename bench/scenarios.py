"""What is measured: the scenarios, and the data file their Lua scripts read."""

from dataclasses import dataclass
from pathlib import Path

from bench.database import LARGE_USER, SMALL_USER, WRITER_USER

# Users as the Lua scripts name them, and who they are in the database. "Big" has 100 000 tasks
# (2 000 with --small), "small" 200, "writer" receives the creates.
USERS = {"small": SMALL_USER, "large": LARGE_USER, "writer": WRITER_USER}
PAGE_SIZE = 50
FILTERED_QUERY = f"limit={PAGE_SIZE}&status=pending&priority=high&sort=due_date"


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    script: str
    # After the data file: what the script needs besides it.
    script_args: tuple[str, ...] = ()


SCENARIOS = [
    Scenario(
        "list_first_page",
        f"first page (limit {PAGE_SIZE}) of the small (200-task) user, newest first",
        "list.lua",
        ("list_first_page",),
    ),
    Scenario(
        "list_deep_cursor",
        f"a page (limit {PAGE_SIZE}) 90% of the way into the big user's list, newest first",
        "list.lua",
        ("list_deep_cursor",),
    ),
    Scenario(
        "list_filtered",
        f"the big user's first page of {FILTERED_QUERY}",
        "list.lua",
        ("list_filtered",),
    ),
    Scenario("get_task", "GET one task of the big user, at random", "get_task.lua"),
    Scenario(
        "create_task",
        "POST a task (title, priority, due date, description) for the writer user",
        "create_task.lua",
    ),
    Scenario(
        "patch_task", "PATCH title and priority of a random task of the big user", "patch_task.lua"
    ),
    Scenario(
        "toggle_task",
        "PATCH .../complete (flip) of a random task of the big user",
        "toggle_task.lua",
    ),
    Scenario(
        "health",
        "GET /health, with a token it does not read: a request's cost without auth or database",
        "list.lua",
        ("health",),
    ),
    Scenario(
        "auth_me",
        "GET /api/me: the token verified (or found in the cache), no database",
        "list.lua",
        ("auth_me",),
    ),
    Scenario(
        "mixed",
        "70% reads: 35% first page, 35% get; 10% each create, patch, toggle",
        "mixed.lua",
    ),
]
SCENARIO_NAMES = [scenario.name for scenario in SCENARIOS]


@dataclass(frozen=True)
class ListPaths:
    """Path and query of each scenario that sends one fixed GET (run by list.lua) for one app:
    only the deep cursor differs, since each app reads its own cursor format."""

    first_page: str
    deep_cursor: str
    filtered: str
    health: str = "/health"
    me: str = "/api/me"

    def entries(self) -> list[tuple[str, str, str]]:
        return [
            ("list_first_page", "small", self.first_page),
            ("list_deep_cursor", "large", self.deep_cursor),
            ("list_filtered", "large", self.filtered),
            ("health", "large", self.health),
            ("auth_me", "large", self.me),
        ]


def list_paths(deep_cursor: str) -> ListPaths:
    return ListPaths(
        first_page=f"/api/tasks?limit={PAGE_SIZE}",
        deep_cursor=f"/api/tasks?limit={PAGE_SIZE}&cursor={deep_cursor}",
        filtered=f"/api/tasks?{FILTERED_QUERY}",
    )


def write_data_file(
    path: Path, *, tokens: dict[str, str], paths: ListPaths, task_ids: list[str]
) -> None:
    """The file bench/lua/common.lua loads (its format is described there)."""
    lines = [f"token {user} {token}" for user, token in tokens.items()]
    lines += [f"path {name} {user} {list_path}" for name, user, list_path in paths.entries()]
    lines += [f"id {task_id}" for task_id in task_ids]
    path.write_text("\n".join(lines) + "\n")
