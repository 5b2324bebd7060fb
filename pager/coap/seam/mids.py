"""Message ids numbered per peer, never repeated to a peer within EXCHANGE_LIFETIME.

aiocoap numbers every message it originates (each Confirmable notification, each
Non-confirmable response, each separate response) from one 16-bit counter for all peers
(`MessageManager._next_message_id`). Above 65,536 messages in EXCHANGE_LIFETIME (247 s) in
all, about 265 a second shared by every observer, a peer is sent an id again that it saw less
than 247 s before, and a client that deduplicates as RFC 7252 §4.5 says drops the new
notification as a retransmission of the old one. RFC 7252 §4.4 (and spec §1) asks for ids
that are not reused for the same peer within EXCHANGE_LIFETIME, so each peer gets a counter
of its own, starting at a random id.

Each counter remembers, for each block of `BLOCK` consecutive ids, when one of them was last
sent for the first time (retransmissions are what EXCHANGE_LIFETIME already allows for). The
counter enters a block again only once that is EXCHANGE_LIFETIME ago: at most 64 numbers
per peer instead of a time per id, at the price of stopping up to 1,023 ids early.

A peer that has been sent (nearly) all 65,536 ids in 247 s, some 260 messages a second for
four minutes, has run out. RFC 7252's recommended rates never get there, but one message in
flight per peer acknowledged within a millisecond, on a LAN, can. Then the peer's
next message is held, in order, until a block comes free, never sent with an id it may still
remember. The held messages count as waiting for that peer (`Backlogs.waiting`), so an
observation's notifications wait in its own bounded queue meanwhile, as for an observer that
acknowledges slowly. Requests whose answers need an id (a Non-confirmable request's
response) have at most `MAX_HELD` answers held per peer; beyond that a Non-confirmable
answer is dropped, as a network may drop it, and a Confirmable message is reported to its
sender as failed, as if the peer had reset it.

A peer's counter is forgotten once nothing has been sent to it for EXCHANGE_LIFETIME: none of
its ids can then be remembered by it, and the table holds only the peers of the last 247 s.

aiocoap has no setting for any of this; `install` takes the place of its shared counter.
"""

import asyncio
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any

from aiocoap.numbers import constants
from aiocoap.numbers.types import CON, NON

from pager.coap.seam.backlog import Backlogs

log = logging.getLogger("pager.coap")

EXCHANGE_LIFETIME = float(constants.TransportTuning().EXCHANGE_LIFETIME)
BLOCK = 1024
MAX_HELD = 64


class Exhausted(Exception):
    """A peer has no id that it cannot still remember; one comes free at `free_at`."""

    def __init__(self, free_at: float) -> None:
        super().__init__(free_at)
        self.free_at = free_at


class _Counter:
    __slots__ = ("next", "last", "blocks")

    def __init__(self, first: int, now: float) -> None:
        self.next = first
        self.last = now  # when a message was last first sent to the peer (or it was made)
        self.blocks: dict[int, float] = {}  # block -> when one of its ids was last first sent


