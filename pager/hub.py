"""The notification hub: turns committed changes into notifications for every observer.

The engine calls `Hub.publish` after each commit, in commit order (the app registers it as
a listener), so every path that changes the transmitter (requests, automatic paging, the
daily statistics clear) notifies exactly once. Publishing only appends to each observer's
queue; encoding and sending happen in the observer's own task, so a slow or dead observer
never delays an answer to anyone else.

When the transmitter goes away (shutdown, a power cycle), `end_all` tells every observer
first: each observation sends its final notification (spec §8) and the hub waits, within a
bound, until those have been delivered.
"""

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Iterator
from typing import Any

from pager import wire
from pager.domain.model import Archived, Change
from pager.engine import Engine

log = logging.getLogger("pager.notify")

END_WAIT = 2.0
"""How long `end_all` waits at most for the observers' final notifications to be delivered:
enough for any observer on a working network to acknowledge, short enough that a dead one
does not hold up a shutdown."""


class Notification:
    """One envelope, encoded at most once per content format however many observers get it.

    `kind` is its first response type: sessions, settings, statistics or ping.
    """

    __slots__ = ("envelope", "kind", "_encoded")

    def __init__(self, envelope: wire.Envelope) -> None:
        self.envelope = envelope
        self.kind = envelope["responseTypes"][0]
        self._encoded: dict[int, bytes] = {}

    def payload(self, content_format: int) -> bytes:
        data = self._encoded.get(content_format)
        if data is None:
            data = self._encoded[content_format] = wire.encode(self.envelope, content_format)
        return data


class Observer:
    """One observation's notifications waiting to be sent, oldest first, about `limit` at most.

    The first notification (the whole session list, or a ping) is never dropped. After it,
    an observer that falls `limit` notifications behind loses the oldest session
    notifications; the newest, which carry the latest state, stay. A client sees the loss as
    a gap in globalSessionSequence (spec §8), as it would on a lossy network, and re-reads
    what it needs. A settings or statistics notification carries no sequence number, so it
    is dropped only when a newer one of its kind waits behind it, and a ping is queued only
    when nothing else waits: whatever is waiting shows that the observer is alive just as
    well.
    """

    def __init__(self, remote: str, limit: int, first: list[Notification]) -> None:
        self.remote = remote
        self.limit = limit
        self._first = deque(first)
        self._changes: deque[Notification] = deque()
        self._kinds: Counter[str] = Counter()  # of the notifications in _changes
        self._ready = asyncio.Event()
        self._ready.set()
        self.forgotten = False  # dropped with every other observer, without a word
        self.ending = False  # to be told that the transmitter goes away
        self.leaving = asyncio.Event()  # forgotten or ending: stop waiting for anything else
        self.gone = asyncio.Event()  # unsubscribed
        self.delivered: Awaitable[None] | None = None  # its final notification, once sent
        self.sent = 0
        self.dropped = 0  # session notifications dropped, in all
        self.replaced = 0  # settings/statistics notifications dropped for newer ones, in all
        self._episode = [0, 0]  # dropped, replaced since the queue last ran empty

    def offer(self, note: Notification) -> None:
        if note.kind == "ping" and (self._first or self._changes):
            return
        if len(self._changes) >= self.limit:
            self._drop_oldest()
        self._changes.append(note)
        self._kinds[note.kind] += 1
        self._ready.set()

    def _drop_oldest(self) -> None:
        for old in self._changes:
            if old.kind == "sessions" or self._kinds[old.kind] > 1:
                break
        else:
            return  # only the latest settings/statistics wait: keep them (at most two)
        self._changes.remove(old)  # the first occurrence: this one
        self._kinds[old.kind] -= 1
        if old.kind == "sessions":
            self.dropped += 1
            self._episode[0] += 1
        else:
            self.replaced += 1
            self._episode[1] += 1
        if sum(self._episode) == 1:
            log.warning(
                "observer %s is %d notifications behind: dropping the oldest",
                self.remote,
                self.limit,
            )

    def forget(self) -> None:
        self._clear()
        self.forgotten = True

    def end(self) -> None:
        """Nothing more to send but the word that the transmitter goes away."""
        self._clear()
        self.ending = True

    def _clear(self) -> None:
        self._first.clear()
        self._changes.clear()
        self._kinds.clear()
        self._ready.set()
        self.leaving.set()

    async def next(self) -> Notification | None:
        """The next notification to send, or None once the observer has been forgotten or is
        ending (`ending` tells which)."""
        while True:
            if self.forgotten or self.ending:
                return None
            if self._first:
                return self._first.popleft()
            if self._changes:
                note = self._changes.popleft()
                self._kinds[note.kind] -= 1
                return note
            if any(self._episode):
                log.warning(
                    "observer %s caught up after %d session notifications were dropped "
                    "and %d settings or statistics notifications replaced by newer ones",
                    self.remote,
                    *self._episode,
                )
                self._episode = [0, 0]
            self._ready.clear()
            await self._ready.wait()


