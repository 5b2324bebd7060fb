"""An emulator on another machine (or in another process), driven over its control API.

`RemoteEmulator` has the methods of `pager.app.Emulator`, with the same signatures and
return types, so that a test written for one runs against the other (the pytest plugin
hands out either, `pager.testing`). Several controls of `Emulator` are plain methods
(`pager(12)`, `add_fault(...)`), which a test calls without `await`: over HTTP each of them
has to wait for its answer. So every request runs on an event loop of this object's own
thread, with one aiohttp session: an async method awaits it there, a plain one blocks its
caller until the answer (or the timeout), and neither depends on which loop the test runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import os
import socket
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from pager.control.faults import Fault
from pager.control.journal_entry import Entry
from pager.control.rig import NotRunning, PagerState
from pager.control.verify import (
    Request,
    SequenceVerdict,
    Verdict,
    VerificationFailed,
    count,
    sequence,
)
from pager.domain import rules
from pager.domain.errors import Invalid
from pager.domain.pagemodes import AlertCode, Transmission
from pager.domain.timefmt import fmt, parse

TIMEOUT = 30.0
"""Seconds a control call waits for its answer (a long poll: this beyond its own timeout)."""

TOKEN_HEADER = "Authorization"

T = TypeVar("T")


class InvalidInput(Invalid, ValueError):
    """The control API refused a call's input (400), with its message.

    In process, a bad argument raises ValueError and a value the transmitter refuses (a
    clock out of its range) `pager.domain.errors.Invalid`; over HTTP both are a 400 that
    cannot be told apart, so this is both, and a test catching either catches it."""


class Unreachable(NotRunning):
    """The control API did not answer: the remote emulator stopped, is not there, or the
    network lost the call. A `NotRunning`, as a control of a stopped `Emulator` raises."""


class SameLoop(RuntimeError):
    """A plain (blocking) method was called on the event loop that serves the control API it
    calls: the answer could never come (docs/python.md)."""


def _local(host: str) -> bool:
    """Whether `host` names this machine: loopback, or an address every interface has."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class RemoteEmulator:
    """An emulator running elsewhere, reached at `url` (its control API: `http://HOST:PORT`,
    with a path prefix if a proxy adds one). `token` is its `control_token`, sent as
    `Authorization: Bearer`. `start()` / `stop()` (or `async with`) open and close the
    HTTP session only; the remote emulator runs on, as it was."""

    def __init__(self, url: str, token: str | None = None, timeout: float = TIMEOUT) -> None:
        try:
            base = URL(url)
            valid = base.scheme in ("http", "https") and bool(base.host) and base.port is not None
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"the control API's URL must be written http://HOST:PORT (or https://), not {url!r}"
            )
        self.url = str(base)
        self._base = base
        self._token = token
        self._timeout = timeout
        # Made by `start`, removed by `stop`: the loop every request runs on, its thread,
        # and the session (created on that loop, as aiohttp requires).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._device: Mapping[str, Any] | None = None  # GET /device, once asked

    def __repr__(self) -> str:
        return f"RemoteEmulator({self.url!r})"

    # -- the session --------------------------------------------------------------------

    async def start(self) -> RemoteEmulator:
        """Open the HTTP session. Nothing is sent yet: a remote that is not up shows in the
        first call (`health()` answers as a stopped emulator does)."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name=f"pager-remote {self.url}", daemon=True
            )
            thread.start()
            self._loop, self._thread = loop, thread
            self._session = await self._there(self._open())
        return self

    async def _open(self) -> aiohttp.ClientSession:
        headers = {} if self._token is None else {TOKEN_HEADER: f"Bearer {self._token}"}
        return aiohttp.ClientSession(headers=headers, raise_for_status=False)

    async def stop(self) -> None:
        """Close the HTTP session; a call in flight ends with `NotRunning`. Stopping
        again does nothing."""
        loop, thread, session = self._loop, self._thread, self._session
        self._loop = self._thread = self._session = None
        self._device = None
        if loop is None or thread is None:
            return
        if session is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(session), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        loop.close()

    async def _close(self, session: aiohttp.ClientSession) -> None:
        """Close the session, then let every call in flight end (its connection gone) before
        the loop stops: a caller of a call left on a stopped loop would wait for ever."""
        await session.close()
        calls = asyncio.all_tasks() - {asyncio.current_task()}
        if calls:
            await asyncio.wait(calls, timeout=self._timeout)
            for call in calls:
                call.cancel()  # one that did not end: its caller sees CancelledError
            await asyncio.wait(calls)

    async def __aenter__(self) -> RemoteEmulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _submit(self, call: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """`call`, run on the session's loop."""
        if self._loop is None:
            call.close()
            raise NotRunning(f"the session with {self.url} is not open: start it first")
        return asyncio.run_coroutine_threadsafe(call, self._loop)

    async def _there(self, call: Coroutine[Any, Any, T]) -> T:
        """`call`, run on the session's loop, awaited on the caller's (cancelling the one
        cancels the other: a long poll given up ends its HTTP request)."""
        return await asyncio.wrap_future(self._submit(call))

    def _blocking(self, call: Coroutine[Any, Any, T]) -> T:
        """`call`, run on the session's loop, its caller waiting (bounded by its timeout).

        A caller whose own loop serves the control API would wait out the whole timeout (the
        server cannot answer while its loop is blocked) and then read that the remote did not
        answer: that mistake is told at once instead."""
        if self._served_on_the_callers_loop():
            call.close()
            raise SameLoop(
                f"the control API at {self.url} is served on the event loop of the thread "
                "calling this plain method, which blocks that loop until its answer: it "
                "could never come. Run the emulator on a loop (or in a process) of its own, "
                "or call from another thread (docs/python.md, RemoteEmulator)"
            )
        return self._submit(call).result()

    def _served_on_the_callers_loop(self) -> bool:
        """Whether the caller's running loop listens on this URL's port on a local address
        (a selector loop's listening sockets; another kind of loop is not looked into)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        selector = getattr(loop, "_selector", None)
        accepting = getattr(socket, "SO_ACCEPTCONN", None)
        host, port = self._base.host or "", self._base.port
        if selector is None or accepting is None or not _local(host):
            return False
        for key in list(selector.get_map().values()):
            try:  # a copy of the descriptor, with its family read from it, closed after
                with socket.socket(fileno=os.dup(key.fd)) as sock:
                    listening = sock.getsockopt(socket.SOL_SOCKET, accepting)
                    bound = sock.getsockname()
            except OSError:
                continue
            if listening and bound[1] == port and _local(bound[0]):
                return True
        return False

    async def _exchange(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        timeout: float | None = None,
        read: Callable[[Any], T] = lambda answer: answer,
    ) -> tuple[int, T]:
        """One call of the control API: the status (one of `expect`) and the JSON answer as
        `read` makes it into what the in-process emulator returns. Any other status raises as
        the in-process emulator would (module docstring); an answer `read` cannot read (a
        server that is no pager-emulator's, or another version's) is a RuntimeError naming
        the call, not a KeyError from deep inside it."""
        session = self._session
        if session is None:
            raise NotRunning(f"the session with {self.url} is not open: start it first")
        url = self._base.joinpath(*path.strip("/").split("/"))
        seconds = self._timeout if timeout is None else timeout
        call = f"{method} {url}"
        try:
            async with session.request(
                method,
                url,
                json=body,
                params=query,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                status, text = response.status, await response.text()
        except TimeoutError:
            raise Unreachable(f"{call}: no answer within {seconds:g} s") from None
        except aiohttp.ClientError as e:
            if self._session is None:
                raise NotRunning(f"{call}: the session was closed (stop) during the call") from None
            raise Unreachable(f"{call}: {e or type(e).__name__}") from None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if status in expect and answer is not None:
            try:
                return status, read(answer)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise RuntimeError(
                    f"{call} answered {status}: {text[:200]!r}, not the JSON of a "
                    f"pager-emulator control API ({type(e).__name__}: {e})"
                ) from None
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, str):
            error = f"{text[:200]!r}, not the JSON of a pager-emulator control API"
        if status == 400:
            raise InvalidInput(error)
        if status in (401, 403):
            raise PermissionError(error)
        if status == 503:  # the remote stopped during the call
            raise NotRunning(error)
        raise RuntimeError(f"{call} answered {status}: {error}")

    async def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        read: Callable[[Any], T] = lambda answer: answer,
        **kw: Any,
    ) -> T:
        return (await self._there(self._exchange(method, path, body, read=read, **kw)))[1]

    def _call_now(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        read: Callable[[Any], T] = lambda answer: answer,
        **kw: Any,
    ) -> T:
        return self._blocking(self._exchange(method, path, body, read=read, **kw))[1]

    # -- what the transmitter is --------------------------------------------------------

    def _described(self) -> Mapping[str, Any]:
        """`GET /device`: configuration, fixed while the remote runs, so asked once a
        session."""
        if self._device is None:
            self._device = self._call_now("GET", "/device", read=_device)
        return self._device

    @property
    def uri(self) -> str:
        """The remote transmitter's CoAP endpoint: point the code under test here."""
        return str(self._described()["uri"])

    @property
    def port(self) -> int | None:
        """The remote transmitter's CoAP port."""
        return URL(self.uri).port

    @property
    def lrsn_address(self) -> tuple[str, int] | None:
        """Where the remote transmitter's LRSN interface listens; None: it has it off."""
        lrsn = self._described()["lrsn"]
        return None if lrsn is None else (str(lrsn["host"]), int(lrsn["port"]))

    @property
    def limits(self) -> rules.Limits:
        """The pager numbers (and other ranges) this transmitter accepts."""
        device = self._described()
        return rules.Limits(device["numberMin"], device["numberMax"])

    def health(self) -> dict[str, Any]:
        """As `Emulator.health()`; a remote that does not answer (or a session not open) is
        reported as a stopped emulator is, with `error` saying why, so that a readiness poll
        needs no `try`."""
        try:
            return dict(self._call_now("GET", "/health", expect=(200, 503), read=_health))
        except NotRunning as e:
            return {"ready": False, "coap": "stopped", "store": "closed", "error": str(e)}

    # -- clock --------------------------------------------------------------------------

    def clock_status(self) -> dict[str, Any]:
        return self._call_now("GET", "/clock", read=_clock)

    async def set_clock(self, when: datetime) -> dict[str, Any]:
        return await self._call("POST", "/clock/set", {"datetime": fmt(when)}, read=_clock)

    async def advance(self, seconds: float) -> dict[str, Any]:
        return await self._call("POST", "/clock/advance", {"seconds": seconds}, read=_clock)

    async def freeze(self) -> dict[str, Any]:
        return await self._call("POST", "/clock/freeze", read=_clock)

    async def unfreeze(self) -> dict[str, Any]:
        return await self._call("POST", "/clock/unfreeze", read=_clock)

    async def set_speed(self, factor: float) -> dict[str, Any]:
        return await self._call("POST", "/clock/speed", {"factor": factor}, read=_clock)

    # -- virtual pagers -----------------------------------------------------------------

    async def transmissions(
        self, number: int | None = None, since: datetime | None = None, after_id: int | None = None
    ) -> list[Transmission]:
        query = _query(number=number, since=since, after=after_id)
        return await self._call(
            "GET",
            "/transmissions",
            query=query,
            read=lambda a: _each(_transmission, a, "transmissions"),
        )

    def pager(self, number: int) -> PagerState:
        return self._call_now("GET", f"/pagers/{number}", read=_pager)

    def all_pagers(self) -> list[PagerState]:
        return self._call_now("GET", "/pagers", read=lambda a: _each(_pager, a, "pagers"))

    async def wait_for_page(
        self,
        number: int,
        timeout: float = 10.0,
        after_id: int | None = None,
        since: datetime | None = None,
    ) -> Transmission | None:
        query = _query(timeout=f"{timeout:.6f}", after=after_id, since=since)
        status, answer = await self._there(
            self._exchange(
                "GET",
                f"/pagers/{number}/wait",
                query=query,
                expect=(200, 408),
                timeout=self._timeout + max(timeout, 0.0),
                read=lambda a: a if "transmission" not in a else _transmission(a["transmission"]),
            )
        )
        if status == 200 and not isinstance(answer, Transmission):
            raise RuntimeError(f"GET /pagers/{number}/wait answered 200 with no transmission")
        return answer if status == 200 else None

    # -- faults -------------------------------------------------------------------------

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
        body = {
            "kind": kind, "path": path, "count": count, "seconds": seconds, "code": code,
            "probability": probability, "seed": seed, "direction": direction,
            "distribution": distribution, "min": min, "max": max, "median": median,
            "sigma": sigma, "window": window, "ret": ret,
        }  # fmt: skip
        return self._call_now("POST", "/faults", body, expect=(201,), read=_fault)

    def remove_fault(self, fault_id: int) -> bool:
        status, _ = self._blocking(
            self._exchange("DELETE", f"/faults/{fault_id}", expect=(200, 404))
        )
        return status == 200

    def clear_faults(self) -> None:
        self._call_now("DELETE", "/faults")

    def list_faults(self) -> list[Fault]:
        """The faults still set, oldest first."""
        return self._call_now("GET", "/faults", read=lambda a: _each(_fault, a, "faults"))

    @property
    def unreachable(self) -> bool:
        """Whether a power cycle keeps the transmitter unreachable now."""
        return self._call_now("GET", "/faults", read=lambda a: _boolean(a["unreachable"]))

    async def power_cycle(self, seconds: float) -> None:
        await self._call("POST", "/power-cycle", {"seconds": seconds})

    # -- the request journal ------------------------------------------------------------

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
        query = _query(method=method, path=path, number=number, code=code, after=after, limit=limit)
        if since is not None:  # wall time with its offset, not the transmitter's
            query["since"] = since.isoformat()
        return self._call_now(
            "GET", "/journal", query=query, read=lambda a: _each(Entry.from_json, a, "entries")
        )

    def clear_journal(self) -> None:
        self._call_now("DELETE", "/journal")

    # -- verification -------------------------------------------------------------------

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
        """`POST /journal/verify`. The pattern is checked here first, so that a bad one
        raises the `BadPattern` the in-process emulator raises; a 409 is rebuilt into the
        verdict it reached, and raised as the same `VerificationFailed`."""
        pattern = Request(method, path, query, body, contains, code)
        call = {**pattern.to_json(), **count(exactly, at_least, at_most).to_json()}
        if after is not None:
            call["after"] = after
        status, verdict = self._blocking(
            self._exchange(
                "POST", "/journal/verify", call, expect=(200, 409), read=Verdict.from_json
            )
        )
        if status == 409:
            raise VerificationFailed(verdict)
        return list(verdict.matches)

    def verify_in_order(self, *patterns: Request, after: int | None = None) -> list[Entry]:
        """`POST /journal/verify-sequence`, as `verify` is `POST /journal/verify`."""
        call: dict[str, Any] = {"patterns": [p.to_json() for p in sequence(patterns)]}
        if after is not None:
            call["after"] = after
        status, verdict = self._blocking(
            self._exchange(
                "POST",
                "/journal/verify-sequence",
                call,
                expect=(200, 409),
                read=SequenceVerdict.from_json,
            )
        )
        if status == 409:
            raise VerificationFailed(verdict)
        return list(verdict.matches)

    # -- reset --------------------------------------------------------------------------

    async def reset(self) -> None:
        await self._call("POST", "/reset")


