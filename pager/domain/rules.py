"""Validation ranges (spec §7) and the one sentence that describes each rule.

Type errors found while decoding and range errors found here answer with the same sentence,
so a client sees one consistent message per field whatever it got wrong.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pager.domain.errors import Invalid
from pager.domain.pagemodes import ALERT_SECONDS
from pager.domain.timefmt import WRITTEN, fmt

GOAL = (0, 86400)
PARTY_SIZE = (1, 999)
SYSTEM_ID = (0, 255)
CLEAR_MARK = (0, 24)
HISTORY_LIMIT = (1, 1000)
LABEL_LENGTH = (1, 64)
MESSAGE_MAX = 240
BODY_MAX = 1024
ACTIONS = ("page", "clear", "remove")
# What a transmitter's real-time clock plausibly covers; also keeps date arithmetic far
# from Python's year 9999.
CLOCK_RANGE = (datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59))


@dataclass(frozen=True)
class Limits:
    """The parts of validation that are configuration."""

    number_min: int = 0
    number_max: int = 4095


def requirement(field: str, limits: Limits) -> str:
    """The sentence for any field: only the number's range is configuration."""
    if field == "number":
        return _range_sentence(field, limits.number_min, limits.number_max)
    return _SENTENCES.get(field, f"{field} is not valid")


def _range_sentence(field: str, lo: int, hi: int) -> str:
    return f"{field} must be an integer from {lo} to {hi}"


_RANGES = {
    "goal": GOAL,
    "partySize": PARTY_SIZE,
    "systemId": SYSTEM_ID,
    "defaultTargetGoal": GOAL,
    "statisticsClearMark": CLEAR_MARK,
    "limit": HISTORY_LIMIT,
}
_SENTENCES: Final[dict[str, str]] = {
    **{field: _range_sentence(field, lo, hi) for field, (lo, hi) in _RANGES.items()},
    "label": (
        f"label must be a string of {LABEL_LENGTH[0]} to {LABEL_LENGTH[1]} characters, or null"
    ),
    "action": "action must be one of " + ", ".join(ACTIONS),
    "pageMode": "pageMode must be one of " + ", ".join(ALERT_SECONDS),
    "message": f"message must be a string of at most {MESSAGE_MAX} characters",
    "datetime": f"datetime must be {WRITTEN}, from {fmt(CLOCK_RANGE[0])} to {fmt(CLOCK_RANGE[1])}",
    "after": "after must be a session id, an integer of 0 or more",
}


def check_int(field: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise Invalid(_range_sentence(field, lo, hi), field)


def check_number(value: int, limits: Limits) -> None:
    check_int("number", value, limits.number_min, limits.number_max)


def check_label(value: str | None) -> None:
    if value is not None and not LABEL_LENGTH[0] <= len(value) <= LABEL_LENGTH[1]:
        raise Invalid(_SENTENCES["label"], "label")


def check_action(value: str) -> None:
    if value not in ACTIONS:
        raise Invalid(_SENTENCES["action"], "action")


def check_page_mode(value: str) -> None:
    if value not in ALERT_SECONDS:
        raise Invalid(_SENTENCES["pageMode"], "pageMode")


def check_message(value: str) -> None:
    if len(value) > MESSAGE_MAX:
        raise Invalid(_SENTENCES["message"], "message")


def check_clock(value: datetime) -> None:
    """Also refuses what is not a datetime at all: patches built outside `pager.wire`."""
    if not isinstance(value, datetime) or not CLOCK_RANGE[0] <= value <= CLOCK_RANGE[1]:
        raise Invalid(_SENTENCES["datetime"], "datetime")