class Hub:
    def __init__(
        self,
        engine: Engine,
        identity: wire.Identity,
        ping_interval: float,
        max_observers: int = 1000,
        queue_limit: int = 1000,
    ) -> None:
        self.engine = engine
        self.identity = identity
        self.ping_interval = ping_interval
        self.max_observers = max_observers
        self.queue_limit = queue_limit
        self.observers: set[Observer] = set()

    def _envelope(self, **sections: Any) -> wire.Envelope:
        return wire.envelope_on(
            self.identity, self.engine.state, self.engine.clock.now(), **sections
        )

    def subscribe(self, remote: str, with_sessions: bool) -> Observer:
        """Register an observer and queue what it is owed first: with sessions, the whole
        active list by id in one notification (however many datagrams it takes); otherwise a
        ping."""
        first = self.session_list() if with_sessions else self.ping()
        observer = Observer(remote, self.queue_limit, [first])
        self.observers.add(observer)
        log.info("observer %s registered (%d observing)", remote, len(self.observers))
        return observer

    def unsubscribe(self, observer: Observer, why: str) -> None:
        self.observers.discard(observer)
        observer.gone.set()
        log.info(
            "observer %s %s after %d notifications handed out, %d dropped and %d replaced "
            "(%d observing)",
            observer.remote,
            why,
            observer.sent,
            observer.dropped,
            observer.replaced,
            len(self.observers),
        )

    async def end_all(self, within: float = END_WAIT) -> None:
        """Tell every observer that the transmitter goes away, and wait at most `within`
        seconds until each has sent its final notification and seen it delivered."""
        observers = list(self.observers)
        for observer in observers:
            observer.end()

        async def told(observer: Observer) -> None:
            await observer.gone.wait()
            if observer.delivered is not None:
                await observer.delivered

        if observers:
            waits = [asyncio.ensure_future(told(o)) for o in observers]
            _, late = await asyncio.wait(waits, timeout=within)
            for wait in late:
                wait.cancel()
            log.info(
                "%d observers told the transmitter goes away (%d not confirmed within %.1f s)",
                len(observers),
                len(late),
                within,
            )

    def drop_all(self) -> None:
        """Forget every observer without a word, as a transmitter losing power does."""
        for observer in self.observers:
            observer.forget()
        self.observers.clear()
        log.info("all observers dropped")

    def publish(self, change: Change) -> None:
        if not self.observers:
            return
        for note in self._notifications(change):
            self._broadcast(note)

    def _broadcast(self, note: Notification) -> None:
        for observer in self.observers:
            observer.offer(note)

    def _notifications(self, change: Change) -> Iterator[Notification]:
        statistics = wire.statistics_out(change.device.counters)
        if change.statistics_cleared:
            yield Notification(self._envelope(statistics=statistics))
        for event in change.session_events:
            session = event.session if isinstance(event, Archived) else event
            # its own sequence number: the state has moved on if one change had several
            envelope = wire.envelope(
                self.identity,
                session.sequence,
                self.engine.clock.now(),
                sessions=[wire.session_out(event)],
                statistics=statistics,
            )
            yield Notification(envelope)
        if change.settings_changed:
            yield Notification(
                self._envelope(
                    settings=wire.settings_out(change.device.settings, self.engine.clock.now())
                )
            )

    def ping(self) -> Notification:
        return Notification(self._envelope(ping={}))

    def session_list(self) -> Notification:
        """All active sessions by id with the statistics: what GET /v1/sessions answers."""
        state = self.engine.state
        return Notification(
            self._envelope(
                sessions=wire.active_sessions(state),
                statistics=wire.statistics_out(state.device.counters),
            )
        )

    async def run_pings(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if self.observers:
                self._broadcast(self.ping())
