"""The transmitter's clock: the one place the emulator reads the time.

Transmitter time is system local time plus an offset that the `datetime` setting moves and
the store persists. Tests replace `system` to control time.
"""

from datetime import datetime, timedelta
from typing import Callable


class Clock:
    def __init__(self, offset: int = 0, system: Callable[[], datetime] = datetime.now):
        self.offset = offset
        self.system = system

    def now(self) -> datetime:
        return (self.system() + timedelta(seconds=self.offset)).replace(microsecond=0)
