"""Domain refusals. The CoAP layer maps them to response codes; the core never knows codes."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pager.domain.model import Device


class Refused(Exception):
    """A request the device refuses; nothing has changed."""

    # The device state it was refused on, when that is not (yet) the committed one: set by
    # the engine, so that the answer shows the state the refusal saw (a change queued before
    # it, not yet committed).
    seen: "Device | None" = None

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(Refused):
    """The request is malformed or a value is out of range (4.00)."""


class NoActiveSession(Refused):
    """The request needs an active session for a number that has none (4.04)."""

    def __init__(self, number: int):
        super().__init__(f"no active session for number {number}", "number")
        self.number = number


class PreconditionFailed(Refused):
    """A conditional request (If-Match, If-None-Match) whose condition does not hold of the
    session it names (4.12)."""
