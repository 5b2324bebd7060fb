"""A request's objects freed as it ends, not by the garbage collector's next pass.

aiocoap's `TokenManager.process_request` gives every request a reference cycle: its
`on_event` closure holds `stop`, which is `pipe.on_event`'s partial of the pipe's unregister
method with `on_event` as its argument. So the request, its options, its pipe and that
closure outlive the exchange until a collection finds them: about twenty objects per
request, which under full-speed traffic made the collector run often and scan long (the
full passes stalled every request in flight; README, Benchmarks). Once the pipe's interest
has ended, `on_event` is never called again, so its `stop` cell is emptied then and plain
reference counting frees the rest. `stop` itself stays whole for whoever still holds it (it
does nothing on an ended pipe).
"""

import types
from functools import partial
from typing import Any

from aiocoap import Message


def on_event_of(process_request: Any) -> types.CodeType | None:
    """The code of the closure the cycle is made of, if `process_request` is still the
    method written for: `on_event` among its constants, holding `stop` as a free variable."""
    code = getattr(process_request, "__code__", None)
    for const in code.co_consts if isinstance(code, types.CodeType) else ():
        if isinstance(const, types.CodeType) and const.co_name == "on_event":
            return const if "stop" in const.co_freevars else None
    return None


def untie(stop: Any) -> None:
    """Empty the cell by which `stop`'s own callback holds `stop`."""
    if not isinstance(stop, partial) or len(stop.args) != 1:
        return
    for cell in getattr(stop.args[0], "__closure__", None) or ():
        if cell.cell_contents is stop:
            cell.cell_contents = None


def install(token_manager: Any) -> None:
    """Untie each request's cycle as its pipe's interest ends."""
    process_request = token_manager.process_request

    def process(request: Message) -> None:
        process_request(request)
        running = token_manager.incoming_requests.get((request.token, request.remote))
        if running is not None:
            pipe, stop = running
            pipe.on_interest_end(partial(untie, stop))

    token_manager.process_request = process
