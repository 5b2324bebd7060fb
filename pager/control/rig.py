"""What a test rig can do to an emulated transmitter that the hardware cannot.

`RigControls` is a base of `pager.app.Emulator`, so the same controls serve Python tests
(`await emu.advance(60)`), the pytest fixture and the HTTP control API (which is given a
`RigControls`, nothing else). They act on the parts the emulator hands them once it runs
(`RigParts`); before that, or after it stopped, every control refuses. None of them changes
the device API; clock controls are runtime only (the `datetime` setting is what persists).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from yarl import URL

from pager.control import verify as verification
from pager.control.faults import Fault, FaultInjector
from pager.control.journal import Filters, Journal
from pager.control.journal_entry import Entry
from pager.domain import rules
from pager.domain.model import Change
from pager.domain.pagemodes import AlertCode, Transmission, alerting
from pager.lrsn.server import LrsnServer

if TYPE_CHECKING:
    from pager.coap.seam import Block2Transfers
    from pager.control.device_request import DeviceRequests
    from pager.control.wall_stream import WallStream
    from pager.engine import Engine
    from pager.hub import Hub


@dataclass(frozen=True)
class PagerState:
    """What one pager shows, named as the control API's JSON names it (`GET /pagers/N`), so
    that a test reads the same field in Python and over HTTP."""

    number: int
    state: Literal["idle", "alerting"]
    page_mode: str | None  # these four are None (or empty) while idle
    message: str | None
    override_codes: tuple[AlertCode, ...]
    alerting_until: datetime | None
    last_transmission: Transmission | None  # the latest transmission to this pager

    @classmethod
    def of(cls, number: int, last: Transmission | None, now: datetime) -> PagerState:
        if last is None or not alerting(last, now):
            return cls(number, "idle", None, None, (), None, last)
        return cls(
            number,
            "alerting",
            last.page_mode,
            last.message,
            last.override_codes,
            last.alert_until,
            last,
        )

    @property
    def alerting(self) -> bool:
        return self.state == "alerting"


@dataclass(frozen=True)
class Wanted:
    """The transmission a waiting rig waits for: a record after `after_id`, sent at or after
    `since` (transmitter time; None: at any time)."""

    after_id: int = 0
    since: datetime | None = None

    def __call__(self, tx: Transmission) -> bool:
        return tx.id > self.after_id and (self.since is None or tx.time >= self.since)


class PagerBoard:
    """Every pager's latest transmission, and rigs waiting for one to be paged."""

    def __init__(self, latest: dict[int, Transmission]) -> None:
        self.latest = latest
        # pager number -> {future of a waiting rig: the transmission it waits for}
        self._waiters: dict[int, dict[asyncio.Future[Transmission], Wanted]] = {}

    def on_change(self, change: Change) -> None:
        for tx in change.transmissions:
            self.latest[tx.number] = tx
            waiting = self._waiters.get(tx.number, {})
            for fut, wanted in list(waiting.items()):
                if wanted(tx):
                    del waiting[fut]
                    if not fut.done():  # cancelled, its waiter not yet resumed to forget it
                        fut.set_result(tx)
            if not waiting:
                self._waiters.pop(tx.number, None)

    def reset(self) -> None:
        """Forget every pager; waiting rigs wait for the first transmission of the new life."""
        self.latest.clear()
        self._waiters = {n: dict.fromkeys(ws, Wanted()) for n, ws in self._waiters.items()}

    def end(self) -> None:
        """The emulator stops: every rig still waiting is told so now, with `NotRunning`,
        rather than at its timeout (a long poll would hold the control API's shutdown)."""
        for number, waiting in self._waiters.items():
            for fut in waiting:
                if not fut.done():
                    fut.set_exception(
                        NotRunning(f"the emulator stopped while waiting for a page to {number}")
                    )
        self._waiters = {}

    def state(self, number: int, now: datetime) -> PagerState:
        return PagerState.of(number, self.latest.get(number), now)

    async def wait(
        self,
        number: int,
        wanted: Wanted,
        timeout: float,
        recorded: Callable[[], Awaitable[list[Transmission]]] | None = None,
    ) -> Transmission | None:
        """The latest transmission to `number` that is `wanted`, if one is known, else the
        next one within `timeout` seconds (None if none came). `recorded` reads the ones the
        latest does not show (a clock set back sends later records with earlier times); the
        wait is registered before that read, so a page committed during it is not missed."""
        last = self.latest.get(number)
        if last is not None and wanted(last):
            return last
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(number, {})[fut] = wanted
        try:
            if recorded is not None:
                found = [tx for tx in await recorded() if wanted(tx)]
                if found and not fut.done():
                    return found[-1]
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:  # timed out or cancelled (its HTTP client went away): nothing stays behind
            waiting = self._waiters.get(number, {})
            waiting.pop(fut, None)
            if not waiting:
                self._waiters.pop(number, None)


