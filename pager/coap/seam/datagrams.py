"""Datagrams as they enter and leave aiocoap's UDP transport: the UTF-8 guard and the filter.

aiocoap ignores a datagram it cannot parse, but one whose text option is not UTF-8 escapes
its decoder as a UnicodeDecodeError (its issue #176) and is logged with a traceback per
datagram. The guard below drops such a datagram with one line instead; it is part of the
server, whether or not anything filters datagrams.

A `DatagramFilter` (the test rig's fault injection) acts below aiocoap's message layer,
because that is where a lost datagram is lost: a request dropped any higher would still be
acknowledged, and its retransmission swallowed as a duplicate. aiocoap has no hook there,
so `install` wraps the two methods of its UDP interface that receive and send datagrams;
while the filter is not `active` they cost one attribute test.
"""

import asyncio
import logging
from typing import Any, Protocol

import aiocoap

log = logging.getLogger("pager.coap")


class DatagramFilter(Protocol):
    """What may pass between the network and aiocoap's message layer."""

    @property
    def active(self) -> bool:
        """False while everything passes unlooked at."""
        ...

    def incoming(self, data: bytes) -> bool:
        """Whether a received datagram reaches aiocoap."""
        ...

    def outgoing(self, message: aiocoap.Message) -> float | None:
        """The loop time to hold an outgoing message back until (0 for none), or None to
        drop it."""
        ...

    def release(self, message: aiocoap.Message) -> bool:
        """Whether a held-back message, its time come, is sent after all."""
        ...


def install(udp: Any, datagram_filter: DatagramFilter | None) -> None:
    """Wrap `udp`'s (aiocoap's MessageInterfaceUDP6) receiving and sending of datagrams."""
    receive = udp.datagram_msg_received

    def received(data: bytes, ancdata: list[Any], flags: int, address: Any) -> None:
        if datagram_filter is not None and datagram_filter.active:
            if not datagram_filter.incoming(data):
                return
        try:
            receive(data, ancdata, flags, address)
        except UnicodeDecodeError:
            log.info("ignored a datagram from %s: a text option is not UTF-8", address)

    udp.datagram_msg_received = received
    if datagram_filter is None:
        return
    send = udp.send

    def release(message: aiocoap.Message) -> None:
        if datagram_filter.release(message):
            send(message)

    def sending(message: aiocoap.Message) -> None:
        when = datagram_filter.outgoing(message) if datagram_filter.active else 0.0
        if when is None:
            return
        if when:
            asyncio.get_running_loop().call_at(when, release, message)
        else:
            send(message)

    udp.send = sending
