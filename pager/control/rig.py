"""What a test rig can do to an emulated transmitter that the hardware cannot.

`RigControls` is mixed into `pager.app.Emulator`, so the same controls serve Python tests
(`await emu.advance(60)`), the pytest fixture and the HTTP control API. None of them changes
the device API; clock controls are runtime only (the `datetime` setting is what persists).
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from pager.control.faults import FaultInjector
from pager.domain import rules
from pager.domain.model import Change
from pager.domain.pagemodes import Transmission, alerting


@dataclass(frozen=True)
class PagerState:
    number: int
    alerting: bool
    last: Transmission | None  # the latest transmission to this pager


class PagerBoard:
    """Every pager's latest transmission, and rigs waiting for one to be paged."""

    def __init__(self, latest: dict[int, Transmission]):
        self.latest = latest
        # pager number -> {future of a waiting rig: the record id it waits to be passed}
        self._waiters: dict[int, dict[asyncio.Future, int]] = {}

    def on_change(self, change: Change) -> None:
        for tx in change.transmissions:
            self.latest[tx.number] = tx
            waiting = self._waiters.get(tx.number, {})
            for fut, after_id in list(waiting.items()):
                if tx.id > after_id:
                    del waiting[fut]
                    if not fut.done():  # cancelled, its waiter not yet resumed to forget it
                        fut.set_result(tx)
            if not waiting:
                self._waiters.pop(tx.number, None)

    def reset(self) -> None:
        """Forget every pager; waiting rigs wait for the first transmission of the new life."""
        self.latest.clear()
        self._waiters = {n: dict.fromkeys(ws, 0) for n, ws in self._waiters.items()}

    def state(self, number: int, now: datetime) -> PagerState:
        last = self.latest.get(number)
        return PagerState(number, alerting(last, now), last)

    async def wait(self, number: int, after_id: int, timeout: float) -> Transmission | None:
        last = self.latest.get(number)
        if last is not None and last.id > after_id:
            return last
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(number, {})[fut] = after_id
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:  # timed out or cancelled (its HTTP client went away): nothing stays behind
            waiting = self._waiters.get(number, {})
            waiting.pop(fut, None)
            if not waiting:
                self._waiters.pop(number, None)


class RigControls:
    """Controls over one running emulator (needs `engine`, `hub`, `faults`, `pagers`)."""

    faults: FaultInjector
    pagers: PagerBoard

    # -- clock ------------------------------------------------------------------------------

    def clock_status(self) -> dict:
        clock = self.engine.clock
        return {"now": clock.now(), "frozen": clock.frozen, "speed": clock.speed}

    async def set_clock(self, when: datetime) -> dict:
        rules.check_clock(when)
        self.engine.clock.set(when)
        return await self._clock_moved()

    async def advance(self, seconds: float) -> dict:
        clock = self.engine.clock
        rules.check_clock(clock.exact() + timedelta(seconds=seconds))
        clock.shift(seconds)
        return await self._clock_moved()

    async def freeze(self) -> dict:
        self.engine.clock.freeze()
        return await self._clock_moved()

    async def unfreeze(self) -> dict:
        self.engine.clock.unfreeze()
        return await self._clock_moved()

    async def set_speed(self, factor: float) -> dict:
        self.engine.clock.set_speed(factor)
        return await self._clock_moved()

    async def _clock_moved(self) -> dict:
        await self.engine.catch_up()  # what the new time makes due happens now
        return self.clock_status()

    # -- virtual pagers ---------------------------------------------------------------------

    async def transmissions(
        self, number: int | None = None, since: datetime | None = None, after_id: int | None = None
    ) -> list[Transmission]:
        records = await self.engine.store.transmissions(number, after_id)
        return [t for t in records if since is None or t.time >= since]

    def pager(self, number: int) -> PagerState:
        return self.pagers.state(number, self.engine.clock.now())

    def all_pagers(self) -> list[PagerState]:
        now = self.engine.clock.now()
        return [self.pagers.state(n, now) for n in sorted(self.pagers.latest)]

    async def wait_for_page(
        self, number: int, timeout: float = 10.0, after_id: int | None = None
    ) -> Transmission | None:
        """The next transmission to `number` after record `after_id` (default: any from now
        on), or None if none came within `timeout` seconds."""
        if after_id is None:
            last = self.pagers.latest.get(number)
            after_id = 0 if last is None else last.id
        return await self.pagers.wait(number, after_id, timeout)

    # -- faults -----------------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        path: str | None = None,
        count: int | None = None,
        seconds: float = 0.0,
        code: str = "5.03",
    ):
        return self.faults.add(kind, path, count, seconds, code)

    def remove_fault(self, fault_id: int) -> bool:
        return self.faults.remove(fault_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    async def power_cycle(self, seconds: float) -> None:
        """Lose every observer and be unreachable for `seconds`; the store is kept.

        Every change computed before it commits first, as a transmitter finishes writing
        before it goes down; its answer may be lost with the power."""

        async def off() -> None:
            self.faults.power_off(seconds)
            self.hub.drop_all()

        await self.engine.exclusive(off)

    # -- reset ------------------------------------------------------------------------------

    async def reset(self) -> None:
        """Back to factory: an empty store, default settings, the clock at system time and
        normal speed, no faults, no observers."""

        def forget() -> None:
            self.faults.clear()
            self.hub.drop_all()
            self.pagers.reset()

        await self.engine.reset(forget)
