"""`datagrams.admit` on any bytes: it rejects a datagram as Malformed or hands aiocoap one
that aiocoap decodes, or refuses only in the ways `datagrams.install` handles (never
another exception, which would escape the datagram callback); and what it admits it admits
again unchanged."""

import aiocoap
from aiocoap import error
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pager.coap.seam.datagrams import Malformed, admit


def _extended(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")


@st.composite
def datagrams(draw: st.DrawFn) -> bytes:
    """A header, a token and options of any delta and length, then maybe a payload: the
    shape of a CoAP message, with its fields anywhere in their ranges."""
    tkl = draw(st.integers(0, 8))
    code = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 69, 132, 160]))
    first = bytes([0x40 | draw(st.integers(0, 3)) << 4 | tkl, code])
    data = first + draw(st.binary(min_size=2 + tkl, max_size=2 + tkl))
    for _ in range(draw(st.integers(0, 6))):
        delta, delta_ext = _extended(draw(st.integers(0, 300)))
        length = draw(st.integers(0, 300))
        nibble, length_ext = _extended(length)
        value = draw(st.binary(min_size=length, max_size=length))
        data += bytes([delta << 4 | nibble]) + delta_ext + length_ext + value
    return data + draw(st.sampled_from([b"", b"\xff", b"\xffpayload"]))


def _check(data: bytes) -> None:
    try:
        admitted, _ = admit(data)
    except Malformed:
        return
    assert admit(admitted) == (admitted, None)
    try:
        aiocoap.Message.decode(admitted)
    except (error.UnparsableMessage, UnicodeDecodeError):
        pass


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@settings(
    max_examples=3000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(datagrams())
def test_message_shaped_bytes(data: bytes) -> None:
    _check(data)
