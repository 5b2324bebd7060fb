"""The pager wall in a real headless Chromium: one browser for the whole session, a fresh
context and page for every test, an emulator with its control API for every test.

Strict about the browser: under CI=true a missing Chromium or Playwright fails every browser
test (CI must not go green by skipping them); elsewhere they are skipped, with the reason.

Strict about the page: every console error and uncaught page error is collected and the
test fails at teardown if there was any. A test that provokes an error answer on purpose
(Chromium logs a failed fetch as a console error) names the texts it expects with
`@pytest.mark.console_allows(regex, ...)`; nothing else is forgiven.

Every test leaves a screenshot of the page as it ended in ARTIFACTS (printed at the end of
the run; the directory is ignored by git).

The tests run on one session-wide event loop (the browser's objects belong to the loop that
launched it), so the emulator fixtures here are made on that loop too, not taken from
tests/conftest.py.
"""

import asyncio
import importlib.util
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiocoap
import aiohttp
import pytest
import pytest_asyncio

from pager.app import Emulator
from pager.config import Config
from tests.browser import chromium
from tests.conftest import REPO, Client, make_config

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

ARTIFACTS = REPO / "test-artifacts" / "browser"
HERE = Path(__file__).resolve().parent
TIMEOUT_MS = 5000  # for each wait of a test, unless it says otherwise


if importlib.util.find_spec("playwright") is None and not chromium.in_ci():
    # The test modules import Playwright; without it they could not even be collected.
    # test_browser.py imports nothing of it and is skipped with the reason, or fails under CI.
    collect_ignore_glob = ["test_wall_*.py"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "console_allows(*patterns): console errors (regexes, searched) this test provokes",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents and pytest_asyncio.is_async_test(item):
            item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ARTIFACTS.is_dir() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {ARTIFACTS}")


# ------------------------------------------------------------------------------ the browser


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator["Browser"]:
    problem = chromium.missing()
    if problem:
        if chromium.in_ci():
            pytest.fail(f"CI=true and the browser tests cannot run: {problem}", pytrace=False)
        pytest.skip(problem)
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await chromium.launch(pw)
        try:
            yield browser
        finally:
            await browser.close()


# ----------------------------------------------------------------------------- the emulator


@dataclass
class Rig:
    """An emulator with its control API on 127.0.0.1 (ephemeral ports, its own store), a real
    aiocoap client for its device API and an HTTP client for its control API."""

    emu: Emulator
    coap: Client
    http: aiohttp.ClientSession
    config: Config
    token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.emu.control_port}/"

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        """A control API call the test makes itself (to check what the page did)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self.http.request(
            method, f"{self.url.rstrip('/')}{path}", json=body, headers=headers
        ) as r:
            answer = await r.json()
            assert r.status < 300, (method, path, r.status, answer)
            return answer

    async def stop(self) -> None:
        await self.emu.stop()

    async def start(self, **overrides: Any) -> None:
        """Start again on the same ports (the page's address stays valid); `overrides`
        change the configuration, e.g. another store."""
        config = self.config.model_copy(
            update={"port": self.emu.port, "control_port": self.emu.control_port, **overrides}
        )
        self.emu = await Emulator(config).start()
        self.coap = Client(self.coap.context, self.emu.port)


@pytest.fixture
def rig_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change the emulator's configuration."""
    return {}


@pytest_asyncio.fixture(loop_scope="session")
async def rig(tmp_path: Path, rig_overrides: dict[str, Any]) -> AsyncIterator[Rig]:
    config = make_config(tmp_path / "pager.db", control=True, control_port=0, **rig_overrides)
    emu = await Emulator(config).start()
    context = await aiocoap.Context.create_client_context()
    http = aiohttp.ClientSession()
    rig = Rig(emu, Client(context, emu.port), http, config, config.control_token)
    try:
        yield rig
    finally:
        await http.close()
        await context.shutdown()
        await rig.emu.stop()


# ---------------------------------------------------------------------------------- the page


@dataclass
class Wall:
    """The page of one test, with what its console said."""

    page: "Page"
    errors: list[str] = field(default_factory=list)

    async def open(self, url: str, *, connected: bool = True) -> None:
        await self.page.goto(url)
        if connected:
            await self.connected()

    async def connected(self, timeout: float = TIMEOUT_MS) -> None:
        from playwright.async_api import expect

        await expect(self.page.locator("#connection")).to_have_attribute(
            "data-state", "connected", timeout=timeout
        )

    def row(self, session_id: int) -> "Locator":
        return self.page.locator(f'#waiting [data-session="{session_id}"]')

    def tile(self, number: int) -> "Locator":
        return self.page.locator(f'#wall [data-pager="{number}"]')

    def field(self, within: "Locator", name: str) -> "Locator":
        return within.locator(f'[data-field="{name}"]')

    @property
    def error(self) -> "Locator":
        return self.page.locator("#error")


def _screenshot_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("tests/browser/", 1)[-1]) + ".png"


@pytest.fixture
def viewport() -> dict[str, int]:
    return {"width": 1280, "height": 800}


@pytest_asyncio.fixture(loop_scope="session")
async def wall(
    browser: "Browser", request: pytest.FixtureRequest, viewport: dict[str, int]
) -> AsyncIterator[Wall]:
    allowed = [
        re.compile(p) for marker in request.node.iter_markers("console_allows") for p in marker.args
    ]
    context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    w = Wall(page)

    def on_console(message: Any) -> None:
        if message.type == "error" and not any(p.search(message.text) for p in allowed):
            w.errors.append(f"console.error: {message.text} ({message.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda e: w.errors.append(f"uncaught: {e}"))
    try:
        yield w
    finally:
        try:
            await page.screenshot(path=ARTIFACTS / _screenshot_name(request.node.nodeid))
        finally:
            await context.close()
    assert w.errors == [], "the page logged errors:\n" + "\n".join(w.errors)


async def create(coap: Client, number: int, **fields: Any) -> int:
    """A session created over CoAP by a real aiocoap client; its id."""
    reply = await coap.post("/v1/sessions", {"number": number, **fields})
    assert reply.code == "2.01", reply.json
    return int(reply.json["sessions"][0]["id"])


async def until(predicate: Callable[[], Any], timeout: float = 5.0, every: float = 0.02) -> Any:
    """Poll `predicate` (a function or coroutine function) until it is truthy; its value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {timeout} s: {predicate}")
        await asyncio.sleep(every)
