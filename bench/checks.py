"""Requests the harness makes itself: finding the deep cursor, and checking that the ceiling
answers what the service answers, so that the comparison is between equals."""

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from bench import ceiling
from bench.scenarios import ListPaths
from tasks_api.tasks.pagination import decode_cursor

WALK_PAGE_SIZE = 500  # the service's largest page: the fewest requests to get deep


def deep_cursors(service_url: str, token: str, depth: int) -> tuple[str, str]:
    """The service's cursor `depth` tasks into the list (newest first), taken from its own Link
    headers, and the ceiling's cursor for the same position."""
    url = f"{service_url}/api/tasks?limit={WALK_PAGE_SIZE}"
    with httpx.Client(headers=_bearer(token), timeout=60) as client:
        for _ in range(depth // WALK_PAGE_SIZE):
            response = client.get(url)
            response.raise_for_status()
            next_link = response.links.get("next")
            if next_link is None:
                raise RuntimeError(f"the list ended before {depth} tasks")
            url = next_link["url"]
    service_cursor = parse_qs(urlsplit(url).query)["cursor"][0]
    position = decode_cursor(service_cursor, "created_at", True)
    return service_cursor, ceiling.encode_cursor(position.value, position.task_id)


def parity_problems(
    service_url: str,
    ceiling_url: str,
    *,
    tokens: dict[str, str],
    service_paths: ListPaths,
    ceiling_paths: ListPaths,
    task_id: str,
) -> list[str]:
    """Every difference between the two apps' answers to the benchmark's requests (none: they
    return the same JSON). Writes go to the writer user's own new task."""
    problems: list[str] = []
    with httpx.Client(timeout=30) as client:

        def both(
            method: str, paths: tuple[str, str], user: str, body: Any = None
        ) -> tuple[httpx.Response, httpx.Response]:
            answers = tuple(
                client.request(method, base + path, headers=_bearer(tokens[user]), json=body)
                for base, path in zip((service_url, ceiling_url), paths, strict=True)
            )
            return answers[0], answers[1]

        def compare(what: str, answers: tuple[httpx.Response, httpx.Response], *skip: str) -> None:
            service, ceiling_answer = answers
            statuses = (service.status_code, ceiling_answer.status_code)
            if statuses[0] != statuses[1] or not 200 <= statuses[0] < 300:
                problems.append(
                    f"{what}: status {statuses[0]} (service) vs {statuses[1]} (ceiling)"
                )
                return
            expected, got = _without(service.json(), skip), _without(ceiling_answer.json(), skip)
            if expected != got:
                problems.append(f"{what}: bodies differ: {_difference(expected, got)}")
            elif not skip and service.content != ceiling_answer.content:
                # Same JSON, other bytes (spacing, escapes): the apps would not send equal loads.
                problems.append(f"{what}: same JSON, but not the same bytes")
            for header in ("etag", "location", "link"):
                if (header in service.headers) != (header in ceiling_answer.headers):
                    problems.append(f"{what}: only one of them sends {header}")

        for (name, user, service_path), (_, _, ceiling_path) in zip(
            service_paths.entries(), ceiling_paths.entries(), strict=True
        ):
            compare(name, both("GET", (service_path, ceiling_path), user))
        task_path = f"/api/tasks/{task_id}"
        compare("get_task", both("GET", (task_path, task_path), "large"))

        # Each app creates its own task; then both apps write to the service's one in turn, so
        # the ceiling sees a version one higher and the completion flipped once more.
        new_task = {"title": " Parity ", "priority": "high", "due_date": "2027-03-01"}
        created = both("POST", ("/api/tasks", "/api/tasks"), "writer", new_task)
        compare("create_task", created, "id", "created_at", "updated_at")
        if created[0].status_code != 201:
            return problems
        own_path = f"/api/tasks/{created[0].json()['id']}"
        writes = ((own_path, own_path), "writer")
        changes = {"title": "Patched", "priority": "low", "description": None}
        compare("patch_task", both("PATCH", *writes, changes), "version", "updated_at")
        toggle = ((own_path + "/complete", own_path + "/complete"), "writer")
        compare(
            "toggle_task",
            both("PATCH", *toggle),
            "version",
            "updated_at",
            "completed",
            "completed_at",
        )
        missing = "/api/tasks/00000000-0000-7000-8000-000000000000"
        for app_url in (service_url, ceiling_url):
            status = client.get(app_url + missing, headers=_bearer(tokens["large"])).status_code
            if status != 404:
                problems.append(f"{app_url}: a missing task is {status}, not 404")
            if client.get(app_url + "/api/tasks").status_code != 401:
                problems.append(f"{app_url}: a request without a token is not 401")
    return problems


def _difference(expected: Any, got: Any) -> str:
    """The first place where two JSON bodies differ, briefly (a page holds 50 tasks)."""
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return f"{len(expected)} items (service) vs {len(got)} (ceiling)"
        index = next(i for i, (a, b) in enumerate(zip(expected, got, strict=True)) if a != b)
        return f"item {index}: {_difference(expected[index], got[index])}"
    if isinstance(expected, dict) and isinstance(got, dict):
        keys = [key for key in {**expected, **got} if expected.get(key, ...) != got.get(key, ...)]
        return "; ".join(f"{key}: {expected.get(key)!r} vs {got.get(key)!r}" for key in keys)
    return f"{expected!r} vs {got!r}"


def _without(body: Any, keys: tuple[str, ...]) -> Any:
    if isinstance(body, dict):
        return {key: value for key, value in body.items() if key not in keys}
    return body


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
