"""CORS as a browser enforces it: headless Chromium, pages on other origins, `tasks-api serve`.

tests/test_cors.py checks the headers; only a browser shows that they are enough: that the
preflight lets `Authorization`, JSON and `If-Match` through, that the page can read `Location`,
`Link` and `ETag`, and that a page on an origin not in CORS_ORIGINS cannot write at all.
Chromium is Debian's (`apt-get install chromium`), driven by Playwright with `executable_path`:
no browser download.
"""

import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, async_playwright
from sqlalchemy import text

from tasks_api.database import create_engine
from tests.commands import ServerProcess, cli_environment
from tests.conftest import make_settings
from tests.processes import require_program
from tests.tokens import HS256_SECRET, OMIT, TokenFactory

# The machine's network is closed: without the background-networking flags Chromium keeps
# trying Google's hosts. As root, Chromium refuses to start with its sandbox.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# What the Next.js app does, in plain fetch: each call with a Bearer token and JSON is a
# preflighted cross-origin request. Every step checks its result in the page too, so a failure
# names the step.
ALLOWED_ORIGIN_SCRIPT = """
async ({ api, token }) => {
  const auth = { Authorization: `Bearer ${token}` };
  const json = { ...auth, "Content-Type": "application/json" };
  const check = (holds, what) => { if (!holds) throw new Error(`in the page: ${what}`); };

  const create = async (title) => {
    const response = await fetch(`${api}/api/tasks`, {
      method: "POST", headers: json, body: JSON.stringify({ title }),
    });
    check(response.status === 201, `create ${title}: ${response.status}`);
    const location = response.headers.get("Location");
    const etag = response.headers.get("ETag");
    check(location && etag, `create ${title}: Location ${location}, ETag ${etag}`);
    return { task: await response.json(), url: new URL(location, api).href, etag };
  };
  const first = await create("First from the browser");
  const second = await create("Second from the browser");

  // One task a page, so the second is only reachable through the Link header.
  const firstPage = `${api}/api/tasks?limit=1&sort=created_at&order=asc`;
  const page1 = await fetch(firstPage, { headers: auth });
  check(page1.status === 200, `list: ${page1.status}`);
  const link = page1.headers.get("Link");
  const next = /<([^>]+)>;\\s*rel="next"/.exec(link ?? "")?.[1];
  check(next, `list: no rel="next" in Link ${link}`);
  const page2 = await fetch(next, { headers: auth });
  check(page2.status === 200, `next page: ${page2.status}`);
  const listed = [...(await page1.json()), ...(await page2.json())].map((task) => task.title);
  // Control: a header the server sends but does not expose stays hidden from the page.
  const unexposedDate = page1.headers.get("Date");

  const patch = (etag, title) => fetch(first.url, {
    method: "PATCH", headers: { ...json, "If-Match": etag }, body: JSON.stringify({ title }),
  });
  const patched = await patch(first.etag, "Renamed in the browser");
  check(patched.status === 200, `patch: ${patched.status}`);
  const newEtag = patched.headers.get("ETag");
  check(newEtag && newEtag !== first.etag, `patch: ETag ${first.etag} -> ${newEtag}`);
  // The old ETag again: a 412 whose problem body and current ETag the page can still read.
  const stale = await patch(first.etag, "Lost update");
  check(stale.status === 412, `stale patch: ${stale.status}`);

  const deleted = await fetch(first.url, {
    method: "DELETE", headers: { ...auth, "If-Match": newEtag },
  });
  check(deleted.status === 204, `delete: ${deleted.status}`);
  const remaining = await fetch(`${api}/api/tasks`, { headers: auth });

  return {
    created: [first.task.title, second.task.title],
    etag: first.etag,
    listed,
    unexposedDate,
    patchedTitle: (await patched.json()).title,
    patchedEtag: newEtag,
    stale: { problem: await stale.json(), etag: stale.headers.get("ETag") },
    remaining: (await remaining.json()).map((task) => task.title),
  };
}
"""

