"""The aiocoap context the emulator serves from."""

import asyncio
import socket
from typing import Any

import aiocoap
from aiocoap import pipe as aiocoap_pipe
from aiocoap import resource
from aiocoap.transports.udp6 import MessageInterfaceUDP6
from aiocoap.util import socknumbers

from pager.coap.seam import hooks


class _ExclusiveUDP6(MessageInterfaceUDP6):
    """aiocoap's UDP transport, on a socket that has its address and port to itself.

    aiocoap binds its server socket with SO_REUSEPORT, which lets a second server bind the
    same port while the kernel spreads the datagrams between the two. Clearing the option
    after the bind would leave a moment in which a second one could still join; instead the
    socket aiocoap bound is replaced, before anything reads from it, by one bound to the same
    address without the option. That bind is refused (EADDRINUSE) while any other socket
    holds the address, `::` and a v4 address on it included, so of two emulators started at
    once at most one gets the port.

    On uvloop the socket does not ask for ICMP errors (aiocoap turns IP_RECVERR on): libuv
    stops polling a descriptor that reports an error, so the first "port unreachable" of a
    vanished observer would leave the server deaf to every datagram after it. Without them
    a vanished observer is noticed by its unacknowledged notifications, as on a network
    that filters ICMP.
    """

    @classmethod
    async def _create_transport_endpoint(
        cls, sock: socket.socket, ctx: Any, log: Any, loop: Any, multicast: Any = ()
    ) -> Any:
        address = sock.getsockname()
        sock.close()
        exclusive = socket.socket(family=socket.AF_INET6, type=socket.SOCK_DGRAM)
        try:
            exclusive.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            exclusive.bind(address)
            endpoint = await super()._create_transport_endpoint(
                exclusive, ctx, log, loop, multicast
            )
            if type(loop).__module__.split(".")[0] == "uvloop" and socknumbers.HAS_RECVERR:
                exclusive.setsockopt(socket.IPPROTO_IPV6, socknumbers.IPV6_RECVERR, 0)
                exclusive.setsockopt(socket.IPPROTO_IP, socknumbers.IP_RECVERR, 0)
            return endpoint
        except BaseException:
            exclusive.close()
            raise


class ServerContext(aiocoap.Context):
    """aiocoap's Context, with render tasks that are not named after their request.

    aiocoap names the task rendering each request "Rendering for <repr of the request>", and
    formats that name for every request whether anyone looks at it or not. The repr parses
    the peer's address with `ipaddress`, a visible share of the server's time under load
    (README, "Benchmarks"), for a name no log line shows. Everything else is aiocoap's
    `render_to_pipe` as it is.
    """

    @classmethod
    async def create_exclusive(cls, site: resource.Site, bind: tuple[str, int]) -> "ServerContext":
        """aiocoap's `create_server_context` for UDP alone, bound to `bind` exclusively.

        The transport is the context's only resource, added once it is bound: a failed bind
        leaves nothing to shut down. What this relies on in aiocoap is checked first
        (`SeamError`), before any socket exists.
        """
        hooks.verify_classes()
        loop = asyncio.get_running_loop()
        self = cls(loop=loop, serversite=site, loggername="coap-server")
        await self._append_tokenmanaged_messagemanaged_transport(
            lambda mman: _ExclusiveUDP6.create_server_transport_endpoint(
                mman, log=self.log, loop=loop, bind=bind, multicast=[]
            )
        )
        return self

    def render_to_pipe(self, pipe: Any) -> None:
        aiocoap_pipe.run_driving_pipe(
            aiocoap_pipe.error_to_message(pipe, self.log),
            self._render_to_pipe(pipe),
            name="CoAP request",
        )
