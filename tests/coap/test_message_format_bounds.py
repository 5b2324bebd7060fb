"""Every option length bound of `datagrams.LENGTHS` over real UDP: a value exactly at each
end of its range is read as the option, one past it is an unrecognised option (RFC 7252
§5.4.3): 4.02 naming it if critical, ignored if elective. And the datagrams at the edges
of the message format: the largest UDP datagram, a truncated option in a NON, an ACK or a
RST with a token."""

import json
import struct

import aiocoap
import pytest

from pager.coap.seam.datagrams import LENGTHS
from tests.coap.test_message_format import ACK, CON, GET, NON, RST, Peer, header
from tests.conftest import datagrams_to

PATH = [(11, b"v1"), (11, b"sessions")]


@pytest.fixture
async def raw(emulator):
    async with datagrams_to(emulator.port) as (transport, proto):
        yield Peer(transport, proto)


def encode(options: list[tuple[int, bytes]]) -> bytes:
    out = b""
    number = 0
    for n, value in sorted(options, key=lambda o: o[0]):
        delta, number = n - number, n
        head, tail = 0, b""
        for shift, v in ((4, delta), (0, len(value))):
            if v < 13:
                nibble, ext = v, b""
            elif v < 269:
                nibble, ext = 13, bytes([v - 13])
            else:
                nibble, ext = 14, struct.pack("!H", v - 269)
            head |= nibble << shift
            if shift == 4:
                delta_ext = ext
            else:
                tail = delta_ext + ext
        out += bytes([head]) + tail + value
    return out


def cases() -> list[tuple[int, int, bool]]:
    """(option, value length, within its range) at and one past each end."""
    found = []
    for number, (low, high) in LENGTHS.items():
        if number == 11:  # Uri-Path: the request's own path, test_message_format has it
            continue
        found += [(number, low, True), (number, high, True), (number, high + 1, False)]
        if low > 0:
            found.append((number, low - 1, False))
    return found


async def test_each_option_at_and_one_past_each_end_of_its_range(raw, client):
    for mid, (number, length, within) in enumerate(cases(), 100):
        value = b"\x01" * length
        raw.send(header(CON, 1, GET, mid) + b"t" + encode(PATH + [(number, value)]))
        answer = aiocoap.Message.decode(await raw.answer())
        while answer.mid != mid:  # a late answer to an earlier case
            answer = aiocoap.Message.decode(await raw.answer())
        assert answer.mtype == ACK, (number, length)
        refused = answer.code.dotted == "4.02" and json.loads(answer.payload)["error"][
            "message"
        ].startswith(f"critical option {number} ")
        assert refused == (not within and bool(number & 1)), (number, length, answer)


async def test_the_largest_udp_datagram_is_read_whole(raw, client):
    body = json.dumps({"number": 5, "label": "x" * 65_000}).encode()
    datagram = header(CON, 1, 0x02, 9) + b"t" + encode(PATH + [(12, b"\x32")]) + b"\xff"
    datagram += body + b" " * (65_507 - len(datagram) - len(body))
    assert len(datagram) == 65_507
    raw.send(datagram)
    answer = aiocoap.Message.decode(await raw.answer())
    assert answer.mid == 9 and answer.code.dotted == "4.13"  # judged whole, on its size


@pytest.mark.parametrize(
    "datagram",
    [
        header(NON, 0, GET, 11) + bytes([0xB5]) + b"v1",  # an option past the end
        header(ACK, 1, 0, 12) + b"t",  # an empty ACK with a token
        header(RST, 1, 0, 13) + b"t",  # an empty RST with a token
    ],
    ids=["NON truncated option", "ACK with token", "RST with token"],
)
async def test_these_get_nothing_at_all(raw, client, datagram):
    raw.send(datagram)
    assert await raw.silence(0x7777) == []
    assert (await client.get("/v1/sessions")).code == "2.05"
