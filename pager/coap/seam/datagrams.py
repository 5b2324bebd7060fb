"""Datagrams as they enter and leave aiocoap's UDP transport: the message format, and the filter.

aiocoap reads a datagram leniently. It answers a payload marker with no payload, a token
length of 9 to 15 or a token shorter than its length as if the request were well formed (2.05
with that token, or 4.04), and it drops a truncated option, an extended token length (RFC
8974, which this server does not speak) or a reserved code class (1, 6, 7) without the Reset
a Confirmable message then needs (RFC 7252 §4.2). It reads a datagram into a 4,096-byte
buffer, so a longer one arrives cut off and is dropped as truncated: a request with a
4,300-byte Uri-Query got no answer at all. An option whose value is shorter or longer than its
definition allows is read as valid, where RFC 7252 §5.4.3 treats it as unrecognised. And a
text option that is not UTF-8 escapes its decoder as a UnicodeDecodeError (its issue #176),
logged with a traceback per datagram.

So every datagram is read here first, once (`admit`), before aiocoap decodes it:

- a message-format violation (RFC 7252 §3, §4.1) is rejected: a Confirmable message gets a
  Reset (its message id, no token, code 0.00), anything else is dropped; a datagram that is
  not CoAP version 1, or shorter than a header, is dropped whatever its type (§3);
- an option whose length is out of its range (`LENGTHS`) is taken out of the datagram: an
  elective one is then simply ignored, a critical one is remembered on the decoded request
  (`unrecognised`) and the request gate answers 4.02, as for any unrecognised critical
  option;
- a text option that is not UTF-8 drops the datagram with one log line;
- datagrams are read whole, up to the largest UDP datagram (`MAX_DATAGRAM`), so a request is
  never judged by a piece of it.

A `DatagramFilter` (the test rig's fault injection) acts below aiocoap's message layer,
because that is where a lost, duplicated or reordered datagram is one: a request dropped any
higher would still be acknowledged, and its retransmission swallowed as a duplicate. aiocoap
has no hook there, so `install` takes over the two methods of its UDP interface that receive
and send datagrams; while the filter is not `active` they cost one attribute test.

The same two places tell an `Exchanges` (the request journal, `pager.coap.exchanges`) of each
request as aiocoap reads it (a duplicate, as the deduplication table knows it, included), of
each one the filter did not let through, and of each request's first answer as it is sent and
as it leaves: only there are all of those seen, and what they hand over is what is at hand
(the datagrams), so that recording costs the request path next to nothing.
"""

import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol

import aiocoap
from aiocoap import error
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.numbers.types import RST
from aiocoap.options import Options
from aiocoap.optiontypes import OpaqueOption
from aiocoap.transports.udp6 import UDP6EndpointAddress

from pager.coap.exchanges import Exchanges
from pager.coap.seam.dedup import RecentMessages, Replay

log = logging.getLogger("pager.coap")


class Peer(UDP6EndpointAddress):
    """aiocoap's address of a peer, except that its hash is worked out once, and whether its
    datagram came to a multicast address once per local address: aiocoap hashes the address
    a dozen times on a request's way (its tables are keyed by it), and asks the other for
    every answer it sends, parsing the address each time."""

    def __init__(self, sockaddr: Any, interface: Any, *, pktinfo: bytes | None = None) -> None:
        super().__init__(sockaddr, interface, pktinfo=pktinfo)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    @property
    def is_multicast_locally(self) -> bool:
        local = self.pktinfo
        known = _MULTICAST_LOCAL.get(local)
        if known is None:
            if len(_MULTICAST_LOCAL) >= _MULTICAST_LOCAL_MAX:
                _MULTICAST_LOCAL.clear()
            known = _MULTICAST_LOCAL[local] = bool(super().is_multicast_locally)
        return known


_MULTICAST_LOCAL: dict[bytes | None, bool] = {}
_MULTICAST_LOCAL_MAX = 256  # a host's own addresses: a handful

