"""Fault injection for test rigs: lose, duplicate, reorder and delay datagrams, answer errors,
power cycle.

Datagram faults must act on datagrams, below aiocoap's message layer: a request dropped any
higher would still be acknowledged (an empty ACK after 0.1 s) and its retransmission would
then be swallowed as a duplicate, which is not what a lost datagram does. So `FaultInjector`
is the CoAP seam's `DatagramFilter` (`pager.coap.seam`), handed every datagram in and out
while `active`, with the call that carries it on.

Loss, duplication and reordering act in either direction: on requests as they arrive (before
the emulator) or on answers as they leave (after it did the work and committed it). An
answer fault acts on the answer the emulator computed, not on its re-sending from the
deduplication cache, so a client's retransmission gets the cached answer, as after a lost
ACK on a real network.
A delay holds back the exchange, not one datagram: aiocoap answers a retransmitted request
from its deduplication cache at once, so every datagram of a held exchange (peer and message
id), the cached answer re-sent included, leaves when the delay is over, and counts no hit.
Error answers are given by the CoAP layer's request gate (`pager.coap.gate`), which asks
`FaultInjector.error_for` and writes the JSON body.

Every fault draws from its own random generator, seeded by its `seed` (from the OS when it
has none): which datagrams it acts on and the times it draws then depend only on the
sequence of datagrams it is offered, so the same seed and the same requests give the same
run, whatever other faults do (a reorder window's order comes from a second generator, as
how many it holds depends on timing). Notifications are among the datagrams offered to an
answer fault on their path, and they come with time: a seeded run repeats only without an
observation on the fault's path. A fault that does not fire for a datagram is not counted.
"""

import asyncio
import itertools
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import aiocoap

from pager.coap.gate import request_path
from pager.lrsn.server import Action as LrsnAction

log = logging.getLogger("pager.faults")

ERROR_CODE = r"^[45]\.([0-2][0-9]|3[01])$"
"""An error code an error fault may answer: class 4 or 5, and a detail that fits its five
bits (a detail of 35 would be carried into the class: 4.35 is 5.03)."""


Kind = Literal["drop", "delay", "error", "duplicate", "reorder"]
Direction = Literal["request", "answer"]
Distribution = Literal["fixed", "uniform", "lognormal"]
COUNT_MAX = 10**9
SECONDS_MAX = 600.0
SIGMA_MAX = 10.0
WINDOW_MAX = 1000
SEED_MAX = 2**53 - 1  # read exactly by every JSON reader
"""The bounds of a fault, the control API's and the Python API's alike."""

RET_MIN, RET_MAX = 1, 10  # an LRSN result code an error fault may answer (not 0: success)
LRSN_PATH = "/lrsn/"
"""An LRSN request's path, for a fault's `path`: `/lrsn/` and its element, `/lrsn/PageRequest`
or `/lrsn/Login`; no CoAP resource's path starts so."""

HELD_MAX = 10_000
"""The most datagrams the faults hold back at once (delayed, a duplicate's copy, in a reorder
window), and the most exchanges a delay holds: one that would be held past it is lost, as a
full queue on a network loses it (a delayed answer with nothing held for its
retransmissions), so that a long delay under heavy traffic cannot take the memory."""

REORDER_SECONDS = 0.5
"""How long a reorder fault holds a datagram at most when not told: a window that does not
fill within it is let go as it is, so nothing is held for a client that sent its last."""

DIRECTED = ("drop", "duplicate", "reorder")
TIMED = ("delay", "duplicate")  # they draw a time from a distribution


