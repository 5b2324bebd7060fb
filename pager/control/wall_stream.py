"""The pager wall's live stream (`GET /events`): what changes in the emulator, as it happens,
to every page that has the stream open.

It is told of committed changes (an engine listener), of clock moves, fault changes, power
cycles and resets (by the rig controls), and of journal records (the journal's `watch`,
set only while a stream is open). With no stream open every one of those returns at once:
nothing is built or encoded for a page nobody looks at. With one, each event is encoded
once, when it happens, and the bytes handed to every open stream's queue.

A journal record is decoded when it is complete, from a callback of its own, not in the
middle of the CoAP exchange that made it (as the journal decodes for a read).

Each stream's queue is bounded, in events and in bytes: a page that does not read as fast
as events come (its TCP window full, aiohttp's write waiting) is disconnected when its queue
is full, and gets a new snapshot when it reconnects; memory stays bounded whatever it does.
A page that reads nothing at all is cut too, when a write has waited `WRITE_SECONDS` for
its window to open: with few events its queue would never fill, and it would keep its
connection, and its place among the streams, for ever.
So is the number of streams: each holds its own snapshot until the page has read it, so
streams that never read would otherwise hold memory in proportion to how many were opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pager.control import wall_events
from pager.control.journal import ID

if TYPE_CHECKING:
    from pager.control.journal import Journal, Record
    from pager.control.rig import RigControls
    from pager.domain.model import Change

log = logging.getLogger("pager.wall")

STREAMS_MAX = 32  # streams open at once; one more is 503
QUEUE_EVENTS = 10_000  # events a stream may have waiting
QUEUE_BYTES = 8 * 2**20  # and their bytes
WRITE_CHUNK = 64 * 1024  # bytes of events written at a time
PING_SECONDS = 15.0
WRITE_SECONDS = 2 * PING_SECONDS  # a write may wait this long for the page to read
UNANSWERED_SECONDS = 2.0  # a journal record with no answer by then is shown as it is
END_GRACE = 1.0  # seconds a stream has at a stop to send what it holds, then it is cut
_HELLO = b""  # in a queue: a new snapshot is due here (after a reset)


class Subscriber:
    """One open stream: its queue of encoded events, the connection to cut if it falls
    behind."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.queue: deque[bytes] = deque()
        self.size = 0
        self.wake = asyncio.Event()
        self.ending = False  # send what is queued, then end
        self.cut = False  # fell behind, or would not end: the connection is gone

    def offer(self, event: bytes) -> None:
        if self.cut or self.ending:
            return
        if len(self.queue) >= QUEUE_EVENTS or self.size + len(event) > QUEUE_BYTES:
            log.warning(
                "pager wall stream to %s fell %d events behind: disconnected",
                self.request.remote,
                len(self.queue),
            )
            self.abort()
            return
        self.queue.append(event)
        self.size += len(event)
        self.wake.set()

    def hello(self) -> None:
        """Everything queued is stale: a new snapshot replaces it."""
        self.queue.clear()
        self.size = 0
        self.queue.append(_HELLO)
        self.wake.set()

    def end(self) -> None:
        self.ending = True
        self.wake.set()

    def abort(self) -> None:
        self.cut = True
        self.queue.clear()
        self.size = 0
        self.wake.set()
        transport = self.request.transport
        if transport is not None:
            transport.abort()  # a write waiting for the window to open fails now

    def take(self) -> list[bytes]:
        """The events to write next, up to `WRITE_CHUNK` bytes; a snapshot due alone."""
        out: list[bytes] = []
        size = 0
        while self.queue and size < WRITE_CHUNK:
            if self.queue[0] is _HELLO:
                if not out:
                    out.append(self.queue.popleft())
                break
            event = self.queue.popleft()
            self.size -= len(event)
            size += len(event)
            out.append(event)
        return out


