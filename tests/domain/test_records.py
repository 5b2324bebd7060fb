"""evolve: the copy-with-changes every operation makes of its frozen records."""

import dataclasses
from datetime import datetime

import pytest

from pager.domain.model import Device, Session
from pager.domain.records import evolve
from pager.domain.statistics import Counters

SESSION = Session(
    1, 5, "0f0e8d5c-1b7b-4c66-9a8e-1e7f7f1c2a3b", 7, 2, 600, datetime(2026, 1, 1, 12), None, "Kim"
)


@pytest.mark.parametrize(
    "record, changes",
    [
        (SESSION, {"sequence": 6, "notified": datetime(2026, 1, 1, 12, 5)}),
        (SESSION, {}),
        (Device(), {"global_sequence": 3, "counters": Counters(1, 1, 1, 30)}),
        (Counters(), {"num_sessions": 1}),
    ],
)
def test_same_copy_as_dataclasses_replace(record, changes):
    copy = evolve(record, **changes)
    assert copy == dataclasses.replace(record, **changes)
    assert type(copy) is type(record) and copy is not record
    assert hash(copy) == hash(dataclasses.replace(record, **changes))


def test_the_original_is_untouched_and_the_copy_stays_frozen():
    copy = evolve(SESSION, label="Lee")
    assert SESSION.label == "Kim" and copy.label == "Lee"
    with pytest.raises(dataclasses.FrozenInstanceError):
        copy.label = "Max"  # type: ignore[misc]


def test_unknown_field_is_refused_like_replace():
    with pytest.raises(TypeError, match="no field"):
        evolve(SESSION, lable="Lee")
    with pytest.raises(TypeError):
        dataclasses.replace(SESSION, lable="Lee")
