"""The pytest plugin: a `pager_emulator` fixture (registered through the pytest11 entry point).

Each test gets its own emulator: 127.0.0.1, an ephemeral UDP port (`pager_emulator.uri`), a
store in the test's temporary directory, and the clock frozen at `FROZEN_AT`, so that
timestamps and statistics are the same on every run; move it with
`await pager_emulator.advance(seconds)` or `.set_clock(datetime)`. Every rig control of
`pager.app.Emulator` is a method of the fixture. Needs pytest-asyncio.
"""

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from pager.app import Emulator
from pager.clock import Clock

FROZEN_AT = datetime(2026, 1, 15, 18, 0, 0)


async def _emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    clock = Clock()
    clock.set(FROZEN_AT)
    clock.freeze()
    async with Emulator(clock=clock, db=str(tmp_path / "pager-emulator.db")) as emulator:
        yield emulator


def _skipped() -> None:
    pytest.skip("the pager_emulator fixture needs pytest-asyncio")


# One name for two fixtures' types: pytest's own (the skip) and pytest-asyncio's.
pager_emulator: object
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin is loaded wherever pager is installed
    pager_emulator = pytest.fixture(_skipped, name="pager_emulator")
else:
    pager_emulator = pytest_asyncio.fixture(_emulator, name="pager_emulator")
