"""The one reading of an integer from text, shared by the CoAP query and the control API."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pager.domain.digits import integer


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("0042", 42),  # leading zeros are the same number
        ("4095", 4095),
        ("4096", None),  # above the bound
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1 ", None),
        ("1.0", None),
        ("1e3", None),
        ("٤٢", None),  # Arabic-Indic digits: isdigit() and int() take them
        ("４２", None),  # fullwidth digits
        ("1_000", None),  # int() takes underscores
        ("9" * 5000, None),  # past Python's int digit limit: refused, not an error
    ],
)
def test_reads_ascii_digits_within_bounds(text: str, expected: int | None) -> None:
    assert integer(text, 0, 4095) == expected


def test_the_lower_bound_holds() -> None:
    assert integer("0", 1, 10) is None
    assert integer("1", 1, 10) == 1


@given(st.integers(min_value=0, max_value=10**18))
def test_every_integer_in_range_reads_back(value: int) -> None:
    assert integer(str(value), 0, 10**18) == value
    assert integer(str(value), 0, value - 1) is None