class MessageIds:
    """Each peer's next message id, and when each block of its ids was last used."""

    def __init__(
        self, lifetime: float = EXCHANGE_LIFETIME, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._peers: OrderedDict[Hashable, _Counter] = OrderedDict()  # least recently sent first

    def __len__(self) -> int:
        return len(self._peers)

    def take(self, peer: Hashable) -> int:
        """The id for the next message to `peer`; raises `Exhausted` if none is free."""
        counter = self._peers.get(peer)
        if counter is None:
            now = self.clock()
            self._forget(now)
            counter = self._peers[peer] = _Counter(random.randrange(0x10000), now)
        mid = counter.next
        if not mid % BLOCK:
            used = counter.blocks.get(mid // BLOCK)
            if used is not None and self.clock() - used < self.lifetime:
                raise Exhausted(used + self.lifetime)
        counter.next = (mid + 1) & 0xFFFF
        return mid

    def sent(self, peer: Hashable, mid: int) -> None:
        """A message of ours (Confirmable or not) was sent to `peer` for the first time."""
        now = self.clock()
        counter = self._peers.get(peer)
        if counter is None:  # forgotten between take and send: a fresh counter avoids mid
            counter = self._peers[peer] = _Counter((mid + 1) & 0xFFFF, now)
        else:
            self._peers.move_to_end(peer)
        counter.last = now
        counter.blocks[mid // BLOCK] = now
        self._forget(now)

    def _forget(self, now: float) -> None:
        peers = self._peers
        while peers:
            oldest = next(iter(peers))
            if now - peers[oldest].last < self.lifetime:
                return
            del peers[oldest]


class _Held:
    """The messages waiting for a peer to have a free id, oldest first."""

    def __init__(self, ids: MessageIds, backlogs: Backlogs, send: Callable[[Any, Any], None]):
        self.ids = ids
        self.backlogs = backlogs
        self.send = send
        self.queues: dict[Hashable, deque[tuple[Any, Any]]] = {}
        self.timers: dict[Hashable, asyncio.TimerHandle] = {}  # each queue's release
        self.dropped = 0

    def count(self, peer: Hashable) -> int:
        queue = self.queues.get(peer)
        return len(queue) if queue is not None else 0

    def hold(self, message: Any, monitor: Any, free_at: float) -> None:
        peer = message.remote
        queue = self.queues.get(peer)
        if queue is None:
            queue = self.queues[peer] = deque()
            delay = max(0.0, free_at - self.ids.clock())
            self.timers[peer] = asyncio.get_running_loop().call_later(delay, self.release, peer)
            log.warning(
                "%s was sent every message id within %g s: its messages wait %.1f s for one",
                peer,
                self.ids.lifetime,
                delay,
            )
        if len(queue) >= MAX_HELD:
            self.dropped += 1
            if message.mtype is CON and monitor is not None:
                monitor()
            return
        queue.append((message, monitor))

    def release(self, peer: Hashable) -> None:
        """Send what waits for `peer` while it has ids (`send` holds the rest again)."""
        self.timers.pop(peer, None)
        queue = self.queues.pop(peer, None)
        while queue:
            message, monitor = queue.popleft()
            self.send(message, monitor)
            if peer in self.queues:  # out of ids again: the rest waits behind it
                self.queues[peer].extend(queue)
                break
        self.backlogs.wake(peer)

    def close(self) -> None:
        """Drop every held message and its timer: the transport is going away, and a timer
        would otherwise send them onto it, closed, up to EXCHANGE_LIFETIME later."""
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        peers = list(self.queues)
        self.queues.clear()
        for peer in peers:
            self.backlogs.wake(peer)


def install(manager: Any, ids: MessageIds, backlogs: Backlogs) -> None:
    """Number `manager`'s (aiocoap's MessageManager) outgoing messages per peer from `ids`."""
    send_message = manager.send_message
    send_initially = manager._send_initially
    peer: list[Hashable] = [None]  # the remote of the message being numbered

    def next_message_id() -> int:
        return ids.take(peer[0])

    def sending(message: Any, monitor: Any) -> None:
        # a message that needs no id of ours (an answer piggybacked on the request's ACK)
        # goes out at once; one that does, while the peer has none, waits behind the others
        peer[0] = message.remote
        try:
            send_message(message, monitor)
        except Exhausted as e:
            held.hold(message, monitor, e.free_at)
        finally:
            peer[0] = None

    def first_sent(message: Any, monitor: Any = None) -> None:
        if message.mtype is CON or message.mtype is NON:  # ours: an ACK or RST echoes the peer's
            ids.sent(message.remote, message.mid)
        send_initially(message, monitor)

    shutdown = manager.shutdown

    async def shutting_down() -> None:
        held.close()
        await shutdown()

    held = _Held(ids, backlogs, sending)
    backlogs.held = held.count
    manager._next_message_id = next_message_id
    manager.send_message = sending
    manager._send_initially = first_sent
    manager.shutdown = shutting_down
