"""The notification hub: turns committed changes into notifications for every observer.

The engine calls `Hub.publish` after each commit, in commit order, so every path that changes
the transmitter (requests, automatic paging, the daily statistics clear) notifies exactly
once. Publishing only appends to each observer's queue; encoding and sending happen in the
observer's own task, so a slow or dead observer never delays an answer to anyone else.
"""

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

from pager import wire
from pager.domain.model import Archived, Change, Session
from pager.engine import Engine

log = logging.getLogger("pager.notify")

# One notification must fit one datagram: aiocoap sends observe payloads without Block2.
MAX_PAYLOAD = 1024


class Notification:
    """One envelope, encoded at most once per content format however many observers get it."""

    __slots__ = ("envelope", "_encoded")

    def __init__(self, envelope: wire.Envelope):
        self.envelope = envelope
        self._encoded: dict[int, bytes] = {}

    def payload(self, content_format: int) -> bytes:
        data = self._encoded.get(content_format)
        if data is None:
            data = self._encoded[content_format] = self.envelope.encode(content_format)
        return data


class Observer:
    def __init__(self, remote: str, content_format: int):
        self.remote = remote
        self.content_format = content_format
        self.queue: asyncio.Queue[Notification | None] = asyncio.Queue()  # None: forget me
        self.sent = 0


class Hub:
    def __init__(self, engine: Engine, identity: wire.Identity, ping_interval: float,
                 max_observers: int = 1000):
        self.engine = engine
        self.identity = identity
        self.ping_interval = ping_interval
        self.max_observers = max_observers
        self.observers: set[Observer] = set()
        engine.listeners.append(self.publish)

    def _envelope(self, sequence: int | None = None, **sections: Any) -> wire.Envelope:
        state = self.engine.state
        seq = state.device.global_sequence if sequence is None else sequence
        return wire.envelope(self.identity, seq, self.engine.clock.now(), **sections)

    def subscribe(self, remote: str, content_format: int, with_sessions: bool) -> Observer:
        """Register an observer and queue what it is owed first.

        With sessions, that is the whole active list by id, split over as many notifications
        as it takes to keep each within one datagram; otherwise a ping.
        """
        observer = Observer(remote, content_format)
        for first in (self.session_list(content_format) if with_sessions else [self.ping()]):
            observer.queue.put_nowait(first)
        self.observers.add(observer)
        log.info("observer %s registered (%d observing)", remote, len(self.observers))
        return observer

    def unsubscribe(self, observer: Observer, why: str) -> None:
        self.observers.discard(observer)
        log.info("observer %s %s after %d notifications handed out (%d observing)",
                 observer.remote, why, observer.sent, len(self.observers))

    def drop_all(self) -> None:
        """Forget every observer without a word, as a transmitter losing power does."""
        for observer in self.observers:
            observer.queue.put_nowait(None)
        self.observers.clear()
        log.info("all observers dropped")

    def publish(self, change: Change) -> None:
        if not self.observers:
            return
        for note in self._notifications(change):
            self._broadcast(note)

    def _broadcast(self, note: Notification) -> None:
        for observer in self.observers:
            observer.queue.put_nowait(note)

    def _notifications(self, change: Change) -> Iterator[Notification]:
        statistics = wire.statistics_out(change.device.counters)
        if change.statistics_cleared:
            yield Notification(self._envelope(statistics=statistics))
        for event in change.session_events:
            session = event.session if isinstance(event, Archived) else event
            yield Notification(self._envelope(session.sequence,
                                              sessions=[wire.session_out(event)],
                                              statistics=statistics))
        if change.settings_changed:
            yield Notification(self._envelope(settings=wire.settings_out(
                change.device.settings, self.engine.clock.now())))

    def ping(self) -> Notification:
        return Notification(self._envelope(ping={}))

    def session_list(self, content_format: int) -> list[Notification]:
        """All active sessions by id with the statistics, in notifications of one datagram."""
        state = self.engine.state
        statistics = wire.statistics_out(state.device.counters)
        sessions = [wire.session_out(s) for s in sorted(state.active.values(), key=_by_id)]
        notes: list[Notification] = []
        chunk: list[wire.SessionOut] = []
        for s in sessions:
            if chunk and len(self._list_note(chunk + [s], statistics).payload(content_format)) \
                    > MAX_PAYLOAD:
                notes.append(self._list_note(chunk, statistics))
                chunk = []
            chunk.append(s)
        notes.append(self._list_note(chunk, statistics))
        return notes

    def _list_note(self, chunk: list[wire.SessionOut], statistics) -> Notification:
        return Notification(self._envelope(sessions=chunk, statistics=statistics))

    async def run_pings(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            if self.observers:
                self._broadcast(self.ping())


def _by_id(s: Session) -> int:
    return s.id
