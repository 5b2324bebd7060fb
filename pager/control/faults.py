"""Fault injection for test rigs: drop requests, delay answers, answer errors, power cycle.

Drops and delays must act on datagrams, below aiocoap's message layer: a request dropped
any higher would still be acknowledged (an empty ACK after 0.1 s) and its retransmission
would then be swallowed as a duplicate, which is not what a lost datagram does. So
`FaultInjector` is the CoAP seam's `DatagramFilter` (`pager.coap.seam`), consulted for every
datagram in and out while `active`.
A delay holds back the exchange, not one datagram: aiocoap answers a retransmitted request
from its deduplication cache at once, so every datagram of a held exchange (peer and message
id), the cached answer re-sent included, leaves when the delay is over, and counts no hit.
Error answers are given by the CoAP layer's request gate (`pager.coap.gate`), which asks
`FaultInjector.error_for` and writes the JSON body.
"""

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import aiocoap

from pager.coap.gate import request_path

log = logging.getLogger("pager.faults")

ERROR_CODE = r"^[45]\.([0-2][0-9]|3[01])$"
"""An error code an error fault may answer: class 4 or 5, and a detail that fits its five
bits (a detail of 35 would be carried into the class: 4.35 is 5.03)."""


Kind = Literal["drop", "delay", "error"]
COUNT_MAX = 10**9
SECONDS_MAX = 600.0
"""The bounds of a fault, the control API's and the Python API's alike."""


@dataclass
class Fault:
    """One fault: applies to requests on `path` (all paths if None), `remaining` more times
    (until cleared if None)."""

    id: int
    kind: str
    path: str | None = None
    remaining: int | None = None
    seconds: float = 0.0  # delay
    code: str = "5.03"  # error
    hits: int = field(default=0)

    def matches(self, path: str) -> bool:
        return self.path is None or self.path == path

    def take(self) -> None:
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1

    @property
    def spent(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


class FaultInjector:
    """The rig's faults; it is the CoAP layer's `pager.coap.gate.InjectedErrors`."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.unreachable_until = 0.0  # time.monotonic() until which nothing gets through
        self._ids = itertools.count(1)
        # (peer, message id) of each exchange a delay holds -> loop time it is released at
        self._held: dict[tuple[Any, int], float] = {}
        self.active = False  # any fault set, or unreachable: the datagram hooks look closer
        # told of each fault as it acts, synchronously, while the message it acts on is in
        # hand (the request journal marks that message's exchange with it)
        self.acted: Callable[[Fault], None] | None = None

    # -- the controls -----------------------------------------------------------------------

    def add(
        self,
        kind: str,
        path: str | None = None,
        count: int | None = None,
        seconds: float = 0.0,
        code: str = "5.03",
    ) -> Fault:
        if kind not in get_args(Kind):
            raise ValueError(f"kind must be drop, delay or error, not {kind!r}")
        if path is not None and not path.startswith("/"):
            raise ValueError(f"path must start with /, not {path!r}")
        if count is not None and not 1 <= count <= COUNT_MAX:
            raise ValueError(f"count must be from 1 to {COUNT_MAX}, not {count!r}")
        if not 0 <= seconds <= SECONDS_MAX:
            raise ValueError(f"seconds must be from 0 to {SECONDS_MAX:g}, not {seconds!r}")
        if re.fullmatch(ERROR_CODE, code) is None:
            raise ValueError(f"code must be a CoAP error code from 4.00 to 5.31, not {code!r}")
        fault = Fault(next(self._ids), kind, path, count, seconds, code)
        self.faults.append(fault)
        self._update()
        log.info("fault %d set: %s", fault.id, fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        self._update()
        return len(self.faults) != before

    def clear(self) -> None:
        self.faults = []
        self.unreachable_until = 0.0
        self._update()

    def power_off(self, seconds: float) -> None:
        self.unreachable_until = time.monotonic() + seconds
        self.active = True

    @property
    def unreachable(self) -> bool:
        return time.monotonic() < self.unreachable_until

    def _update(self) -> None:
        self.faults = [f for f in self.faults if not f.spent]
        self.active = bool(self.faults) or self.unreachable or bool(self._held)

    def _take(self, kind: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.matches(path):
                fault.take()
                self._update()
                if self.acted is not None:
                    self.acted(fault)
                return fault
        return None

    def error_for(self, path: str) -> str | None:
        """The error code a request on `path` is to be answered with, if any (and count it)."""
        if not self.active:
            return None
        fault = self._take("error", path)
        return None if fault is None else fault.code

    # -- the datagram filter (pager.coap.seam.DatagramFilter) ------------------------------

    def incoming(self, data: bytes) -> bool:
        if self.unreachable:
            return False
        self._update()
        if not any(f.kind == "drop" for f in self.faults):
            return True
        try:
            message = aiocoap.Message.decode(data)
        except (aiocoap.error.UnparsableMessage, UnicodeDecodeError):
            return True
        if not message.code.is_request():
            return True
        fault = self._take("drop", request_path(message))
        if fault is not None:
            log.info(
                "fault %d: dropped a %s request to %s",
                fault.id,
                message.code,
                request_path(message),
            )
        return fault is None

    def outgoing(self, message: aiocoap.Message) -> float | None:
        """The loop time to hold an outgoing datagram back until (0 for none), or None to
        drop it (unreachable)."""
        if self.unreachable:
            return None
        key = (message.remote, message.mid)
        held = self._held.get(key)
        if held is not None:  # a retransmission, or the cached answer to one
            return held
        request = getattr(message, "request", None)
        if request is None or message.code is None or not message.code.is_response():
            return 0.0
        fault = self._take("delay", request_path(request))
        if fault is None:
            return 0.0
        self._held[key] = release = asyncio.get_running_loop().time() + fault.seconds
        asyncio.get_running_loop().call_at(release, self._unhold, key)
        self.active = True
        return release

    def _unhold(self, key: tuple[Any, int]) -> None:
        del self._held[key]
        self._update()

    def release(self, message: aiocoap.Message) -> bool:
        return not self.unreachable  # a power cycle since loses what was held back
