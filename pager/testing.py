"""The pytest plugin (registered through the pytest11 entry point): the `pager_emulator` and
`pager_fleet` fixtures (docs/python.md).

Each test gets its own emulators: 127.0.0.1, ephemeral UDP ports (`emulator.uri`), stores in
the test's temporary directory, and clocks frozen at `FROZEN_AT`, so that timestamps and
statistics are the same on every run; move one with `await emulator.advance(seconds)` or
`.set_clock(datetime)`. Every rig control of `pager.app.Emulator` is a method of each.

They need pytest-asyncio, in either of its modes: under `asyncio_mode = strict` (its default)
an `async def` test that uses one of these fixtures is marked `asyncio` here, as a new
project's first test would otherwise fail with "async def functions are not natively
supported".
Each runs on the loop of the test that uses it, whatever its loop scope.

With `--pager-emulator-url URL` (and its token in `--pager-emulator-token` or the
`PAGER_EMULATOR_TOKEN` environment variable), `pager_emulator` is a `pager.rig.RemoteEmulator`
of the emulator whose control API is at URL instead, reset before each test and its clock
frozen at `FROZEN_AT`, so that tests stay as independent as with emulators of their own.
"""

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pytest

from pager.app import Emulator
from pager.clock import Clock
from pager.config import Config
from pager.control.verify import Request as Request  # the pattern of `verify_in_order`
from pager.fleet import fleet_configs
from pager.rig import RemoteEmulator

