"""Integers as both APIs read them from text (a CoAP query, a control API path or query)."""

import re

_DIGITS = re.compile(r"[0-9]+")


def integer(text: str, lo: int, hi: int) -> int | None:
    """`text` as an integer from `lo` to `hi`, or None when it is not one.

    Only the digits 0-9: `str.isdigit` and `int` also take other scripts' digits ("٤٢" is
    42). And no more digits than `hi` has (leading zeros aside), so that thousands of digits
    are refused without being converted: `int` of them is slow, and fails past Python's
    digit limit.
    """
    if _DIGITS.fullmatch(text) is None or len(text.lstrip("0")) > len(str(hi)):
        return None
    value = int(text)
    return value if lo <= value <= hi else None