@dataclass
class Fault:
    """One fault: applies to requests on `path` (all paths if None), `remaining` more times
    (until cleared if None), each with `probability`.

    `seconds` is a fixed delay's length, a fixed duplicate's lag behind the original, or the
    longest a reorder fault holds a datagram; `min`/`max` bound a uniform distribution's
    times, `median`/`sigma` shape a lognormal one. `window`: how many datagrams a reorder
    fault gathers before it lets them go, in another order."""

    id: int
    kind: str
    path: str | None = None
    remaining: int | None = None
    seconds: float = 0.0
    code: str = "5.03"  # error
    hits: int = field(default=0)
    probability: float = 1.0
    seed: int | None = None
    direction: str | None = None  # drop, duplicate, reorder
    distribution: str | None = None  # delay, duplicate
    min: float | None = None
    max: float | None = None
    median: float | None = None
    sigma: float | None = None
    window: int | None = None  # reorder
    ret: int = 7  # error: the LRSN result code an LRSN request is answered with (EOPFAIL)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    # a reorder window's order: a shuffle takes as many draws as the window holds, which
    # timing decides, so it must not take them from `rng`, which chooses the datagrams
    order_rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)
        self.order_rng.seed(None if self.seed is None else f"{self.seed} order")

    def matches(self, path: str, direction: str | None) -> bool:
        return (self.path is None or self.path == path) and self.direction == direction

    def fires(self) -> bool:
        """Whether it acts on the datagram it is offered; one draw, unless it always does."""
        return self.probability >= 1.0 or self.rng.random() < self.probability

    def take(self) -> None:
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1

    def lag(self) -> float:
        """A delay's or a duplicate's time, drawn from its distribution; at most SECONDS_MAX."""
        if self.distribution == "uniform":
            assert self.min is not None and self.max is not None
            return self.rng.uniform(self.min, self.max)
        if self.distribution == "lognormal":
            assert self.median is not None and self.sigma is not None
            return min(self.rng.lognormvariate(math.log(self.median), self.sigma), SECONDS_MAX)
        return self.seconds

    @property
    def spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


Go = Callable[[Any], None]  # what carries a datagram on: the seam's deliver or send


def _check(
    kind: str,
    path: str | None,
    count: int | None,
    seconds: float | None,
    code: str,
    probability: float,
    seed: int | None,
    direction: str | None,
    distribution: str | None,
    times: dict[str, float | None],
    window: int | None,
) -> None:
    """Raise ValueError for anything a fault of `kind` cannot be."""
    _typed(
        {"kind": kind, "path": path, "code": code, "direction": direction,
         "distribution": distribution},
        {"count": count, "seed": seed, "window": window},
        {"probability": probability, "seconds": seconds, **times},
    )  # fmt: skip
    if kind not in get_args(Kind):
        raise ValueError(f"kind must be one of {', '.join(get_args(Kind))}, not {kind!r}")
    if path is not None and not path.startswith("/"):
        raise ValueError(f"path must start with /, not {path!r}")
    if path is not None and "?" in path:  # it would never match: a request's path has none
        raise ValueError(f"path is a request's path without its query, not {path!r}")
    if count is not None and not 1 <= count <= COUNT_MAX:
        raise ValueError(f"count must be from 1 to {COUNT_MAX}, not {count!r}")
    if not 0 <= probability <= 1:
        raise ValueError(f"probability must be from 0 to 1, not {probability!r}")
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be from 0 to {SEED_MAX}, not {seed!r}")
    if seconds is not None and not 0 <= seconds <= SECONDS_MAX:
        raise ValueError(f"seconds must be from 0 to {SECONDS_MAX:g}, not {seconds!r}")
    if re.fullmatch(ERROR_CODE, code) is None:
        raise ValueError(f"code must be a CoAP error code from 4.00 to 5.31, not {code!r}")
    if direction is not None:
        if kind not in DIRECTED:
            raise ValueError(f"direction is for {', '.join(DIRECTED)} faults, not {kind}")
        if direction not in get_args(Direction):
            raise ValueError(f"direction must be request or answer, not {direction!r}")
    if window is not None:
        if kind != "reorder":
            raise ValueError(f"window is for reorder faults, not {kind}")
        if not 2 <= window <= WINDOW_MAX:
            raise ValueError(f"window must be from 2 to {WINDOW_MAX} datagrams, not {window!r}")
    if kind == "reorder" and seconds == 0:
        raise ValueError("seconds (the longest a reorder fault holds a datagram) must be over 0")
    if distribution is not None:
        if kind not in TIMED:
            raise ValueError(f"distribution is for {', '.join(TIMED)} faults, not {kind}")
        if distribution not in get_args(Distribution):
            raise ValueError(
                f"distribution must be fixed, uniform or lognormal, not {distribution!r}"
            )
    if kind not in TIMED:
        for name, value in times.items():
            if value is not None:
                raise ValueError(f"{name} is for {', '.join(TIMED)} faults, not {kind}")
    _check_times(distribution or "fixed", seconds, times)