MAX_DATAGRAM = 65_536
"""The receive buffer: more than any UDP datagram, so none is cut off."""

LENGTHS: dict[int, tuple[int, int]] = {
    int(number): bounds
    for number, bounds in (
        (OptionNumber.IF_MATCH, (0, 8)),
        (OptionNumber.URI_HOST, (1, 255)),
        (OptionNumber.ETAG, (1, 8)),
        (OptionNumber.IF_NONE_MATCH, (0, 0)),
        (OptionNumber.OBSERVE, (0, 3)),  # RFC 7641
        (OptionNumber.URI_PORT, (0, 2)),
        (OptionNumber.LOCATION_PATH, (0, 255)),
        (OptionNumber.URI_PATH, (0, 255)),
        (OptionNumber.CONTENT_FORMAT, (0, 2)),
        (OptionNumber.MAX_AGE, (0, 4)),
        (OptionNumber.URI_QUERY, (0, 255)),
        (OptionNumber.ACCEPT, (0, 2)),
        (OptionNumber.LOCATION_QUERY, (0, 255)),
        (OptionNumber.BLOCK2, (0, 3)),  # RFC 7959
        (OptionNumber.BLOCK1, (0, 3)),
        (OptionNumber.SIZE2, (0, 4)),
        (OptionNumber.PROXY_URI, (1, 1034)),
        (OptionNumber.PROXY_SCHEME, (1, 255)),
        (OptionNumber.SIZE1, (0, 4)),
        (OptionNumber.ECHO, (1, 40)),  # RFC 9175
        (OptionNumber.NO_RESPONSE, (0, 1)),  # RFC 7967
        (OptionNumber.REQUEST_TAG, (0, 8)),  # RFC 9175
    )
}
"""The length range of each option's value (RFC 7252 §5.10 and the RFCs named); an option
not listed here has none that this server knows of."""

_RESERVED_CLASSES = frozenset((1, 6, 7))
_UNRECOGNISED = "_pager_unrecognised_option"
_EXCHANGE = "_pager_exchange"  # on a request: what `Exchanges.arrived` gave, until answered


class Malformed(Exception):
    """A datagram that violates the message format; the message says how."""


class DatagramFilter(Protocol):
    """What passes between the network and aiocoap's message layer, and when.

    A filter is handed each datagram with the call that carries it on, and calls that once
    (it passes), never (it is lost), later (it is held back) or twice (it is duplicated), so
    that datagrams can be reordered too; the seam need not know which fault did what."""

    @property
    def active(self) -> bool:
        """False while everything passes unlooked at."""
        ...

    def incoming(self, data: bytes, deliver: Callable[[bytes], None]) -> None:
        """A received datagram: `deliver` reads it into aiocoap."""
        ...

    def outgoing(self, message: aiocoap.Message, send: Callable[[aiocoap.Message], None]) -> None:
        """A message aiocoap sends: `send` puts it on the network."""
        ...


def _extended(value: int, data: bytes, at: int) -> tuple[int, int]:
    """An option delta or length nibble with its extended bytes at `at`: (value, next)."""
    if value < 13:
        return value, at
    if value == 13:
        if at >= len(data):
            raise Malformed("an option header ends in its extended bytes")
        return data[at] + 13, at + 1
    if value == 14:
        if at + 2 > len(data):
            raise Malformed("an option header ends in its extended bytes")
        return int.from_bytes(data[at : at + 2], "big") + 269, at + 2
    raise Malformed("an option delta or length of 15 that is not a payload marker")


