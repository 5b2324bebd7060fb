"""Running statistics counters (spec §4.5) and the daily automatic clear.

The figures are derived from four counters that every session change updates in the same
transaction; nothing ever scans sessions, so their cost does not grow with history.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from pager.domain.records import evolve

NEVER = 24  # statisticsClearMark value that disables the automatic clear


@dataclass(frozen=True)
class Counters:
    num_sessions: int = 0
    guests_served: int = 0
    on_time: int = 0
    total_wait: int = 0  # seconds, summed over first pages

    def created(self) -> "Counters":
        return evolve(self, num_sessions=self.num_sessions + 1)

    def first_page(self, started: datetime, notified: datetime, goal: int) -> "Counters":
        # A clock set backwards can put `notified` before `started`; count that as no wait.
        wait = max(0, int((notified - started).total_seconds()))
        return evolve(
            self,
            guests_served=self.guests_served + 1,
            on_time=self.on_time + (1 if wait <= goal else 0),
            total_wait=self.total_wait + wait,
        )


@dataclass(frozen=True)
class Figures:
    guests_served: int
    percent_late: int
    percent_on_time: int
    average_time_served: int
    num_sessions: int


def round_half_up(numerator: int, denominator: int) -> int:
    """round(numerator / denominator) with halves rounded up, in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def figures(c: Counters) -> Figures:
    served = c.guests_served
    if served == 0:
        return Figures(0, 0, 0, 0, c.num_sessions)
    on_time = round_half_up(100 * c.on_time, served)
    return Figures(
        guests_served=served,
        percent_late=100 - on_time,
        percent_on_time=on_time,
        average_time_served=round_half_up(c.total_wait, served),
        num_sessions=c.num_sessions,
    )


def clear_due(since: datetime, now: datetime, mark: int) -> bool:
    """Whether the clock has passed the daily clear hour `mark` since `since`.

    `since` is the last moment the counters were cleared, the clock was set, or the mark
    changed: the clear happens when the transmitter's clock runs past the hour, not when a
    setting makes a past hour newly relevant.
    """
    if mark == NEVER:
        return False
    boundary = now.replace(hour=mark, minute=0, second=0, microsecond=0)
    if boundary > now:
        boundary -= timedelta(days=1)
    return boundary > since


def next_clear(since: datetime, mark: int) -> datetime | None:
    """The first moment after `since` at which `clear_due` becomes true, or None for never."""
    if mark == NEVER:
        return None
    boundary = since.replace(hour=mark, minute=0, second=0, microsecond=0)
    if boundary <= since:
        boundary += timedelta(days=1)
    return boundary
