"""Spec §1: a message that violates the message format (RFC 7252 §3) is rejected, never
answered as if it were valid: a Confirmable one gets a Reset (its message id, no token, code
0.00), a Non-confirmable, Acknowledgement or Reset one gets nothing (§4.2, §4.3). An option
whose length is out of its range is an unrecognised option (§5.4.3): 4.02 with the error
body for a critical one, ignored for an elective one.

Every case goes over real UDP from a raw socket, and afterwards the store is what it was."""

import asyncio
import json
import struct

import aiocoap
import pytest

from tests.conftest import Datagrams, datagrams_to

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST = 0x01, 0x02
BODY = b'{"number":5}'
SESSIONS = bytes([0xB2]) + b"v1" + bytes([0x08]) + b"sessions"  # Uri-Path v1, sessions
JSON_FORMAT = bytes([0x11, 50])  # Content-Format 50, delta 1 from Uri-Path


def header(mtype: int, token_length: int, code: int, mid: int) -> bytes:
    return bytes([0x40 | mtype << 4 | token_length, code]) + struct.pack("!H", mid)


def post(mtype: int, mid: int, token: bytes = b"t") -> bytes:
    """A well-formed POST /v1/sessions that would create session 5."""
    return header(mtype, len(token), POST, mid) + token + SESSIONS + JSON_FORMAT + b"\xff" + BODY


def option(delta: int, value: bytes) -> bytes:
    """One option (delta below 13), its length written as short as it goes."""
    n = len(value)
    if n < 13:
        return bytes([delta << 4 | n]) + value
    if n < 269:
        return bytes([delta << 4 | 13, n - 13]) + value
    return bytes([delta << 4 | 14]) + struct.pack("!H", n - 269) + value


MALFORMED = {
    # a POST that would create a session, but for the marker: no payload behind it
    "payload marker with no payload": lambda t, mid: (
        header(t, 1, POST, mid) + b"t" + SESSIONS + JSON_FORMAT + b"\xff"
    ),
    "token length 9": lambda t, mid: (
        header(t, 9, POST, mid) + b"123456789" + SESSIONS + JSON_FORMAT + b"\xff" + BODY
    ),
    "token length 15": lambda t, mid: (
        header(t, 15, POST, mid) + b"0123456789abcde" + SESSIONS + JSON_FORMAT + b"\xff" + BODY
    ),
    "token length 13 (RFC 8974, not spoken here)": lambda t, mid: (
        header(t, 13, POST, mid) + b"\x00" + b"x" * 14 + SESSIONS + JSON_FORMAT + b"\xff" + BODY
    ),
    "token length 14 (RFC 8974, not spoken here)": lambda t, mid: (
        header(t, 14, POST, mid) + b"\x00\x00" + b"x" * 269 + SESSIONS + b"\xff" + BODY
    ),
    "token shorter than its length": lambda t, mid: header(t, 8, GET, mid) + b"abc",
    "code class 1": lambda t, mid: header(t, 1, 0x22, mid) + b"t" + SESSIONS + b"\xff" + BODY,
    "code class 6": lambda t, mid: header(t, 1, 0xC2, mid) + b"t" + SESSIONS + b"\xff" + BODY,
    "code class 7": lambda t, mid: header(t, 1, 0xE2, mid) + b"t" + SESSIONS + b"\xff" + BODY,
    "option value past the end": lambda t, mid: header(t, 0, GET, mid) + bytes([0xB5]) + b"v1",
    "extended delta past the end": lambda t, mid: header(t, 0, GET, mid) + bytes([0xD0]),
    "extended length past the end": lambda t, mid: header(t, 0, GET, mid) + bytes([0xBE, 0x01]),
    "option delta 15": lambda t, mid: header(t, 0, GET, mid) + SESSIONS + bytes([0xF1]) + b"x",
    "option length 15": lambda t, mid: header(t, 0, GET, mid) + bytes([0xBF]) + b"x" * 16,
    "option number past 65535": lambda t, mid: header(t, 0, GET, mid) + b"\xe0\xff\xff",
    "empty message with a token": lambda t, mid: header(t, 1, 0, mid) + b"t",
}


class Peer:
    """One raw UDP socket aimed at the emulator."""

    def __init__(self, transport: asyncio.DatagramTransport, proto: Datagrams):
        self.transport = transport
        self.proto = proto

    def send(self, data: bytes) -> None:
        self.transport.sendto(data)

    async def answer(self, timeout: float = 5) -> bytes:
        return await asyncio.wait_for(self.proto.received.get(), timeout)

    async def silence(self, mid: int) -> list[bytes]:
        """Everything received for a while, then up to the Reset of a ping sent last: a
        server that was going to answer has had the time to."""
        await asyncio.sleep(0.3)
        self.send(header(CON, 0, 0, mid))  # a CoAP ping: answered by a Reset
        got = [await self.answer()]
        while got[-1] != header(RST, 0, 0, mid):
            got.append(await self.answer())
        await asyncio.sleep(0.1)
        while not self.proto.received.empty():
            got.append(self.proto.received.get_nowait())
        return got[:-1]


