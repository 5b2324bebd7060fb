"""The pytest plugin: a `pager_emulator` fixture (registered through the pytest11 entry point).

Each test gets its own emulator: 127.0.0.1, an ephemeral UDP port (`pager_emulator.uri`), a
store in the test's temporary directory, and the clock frozen at `FROZEN_AT`, so that
timestamps and statistics are the same on every run; move it with
`await pager_emulator.advance(seconds)` or `.set_clock(datetime)`. Every rig control of
`pager.app.Emulator` is a method of the fixture. Needs pytest-asyncio.
"""

from datetime import datetime

import pytest

from pager.app import Emulator
from pager.clock import Clock

FROZEN_AT = datetime(2026, 1, 15, 18, 0, 0)

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the plugin is loaded wherever pager is installed

    @pytest.fixture
    def pager_emulator():
        pytest.skip("the pager_emulator fixture needs pytest-asyncio")
else:

    @pytest_asyncio.fixture
    async def pager_emulator(tmp_path):
        clock = Clock()
        clock.set(FROZEN_AT)
        clock.freeze()
        async with Emulator(clock=clock, db=str(tmp_path / "pager-emulator.db")) as emulator:
            yield emulator