DISALLOWED_ORIGIN_SCRIPT = """
async ({ api, token, title }) => {
  try {
    const response = await fetch(`${api}/api/tasks`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ title }),
    });
    return { rejected: false, status: response.status };
  } catch (error) {
    return { rejected: true, isTypeError: error instanceof TypeError, message: error.message };
  }
}
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
        pass


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """Serve `directory` on a free loopback port, in a thread; yield its origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium", "/usr/bin/chromium", install_hint="apt-get install chromium")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two origins serving the same page: the app's (in CORS_ORIGINS) and a stranger's."""
    directory = tmp_path_factory.mktemp("site")
    (directory / "index.html").write_text("<!doctype html><title>tasks</title>")
    with static_site(directory) as app_origin, static_site(directory) as other_origin:
        yield app_origin, other_origin


@pytest.fixture(scope="module")
def api(
    database_url: str, pages: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    app_origin, _ = pages
    environment = cli_environment(
        ENVIRONMENT="test",
        DATABASE_URL=database_url,
        BETTER_AUTH_SECRET=HS256_SECRET,
        CORS_ORIGINS=app_origin,
        RATE_LIMIT_ENABLED="false",
    )
    workdir = tmp_path_factory.mktemp("serve")  # no .env to read there
    server = ServerProcess("serve", workdir=workdir, environment=environment)
    server.start("--host", "127.0.0.1", "--workers", "1")
    try:
        yield server.base_url
    finally:
        server.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        await browser.close()


def _token(tokens: TokenFactory, sub: str) -> str:
    # The served app has no AUTH_ISSUER/AUTH_AUDIENCE, so the token carries neither.
    return tokens.hs256(sub, iss=OMIT, aud=OMIT)


async def test_app_origin_creates_lists_patches_and_deletes_through_cors(
    browser: Browser, pages: tuple[str, str], api: str, tokens: TokenFactory
) -> None:
    app_origin, _ = pages
    page = await browser.new_page()
    try:
        await page.goto(f"{app_origin}/index.html")
        result = await page.evaluate(
            ALLOWED_ORIGIN_SCRIPT, {"api": api, "token": _token(tokens, f"browser-{uuid.uuid4()}")}
        )
    finally:
        await page.close()

    assert result["created"] == ["First from the browser", "Second from the browser"]
    assert result["etag"] == '"1"'
    assert result["listed"] == ["First from the browser", "Second from the browser"]
    assert result["unexposedDate"] is None
    assert result["patchedTitle"] == "Renamed in the browser"
    assert result["patchedEtag"] == '"2"'
    assert result["stale"]["problem"]["code"] == "precondition_failed"
    assert result["stale"]["etag"] == '"2"'
    assert result["remaining"] == ["Second from the browser"]


async def test_other_origin_is_refused_by_the_browser_and_nothing_is_written(
    browser: Browser, pages: tuple[str, str], api: str, tokens: TokenFactory, database_url: str
) -> None:
    _, other_origin = pages
    owner = f"browser-{uuid.uuid4()}"
    title = f"Planted by {other_origin}"
    page = await browser.new_page()
    console: list[str] = []

    def collect(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", collect)
    try:
        await page.goto(f"{other_origin}/index.html")
        result = await page.evaluate(
            DISALLOWED_ORIGIN_SCRIPT, {"api": api, "token": _token(tokens, owner), "title": title}
        )
    finally:
        await page.close()

    # A network error to the page ("Failed to fetch"); the console says why.
    assert result == {"rejected": True, "isTypeError": True, "message": "Failed to fetch"}
    assert any("blocked by CORS policy" in line for line in console), console
    # The preflight failed, so the browser never sent the POST.
    engine = create_engine(make_settings(database_url))
    try:
        async with engine.connect() as connection:
            written = await connection.scalar(
                text("SELECT count(*) FROM tasks WHERE user_id = :owner"), {"owner": owner}
            )
    finally:
        await engine.dispose()
    assert written == 0
