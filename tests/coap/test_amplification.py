"""Optional amplification protection (RFC 9175 Echo): on, an unproven peer gets only a small
4.01 with an Echo value and nothing is processed; off (the default), clients just work."""

import asyncio
import json

import aiocoap
import pytest
from aiocoap.numbers.types import Type

from pager.coap.echo import AddressCheck


class Peer(asyncio.DatagramProtocol):
    def __init__(self):
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.mid = 0

    def datagram_received(self, data, addr):
        self.received.put_nowait(data)

    async def ask(self, code, path, payload=b"", echo=None) -> tuple[bytes, bytes]:
        m = aiocoap.Message(code=code, uri_path=tuple(path.strip("/").split("/")), payload=payload)
        if payload:
            m.opt.content_format = 50
        if echo is not None:
            m.opt.echo = echo
        self.mid += 1
        m.mtype, m.mid, m.token = Type.CON, self.mid, b"a"
        request = m.encode()
        self.transport.sendto(request)
        return request, await asyncio.wait_for(self.received.get(), 5)


@pytest.fixture
async def peer(emulator):
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        Peer, remote_addr=("127.0.0.1", emulator.port)
    )
    proto.transport = transport
    yield proto
    transport.close()


@pytest.mark.parametrize("config_overrides", [{"amplification_protection": True}])
async def test_unproven_peer_gets_small_401_with_echo_and_nothing_happens(peer, emulator):
    request, raw = await peer.ask(aiocoap.POST, "/v1/sessions", b'{"number":4}')
    answer = aiocoap.Message.decode(raw)
    assert answer.code == aiocoap.UNAUTHORIZED and answer.opt.echo
    assert len(raw) <= 3 * len(request)
    assert emulator.engine.state.active == {}  # nothing was processed

    request, raw = await peer.ask(aiocoap.GET, "/v1/sessions")  # a small request too
    assert len(raw) <= 3 * len(request)

    _, raw = await peer.ask(aiocoap.POST, "/v1/sessions", b'{"number":4}', echo=answer.opt.echo)
    created = aiocoap.Message.decode(raw)
    assert created.code == aiocoap.CREATED  # the proof is accepted: processed once
    _, raw = await peer.ask(aiocoap.GET, "/v1/sessions")  # proven for a while: no Echo needed
    listing = aiocoap.Message.decode(raw)
    assert listing.code == aiocoap.CONTENT
    assert [s["number"] for s in json.loads(listing.payload)["sessions"]] == [4]


@pytest.mark.parametrize("config_overrides", [{"amplification_protection": True}])
async def test_forged_or_stale_echo_is_refused(peer):
    _, raw = await peer.ask(aiocoap.GET, "/v1/settings", echo=b"\x00" * 12)
    assert aiocoap.Message.decode(raw).code == aiocoap.UNAUTHORIZED


def test_echo_values_are_bound_to_the_peer_and_expire():
    now = [1000.0]
    check = AddressCheck(clock=lambda: now[0])
    value = check.challenge("127.0.0.1:4000")
    assert not check.admit("127.0.0.1:4001", value)  # another peer cannot use it
    now[0] += 61
    assert not check.admit("127.0.0.1:4000", value)  # stale
    value = check.challenge("127.0.0.1:4000")
    assert check.admit("127.0.0.1:4000", value)
    assert check.admit("127.0.0.1:4000", None)  # proven for a while


async def test_off_by_default_answers_directly(peer):
    _, raw = await peer.ask(aiocoap.GET, "/v1/sessions")
    assert aiocoap.Message.decode(raw).code == aiocoap.CONTENT
