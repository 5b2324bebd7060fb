"""The imperative shell around the core: serialises changes, commits them, then applies them.

Every change to the transmitter goes through `Engine.run`: ask the core what the request
would change, commit that through the store, and only after the commit apply it to the
in-memory state and tell the listeners (the notification hub). Reads are served from the
in-memory state, which is exactly what the store holds.
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


class Engine:
    def __init__(self, store: Store, state: State, clock: Clock, config: DeviceConfig):
        self.store = store
        self.state = state
        self.clock = clock
        self.config = config
        self.listeners: list[Listener] = []
        self._lock = asyncio.Lock()
        clock.offset = state.device.clock_offset
        self._due = next_due(state, config)

    @classmethod
    async def load(cls, store: Store, clock: Clock, config: DeviceConfig) -> "Engine":
        engine = cls(store, await store.load(), clock, config)
        await engine.catch_up()
        return engine

    async def run(self, operation: Operation) -> Outcome:
        """Apply one request's operation; returns after its change is committed."""
        async with self._lock:
            now = await self._maintain()
            outcome = operation(self.state, now)
            if outcome.change is not None:
                await self._commit(outcome.change)
            return outcome

    async def catch_up(self) -> datetime:
        """Bring the state up to date with the clock (daily clear, auto-page); returns now.

        Readers call this first; the lock is taken only when time has changed something.
        """
        now = self.clock.now()
        if self._due is None or now < self._due:
            return now
        async with self._lock:
            return await self._maintain()

    async def _maintain(self) -> datetime:
        now = self.clock.now()
        if self._due is not None and now >= self._due:
            change = maintenance(self.state, now, self.config)
            if change is not None:
                await self._commit(change)
        return now

    async def _commit(self, change: Change) -> None:
        await self.store.commit(change)
        change.apply(self.state)
        self.clock.offset = self.state.device.clock_offset
        self._due = next_due(self.state, self.config)
        for listener in self.listeners:
            try:
                listener(change)
            except Exception:  # a broken listener must not undo or fail a committed change
                log.exception("change listener failed")
