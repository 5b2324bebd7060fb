"""The transmitter's clock: the one place the emulator reads the time.

Transmitter time runs on a virtual timeline anchored to the system clock:
`now = anchor + speed × (system_now − system_anchor)`, or `anchor` while frozen. The
`datetime` setting moves it (`shift`, persisted by the store as an offset); test rigs can
also set, advance, freeze or speed it up through the control API (runtime only). Tests
replace `system` to control time without sleeping.
"""

from collections.abc import Callable
from datetime import datetime, timedelta


class Clock:
    def __init__(self, offset: int = 0, system: Callable[[], datetime] = datetime.now):
        self.system = system
        self.speed = 1.0
        self.frozen = False
        self._anchor_system = system()
        self._anchor = self._anchor_system + timedelta(seconds=offset)
        self._offset = self._anchor - self._anchor_system
        self._settle()

    def exact(self) -> datetime:
        if self.frozen:
            return self._anchor
        if self.speed == 1.0:  # read on every request: a timedelta times a float is slow
            return self.system() + self._offset
        return self._anchor + (self.system() - self._anchor_system) * self.speed

    def _settle(self) -> None:
        """Set `wall_offset` after every change (each ends in `_reanchor`): while the clock
        runs at normal speed on the system's own clock, what it adds to the system's local
        time, so that its reading for a moment can be made later from that moment's
        timestamp (the request journal makes one for every request); else None."""
        running = self.system == datetime.now and self.speed == 1.0 and not self.frozen
        self.wall_offset: timedelta | None = self._offset if running else None

    def now(self) -> datetime:
        return self.exact().replace(microsecond=0)

    def _reanchor(self, when: datetime) -> None:
        self._anchor_system = self.system()
        self._anchor = when
        self._offset = when - self._anchor_system
        self._settle()

    def set(self, when: datetime) -> None:
        self._reanchor(when)

    def shift(self, seconds: float) -> None:
        """Move the clock by `seconds` (negative: back), whatever its speed."""
        self._reanchor(self.exact() + timedelta(seconds=seconds))

    def reset(self) -> None:
        """System time, running at normal speed: as a transmitter from the factory."""
        self.speed, self.frozen = 1.0, False
        self._reanchor(self.system())

    def freeze(self) -> None:
        when = self.exact()
        self.frozen = True
        self._reanchor(when)

    def unfreeze(self) -> None:
        when = self.exact()
        self.frozen = False
        self._reanchor(when)

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive; freeze the clock to stop it")
        when = self.exact()
        self.speed = speed
        self._reanchor(when)
