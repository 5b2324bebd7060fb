"""Send errors told to the peer they belong to, after the send, not to whoever is sent to next.

aiocoap asks the kernel for ICMP errors through the socket's error queue (IP_RECVERR) and
reads them there, with the address of the peer that caused them. Linux also keeps the last
such error pending on the socket and fails the next `sendmsg` with it, whatever that send's
destination: the datagram is not sent, and aiocoap hands the error to the peer being sent to
(`MessageInterfaceUDP6.error_received`). One vanished observer's "port unreachable" would then
drop a healthy peer's exchanges and end its observations, and it is dispatched while
aiocoap is still inside `Pipe.add_response`: a pipe ended under its own event loop fails
there with a TypeError (and again in its broken `log.error(exception=...)`), which reaches
asyncio as "Task exception was never retrieved".

`install` replaces the transport's `sendmsg`: a send that fails is tried once more, which
is all it takes when the failure was another datagram's pending error (reading it cleared
it, and the error queue still reports it for its own peer). A send that fails twice failed
for itself; its error goes to its peer as aiocoap would, but from the event loop's next turn,
outside anything aiocoap is in the middle of.
"""

import asyncio
import logging
from typing import Any

log = logging.getLogger("pager.coap")


def install(udp: Any) -> None:
    """Replace the `sendmsg` of `udp`'s transport (aiocoap's MessageInterfaceUDP6)."""
    transport = udp.transport
    sock = transport.get_extra_info("socket")
    being_sent_to = udp._remote_being_sent_to

    def sendmsg(data: bytes, ancdata: list[Any], flags: int, address: Any) -> None:
        try:
            sock.sendmsg((data,), ancdata, flags, address)
            return
        except OSError:
            pass  # perhaps an earlier datagram's error; now cleared
        try:
            sock.sendmsg((data,), ancdata, flags, address)
        except OSError as exc:
            asyncio.get_running_loop().call_soon(_dispatch, udp, exc, being_sent_to.get())

    transport.sendmsg = sendmsg


def _dispatch(udp: Any, exc: OSError, remote: Any) -> None:
    ctx = getattr(udp, "_ctx", None)  # gone once the context has shut down
    if ctx is None or remote is None:
        log.info("send error with nobody left to tell: %s", exc)
        return
    ctx.dispatch_error(exc, remote)
