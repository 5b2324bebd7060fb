"""The imperative shell around the core: orders changes, commits them in groups, applies them.

Every change goes through `Engine.run`: the core computes it against the *pending* state (the
committed state plus every change still waiting for its commit), so changes follow each other
exactly as if applied one by one. One committer task writes whatever has queued up in a single
transaction (group commit) and only then applies the changes to the *committed* state, which
every read is served from, tells the listeners (the notification hub) and lets the requests
answer. A request is therefore never answered before its change is on disk, and a reader never
sees a change that is not.
"""

import asyncio
import logging
from datetime import datetime
from typing import Callable

from pager.clock import Clock
from pager.domain.model import Change, State
from pager.domain.operations import DeviceConfig, Outcome, maintenance, next_due
from pager.store import Store

log = logging.getLogger(__name__)

Operation = Callable[[State, datetime], Outcome]
Listener = Callable[[Change], None]


def _copy(state: State) -> State:
    return State(state.device, dict(state.active))  # sessions themselves are immutable


class Engine:
    def __init__(self, store: Store, state: State, clock: Clock, config: DeviceConfig):
        self.store = store
        self.state = state  # committed: what readers see
        self._pending = _copy(state)  # committed + queued: what writers compute against
        self.clock = clock
        self.config = config
        self.listeners: list[Listener] = []
        self._queue: list[tuple[Change, asyncio.Future]] = []
        self._wake = asyncio.Event()
        clock.shift(state.device.clock_offset)  # the datetime setting, on the clock given
        self._due = next_due(state, config)
        self._committer = asyncio.create_task(self._commit_loop())

    @classmethod
    async def load(cls, store: Store, clock: Clock, config: DeviceConfig) -> "Engine":
        engine = cls(store, await store.load(), clock, config)
        try:
            await engine.catch_up()
        except BaseException:
            await engine.close()  # its committer must not outlive a failed load
            raise
        return engine

    async def reset(self) -> None:
        """Back to factory: the store emptied, the state reloaded, the clock at system time."""
        await self._drain()
        await self.store.reset()
        self.clock.reset()
        self.state = await self.store.load()
        self._pending = _copy(self.state)
        self._due = next_due(self.state, self.config)
        await self.catch_up()

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        """Commit what is queued, then stop the committer."""
        await self._drain()
        self._committer.cancel()
        try:
            await self._committer
        except asyncio.CancelledError:
            pass

    async def run(self, operation: Operation) -> Outcome:
        """Apply one request's operation; returns after its change is committed."""
        now = self.clock.now()
        maintained = self._maintain(now)
        try:
            # No await between computing a change and queueing it: the next request's change
            # must be computed on top of this one.
            outcome = operation(self._pending, now)
            committed = None if outcome.change is None else self._enqueue(outcome.change)
        finally:
            if maintained is not None:  # time's own change commits whatever the request does
                await maintained
        if committed is not None:
            await committed
        return outcome

    async def catch_up(self) -> datetime:
        """Bring the state up to date with the clock (daily clear, auto-page); returns now.

        Readers call this first; it waits only when time has changed something.
        """
        now = self.clock.now()
        fut = self._maintain(now)
        if fut is not None:
            await fut
        return now

    def _maintain(self, now: datetime) -> asyncio.Future | None:
        if self._due is None or now < self._due:
            return None
        change = maintenance(self._pending, now, self.config)
        return None if change is None else self._enqueue(change)

    def _enqueue(self, change: Change) -> asyncio.Future:
        moved = change.device.clock_offset - self._pending.device.clock_offset
        change.apply(self._pending)
        if moved:  # the datetime setting: move the clock now, for the changes that follow
            self.clock.shift(moved)
        self._due = next_due(self._pending, self.config)
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((change, fut))
        self._wake.set()
        return fut

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            try:
                await self.store.commit([change for change, _ in batch])
            except Exception as e:
                self._abandon(batch, e)
                continue
            for change, fut in batch:
                change.apply(self.state)
                if not fut.done():
                    fut.set_result(None)
            # Answers first: asyncio runs callbacks in the order they were scheduled, so the
            # waiting requests answer before any observer task sends a notification.
            for change, _ in batch:
                for listener in self.listeners:
                    try:
                        listener(change)
                    except Exception:  # a broken listener must not fail a committed change
                        log.exception("change listener failed")

    def _abandon(self, batch: list, error: Exception) -> None:
        """A commit failed: it and everything computed on top of it fail; back to committed."""
        log.warning("commit of %d change(s) failed, answering 5.03: %s", len(batch), error)
        failed, self._queue = batch + self._queue, []
        self.clock.shift(self.state.device.clock_offset - self._pending.device.clock_offset)
        self._pending = _copy(self.state)
        self._due = next_due(self._pending, self.config)
        for _, fut in failed:
            if not fut.done():
                fut.set_exception(error)