def _typed(
    texts: dict[str, object], integers: dict[str, object], numbers: dict[str, object]
) -> None:
    """Raise ValueError for a member of the wrong type (None: not given), as the control API
    refuses one: a bool is no number here, a float no integer, a number no text."""
    for name, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name} must be a string, not {value!r}")
    for name, value in integers.items():
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"{name} must be an integer, not {value!r}")
    for name, value in numbers.items():
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ValueError(f"{name} must be a number, not {value!r}")


def _check_times(distribution: str, seconds: float | None, times: dict[str, float | None]) -> None:
    takes = {"fixed": (), "uniform": ("min", "max"), "lognormal": ("median", "sigma")}
    for name, value in times.items():
        if value is not None and name not in takes[distribution]:
            raise ValueError(f"{name} is for a {_taking(name)} distribution, not {distribution}")
    for name in takes[distribution]:
        if times[name] is None:
            raise ValueError(f"a {distribution} distribution needs {name}")
    if distribution != "fixed" and seconds is not None:
        raise ValueError(f"seconds is for a fixed distribution, not {distribution}")
    low, high, median, sigma = times["min"], times["max"], times["median"], times["sigma"]
    for name, value in (("min", low), ("max", high)):
        if value is not None and not 0 <= value <= SECONDS_MAX:
            raise ValueError(f"{name} must be from 0 to {SECONDS_MAX:g} seconds, not {value!r}")
    if low is not None and high is not None and not low <= high:
        raise ValueError(f"min must be at most max, not {low!r} > {high!r}")
    if median is not None and not 0 < median <= SECONDS_MAX:
        raise ValueError(f"median must be over 0 and at most {SECONDS_MAX:g}, not {median!r}")
    if sigma is not None and not 0 <= sigma <= SIGMA_MAX:
        raise ValueError(f"sigma must be from 0 to {SIGMA_MAX:g}, not {sigma!r}")


def _taking(name: str) -> str:
    return "uniform" if name in ("min", "max") else "lognormal"