class WallStream:
    def __init__(self, rig: RigControls, journal: Journal | None) -> None:
        self.rig = rig
        self.journal = journal  # None: the journal is off
        self.subscribers: set[Subscriber] = set()
        self._none_left = asyncio.Event()
        self._none_left.set()
        self._unanswered: dict[int, asyncio.TimerHandle] = {}  # journal record id -> timer

    # -- told by the emulator ---------------------------------------------------------------

    def _live(self) -> bool:
        """Whether any stream is open to tell (and the emulator runs: a change committed
        as it closes has no pager board left to read)."""
        return bool(self.subscribers) and self.rig._parts is not None

    def on_change(self, change: Change) -> None:
        if not self._live():
            return
        now = self.rig._rig.engine.clock.now()
        for data in wall_events.changes(change, now):
            self._broadcast(wall_events.encode("change", data))
        for tx in change.transmissions:
            pager = self.rig.pager(tx.number)
            self._broadcast(wall_events.encode("transmission", wall_events.transmission(tx, pager)))
        if change.settings_changed:  # the datetime setting moves the clock
            self.clock_moved()

    def clock_moved(self) -> None:
        if self._live():
            self._broadcast(wall_events.encode("clock", wall_events.clock(self.rig.clock_status())))

    def faults_changed(self) -> None:
        if self._live():
            data = wall_events.faults(self.rig.list_faults(), self.rig.unreachable)
            self._broadcast(wall_events.encode("faults", data))

    def power_cycled(self, seconds: float) -> None:
        """The transmitter went dark (`faults_changed` has told so): every stream ends
        (the page shows it is disconnected and comes back), and its faults are told again
        when the power is back."""
        self._end_all()
        asyncio.get_running_loop().call_later(seconds, self.faults_changed)

    def reset(self) -> None:
        for subscriber in self.subscribers:
            subscriber.hello()

    def end(self) -> None:
        """The emulator stops: every stream sends what it holds and ends."""
        self._end_all()

    def _end_all(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.end()
        self._forget_unanswered()

    def _forget_unanswered(self) -> None:
        for timer in self._unanswered.values():
            timer.cancel()
        self._unanswered.clear()

    def _broadcast(self, event: bytes) -> None:
        for subscriber in list(self.subscribers):
            subscriber.offer(event)

    # -- the journal's watch: only set while a stream is open ------------------------------

    def _watch(self, record: Record, done: bool) -> None:
        """A record is made (`done`: lost, with no answer to wait for) or its answer has
        left (`done`). Its event is built on a callback of its own."""
        loop = asyncio.get_running_loop()
        timer = self._unanswered.pop(record[ID], None)
        if timer is not None:
            timer.cancel()
        if done:
            loop.call_soon(self._journaled, record)
        else:
            self._unanswered[record[ID]] = loop.call_later(
                UNANSWERED_SECONDS, self._unanswered_for_long, record
            )

    def _unanswered_for_long(self, record: Record) -> None:
        self._unanswered.pop(record[ID], None)
        self._journaled(record)

    def _journaled(self, record: Record) -> None:
        journal = self.journal
        entry = journal.entry(record) if self.subscribers and journal is not None else None
        if entry is not None:  # None: written over already (a flood of larger ones since)
            self._broadcast(wall_events.encode("journal", wall_events.journal_entry(entry)))

    # -- the stream ------------------------------------------------------------------------

    def _subscribe(self, request: web.Request) -> Subscriber:
        subscriber = Subscriber(request)
        self.subscribers.add(subscriber)
        self._none_left.clear()
        if self.journal is not None:
            self.journal.watch = self._watch
        return subscriber

    def _unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)
        if self.subscribers:
            return
        self._none_left.set()
        if self.journal is not None:
            self.journal.watch = None
            self._forget_unanswered()

    async def _hello(self, device: dict[str, Any]) -> bytes:
        return wall_events.encode("hello", await wall_events.hello(self.rig, device, self.journal))

    async def serve(self, request: web.Request, device: dict[str, Any]) -> web.StreamResponse:
        """The stream to one page: a snapshot, then every event until the page goes, falls
        behind, or the emulator stops or loses power. Subscribed before the snapshot is
        read, so no change falls between the two (one may be in both: the page applies
        each by its id, which makes that harmless)."""
        if len(self.subscribers) >= STREAMS_MAX:
            raise web.HTTPServiceUnavailable(
                reason=f"{STREAMS_MAX} pager wall streams are open already; close one first"
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        subscriber = self._subscribe(request)
        try:
            await response.prepare(request)
            await self._write(subscriber, response, await self._hello(device))
            while not subscriber.cut:
                events = subscriber.take()
                if events == [_HELLO]:
                    await self._write(subscriber, response, await self._hello(device))
                elif events:
                    await self._write(subscriber, response, b"".join(events))
                elif subscriber.ending:
                    break
                else:
                    subscriber.wake.clear()
                    try:
                        await asyncio.wait_for(subscriber.wake.wait(), PING_SECONDS)
                    except TimeoutError:
                        await self._write(subscriber, response, b": ping\n\n")
            if not subscriber.cut:
                await response.write_eof()
        except (ConnectionError, RuntimeError) as e:  # the page went, or was cut
            log.debug("pager wall stream to %s ended: %r", request.remote, e)
        finally:
            self._unsubscribe(subscriber)
        return response

    async def _write(
        self, subscriber: Subscriber, response: web.StreamResponse, data: bytes
    ) -> None:
        try:
            async with asyncio.timeout(WRITE_SECONDS):
                await response.write(data)
        except TimeoutError:
            log.warning(
                "pager wall stream to %s read nothing for %g s: disconnected",
                subscriber.request.remote,
                WRITE_SECONDS,
            )
            subscriber.abort()
            raise ConnectionResetError("the page reads nothing") from None

    async def ended(self) -> None:
        """Wait (a moment at most) for every stream to end after `end`; cut the rest (a
        page that does not read would hold the control API's shutdown)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(END_GRACE):
                await self._none_left.wait()
        for subscriber in list(self.subscribers):
            subscriber.abort()
