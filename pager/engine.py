"""The imperative shell around the core: orders changes, commits them in groups, applies them.

Every change goes through `Engine.run`: the core computes it against the *pending* state (the
committed state plus every change still waiting for its commit), so changes follow each other
exactly as if applied one by one. One committer task writes whatever has queued up in a single
transaction (group commit) and only then applies the changes to the *committed* state, which
every read is served from, tells the listeners (the notification hub) and lets the requests
answer. A request is therefore never answered before its change is on disk, and a reader never
sees a change that is not.

Operations on the whole state (factory reset, power cycle, deleting history, closing) go
through `Engine.exclusive`: they run in the committer's order, after every change computed
before them has committed, and no change is computed while one waits or runs. A request that
races with one is thus applied wholly before it or wholly after it, never on the old state
and committed on the new.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from pager.clock import Clock
from pager.domain.errors import Refused
from pager.domain.model import Archived, Change, Device, State
from pager.domain.operations import DeviceRules, Outcome, maintenance, next_due
from pager.store import Receipt, Store

log = logging.getLogger(__name__)

# At most this many turns of the event loop for changes to join a commit (Engine._gather).
GATHER_TURNS = 16

Operation = Callable[[State, datetime], Outcome]
Listener = Callable[[Change], None]
# Builds the request's answer from the state right after its change; what it returns is kept
# with the change, in its transaction (see `pager.coap.seam.dedup`).
Answer = Callable[[Outcome, State, datetime], Receipt | None]


def _copy(state: State) -> State:
    return State(state.device, dict(state.active))  # sessions themselves are immutable


@dataclass
class _Queued:
    change: Change
    done: asyncio.Future[None]
    receipt: Receipt | None = None


@dataclass
class _Exclusive:
    operation: Callable[[], Awaitable[None]]
    done: asyncio.Future[None]
    gate: asyncio.Future[None] = field(repr=False)


class Engine:
    """`Engine.load` gives a running engine, `close` stops it; constructing one only assigns."""

    def __init__(self, store: Store, state: State, clock: Clock, config: DeviceRules) -> None:
        self.store = store
        self.state = state  # committed: what readers see
        self._pending = _copy(state)  # committed + queued: what writers compute against
        self.clock = clock
        self.config = config
        self.listeners: list[Listener] = []
        self._queue: list[_Queued | _Exclusive] = []
        self._wake = asyncio.Event()
        # Set while a whole-state operation waits for its turn or runs: nothing is computed.
        self._gate: asyncio.Future[None] | None = None
        self._committing: _Queued | None = None  # the last change of the commit under way
        self._due: datetime | None = None
        self._committer: asyncio.Task[None] | None = None
        # Why the last commit failed, until one succeeds: what a health check reports.
        self.failing: str | None = None

    @classmethod
    async def load(cls, store: Store, clock: Clock, config: DeviceRules) -> "Engine":
        """The engine of the state in `store`, started."""
        engine = cls(store, await store.load(), clock, config)
        await engine.start()
        return engine

    async def start(self) -> None:
        """Put the clock at the state's datetime setting, start committing, and catch up with
        the time the store was closed for (daily clear, auto-page)."""
        if self._committer is not None:
            raise RuntimeError("the engine is already started")
        self.clock.shift(self.state.device.clock_offset)
        self._due = next_due(self.state, self.config)
        self._committer = asyncio.create_task(self._commit_loop())
        try:
            await self.catch_up()
        except BaseException:
            await self.close()  # its committer must not outlive a failed start
            raise

    async def reset(self, also: Callable[[], None] | None = None) -> None:
        """Back to factory: the store emptied, the state too, the clock at system time.

        `also` runs in the same quiet moment (the rig forgets observers, pagers, faults)."""

        async def factory() -> None:
            await self.store.reset()
            self.clock.reset()
            self.state = State(Device())  # what Store.reset wrote
            self._pending = _copy(self.state)
            self._due = next_due(self.state, self.config)
            if also is not None:
                also()

        await self.exclusive(factory)
        await self.catch_up()

    async def archive_in_bulk(self, archived: Iterable[Archived]) -> None:
        """Put archived sessions straight into history (benchmarks and fixtures prefill it),
        and move the next session id past theirs, in the store and in memory alike, so that
        the sessions created later do not take their ids."""
        sessions = list(archived)
        if not sessions:
            return

        async def archive() -> None:
            device = self.state.device
            last = max(a.session.id for a in sessions)
            moved = replace(device, next_session_id=max(device.next_session_id, last + 1))
            await self.store.bulk_archive(sessions, moved)
            self.state.device = moved
            self._pending = _copy(self.state)

        await self.exclusive(archive)

    async def exclusive(self, operation: Callable[[], Awaitable[None]]) -> None:
        """Run `operation` between commits, with no change computed meanwhile; see the
        module docstring. It runs even if the caller stops waiting for it."""
        await self._quiet()
        loop = asyncio.get_running_loop()
        self._gate = gate = loop.create_future()
        item = _Exclusive(operation, loop.create_future(), gate)
        # a caller that stopped waiting leaves the outcome unread: no "never retrieved"
        item.done.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._queue.append(item)
        self._wake.set()
        await asyncio.shield(item.done)

    async def _quiet(self) -> None:
        while self._gate is not None:
            await asyncio.shield(self._gate)

    async def close(self) -> None:
        """Commit what is queued (the commit under way included), then stop the committer."""
        if self._committer is None or self._committer.done():
            return

        async def nothing() -> None:
            pass

        await self.exclusive(nothing)
        self._committer.cancel()
        try:
            await self._committer
        except asyncio.CancelledError:
            pass

    async def run(self, operation: Operation, answer: Answer | None = None) -> Outcome:
        """Apply one request's operation; returns after its change is committed.

        `answer`, if given, is called on the state right after the operation, before any other
        change is computed; its receipt is committed with the change."""
        if self._gate is not None:
            await self._quiet()
        now = self.clock.now()
        maintained = self._maintain(now)
        committed = behind = refusal = None
        try:
            # No await between computing a change and queueing it: the next request's change
            # must be computed on top of this one.
            try:
                outcome = operation(self._pending, now)
            except Refused as e:
                e.seen, refusal = self._pending.device, e
            if refusal is not None or outcome.change is None:
                # Nothing to commit, but what it saw must be on disk before it answers: it
                # waits for the last change queued before it (and fails if that fails).
                behind = self._queue[-1] if self._queue else self._committing
                if refusal is None and answer is not None:
                    answer(outcome, self._pending, now)
            else:
                committed = self._enqueue(outcome.change)
                if answer is not None:
                    committed.receipt = answer(outcome, self._pending, now)
        finally:
            if maintained is not None:  # time's own change commits whatever the request does
                await maintained.done
        if committed is not None:
            await committed.done
        elif behind is not None:  # another request's future: not to be cancelled from here
            await asyncio.shield(behind.done)
        if refusal is not None:
            raise refusal
        return outcome

    async def catch_up(self) -> datetime:
        """Bring the state up to date with the clock (daily clear, auto-page); returns now.

        Readers call this first; it waits only when time has changed something, or while a
        whole-state operation is under way.
        """
        if self._gate is not None:
            await self._quiet()
        now = self.clock.now()
        queued = self._maintain(now)
        if queued is not None:
            await queued.done
        return now

    def _maintain(self, now: datetime) -> _Queued | None:
        if self._due is None or now < self._due:
            return None
        change = maintenance(self._pending, now, self.config)
        return None if change is None else self._enqueue(change)

    def _enqueue(self, change: Change) -> _Queued:
        moved = change.device.clock_offset - self._pending.device.clock_offset
        change.apply(self._pending)
        if moved:  # the datetime setting: move the clock now, for the changes that follow
            self.clock.shift(moved)
        self._due = next_due(self._pending, self.config)
        item = _Queued(change, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        self._wake.set()
        return item

    async def _commit_loop(self) -> None:
        while True:
            await self._wake.wait()
            await self._gather()
            self._wake.clear()
            batch, self._queue = self._queue, []
            # An exclusive operation is always last: nothing is computed behind it.
            changes = [item for item in batch if isinstance(item, _Queued)]
            if changes:
                self._committing = changes[-1]
                await self._commit(changes)
                self._committing = None
            for item in batch:
                if isinstance(item, _Exclusive):
                    await self._run_exclusive(item)

    async def _gather(self) -> None:
        """Let the requests already under way queue their changes before the commit.

        A commit takes less time than one request's way through aiocoap, so a committer that
        took the queue at once would commit each change on its own, and each commit writes
        its pages to the log whole. It yields to the loop as long as the last turn queued
        something (at most GATHER_TURNS): a lone request costs one turn of the loop."""
        for _ in range(GATHER_TURNS):
            queued = len(self._queue)
            await asyncio.sleep(0)
            if len(self._queue) == queued:
                return

    async def _commit(self, batch: list[_Queued]) -> None:
        try:
            await self.store.commit(
                [item.change for item in batch],
                [item.receipt for item in batch if item.receipt is not None],
            )
        except Exception as e:
            self._abandon(batch, e)
            return
        self.failing = None
        for item in batch:
            item.change.apply(self.state)
            if not item.done.done():
                item.done.set_result(None)
        # Answers first: asyncio runs callbacks in the order they were scheduled, so the
        # waiting requests answer before any observer task sends a notification.
        for item in batch:
            for listener in self.listeners:
                try:
                    listener(item.change)
                except Exception:  # a broken listener must not fail a committed change
                    log.exception("change listener failed")

    async def _run_exclusive(self, item: _Exclusive) -> None:
        try:
            await item.operation()
        except Exception as e:
            item.done.set_exception(e)
        else:
            item.done.set_result(None)
        finally:
            self._gate = None
            item.gate.set_result(None)

    def _abandon(self, batch: list[_Queued], error: Exception) -> None:
        """A commit failed: it and everything computed on top of it fail; back to committed."""
        log.warning("commit of %d change(s) failed, answering 5.03: %s", len(batch), error)
        self.failing = str(error)
        failed = batch + [item for item in self._queue if isinstance(item, _Queued)]
        self._queue = [item for item in self._queue if isinstance(item, _Exclusive)]
        self.clock.shift(self.state.device.clock_offset - self._pending.device.clock_offset)
        self._pending = _copy(self.state)
        self._due = next_due(self._pending, self.config)
        for item in failed:
            if not item.done.done():
                item.done.set_exception(error)