class FaultInjector:
    """The rig's faults; it is the CoAP layer's `pager.coap.gate.InjectedErrors`."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.unreachable_until = 0.0  # time.monotonic() until which nothing gets through
        self._ids = itertools.count(1)
        # (peer, message id) of each exchange a delay holds -> loop time it is released at
        # and the timer that ends the hold
        self._held: dict[tuple[Any, int], tuple[float, asyncio.TimerHandle]] = {}
        # reorder fault id -> the datagrams it holds, in arrival order, and its timer
        self._windows: dict[int, tuple[Fault, list[tuple[Go, Any]], asyncio.TimerHandle]] = {}
        # the timer of each datagram held back to a later time (delayed, a duplicate's copy)
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_ids = itertools.count()
        self._overflowed = False  # HELD_MAX reached since the last datagram held; logged once
        self.active = False  # any fault set, or unreachable: the datagram hooks look closer
        # told of each fault as it acts, synchronously, while the message it acts on is in
        # hand (the request journal marks that message's exchange with it)
        self.acted: Callable[[Fault], None] | None = None
        # told after every change to the faults or the power: set, removed, cleared, a hit
        # counted (the pager wall shows them live)
        self.changed: Callable[[], None] | None = None

    # -- the controls -----------------------------------------------------------------------

    def add(
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
        times = {"min": min, "max": max, "median": median, "sigma": sigma}
        _check(
            kind, path, count, seconds, code, probability, seed, direction, distribution, times,
            window,
        )  # fmt: skip
        if isinstance(ret, bool) or not isinstance(ret, int) or not RET_MIN <= ret <= RET_MAX:
            raise ValueError(f"ret must be an LRSN result code from {RET_MIN} to {RET_MAX}")
        if kind == "reorder":
            seconds = REORDER_SECONDS if seconds is None else seconds
            window = window or 2
        if kind in DIRECTED:
            direction = direction or "request"
        if kind in TIMED:
            distribution = distribution or "fixed"
        fault = Fault(
            next(self._ids), kind, path, count, seconds or 0.0, code, 0, float(probability),
            seed, direction, distribution, min, max, median, sigma, window, ret,
        )  # fmt: skip
        self.faults.append(fault)
        self._update()
        log.info("fault %d set: %s", fault.id, fault)
        self._changed()
        return fault

    def remove(self, fault_id: int) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        self._let_go(fault_id)
        self._update()
        self._changed()
        return len(self.faults) != before

    def clear(self) -> None:
        self.faults = []
        self.unreachable_until = 0.0
        for fault_id in list(self._windows):
            self._let_go(fault_id)
        self._update()
        self._changed()

    def power_off(self, seconds: float) -> None:
        self.unreachable_until = time.monotonic() + seconds
        self._lose_held()  # what the faults hold is lost with the power
        self.active = True
        self._changed()

    def _changed(self) -> None:
        if self.changed is not None:
            self.changed()

    def close(self) -> None:
        """Lose what the faults hold, its timers cancelled: the emulator stops, and nothing
        held may be sent on its closed transport or read into its closed context later. The
        faults stay set (a restarted emulator has them)."""
        self._lose_held()
        self._update()

    def _lose_held(self) -> None:
        for _, _, timer in self._windows.values():
            timer.cancel()
        self._windows.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for _, unhold in self._held.values():
            unhold.cancel()
        self._held.clear()

    @property
    def unreachable(self) -> bool:
        return time.monotonic() < self.unreachable_until

    def _update(self) -> None:
        self.faults = [f for f in self.faults if not f.spent]
        self.active = (
            bool(self.faults) or self.unreachable or bool(self._held) or bool(self._windows)
        )

    def _take(
        self, kind: str, path: str, direction: str | None = None, tell: bool = True
    ) -> Fault | None:
        """The fault of `kind` that acts on a datagram on `path` (going `direction`), counted:
        the oldest one that matches and fires. The one place a fault acts. `tell`: the
        journal learns of it from `acted` (a CoAP datagram in hand), not with the request
        (LRSN)."""
        for fault in self.faults:
            if fault.kind == kind and fault.matches(path, direction) and fault.fires():
                fault.take()
                self._update()
                if tell and self.acted is not None:
                    self.acted(fault)
                self._changed()
                return fault
        return None

    def error_for(self, path: str) -> str | None:
        """The error code a request on `path` is to be answered with, if any (and count it)."""
        if not self.active:
            return None
        fault = self._take("error", path)
        return None if fault is None else fault.code

    # -- LRSN (pager.lrsn.server.Faults) ----------------------------------------------------

    def lrsn_action(self, element: str) -> LrsnAction | None:
        """What the faults do to one LRSN request (spec §7): a drop of requests swallows it,
        an error answers it with the fault's `ret`, a delay holds it, a drop of answers lets
        it act and loses its answer. Duplicate and reorder faults are for datagrams: TCP
        does neither. The oldest fault of the first of those kinds that fires acts."""
        if not self.active:
            return None
        path = LRSN_PATH + element
        if (f := self._take("drop", path, "request", tell=False)) is not None:
            return LrsnAction("drop", f.id)
        if (f := self._take("error", path, tell=False)) is not None:
            return LrsnAction("error", f.id, ret=f.ret)
        if (f := self._take("delay", path, tell=False)) is not None:
            return LrsnAction("delay", f.id, seconds=f.lag())
        if (f := self._take("drop", path, "answer", tell=False)) is not None:
            return LrsnAction("lose answer", f.id)
        return None

    # -- the datagram filter (pager.coap.seam.DatagramFilter) ------------------------------

    def incoming(self, data: bytes, deliver: Callable[[bytes], None]) -> None:
        if self.unreachable:
            return
        self._update()
        if not any(f.direction == "request" for f in self.faults):
            deliver(data)
            return
        try:
            message = aiocoap.Message.decode(data)
        except (aiocoap.error.UnparsableMessage, UnicodeDecodeError):
            deliver(data)
            return
        if not message.code.is_request():
            deliver(data)
            return
        self._pass(request_path(message), "request", data, deliver, 0.0)

    def outgoing(self, message: aiocoap.Message, send: Callable[[aiocoap.Message], None]) -> None:
        if self.unreachable:
            return
        key = (message.remote, message.mid)
        held = self._held.get(key)
        if held is not None:  # a retransmission, or the cached answer to one
            self._at(held[0], send, message)
            return
        request = getattr(message, "request", None)
        if request is None or message.code is None or not message.code.is_response():
            send(message)
            return
        path = request_path(request)
        release = 0.0
        delay = self._take("delay", path)
        if delay is not None:
            if not self._holds_room(exchange=True):  # lost, nothing held for retransmissions
                return
            loop = asyncio.get_running_loop()
            release = loop.time() + delay.lag()
            self._held[key] = (release, loop.call_at(release, self._unhold, key))
            self.active = True
        self._pass(path, "answer", message, send, release)

    def _pass(self, path: str, direction: str, datagram: Any, go: Go, at: float) -> None:
        """`datagram` on its way (at loop time `at`, 0 for now), unless lost, and a copy after
        it if duplicated; held in a window first if reordered."""
        dropped = self._take("drop", path, direction)
        if dropped is not None:
            log.info("fault %d: lost a %s on %s", dropped.id, direction, path)
            return
        duplicate = self._take("duplicate", path, direction)
        reorder = self._take("reorder", path, direction)
        if reorder is not None:
            fault = reorder
            self._at(at, lambda d: self._gather(fault, go, d), datagram)
        else:
            self._at(at, go, datagram)
        if duplicate is not None:
            start = at or asyncio.get_running_loop().time()
            self._at(start + duplicate.lag(), go, datagram)

    def _at(self, when: float, go: Go, datagram: Any) -> None:
        """`go(datagram)` at loop time `when` (now if past), if the faults have room to hold it."""
        loop = asyncio.get_running_loop()
        if when <= loop.time():
            go(datagram)
        elif self._holds_room():
            timer = next(self._timer_ids)
            self._timers[timer] = loop.call_at(when, self._release_held, timer, go, datagram)

    def _release_held(self, timer: int, go: Go, datagram: Any) -> None:
        del self._timers[timer]  # a power cycle or a stop cancelled it, had one come since
        go(datagram)

    def _holds_room(self, exchange: bool = False) -> bool:
        """Whether one more datagram (and `exchange`: one more delayed exchange) may be held
        back, `HELD_MAX` of each; logs the first loss."""
        held = len(self._timers) + sum(len(w[1]) for w in self._windows.values())
        if held < HELD_MAX and not (exchange and len(self._held) >= HELD_MAX):
            self._overflowed = False
            return True
        if not self._overflowed:
            log.warning("faults hold %d datagrams: more that they would hold are lost", held)
            self._overflowed = True
        return False

    def _unhold(self, key: tuple[Any, int]) -> None:
        del self._held[key]
        self._update()

    def _gather(self, fault: Fault, go: Go, datagram: Any) -> None:
        """Hold `datagram` in `fault`'s window; let the window go once it is full, the fault
        is spent, or its first datagram has waited `fault.seconds`."""
        window = self._windows.get(fault.id)
        if not self._holds_room():
            return
        if window is None:
            timer = asyncio.get_running_loop().call_later(fault.seconds, self._let_go, fault.id)
            window = self._windows[fault.id] = (fault, [], timer)
            self.active = True
        window[1].append((go, datagram))
        if len(window[1]) >= (fault.window or 2) or fault.spent:
            self._let_go(fault.id)

    def _let_go(self, fault_id: int) -> None:
        """Send what a reorder fault holds, in an order its generator draws and never the
        order it came in (one shuffle that comes out unchanged is turned by one)."""
        window = self._windows.pop(fault_id, None)
        if window is None:
            return
        fault, held, timer = window
        timer.cancel()
        order = list(range(len(held)))
        fault.order_rng.shuffle(order)
        if order == sorted(order):
            order = order[1:] + order[:1]
        for i in order:
            go, datagram = held[i]
            go(datagram)
        self._update()
