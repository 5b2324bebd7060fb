"""Bounded duplicate detection for aiocoap's message layer.

aiocoap remembers every incoming request (and its response) for EXCHANGE_LIFETIME, 247 s with
RFC 7252's defaults, so that a retransmitted CON is answered from memory instead of being
processed twice, and it schedules one timer per request to forget it. At full speed that is
hundreds of thousands of messages and timers: gigabytes, and garbage-collector passes that
grew past half a second and stalled every answer (measured with gc.callbacks).

aiocoap's duplicate detection stays in charge: it still looks every request up in its table
of recent messages and answers duplicates from it. What changes is how that table forgets:

- by age: a request is remembered for `WINDOW` = 49 s. That is RFC 7252's EXCHANGE_LIFETIME
  with MAX_LATENCY set for a LAN (1 s instead of the Internet's 100 s), and longer than the
  45 s over which a standard client retransmits a request;
- by count: at most `max_entries` requests are remembered, the oldest forgotten first. Below
  max_entries / 49 s requests per second the count never binds; above it a retransmission is
  still recognised while it is among the latest `max_entries` requests.

The table expires entries itself as new ones arrive, so aiocoap's per-request timers are not
needed to forget anything: EXCHANGE_LIFETIME, which aiocoap reads from each incoming
request's transport tuning only to schedule them, is zero for the requests this server
receives (and only for those: another aiocoap context in the same process keeps RFC 7252's
247 s), and their pops are ignored. A timer then fires at the loop's next turn and is
freed at once; a timer that lives even a second, with its closure, outlives two
garbage-collector generations and is collected only in the oldest, which lengthens the
middle-generation pauses the writes' tail is made of (README, "What is bounded").

And the table keeps each response as a `Replay` (the encoded datagram and the peer's address,
all aiocoap uses to re-send it) rather than the response message, which holds the whole
request too: a handful of objects for the garbage collector to walk per remembered request
instead of a few dozen.

The table also outlives the process, for the requests that changed something: the answer to
each Confirmable one is committed with its change as a `Receipt` (`receipt`), and the receipts
still within the window are put back into the table when the emulator starts (`restore`). A
retransmission that reaches a restarted emulator is answered as before the restart, never
processed twice (spec §1). Requests that change nothing are processed again after a restart,
with the same effect: none.

aiocoap has no public setting for any of this (its issue #183); the seam's `install` puts
the table in place of `MessageManager._recent_messages`.
"""

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import aiocoap
from aiocoap.numbers import constants
from aiocoap.numbers.types import ACK, CON, NON

from pager.store import Receipt

WINDOW = 49.0
TIMER_SECONDS = 0.0
MAX_PAYLOAD = 1024  # aiocoap's largest block: a longer answer goes block-wise
_ENCODED = "_pager_encoded"  # on an answer: ((mtype, mid, token), its datagram so headed)


class Replay:
    """A sent response as aiocoap's message layer needs it to send it again."""

    __slots__ = ("remote", "mid", "mtype", "transport_tuning", "_datagram")

    def __init__(self, message: aiocoap.Message) -> None:
        self.remote = message.remote
        self.mid = message.mid
        self.mtype = message.mtype  # ACK or RST: never a CON or NON (see RecentMessages)
        self.transport_tuning = None  # read by aiocoap only to re-send a CON
        encoded = getattr(message, _ENCODED, None)  # by `receipt`, as it would be sent
        if encoded is not None and encoded[0] == (message.mtype, message.mid, message.token):
            self._datagram: bytes = encoded[1]
        else:
            self._datagram = message.encode()
        # aiocoap sends the message right after filing it, unchanged: encoded once
        message.encode = self.encode  # type: ignore[method-assign]

    def encode(self) -> bytes:
        return self._datagram

    def __repr__(self) -> str:
        return f"<Replay of {self.mtype} MID {self.mid} to {self.remote}>"


class _Peer:
    """A peer known only from a receipt: equal (and hashed) as aiocoap's UDP6EndpointAddress
    is, by its socket address without the scope id, so the restored table finds a
    retransmission from it; and all aiocoap's UDP transport reads to send it the answer."""

    __slots__ = ("sockaddr",)
    pktinfo = None

    def __init__(self, host: str, port: int, flowinfo: int) -> None:
        self.sockaddr = (host, port, flowinfo, 0)

    def __hash__(self) -> int:
        return hash(self.sockaddr[:-1])

    def __eq__(self, other: object) -> bool:
        return self.sockaddr[:-1] == getattr(other, "sockaddr", ())[:-1]