# -- the control API's JSON, read back into what the in-process emulator returns ----------


def _query(**values: int | datetime | str | None) -> dict[str, str]:
    """Query values as the control API reads them; None: not given."""
    query = {}
    for name, value in values.items():
        if value is not None:
            query[name] = fmt(value) if isinstance(value, datetime) else str(value)
    return query


def _each(read: Callable[[Any], T], answer: Mapping[str, Any], name: str) -> list[T]:
    """`answer[name]`, a list, each item read."""
    items = answer[name]
    if not isinstance(items, list):
        raise TypeError(f"{name} is not a list")
    return [read(item) for item in items]


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not a boolean")
    return value


def _device(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    """`GET /device`'s answer, with what is read from it there and of the types read."""
    if not isinstance(answer["uri"], str):
        raise TypeError("uri is not a string")
    for name in ("numberMin", "numberMax"):
        if not isinstance(answer[name], int):
            raise TypeError(f"{name} is not an integer")
    return answer


def _health(answer: Mapping[str, Any]) -> Mapping[str, Any]:
    _boolean(answer["ready"])
    return answer


def _clock(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {"now": parse(answer["now"]), "frozen": answer["frozen"], "speed": answer["speed"]}


def _codes(codes: list[Mapping[str, Any]]) -> tuple[AlertCode, ...]:
    return tuple(AlertCode(c["code"], c["value"]) for c in codes)


def _transmission(t: Mapping[str, Any]) -> Transmission:
    return Transmission(
        id=t["id"],
        time=parse(t["time"]),
        number=t["number"],
        system_id=t["systemId"],
        page_mode=t["pageMode"],
        message=t["message"],
        override_codes=_codes(t["overrideCodes"]),
        session_id=t["sessionId"],
        source="lrsn" if t["source"] == "lrsn" else "coap",
        power=t.get("power"),
        color=t.get("color"),
    )


def _pager(p: Mapping[str, Any]) -> PagerState:
    last, until = p["lastTransmission"], p["alertingUntil"]
    return PagerState(
        number=p["number"],
        state=p["state"],
        page_mode=p["pageMode"],
        message=p["message"],
        override_codes=_codes(p["overrideCodes"]),
        alerting_until=None if until is None else parse(until),
        last_transmission=None if last is None else _transmission(last),
    )


def _fault(f: Mapping[str, Any]) -> Fault:
    """A fault's JSON names are its attributes' (`pager.control.http.fault_out`)."""
    return Fault(**{field.name: f[field.name] for field in fields(Fault) if field.name in f})