def admit(data: bytes) -> tuple[bytes, int | None]:
    """The datagram as aiocoap is to read it (`data`, or `data` without its options whose
    length is out of range), and the number of the first critical one of those, if any.

    Raises `Malformed` for a datagram that violates the message format."""
    if len(data) < 4 or data[0] >> 6 != 1:
        raise Malformed("not a CoAP version 1 message")
    token_length = data[0] & 0x0F
    code = data[1]
    if token_length > 8:
        raise Malformed(f"reserved token length {token_length}")
    if code >> 5 in _RESERVED_CLASSES:
        raise Malformed(f"reserved code class {code >> 5}")
    at = 4 + token_length
    if len(data) < at:
        raise Malformed("the token is shorter than its length")
    if code == 0 and len(data) > 4:
        raise Malformed("an empty message with a token, options or a payload")
    number = 0
    out: list[tuple[int, int]] = []  # (start, end) of each option out of its range
    critical = None
    end = len(data)
    while at < end:
        head = data[at]
        if head == 0xFF:
            if at + 1 == end:
                raise Malformed("a payload marker with no payload")
            break
        start = at
        delta, at = _extended(head >> 4, data, at + 1)
        length, at = _extended(head & 0x0F, data, at)
        if at + length > end:
            raise Malformed("an option runs past the end of the datagram")
        number += delta
        if number > 0xFFFF:
            raise Malformed("an option number past 65535")
        bounds = LENGTHS.get(number)
        if bounds is not None and not bounds[0] <= length <= bounds[1]:
            out.append((start, at + length))
            if critical is None and number & 1:
                critical = number
        at += length
    if out:
        data = _without(data, 4 + token_length, out)
    return data, critical


def _without(data: bytes, options_start: int, out: list[tuple[int, int]]) -> bytes:
    """`data` with the options at `out` left out, the others' deltas written anew."""
    kept: list[tuple[int, bytes]] = []
    number = 0
    at = options_start
    while at < len(data) and data[at] != 0xFF:
        start = at
        head = data[at]
        delta, at = _extended(head >> 4, data, at + 1)
        length, at = _extended(head & 0x0F, data, at)
        number += delta
        if (start, at + length) not in out:
            kept.append((number, data[at : at + length]))
        at += length
    options = Options()
    for n, value in kept:
        options.add_option(OpaqueOption(n, value))
    return data[:options_start] + options.encode() + data[at:]


def unrecognised(request: aiocoap.Message) -> int | None:
    """The number of a critical option that came with a length out of its range, read as an
    unrecognised option (RFC 7252 §5.4.3); the request as aiocoap decoded it lacks it."""
    found: int | None = getattr(request, _UNRECOGNISED, None)
    return found


def _pktinfo(ancdata: list[Any]) -> bytes | None:
    """The address the datagram was sent to, which aiocoap answers from."""
    for level, kind, value in ancdata:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
            return bytes(value)
    return None