@dataclass(frozen=True)
class RigParts:
    """What the controls act on: the parts of one running emulator."""

    engine: Engine
    hub: Hub
    faults: FaultInjector
    pagers: PagerBoard
    transfers: Block2Transfers  # what the CoAP server holds of block-wise answers
    journal: Journal
    wall: WallStream
    device: DeviceRequests
    lrsn: LrsnServer | None = None  # None: LRSN is off


class NotRunning(RuntimeError):
    """A rig control was used on an emulator that is not running."""


class RigControls:
    """Controls over one running emulator, on the parts it attaches when it has started."""

    def __init__(self) -> None:
        self._parts: RigParts | None = None
        # the transmitters of the fleet this one is in, itself among them (the pager wall's
        # switcher); whoever starts a fleet sets it
        self.fleet: list[RigControls] = [self]

    def _attach(self, parts: RigParts | None) -> None:
        """Give the controls their parts (None: the emulator stopped)."""
        self._parts = parts

    @property
    def _rig(self) -> RigParts:
        if self._parts is None:
            raise NotRunning("the emulator is not running: start it first")
        return self._parts

    def health(self) -> dict[str, Any]:
        """Whether the transmitter serves: its CoAP port answers (not powered off by a power
        cycle) and its last commit, if any, succeeded. `error` says why a commit failed."""
        if self._parts is None:
            return {"ready": False, "coap": "stopped", "store": "closed"}
        rig = self._parts
        coap = "powered off" if rig.faults.unreachable else "serving"
        failing = rig.engine.failing
        health: dict[str, Any] = {
            "ready": coap == "serving" and failing is None,
            "coap": coap,
            "store": "writable" if failing is None else "failing",
        }
        if failing is not None:
            health["error"] = failing
        return health

    @property
    def uri(self) -> str:
        """The device API's CoAP endpoint, which the control API tells a remote rig
        (`GET /device`); the emulator that runs the controls knows it."""
        raise NotImplementedError

    @property
    def lrsn_address(self) -> tuple[str, int] | None:
        """Where the LRSN interface listens (`GET /device`); None: off or not running."""
        lrsn = None if self._parts is None else self._parts.lrsn
        return None if lrsn is None else lrsn.address

    @property
    def _control_uri(self) -> str | None:
        """Its control API's base URL, None without one."""
        return None

    @property
    def limits(self) -> rules.Limits:
        """The pager numbers (and other ranges) this transmitter accepts."""
        return self._rig.engine.config.limits

    @property
    def _staff_pagers(self) -> frozenset[int]:
        return self._rig.engine.config.staff_pagers

    @property
    def _wall_stream(self) -> WallStream:
        """The pager wall's live stream (`GET /events`)."""
        return self._rig.wall

    async def _device_request(
        self, method: str, path: str, query: dict[str, str | int] | None, body: Any
    ) -> tuple[str, Any]:
        """Send a request to the device API over CoAP, as a client would (`POST
        /device-request`): (its answer's code, its payload as JSON or None)."""
        uri = URL(self.uri)
        assert uri.host is not None and uri.port is not None
        return await self._rig.device.send(uri.host, uri.port, method, path, query, body)

    # -- clock ------------------------------------------------------------------------------

    def clock_status(self) -> dict[str, Any]:
        clock = self._rig.engine.clock
        return {"now": clock.now(), "frozen": clock.frozen, "speed": clock.speed}

    async def set_clock(self, when: datetime) -> dict[str, Any]:
        rules.check_clock(when)
        self._rig.engine.clock.set(when)
        return await self._clock_moved()

    async def advance(self, seconds: float) -> dict[str, Any]:
        clock = self._rig.engine.clock
        rules.check_clock(clock.exact() + timedelta(seconds=seconds))
        clock.shift(seconds)
        return await self._clock_moved()

    async def freeze(self) -> dict[str, Any]:
        self._rig.engine.clock.freeze()
        return await self._clock_moved()

    async def unfreeze(self) -> dict[str, Any]:
        self._rig.engine.clock.unfreeze()
        return await self._clock_moved()

    async def set_speed(self, factor: float) -> dict[str, Any]:
        self._rig.engine.clock.set_speed(factor)
        return await self._clock_moved()

    async def _clock_moved(self) -> dict[str, Any]:
        await self._rig.engine.catch_up()  # what the new time makes due happens now
        self._rig.wall.clock_moved()
        return self.clock_status()

    # -- virtual pagers ---------------------------------------------------------------------

    async def transmissions(
        self, number: int | None = None, since: datetime | None = None, after_id: int | None = None
    ) -> list[Transmission]:
        records = await self._rig.engine.store.transmissions(number, after_id)
        return [t for t in records if since is None or t.time >= since]

    def pager(self, number: int) -> PagerState:
        rig = self._rig
        return rig.pagers.state(number, rig.engine.clock.now())

    def all_pagers(self) -> list[PagerState]:
        rig = self._rig
        now = rig.engine.clock.now()
        return [rig.pagers.state(n, now) for n in sorted(rig.pagers.latest)]

    async def wait_for_page(
        self,
        number: int,
        timeout: float = 10.0,
        after_id: int | None = None,
        since: datetime | None = None,
    ) -> Transmission | None:
        """A transmission to `number`: with neither `after_id` nor `since`, the next one from
        now on; otherwise the latest one after record `after_id` and sent at or after `since`
        (transmitter time) at once if there is one, else the next such one. None if none
        came within `timeout` seconds.

        "From now on" races with a page sent just before the call; a test that knows when it
        acted waits for `since` that time (or `after_id` the last record it saw) instead."""
        rig = self._rig
        if after_id is None and since is None:
            last = rig.pagers.latest.get(number)
            after_id = 0 if last is None else last.id
        wanted = Wanted(after_id or 0, since)
        if since is None:  # ids only grow: the latest record tells all
            return await rig.pagers.wait(number, wanted, timeout)
        return await rig.pagers.wait(
            number, wanted, timeout, lambda: self.transmissions(number, since, after_id)
        )

    # -- faults -----------------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        path: str | None = None,
        count: int | None = None,
        seconds: float | None = None,
        code: str = "5.03",
        *,
        probability: float = 1.0,
        seed: int | None = None,
        direction: str | None = None,
        distribution: str | None = None,
        min: float | None = None,
        max: float | None = None,
        median: float | None = None,
        sigma: float | None = None,
        window: int | None = None,
        ret: int = 7,
    ) -> Fault:
        """Set a fault (docs/control-api.md, "Faults"); ValueError for one it cannot be."""
        return self._rig.faults.add(
            kind, path, count, seconds, code, probability=probability, seed=seed,
            direction=direction, distribution=distribution, min=min, max=max, median=median,
            sigma=sigma, window=window, ret=ret,
        )  # fmt: skip

    def remove_fault(self, fault_id: int) -> bool:
        return self._rig.faults.remove(fault_id)

    def clear_faults(self) -> None:
        self._rig.faults.clear()

    def list_faults(self) -> list[Fault]:
        """The faults still set, oldest first."""
        return list(self._rig.faults.faults)

    @property
    def unreachable(self) -> bool:
        """Whether a power cycle keeps the transmitter unreachable now."""
        return self._rig.faults.unreachable

    async def power_cycle(self, seconds: float) -> None:
        """Lose every observer and every LRSN connection, and be unreachable (the LRSN port
        refusing connections) for `seconds`; the store is kept.

        Every change computed before it commits first, as a transmitter finishes writing
        before it goes down; its answer may be lost with the power. Every observer is told
        first, as at a shutdown (spec §8)."""
        rig = self._rig

        async def off() -> None:
            await rig.hub.end_all()
            rig.faults.power_off(seconds)
            if rig.lrsn is not None:
                await rig.lrsn.power_off(seconds)
            rig.hub.drop_all()
            rig.transfers.clear()

        await rig.engine.exclusive(off)
        rig.wall.power_cycled(seconds)

    # -- the request journal ----------------------------------------------------------------

    def journal(
        self,
        method: str | None = None,
        path: str | None = None,
        number: int | None = None,
        code: str | None = None,
        since: datetime | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> list[Entry]:
        """The CoAP exchanges recorded, oldest first, that match every filter given: the
        request's `method` (GET...), `path`, pager `number`, the answer's dotted `code`,
        recorded at or after `since` (an aware datetime), with an id greater than `after`;
        at most `limit` of them. A bad filter raises ValueError naming it."""
        filters = Filters(method, path, number, code, since, after, limit)
        return list(self._journal_entries(filters))

    def _journal_entries(self, filters: Filters) -> Iterator[Entry]:
        """The entries `journal` lists, decoded one at a time as they are taken (the control
        API reads them in slices, `pager.control.journal.sliced`)."""
        return self._rig.journal.entries(filters)

    def clear_journal(self) -> None:
        """Forget every exchange recorded; ids go on from where they were."""
        self._rig.journal.clear()

    # -- reset ------------------------------------------------------------------------------

    async def reset(self) -> None:
        """Back to factory: an empty store, default settings, the clock at system time and
        normal speed, no faults, no observers, an empty journal."""
        rig = self._rig

        def forget() -> None:
            rig.faults.clear()
            rig.hub.drop_all()
            rig.transfers.clear()
            rig.pagers.reset()
            rig.journal.clear()

        await rig.engine.reset(forget)
        rig.wall.reset()

    # -- verification (pager.control.verify) ------------------------------------------------

    def verify(
        self,
        method: str | None = None,
        path: str | None = None,
        query: Mapping[str, str | int] | None = None,
        body: Any = None,
        contains: bool = False,
        code: str | None = None,
        *,
        exactly: int | None = None,
        at_least: int | None = None,
        at_most: int | None = None,
        after: int | None = None,
    ) -> list[Entry]:
        """The requests in the journal (after entry `after`) that match the pattern, when
        as many matched as the count condition asks (none given: at least 1); else
        `VerificationFailed`, an AssertionError whose message shows the pattern, the count
        and the closest requests with the parts that differed. A bad pattern is
        `pager.control.verify.BadPattern` (a ValueError). `POST /journal/verify`, in Python."""
        pattern = verification.Request(method, path, query, body, contains, code)
        expected = verification.count(exactly, at_least, at_most)
        verdict = verification.verify(self.journal(after=after), pattern, expected)
        if not verdict.holds:
            raise verification.VerificationFailed(verdict)
        return list(verdict.matches)

    def verify_in_order(
        self, *patterns: verification.Request, after: int | None = None
    ) -> list[Entry]:
        """One request per pattern, in the patterns' order, others allowed between; else
        `VerificationFailed` naming the pattern that matched nothing after which entry.
        `POST /journal/verify-sequence`, in Python."""
        verdict = verification.verify_in_order(self.journal(after=after), patterns)
        if not verdict.holds:
            raise verification.VerificationFailed(verdict)
        return list(verdict.matches)
