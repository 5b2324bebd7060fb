"""seam.cycles: the objects of a request are freed by reference counting once it has been
answered, whatever way it went; none is left for the garbage collector."""

import gc
from collections import Counter
from functools import partial

import aiocoap

from pager.coap.seam import cycles

REQUESTS = [  # every way a request goes: changes, reads, refusals, unknown paths
    ("POST", "/v1/sessions", {"number": 42}, None),
    ("PUT", "/v1/sessions", {"action": "page"}, "number=42"),
    ("GET", "/v1/sessions", None, "number=42"),
    ("GET", "/v1/sessions", None, "number=4242"),
    ("GET", "/v1/nothing", None, None),
    ("PUT", "/v1/sessions", None, "number=42&x"),
    ("DELETE", "/v1/sessions", None, "number=42"),
    ("GET", "/.well-known/core", None, None),
]


async def _send_all(client) -> None:
    for method, path, body, query in REQUESTS:
        await client.request(method, path, body, query=query)


async def test_no_request_is_left_in_a_cycle(emulator, client):
    await _send_all(client)  # warm: first uses create what lives on
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(5):
            await _send_all(client)
        gc.collect()
        # the server's: the client's own requests and answers are aiocoap's too
        kinds = Counter(
            type(o).__qualname__
            for o in gc.garbage
            if getattr(o, "__qualname__", "") == "TokenManager.process_request.<locals>.on_event"
            or (isinstance(o, aiocoap.pipe.Pipe) and o.request.remote.sockaddr[1] != emulator.port)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kinds == Counter(), kinds


def test_the_closure_is_found_and_untied_as_aiocoap_builds_it():
    from aiocoap.tokenmanager import TokenManager

    assert cycles.on_event_of(TokenManager.process_request) is not None
    assert cycles.on_event_of(lambda request: None) is None

    def process_request():
        def on_event():
            return stop

        stop = partial(print, on_event)
        return on_event, stop

    on_event, stop = process_request()
    assert on_event() is stop
    cycles.untie(stop)
    assert on_event() is None and stop.args == (on_event,)  # stop itself stays whole
    cycles.untie(print)  # anything else is left alone
