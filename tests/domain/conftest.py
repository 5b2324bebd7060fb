"""Shared by the domain tests, which drive the pure operations by hand."""

from collections.abc import Callable
from datetime import datetime, timedelta

from pager.domain import operations as ops
from pager.domain.model import State


def seconds_after(t0: datetime) -> Callable[[int], datetime]:
    """A test module's `at`: at(seconds) is the moment `seconds` after the module's `t0`."""

    def at(seconds: int) -> datetime:
        return t0 + timedelta(seconds=seconds)

    return at


def apply(state: State, outcome: ops.Outcome) -> ops.Outcome:
    """Advance `state` by the outcome's change, as the shell does after committing."""
    assert outcome.change is not None
    outcome.change.apply(state)
    return outcome
