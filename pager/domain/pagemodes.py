"""Page modes the transmitter accepts, alert-override codes, and what a transmission is.

The record of transmissions is how the emulator "is" the pagers: a pager is alerting from a
transmission until the mode's alert length has passed (spec §9).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pager.domain.errors import Invalid

# name -> alert length in seconds (spec §9 table; lengths are [E])
ALERT_SECONDS: dict[str, int] = {
    "Flash1Sec": 1,
    "Flash30Sec": 30,
    "Flash5Min": 300,
    "FlashBeep5x5": 25,
    "Beep3Times": 3,
    "Beep5Min": 300,
    "Glow5Min": 300,
    "Glow15Times": 15,
    "Vibe1": 1,
    "Vibe2": 2,
    "Vibe3": 3,
    "VibeBeep1": 1,
    "VibeBeep2": 2,
    "VibeBeep3": 3,
}

Source = Literal["coap", "lrsn"]
"""The interface a page came in by: the record of transmissions tells a rig mixing both which
one sent it."""

GUEST_DEFAULT_MODE = "Flash30Sec"
STAFF_DEFAULT_MODE = "Vibe1"
OVERRIDE_START = "\f"
CODE_VALUE_MAX = 255


@dataclass(frozen=True)
class AlertCode:
    code: str  # the letter
    value: int | None


@dataclass(frozen=True)
class Transmission:
    """One page sent over the air, by a session or standalone."""

    id: int
    time: datetime
    number: int
    system_id: int
    page_mode: str
    message: str | None  # the displayed part, override codes removed
    override_codes: tuple[AlertCode, ...]
    session_id: int | None
    source: Source = "coap"
    power: int | None = None  # LRSN's transmit power, 0-5, when given
    color: str | None = None  # LRSN's CS8 coaster colour letter, when given

    @property
    def alert_until(self) -> datetime:
        return self.time + timedelta(seconds=ALERT_SECONDS[self.page_mode])


def parse_message(message: str) -> tuple[str, tuple[AlertCode, ...]]:
    """Split a message into its displayed text and the override codes after the form feed.

    A code is one letter optionally followed by a decimal number clamped to 255. Anything
    else after the form feed (a second form feed, a space, a digit with no letter) is refused:
    a rig should learn about a malformed override here, not from a pager that ignores it.
    """
    text, sep, tail = message.partition(OVERRIDE_START)
    if not sep:
        return text, ()
    codes: list[AlertCode] = []
    i = 0
    while i < len(tail):
        letter = tail[i]
        if not (letter.isascii() and letter.isalpha()):
            raise Invalid(
                "message override codes after \\f must be letters, each optionally "
                f"followed by a number; found {letter!r} at position {len(text) + 1 + i}",
                "message",
            )
        j = i + 1
        while j < len(tail) and tail[j].isascii() and tail[j].isdigit():
            j += 1
        digits = tail[i + 1 : j]
        value = min(int(digits), CODE_VALUE_MAX) if digits else None
        codes.append(AlertCode(letter, value))
        i = j
    return text, tuple(codes)


def default_mode(number: int, staff_pagers: frozenset[int]) -> str:
    return STAFF_DEFAULT_MODE if number in staff_pagers else GUEST_DEFAULT_MODE


def alerting(last: Transmission | None, now: datetime) -> bool:
    """Whether the pager that received `last` (its latest transmission) is still alerting."""
    return last is not None and last.time <= now < last.alert_until
