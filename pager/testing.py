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
"""

import inspect
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pager.app import Emulator
from pager.clock import Clock
from pager.config import Config
from pager.fleet import fleet_configs

FROZEN_AT = datetime(2026, 1, 15, 18, 0, 0)
FIXTURES = ("pager_emulator", "pager_fleet")


def _frozen_clock() -> Clock:
    clock = Clock()
    clock.set(FROZEN_AT)
    clock.freeze()
    return clock


async def _emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(clock=_frozen_clock(), db=str(tmp_path / "pager-emulator.db")) as emulator:
        yield emulator


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
                "db": str(folder / "pager.db"),
                **settings,
            }
        )
        fleet = []
        for config in fleet_configs(base, count):
            emulator = await Emulator(config, clock=_frozen_clock()).start()
            self._started.append(emulator)  # a later one failing to start stops it too
            fleet.append(emulator)
        return fleet

    async def close(self) -> None:
        while self._started:
            await self._started.pop().stop()


async def _fleet(tmp_path: Path) -> AsyncIterator[Fleet]:
    fleet = Fleet(tmp_path)
    try:
        yield fleet
    finally:
        await fleet.close()


def _skipped() -> None:
    pytest.skip("the pager_emulator and pager_fleet fixtures need pytest-asyncio")


# One name for two fixtures' types: pytest's own (the skip) and pytest-asyncio's.
pager_emulator: object
pager_fleet: object
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin is loaded wherever pager is installed
    pager_emulator = pytest.fixture(_skipped, name="pager_emulator")
    pager_fleet = pytest.fixture(_skipped, name="pager_fleet")
else:
    pager_emulator = pytest_asyncio.fixture(_emulator, name="pager_emulator")
    pager_fleet = pytest_asyncio.fixture(_fleet, name="pager_fleet")

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
