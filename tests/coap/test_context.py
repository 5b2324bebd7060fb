"""ServerContext: aiocoap's rendering of requests, without formatting a name for each."""

import aiocoap

from pager.coap.seam import ServerContext
from tests.conftest import exchange_once


async def test_requests_are_answered_without_a_repr_of_each(emulator, monkeypatch):
    """aiocoap's Context formats repr(request) (and parses the peer's address) per request."""
    assert isinstance(emulator._context, ServerContext)
    reprs = []
    original = aiocoap.Message.__repr__
    monkeypatch.setattr(
        aiocoap.Message, "__repr__", lambda self: reprs.append(self.code) or original(self)
    )
    answer = await exchange_once(
        emulator.port,
        aiocoap.Message(
            code=aiocoap.POST,
            payload=b'{"number":5}',
            content_format=50,
            uri_path=("v1", "sessions"),
        ),
    )
    assert answer.code == aiocoap.CREATED
    assert reprs == []


async def test_an_unexpected_error_while_rendering_is_still_answered_500(emulator, monkeypatch):
    """aiocoap's error_to_message stays in the chain: a bug answers 5.00, not silence."""
    sessions = emulator._context.serversite._leaves[("v1", "sessions")]

    async def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(sessions, "render_get", broken)
    answer = await exchange_once(
        emulator.port, aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions"))
    )
    assert answer.code == aiocoap.INTERNAL_SERVER_ERROR