@pytest.fixture
async def peer(emulator):
    async with datagrams_to(emulator.port) as (transport, proto):
        yield Peer(transport, proto)


async def unchanged(client) -> None:
    body = (await client.get("/v1/sessions")).json
    assert body["sessions"] == [] and body["globalSessionSequence"] == 0


def test_each_case_is_malformed_and_only_by_its_flaw():
    """The well-formed request the cases are made from is one (the cases test the flaw)."""
    message = aiocoap.Message.decode(post(CON, 1))
    assert message.opt.uri_path == ("v1", "sessions") and message.payload == BODY


async def test_the_well_formed_request_creates_a_session(peer, client):
    peer.send(post(CON, 1))
    answer = aiocoap.Message.decode(await peer.answer())
    assert answer.code.dotted == "2.01" and answer.mid == 1


@pytest.mark.parametrize("flaw", list(MALFORMED))
async def test_a_malformed_con_gets_a_reset_and_changes_nothing(peer, client, flaw):
    peer.send(MALFORMED[flaw](CON, 0x1234))
    assert await peer.answer() == bytes([0x70, 0x00, 0x12, 0x34])  # RST, no token, 0.00
    assert await peer.silence(0x4321) == []  # the Reset and nothing else
    await unchanged(client)


@pytest.mark.parametrize("mtype", [NON, ACK, RST], ids=["NON", "ACK", "RST"])
@pytest.mark.parametrize("flaw", list(MALFORMED))
async def test_a_malformed_other_message_gets_nothing_and_changes_nothing(
    peer, client, flaw, mtype
):
    peer.send(MALFORMED[flaw](mtype, 0x1234))
    assert await peer.silence(0x4321) == []
    await unchanged(client)


async def test_not_version_1_is_ignored_even_if_confirmable(peer, client):
    peer.send(bytes([0x80 | 0x01, GET]) + b"\x00\x01" + b"t" + SESSIONS)  # version 2, CON
    peer.send(b"\x40\x01")  # shorter than a header
    assert await peer.silence(0x4321) == []


def query_request(mtype: int, mid: int, query_length: int) -> bytes:
    """POST /v1/sessions?x=aaa… with a Uri-Query (option 15) of `query_length` bytes."""
    return (
        header(mtype, 1, POST, mid)
        + b"t"
        + SESSIONS
        + JSON_FORMAT
        + option(3, b"x=" + b"a" * (query_length - 2))  # 12 -> 15
        + b"\xff"
        + BODY
    )


@pytest.mark.parametrize("mtype", [CON, NON], ids=["CON", "NON"])
@pytest.mark.parametrize("length", [256, 4300])
async def test_an_over_long_critical_option_is_4_02_with_the_error_body(
    peer, client, mtype, length
):
    peer.send(query_request(mtype, 0x2222, length))
    answer = aiocoap.Message.decode(await peer.answer())
    assert answer.code.dotted == "4.02" and answer.token == b"t"
    assert answer.mtype == (aiocoap.ACK if mtype == CON else aiocoap.NON)
    if mtype == CON:
        assert answer.mid == 0x2222
    error = json.loads(answer.payload)["error"]
    assert error["code"] == "4.02" and "option 15" in error["message"]
    await unchanged(client)


async def test_a_uri_query_of_255_bytes_is_read(peer, client):
    peer.send(query_request(CON, 0x2223, 255))  # the longest allowed: an unknown query name
    answer = aiocoap.Message.decode(await peer.answer())
    assert answer.code.dotted == "2.01"


OTHER_CRITICAL = {
    "Accept of 3 bytes": (17, SESSIONS + bytes([0x63]) + b"\x00\x00\x32"),
    "Uri-Host of 0 bytes": (3, bytes([0x30, 0x82]) + b"v1" + bytes([0x08]) + b"sessions"),
}


@pytest.mark.parametrize("name", list(OTHER_CRITICAL))
async def test_other_critical_options_out_of_range_are_4_02(peer, client, name):
    number, options = OTHER_CRITICAL[name]
    peer.send(header(CON, 1, GET, 7) + b"t" + options)
    answer = aiocoap.Message.decode(await peer.answer())
    assert answer.code.dotted == "4.02"
    assert json.loads(answer.payload)["error"]["message"].startswith(f"critical option {number} ")


async def test_an_over_long_elective_option_is_ignored(peer, client):
    # an Observe (elective, 6) of 4 bytes, before Uri-Path: a plain GET, no registration
    observe = option(6, b"\x00" * 4)
    path = option(5, b"v1") + option(0, b"notify")
    peer.send(header(CON, 1, GET, 8) + b"t" + observe + path)
    answer = aiocoap.Message.decode(await peer.answer())
    assert answer.code.dotted == "2.05" and answer.opt.observe is None
    assert json.loads(answer.payload)["responseTypes"] == ["ping"]
    # a Content-Format of 3 bytes (60, CBOR) is not there: the body is read as JSON
    content_format = option(1, b"\x00\x00\x3c")
    peer.send(header(CON, 1, POST, 9) + b"t" + SESSIONS + content_format + b"\xff" + BODY)
    answer = aiocoap.Message.decode(await peer.answer())
    assert answer.code.dotted == "2.01"