class _Restored(Replay):
    def __init__(self, receipt: Receipt) -> None:
        self.remote = _Peer(receipt.host, receipt.port, receipt.flowinfo)
        self.mid = receipt.mid
        self.mtype = ACK
        self.transport_tuning = None
        self._datagram = receipt.datagram


def receipt(request: aiocoap.Message, response: aiocoap.Message) -> Receipt | None:
    """What a restarted emulator needs to answer a retransmission of `request` with
    `response` as aiocoap is about to send it: piggybacked on the ACK, with the request's
    message id and token. None where no such answer will be sent: a request that is not
    Confirmable, or one whose answer goes block-wise."""
    if (
        request.mtype != CON
        or request.opt.block2 is not None
        or len(response.payload) > MAX_PAYLOAD
    ):
        return None
    response.mtype, response.mid, response.token = ACK, request.mid, request.token
    try:
        datagram = response.encode()
    finally:
        response.mtype = response.mid = None
    setattr(response, _ENCODED, ((ACK, request.mid, request.token), datagram))
    remote = request.remote
    if remote is None:  # every request aiocoap hands a resource came from somewhere
        raise TypeError("a request without a remote")
    host, port, flowinfo = remote.sockaddr[:3]
    return Receipt(time.time(), host, port, flowinfo, request.mid, datagram)


class RecentMessages(dict[Any, Any]):
    """aiocoap's table of recent requests, expiring by age and by count as it grows."""

    def __init__(
        self,
        max_entries: int,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.max_entries = max_entries
        self.window = window
        self.clock = clock
        # (time, key) in the order the keys were first set. Not the dict's own order: finding
        # the first live key of a dict whose front was deleted walks over every deleted slot,
        # a cost that showed in profiles of write load.
        self._born: deque[tuple[float, Any]] = deque()

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self:
            self._forget_old()
            self._born.append((self.clock(), key))
        if isinstance(value, aiocoap.Message):
            if value.mtype == CON or value.mtype == NON:
                # aiocoap files every message it sends under (peer, message id), also the
                # ones that carry an id of ours (notifications, separate and
                # Non-confirmable answers), independent of the peer's requests: one that
                # collides would be re-sent as the answer to a retransmitted request, a
                # CON failing, a NON another request's answer. The answer to a request is
                # the ACK (or RST) that echoes its id.
                return
            value = Replay(value)
        super().__setitem__(key, value)

    def _forget_old(self) -> None:
        cutoff = self.clock() - self.window
        born = self._born
        while born and (born[0][0] < cutoff or len(self) >= self.max_entries):
            del self[born.popleft()[1]]

    def pop(self, key: Any, default: Any = None) -> Any:
        """Called only by aiocoap's expiry timers, which fire too early now: ignored."""
        return self.get(key, default)

    def restore(
        self, receipts: Iterable[Receipt], wall_clock: Callable[[], float] = time.time
    ) -> None:
        """Remember the requests of these receipts (oldest first) as answered by them."""
        age = self.clock() - wall_clock()
        for r in receipts:
            self._forget_old()
            entry = _Restored(r)
            key = (entry.remote, entry.mid)
            if key not in self:
                self._born.append((r.time + age, key))
            super().__setitem__(key, entry)


class _ServerTuning(constants.TransportTuning):
    """RFC 7252's parameters, but the expiry timers (see the module docstring) fire at once."""

    EXCHANGE_LIFETIME = TIMER_SECONDS


def install(manager: Any, max_entries: int, receipts: Iterable[Receipt] = ()) -> RecentMessages:
    """Bound `manager`'s table of recent requests, restored from `receipts`, and tune the
    requests it dispatches so that aiocoap's expiry timers fire at once; the table."""
    manager._recent_messages = recent = RecentMessages(max_entries)
    recent.restore(receipts)
    dispatch = manager.dispatch_message
    tuning = _ServerTuning()

    def tuned(message: aiocoap.Message) -> None:
        message.transport_tuning = tuning  # a fresh default, as aiocoap decoded it
        dispatch(message)

    manager.dispatch_message = tuned
    return recent
