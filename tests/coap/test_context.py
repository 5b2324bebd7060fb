"""ServerContext: aiocoap's rendering of requests, without formatting a name for each."""

import asyncio

import aiocoap
from aiocoap.numbers.types import Type

from pager.coap.context import ServerContext
from tests.conftest import Datagrams


async def exchange(port: int, request: aiocoap.Message) -> aiocoap.Message:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        Datagrams, remote_addr=("127.0.0.1", port))
    try:
        request.mtype, request.mid, request.token = Type.CON, 77, b"\x07"
        transport.sendto(request.encode())
        return aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))
    finally:
        transport.close()


async def test_requests_are_answered_without_a_repr_of_each(emulator, monkeypatch):
    """aiocoap's Context formats repr(request) (and parses the peer's address) per request."""
    assert isinstance(emulator._context, ServerContext)
    reprs = []
    original = aiocoap.Message.__repr__
    monkeypatch.setattr(aiocoap.Message, "__repr__",
                        lambda self: reprs.append(self.code) or original(self))
    answer = await exchange(emulator.port, aiocoap.Message(
        code=aiocoap.POST, payload=b'{"number":5}', content_format=50,
        uri_path=("v1", "sessions")))
    assert answer.code == aiocoap.CREATED
    assert reprs == []


async def test_an_unexpected_error_while_rendering_is_still_answered_500(emulator, monkeypatch):
    """aiocoap's error_to_message stays in the chain: a bug answers 5.00, not silence."""
    sessions = emulator._context.serversite._leaves[("v1", "sessions")]

    async def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sessions, "render_get", broken)
    answer = await exchange(emulator.port, aiocoap.Message(
        code=aiocoap.GET, uri_path=("v1", "sessions")))
    assert answer.code == aiocoap.INTERNAL_SERVER_ERROR