FROZEN_AT = datetime(2026, 1, 15, 18, 0, 0)
FIXTURES = ("pager_emulator", "pager_fleet")
TOKEN_ENV = "PAGER_EMULATOR_TOKEN"
PROBE_TIMEOUT = 10.0  # seconds the remote has to answer the session's first question


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pager-emulator")
    group.addoption(
        "--pager-emulator-url",
        metavar="URL",
        help="pager_emulator: the emulator whose control API is at URL (http://HOST:PORT), "
        "reset before each test, instead of one of the test's own",
    )
    group.addoption(
        "--pager-emulator-token",
        metavar="TOKEN",
        help=f"its control_token (default: the {TOKEN_ENV} environment variable)",
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """With `--pager-emulator-url`, ask the remote once before any test: a URL that is not
    one, an emulator that does not answer or a token it refuses is then one clear error,
    not an error in every test that uses `pager_emulator`."""
    url = session.config.getoption("pager_emulator_url", None)
    if url is None:
        return
    token = session.config.getoption("pager_emulator_token") or os.environ.get(TOKEN_ENV)
    try:
        health = asyncio.run(_health(url, token))
    except (ValueError, PermissionError, RuntimeError) as e:
        raise pytest.UsageError(f"--pager-emulator-url {url}: {e}") from None
    if "error" in health:
        raise pytest.UsageError(f"--pager-emulator-url {url}: {health['error']}")


async def _health(url: str, token: str | None) -> dict[str, Any]:
    async with RemoteEmulator(url, token, timeout=PROBE_TIMEOUT) as remote:
        return await asyncio.to_thread(remote.health)


def _frozen_clock() -> Clock:
    clock = Clock()
    clock.set(FROZEN_AT)
    clock.freeze()
    return clock


async def _emulator(
    config: pytest.Config, tmp_path: Path
) -> AsyncIterator[Emulator | RemoteEmulator]:
    url = config.getoption("pager_emulator_url")
    if url is None:
        db = str(tmp_path / "pager-emulator.db")
        async with Emulator(clock=_frozen_clock(), db=db) as emulator:
            yield emulator
        return
    token = config.getoption("pager_emulator_token") or os.environ.get(TOKEN_ENV)
    async with RemoteEmulator(url, token) as remote:
        await remote.reset()
        await remote.freeze()  # then set: a frozen clock stays at the time it is set to
        await remote.set_clock(FROZEN_AT)
        yield remote


class Fleet:
    """What `pager_fleet` gives: `await pager_fleet(3)` starts three transmitters as
    `pager-emulator serve --fleet 3` does (`pager.fleet`): systemId 1, 2, 3, each with its
    own port, store and frozen clock. Keyword arguments are configuration keys
    (`config.example.toml`) for all of them; `control=True` gives each an ephemeral control
    port. Call it again for another fleet; every one is stopped when the test ends."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._calls = 0
        self._started: list[Emulator] = []

    async def __call__(self, count: int, **settings: Any) -> list[Emulator]:
        self._calls += 1
        folder = self._folder / f"pager-fleet-{self._calls}"
        folder.mkdir()
        base = Config(
            **{
                "host": "127.0.0.1",
                "port": 0,
                "control": False,
                "control_port": 0,
                "lrsn_port": 0,
                "db": str(folder / "pager.db"),
                **settings,
            }
        )
        fleet = []
        for config in fleet_configs(base, count):
            emulator = await Emulator(config, clock=_frozen_clock()).start()
            self._started.append(emulator)  # a later one failing to start stops it too
            fleet.append(emulator)
        for emulator in fleet:
            emulator.fleet = list(fleet)
        return fleet

    async def close(self) -> None:
        while self._started:
            await self._started.pop().stop()


async def _fleet(config: pytest.Config, tmp_path: Path) -> AsyncIterator[Fleet]:
    fleet = Fleet(tmp_path)
    try:
        yield fleet
    finally:
        await fleet.close()


def _skipped() -> None:
    pytest.skip("the pager_emulator and pager_fleet fixtures need pytest-asyncio")


LoopScope = Literal["function", "class", "module", "package", "session"]
LOOP_SCOPES: tuple[LoopScope, ...] = ("function", "class", "module", "package", "session")

# One name for two fixtures' types: pytest's own (the skip) and pytest-asyncio's.
pager_emulator: object
pager_fleet: object
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin is loaded wherever pager is installed
    pager_emulator = pytest.fixture(_skipped, name="pager_emulator")
    pager_fleet = pytest.fixture(_skipped, name="pager_fleet")
else:

    def _test_loop_scope(request: pytest.FixtureRequest) -> str:
        """The loop the test runs on, as pytest-asyncio chooses it: its `asyncio` mark's
        `loop_scope`, else the project's `asyncio_default_test_loop_scope`."""
        marker = request.node.get_closest_marker("asyncio")
        marked = {} if marker is None else marker.kwargs
        scope = marked.get("loop_scope") or marked.get("scope")  # "scope": its older name
        return str(scope or request.config.getini("asyncio_default_test_loop_scope"))

    def _on_the_tests_loop(
        name: str, make: Callable[[pytest.Config, Path], AsyncIterator[Any]]
    ) -> object:
        """`name`, started on the loop of the test that uses it. An emulator serves on the
        loop it was started on: one started on another loop (the fixture's own default,
        or the project's `asyncio_default_fixture_loop_scope`) would leave every request
        of a test on a wider loop unanswered. So one fixture per loop scope, and `name`
        picks the test's."""
        for scope in LOOP_SCOPES:

            async def scoped(pytestconfig: pytest.Config, tmp_path: Path) -> AsyncIterator[Any]:
                async for value in make(pytestconfig, tmp_path):
                    yield value

            globals()[f"_{name}_{scope}"] = pytest_asyncio.fixture(
                scoped,
                name=f"_{name}_{scope}",
                loop_scope=scope,
            )

        def chosen(request: pytest.FixtureRequest) -> Any:
            return request.getfixturevalue(f"_{name}_{_test_loop_scope(request)}")

        return pytest.fixture(chosen, name=name)

    pager_emulator = _on_the_tests_loop("pager_emulator", _emulator)
    pager_fleet = _on_the_tests_loop("pager_fleet", _fleet)

    @pytest.hookimpl(tryfirst=True)
    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        """Mark an `async def` test that uses our fixtures (directly or through another
        fixture) `asyncio` before pytest-asyncio looks for the mark; in auto mode it would
        add it itself. The mark goes on the function, where the test items read theirs."""
        if not inspect.iscoroutinefunction(metafunc.function):
            return
        if not any(name in metafunc.fixturenames for name in FIXTURES):
            return
        if metafunc.definition.get_closest_marker("asyncio") is None:
            pytest.mark.asyncio(metafunc.function)
            metafunc.definition.add_marker("asyncio")