def install(
    udp: Any,
    datagram_filter: DatagramFilter | None,
    exchanges: Exchanges | None = None,
    recent: RecentMessages | None = None,
) -> None:
    """Take over `udp`'s (aiocoap's MessageInterfaceUDP6) reading of datagrams, and its
    sending of them if there is a filter or `exchanges` to tell (with `recent`, the
    deduplication table of `udp`'s message manager, which knows the duplicates)."""
    udp.transport.max_size = MAX_DATAGRAM
    if exchanges is not None and recent is None:
        raise TypeError("telling exchanges needs the deduplication table")
    replaying: list[Any] = [None]  # a duplicate's, while aiocoap answers it

    def read(data: bytes, address: Any, pktinfo: bytes | None, mark: object = None) -> None:
        remote = Peer(address, udp, pktinfo=pktinfo)
        try:
            data, critical = admit(data)
            message = aiocoap.Message.decode(data, remote)
        except Malformed as e:
            _reject(udp, data, remote, str(e))
            return
        except UnicodeDecodeError:
            log.info("ignored a datagram from %s: a text option is not UTF-8", address)
            return
        except error.UnparsableMessage as e:  # what admit lets through aiocoap reads
            log.warning("ignored a datagram from %s: %s", address, e)
            return
        if critical is not None:
            setattr(message, _UNRECOGNISED, critical)
        if exchanges is not None and 0 < data[1] < 32:  # a request's code (the code byte)
            # aiocoap takes it for a duplicate: it sends the answer kept for it again, if
            # there is one yet, and goes no further
            duplicate = (remote, message.mid) in recent  # type: ignore[operator]
            exchange = exchanges.arrived(data, address, duplicate, mark)
            if duplicate:  # aiocoap sends the answer kept for it, if any, now or never
                replaying[0] = exchange
                try:
                    udp._ctx.dispatch_message(message)
                finally:
                    replaying[0] = None
                return
            setattr(message, _EXCHANGE, exchange)
        udp._ctx.dispatch_message(message)

    def received(data: bytes, ancdata: list[Any], flags: int, address: Any) -> None:
        pktinfo = _pktinfo(ancdata)
        if datagram_filter is None or not datagram_filter.active:
            read(data, address, pktinfo)
        elif exchanges is None:
            datagram_filter.incoming(data, lambda d: read(d, address, pktinfo))
        else:
            # delivered now, later (held: with the mark of what holds it) or never (lost)
            passage: list[Any] = [False, None]

            def deliver(d: bytes) -> None:
                passage[0] = True
                read(d, address, pktinfo, passage[1])

            datagram_filter.incoming(data, deliver)
            if not passage[0]:
                passage[1] = _undelivered(exchanges, data, address)

    udp.datagram_msg_received = received
    if datagram_filter is None and exchanges is None:
        return
    send = udp.send

    def sending(message: aiocoap.Message) -> None:
        exchange = None
        unheld = datagram_filter is None or not datagram_filter.active
        if exchanges is not None:
            # the first answer to a request: aiocoap links every answer to its request (a
            # notification too, but by then the request's exchange has been told)
            request = getattr(message, "request", None)
            exchange = getattr(request, _EXCHANGE, None)
            if exchange is not None:
                setattr(request, _EXCHANGE, None)
            elif replaying[0] is not None and isinstance(message, Replay):
                exchange, replaying[0] = replaying[0], None
            if exchange is not None:
                # an answer aiocoap filed for duplicates encodes as kept (`dedup.Replay`)
                exchanges.answered(exchange, message.encode(), unheld)
        if unheld:
            send(message)
            return
        assert datagram_filter is not None  # held back only by a filter
        if exchange is None:
            datagram_filter.outgoing(message, send)
            if exchanges is not None:
                exchanges.passed()
        else:
            told, journal = exchange, exchanges
            assert journal is not None  # there is an exchange only with exchanges to tell

            def leave(m: aiocoap.Message) -> None:
                journal.left(told)
                send(m)

            datagram_filter.outgoing(message, leave)
            journal.marked(told)

    udp.send = sending


def _undelivered(exchanges: Exchanges, data: bytes, address: Any) -> object:
    """Tell of a datagram the filter did not deliver at once, if it is a request aiocoap
    would read; the mark its delivery later is to carry (None: none, or it is lost)."""
    try:
        admitted, _ = admit(data)
        message = aiocoap.Message.decode(admitted)
    except (Malformed, UnicodeDecodeError, error.UnparsableMessage):
        exchanges.passed()  # no request: what held or dropped it marks no exchange
        return None
    if not message.code.is_request():
        exchanges.passed()
        return None
    return exchanges.undelivered(admitted, address)


def _reject(udp: Any, data: bytes, remote: UDP6EndpointAddress, why: str) -> None:
    """A Reset for a Confirmable message (RFC 7252 §4.2); silence for the rest (§4.3)."""
    confirmable = len(data) >= 4 and data[0] >> 4 == 0x4  # version 1, type CON
    log.info("rejected a datagram from %s: %s", remote.sockaddr[:2], why)
    if confirmable:
        reset = aiocoap.Message(_mtype=RST, _mid=int.from_bytes(data[2:4], "big"), code=Code.EMPTY)
        reset.remote = remote
        udp.send(reset)
