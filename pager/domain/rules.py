"""Validation ranges (spec §7) and the one sentence that describes each rule.

Type errors found while decoding and range errors found here answer with the same sentence,
so a client sees one consistent message per field whatever it got wrong.
"""

from dataclasses import dataclass
from datetime import datetime

from pager.domain.errors import Invalid
from pager.domain.pagemodes import ALERT_SECONDS

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
    ranges = {
        "number": (limits.number_min, limits.number_max),
        "goal": GOAL,
        "partySize": PARTY_SIZE,
        "systemId": SYSTEM_ID,
        "defaultTargetGoal": GOAL,
        "statisticsClearMark": CLEAR_MARK,
        "limit": HISTORY_LIMIT,
    }
    if field in ranges:
        lo, hi = ranges[field]
        return f"{field} must be an integer from {lo} to {hi}"
    texts = {
        "label": (
            f"label must be a string of {LABEL_LENGTH[0]} to {LABEL_LENGTH[1]} characters, or null"
        ),
        "action": "action must be one of " + ", ".join(ACTIONS),
        "pageMode": "pageMode must be one of " + ", ".join(ALERT_SECONDS),
        "message": f"message must be a string of at most {MESSAGE_MAX} characters",
        "datetime": "datetime must be a local time written YYYY-MM-DDTHH:MM:SS, from "
        "2000-01-01T00:00:00 to 2099-12-31T23:59:59",
        "after": "after must be a session id, an integer of 0 or more",
    }
    return texts.get(field, f"{field} is not valid")


def check_int(field: str, value: int, lo: int, hi: int, limits: Limits) -> None:
    if not lo <= value <= hi:
        raise Invalid(requirement(field, limits), field)


def check_number(value: int, limits: Limits) -> None:
    check_int("number", value, limits.number_min, limits.number_max, limits)


def check_label(value: str | None, limits: Limits) -> None:
    if value is not None and not LABEL_LENGTH[0] <= len(value) <= LABEL_LENGTH[1]:
        raise Invalid(requirement("label", limits), "label")


def check_action(value: str, limits: Limits) -> None:
    if value not in ACTIONS:
        raise Invalid(requirement("action", limits), "action")


def check_page_mode(value: str, limits: Limits) -> None:
    if value not in ALERT_SECONDS:
        raise Invalid(requirement("pageMode", limits), "pageMode")


def check_message(value: str, limits: Limits) -> None:
    if len(value) > MESSAGE_MAX:
        raise Invalid(requirement("message", limits), "message")


def check_clock(value: datetime, limits: Limits) -> None:
    if not CLOCK_RANGE[0] <= value <= CLOCK_RANGE[1]:
        raise Invalid(requirement("datetime", limits), "datetime")
