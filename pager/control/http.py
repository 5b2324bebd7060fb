"""The control API: HTTP/JSON beside the device's CoAP API, for test rigs (docs/control-api.md).
Bound to 127.0.0.1 by default. Every answer is JSON; bad input is 400 with {"error": "..."};
nothing here changes the device API.

Every endpoint is one `Route` in `ROUTES`: the app is built from that table, and so are the
query names each endpoint accepts, its OpenAPI 3.1 description (`GET /openapi.json`) and the
index at `GET /api`, so none of them can drift from what is served. The answers are pydantic
models for the same reason: the schemas published are the ones the answers are dumped from.
"""

import asyncio
import hmac
import ipaddress
import json
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from yarl import URL

from pager import wire
from pager.control import verify
from pager.control.device_request import BadDeviceRequest, DeviceTimeout
from pager.control.faults import (
    COUNT_MAX,
    ERROR_CODE,
    RET_MAX,
    RET_MIN,
    SECONDS_MAX,
    SEED_MAX,
    SIGMA_MAX,
    WINDOW_MAX,
    Direction,
    Distribution,
    Fault,
    Kind,
)
from pager.control.journal import METHODS, Filters, sliced
from pager.control.journal_entry import Entry
from pager.control.rig import NotRunning, PagerState, RigControls
from pager.control.static_files import PAGE, StaticFiles
from pager.domain import digits
from pager.domain.errors import Refused
from pager.domain.timefmt import WRITTEN, fmt, parse

WAIT_MAX = 300.0
INT_MAX = 10**18 - 1  # 18 digits: fits SQLite's 64 bits
BODY_MAX = 1024 * 1024  # a request body over it is 413, from aiohttp before any handler
STREAM_CHUNK = 64 * 1024  # bytes of JSON Lines written at a time
SINCE = "an ISO 8601 date and time with its UTC offset, such as 2026-01-15T18:00:00Z"
_DECIMAL = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18})?")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Empty(_In):
    """Endpoints that take no parameters: only no body or {}."""


class SetClock(_In):
    datetime: str


class Advance(_In):
    seconds: float = Field(ge=-10 * 365 * 86400, le=10 * 365 * 86400)


class Speed(_In):
    factor: float = Field(gt=0, le=10_000)


class FaultIn(_In):
    """Bounds of one member each; what depends on the kind `FaultInjector.add` checks."""

    kind: Kind
    path: str | None = Field(None, pattern=r"^/")
    count: int | None = Field(None, ge=1, le=COUNT_MAX)
    probability: float = Field(1.0, ge=0, le=1)
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    direction: Direction | None = None
    seconds: float | None = Field(None, ge=0, le=SECONDS_MAX)
    distribution: Distribution | None = None
    min: float | None = Field(None, ge=0, le=SECONDS_MAX)
    max: float | None = Field(None, ge=0, le=SECONDS_MAX)
    median: float | None = Field(None, gt=0, le=SECONDS_MAX)
    sigma: float | None = Field(None, ge=0, le=SIGMA_MAX)
    window: int | None = Field(None, ge=2, le=WINDOW_MAX)
    code: str = Field("5.03", pattern=ERROR_CODE)
    ret: int = Field(7, ge=RET_MIN, le=RET_MAX)


class PowerCycle(_In):
    seconds: float = Field(gt=0, le=3600)


class PatternIn(_In):
    """A request pattern (`pager.control.verify.Request`): every part left out matches
    anything."""

    method: str | None = Field(None, description="GET, POST, PUT, DELETE, ... (any case)")
    path: str | None = Field(None, description="the whole path, e.g. /v1/sessions")
    query: dict[str, str | int] | None = Field(
        None, description="query options the request must carry, name to value; others may"
    )
    body: Any = Field(None, description="the decoded body (JSON or CBOR), as JSON")
    contains: bool = Field(
        False,
        description="false: the body equals `body`; true: every field and list item of "
        "`body` is in it, every string of it contained in the body's",
    )
    code: str | None = Field(None, description="the answer's code, e.g. 2.01")


class VerifyIn(PatternIn):
    exactly: int | None = Field(None, description="this many requests match")
    at_least: int | None = Field(None, description="at least this many (the default: 1)")
    at_most: int | None = Field(None, description="at most this many")
    after: int | None = Field(None, ge=0, description="only journal entries after this id")


class SequenceIn(_In):
    patterns: list[PatternIn] = Field(description="matched by requests in this order")
    after: int | None = Field(None, ge=0, description="only journal entries after this id")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClockOut(_Answer):
    now: str = Field(description="the transmitter's local time, YYYY-MM-DDTHH:MM:SS")
    frozen: bool
    speed: float = Field(description="transmitter seconds per real second")


class PagerOut(_Answer):
    number: int
    state: Literal["idle", "alerting"]
    pageMode: str | None = Field(description="while alerting: the mode of the latest page")
    message: str | None = Field(description="while alerting: its displayed message")
    overrideCodes: list[wire.AlertCodeOut] = Field(description="while alerting: its codes")
    alertingUntil: str | None = Field(description="while alerting: when it stops")
    lastTransmission: wire.PageOut | None = Field(description="the latest page, alerting or not")


class PagersOut(_Answer):
    pagers: list[PagerOut] = Field(description="every pager ever paged, by number")


class TransmissionsOut(_Answer):
    transmissions: list[wire.PageOut] = Field(description="oldest first")


class Paged(_Answer):
    paged: Literal[True]
    transmission: wire.PageOut


class NotPaged(_Answer):
    paged: Literal[False]
    number: int
    timeout: float


class FaultOut(_Answer):
    id: int
    kind: Kind
    path: str | None = Field(description="the only path it applies to; null: every path")
    remaining: int | None = Field(description="requests it still applies to; null: until removed")
    seconds: float = Field(
        description="a fixed delay's length, a fixed duplicate's lag, a reorder's longest hold"
    )
    code: str = Field(description="an error fault's response code")
    hits: int = Field(description="datagrams it has acted on")
    probability: float = Field(description="the chance it acts on each datagram it matches")
    seed: int | None = Field(description="its random generator's seed; null: from the OS")
    direction: Direction | None = Field(description="drop, duplicate, reorder: what it acts on")
    distribution: Distribution | None = Field(description="delay, duplicate: how times are drawn")
    min: float | None = Field(description="a uniform distribution's least seconds")
    max: float | None = Field(description="a uniform distribution's most seconds")
    median: float | None = Field(description="a lognormal distribution's median seconds")
    sigma: float | None = Field(description="a lognormal distribution's sigma (of its log)")
    window: int | None = Field(description="reorder: datagrams gathered before they go")
    ret: int = Field(description="an error fault's LRSN result code, for LRSN requests")


class FaultsOut(_Answer):
    faults: list[FaultOut] = Field(description="the faults set, oldest first")
    unreachable: bool = Field(description="a power cycle keeps the transmitter unreachable now")


class FaultsCleared(_Answer):
    faults: list[FaultOut] = Field(description="always empty")


class FaultRemoved(_Answer):
    removed: int


class PowerCycled(_Answer):
    unreachableFor: float


class ResetDone(_Answer):
    reset: Literal[True]


class HealthOut(_Answer):
    ready: bool = Field(description="the CoAP port serves and the last commit succeeded")
    coap: Literal["serving", "powered off", "stopped"]
    store: Literal["writable", "failing", "closed"]
    error: str | None = Field(None, description="why the last commit failed, while it does")


class LrsnAddressOut(_Answer):
    host: str
    port: int


class TransmitterOut(_Answer):
    index: int = Field(description="from 1, in the fleet's order")
    control: str | None = Field(description="its control API (and pager wall); null: none")
    coap: str = Field(description="its CoAP endpoint")


class DeviceOut(_Answer):
    uri: str = Field(
        description="the device API's CoAP endpoint; when the emulator listens on every "
        "interface, its host is the one this request was addressed to"
    )
    numberMin: int = Field(description="the lowest pager number it accepts")
    numberMax: int = Field(description="the highest pager number it accepts")
    staffPagers: list[int] = Field(description="the numbers that are staff pagers, ascending")
    fleet: list[TransmitterOut] = Field(
        description="every transmitter of the fleet this one belongs to (itself alone if none)"
    )
    lrsn: LrsnAddressOut | None = Field(
        description="where its LRSN interface (TCP) listens, the host as `uri`'s; null: off"
    )


class DeviceRequestIn(_In):
    """A request to the device API, sent over CoAP by the control API (`POST /device-request`)."""

    method: Literal["GET", "POST", "PUT", "DELETE"]
    path: str = Field(
        pattern=r"^/v1(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*$", description="e.g. /v1/sessions"
    )
    query: dict[str, str | int] | None = Field(None, description='e.g. {"number": 12}')
    body: Any = Field(None, description="sent as JSON (Content-Format 50); null: no payload")


class DeviceAnswerOut(_Answer):
    code: str = Field(description="the CoAP answer's code, e.g. 2.01 or 4.00")
    body: Any = Field(description="its payload decoded as JSON; null: none, or not JSON")


class FaultMarkOut(_Answer):
    id: int
    kind: str


class EntryOut(_Answer):
    """One recorded exchange: `pager.control.journal_entry.Entry`, field by field."""

    id: int = Field(description="from 1, never reused (a clear included)")
    time: str = Field(description="wall time of the request's arrival, ISO 8601, UTC")
    device_time: str = Field(description="the transmitter's clock then, YYYY-MM-DDTHH:MM:SS")
    peer: str = Field(description="host:port of the client ([host]:port for IPv6)")
    type: Literal["CON", "NON"] | None = Field(description="null: an LRSN request")
    mid: int | None
    token: str | None = Field(description="hex")
    method: str = Field(description="GET, POST, PUT, DELETE, FETCH, PATCH, iPATCH or dotted")
    path: str
    query: list[str]
    content_format: int | None
    body: Any = Field(description="the request's payload decoded (JSON or CBOR as JSON)")
    body_base64: str | None = Field(description="a payload that does not decode, as base64")
    observe: int | None = Field(description="the request's Observe: 0 registers, 1 ends")
    block1: int | None = Field(description="the Block1 block number the request carried")
    block2: int | None = Field(description="the Block2 block number asked for or answered")
    number: int | None = Field(description="the pager number the request names")
    code: str | None = Field(description="the answer's code; null: no answer")
    answer_content_format: int | None
    answer: Any = Field(description="the answer's payload decoded")
    answer_base64: str | None
    latency_ms: float | None = Field(description="arrival to the answer leaving; null: never")
    duplicate: bool = Field(description="a retransmission answered from the duplicate cache")
    fault: FaultMarkOut | None = Field(description="the fault that acted on the exchange")
    transport: Literal["coap", "lrsn"] = Field(description="lrsn: a request over LRSN")


class JournalOut(_Answer):
    entries: list[EntryOut] = Field(description="oldest first")


class JournalCleared(_Answer):
    entries: list[EntryOut] = Field(description="always empty")


class PatternOut(_Answer):
    """A pattern as given: the parts not given are left out."""

    method: str | None = None
    path: str | None = None
    query: dict[str, str] | None = None
    body: Any = None
    contains: bool = False
    code: str | None = None


class DifferenceOut(_Answer):
    part: str = Field(description="method, path, query.NAME, body, body.FIELD[i]..., code")
    expected: Any = Field(description="what the pattern asked; null for an unexpected field")
    actual: Any = Field(description="what the request had; null when it had none")
    kind: Literal["different", "missing", "unexpected", "not_contained"]


class NearMissOut(_Answer):
    entry: EntryOut
    differences: list[DifferenceOut] = Field(description="the parts that differed")


class VerdictOut(_Answer):
    holds: bool
    pattern: PatternOut
    expected: dict[str, int] = Field(description="the count condition: exactly, at_least, at_most")
    count: int = Field(description="requests that matched")
    matches: list[EntryOut] = Field(description="the journal entries that matched")
    near_misses: list[NearMissOut] = Field(
        description="when too few matched: the closest requests, best first"
    )


class UnmatchedOut(_Answer):
    index: int = Field(description="the pattern (from 0) that matched no request")
    after: int | None = Field(description="the entry matched by the pattern before it")
    earlier: list[EntryOut] = Field(
        description="requests before that which it matches: it came out of order"
    )
    near_misses: list[NearMissOut] = Field(description="the closest requests after `after`")


class SequenceVerdictOut(_Answer):
    holds: bool
    patterns: list[PatternOut]
    matches: list[EntryOut] = Field(description="the entry each pattern matched, in order")
    unmatched: UnmatchedOut | None = Field(description="where it stopped; null: it holds")


class ErrorAnswer(_Answer):
    error: str = Field(description="what was wrong, in a sentence")


class EndpointOut(_Answer):
    method: str
    path: str
    summary: str


class IndexOut(_Answer):
    endpoints: list[EndpointOut]
    openapi: str = Field(description="where the OpenAPI 3.1 document is served")


class BadInput(Exception):
    pass


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=str))


def _answer(model: BaseModel, status: int = 200) -> web.Response:
    return _json(model.model_dump(mode="json"), status)


def _error(message: str, status: int) -> web.Response:
    return _answer(ErrorAnswer(error=message), status)


def pager_out(p: PagerState) -> PagerOut:
    return PagerOut(
        number=p.number,
        state=p.state,
        pageMode=p.page_mode,
        message=p.message,
        overrideCodes=wire.alert_codes_out(p.override_codes),
        alertingUntil=None if p.alerting_until is None else fmt(p.alerting_until),
        lastTransmission=(
            None if p.last_transmission is None else wire.page_out(p.last_transmission)
        ),
    )


def fault_out(f: Fault) -> FaultOut:
    return FaultOut(
        id=f.id,
        kind=f.kind,  # type: ignore[arg-type]  # FaultIn admitted only these
        path=f.path,
        remaining=f.remaining,
        seconds=f.seconds,
        code=f.code,
        hits=f.hits,
        probability=f.probability,
        seed=f.seed,
        direction=f.direction,  # type: ignore[arg-type]  # as FaultIn admitted them
        distribution=f.distribution,  # type: ignore[arg-type]
        min=f.min,
        max=f.max,
        median=f.median,
        sigma=f.sigma,
        window=f.window,
        ret=f.ret,
    )


def clock_out(status: dict[str, Any]) -> ClockOut:
    return ClockOut(now=fmt(status["now"]), frozen=status["frozen"], speed=status["speed"])


async def _body(request: web.Request, model: type[_In]) -> Any:
    try:
        raw = await request.read()
        return model.model_validate_json(raw or b"{}")
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(map(str, err["loc"])) or "body"
        raise BadInput(f"{where}: {err['msg']}") from None


def _bound(lo: int, hi: float) -> str:
    return f"from {lo} to {hi:g}" if hi < INT_MAX else f"of {lo} or more"


def _integer(text: str, what: str, lo: int = 0, hi: int = INT_MAX) -> int:
    """Every integer this API reads from a path or a query, read as the CoAP query is
    (`pager.domain.digits`)."""
    value = digits.integer(text, lo, hi)
    if value is None:
        raise BadInput(f"{what} must be an integer {_bound(lo, hi)}, in digits 0-9")
    return value


def _decimal(text: str, what: str, lo: int, hi: float) -> float:
    """A number of seconds: digits 0-9 with an optional ".digits", a bounded number of them
    (`float` takes "nan", "inf" and "1e999")."""
    if _DECIMAL.fullmatch(text):
        value = float(text)
        if lo <= value <= hi:
            return value
    raise BadInput(
        f"{what} must be a number {_bound(lo, hi)}, in digits 0-9 with an optional fraction"
    )


def _query_int(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    return None if text is None else _integer(text, name)


def _time(text: str, name: str) -> datetime:
    try:
        return parse(text)
    except ValueError:
        raise BadInput(f"{name} must be {WRITTEN}") from None


def _query_time(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    return None if text is None else _time(text, name)


def _pager_number(rig: RigControls, text: str) -> int:
    limits = rig.limits
    return _integer(text, "the pager number", limits.number_min, limits.number_max)


def _number(request: web.Request, rig: RigControls) -> int:
    return _pager_number(rig, request.match_info["number"])


def _query(request: web.Request, *known: str) -> None:
    """Every name known and given once: of two values, which one is meant cannot be known."""
    seen: set[str] = set()
    for name, _ in request.query.items():  # iterating the names gives each once
        if name not in known:
            raise BadInput(
                f"unknown query parameter {name}; this call takes " + (", ".join(known) or "none")
            )
        if name in seen:
            raise BadInput(f"query parameter {name} given twice")
        seen.add(name)


def _guard(token: str | None) -> Middleware:
    """Without a token only loopback peers may use the API; with one, every request must
    carry it as `Authorization: Bearer <token>`.

    Without a token a loopback peer may be a browser running some other site's script, so
    two more rules hold then. A request another page sent (its `Origin` not this API's) is
    refused: a form or a fetch() with a text/plain body needs no CORS preflight, and would
    reset the transmitter or page its guests. And the `Host` must be an IP address,
    localhost or this machine's name: a site whose name its DNS turns into 127.0.0.1
    (DNS rebinding) is its own origin, and could read the answers too. With a token neither
    can do anything: another page cannot send the header, nor read the token the page
    keeps."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None and request.match_info.route.name in PUBLIC:
            pass  # the page's files: no data in them, and the page asks for the token
        elif token is not None:
            # as bytes: compare_digest refuses str that is not ASCII
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, f"Bearer {token}".encode()):
                return _error("a valid Authorization: Bearer token is required", 401)
        elif not _loopback(request.remote):
            return _error(
                "the control API answers loopback peers only unless control_token is set", 403
            )
        elif (refused := _another_site(request)) is not None:
            return _error(refused, 403)
        return await handler(request)

    return guard


def _another_site(request: web.Request) -> str | None:
    """Why a request looks sent by another site's page (`_guard`); None: it does not."""
    host = request.headers.get("Host")
    if host is not None and not _local_name(host):
        return (
            f"the control API answers requests addressed to an IP address or localhost "
            f"unless control_token is set, not to {host!r}"
        )
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() != f"{request.scheme}://{host}".lower():
        return f"the control API answers no request from another web page (Origin {origin})"
    return None


def _local_name(host: str) -> bool:
    """Whether a `Host` header names an IP address, localhost or this machine."""
    try:
        name = (URL(f"http://{host}").host or "").lower().rstrip(".")
    except ValueError:
        return False
    if name in ("localhost", socket.gethostname().lower()) or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (BadInput, Refused) as e:
        return _error(str(e), 400)
    except NotRunning as e:  # a long poll under way when the emulator stops
        return _error(str(e), 503)
    except DeviceTimeout as e:
        return _error(str(e), 504)
    except web.HTTPException as e:
        if e.status >= 400:
            answer = _error(e.reason, e.status)
            if "Allow" in e.headers:  # a 405 says which methods there are
                answer.headers["Allow"] = e.headers["Allow"]
            return answer
        raise


@web.middleware
async def _finish_for_gone_clients(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp cancels the handler of a client that went away (`runner`), so that a long
    poll ends, and its wait is forgotten, with its connection (and a journal being streamed
    stops); every other call finishes
    what it started (a reset half done would leave the pager board behind the store)."""
    if request.match_info.route.name in ("wait_for_page", "get_journal", "events"):  # reads
        return await handler(request)
    return await asyncio.shield(handler(request))


# ---- the endpoints ----------------------------------------------------------------------

Body = Any  # the route's body model, read and checked; None for a route without one
Call = Callable[[RigControls, web.Request, Body], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    """A path or query parameter, as OpenAPI describes it."""

    name: str
    where: Literal["path", "query"]
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  # the aiohttp route's name and the OpenAPI operationId
    summary: str
    call: Call
    # status -> (when, what); None: a JSON object of no fixed shape (the OpenAPI document)
    answers: Mapping[int, tuple[str, type[BaseModel] | None]]
    params: tuple[Param, ...] = ()
    body: type[_In] | None = None
    description: str = ""
    media: str = "application/json"  # of its answers other than errors

    @property
    def query(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params if p.where == "query")


INTEGER = {"type": "integer", "minimum": 0}
TIME_SCHEMA = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"}
PAGER_NUMBER = Param("number", "path", INTEGER, "a pager number")


async def _health(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    health = HealthOut(**rig.health())
    return _json(health.model_dump(mode="json", exclude_none=True), 200 if health.ready else 503)


async def _get_index(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(
        IndexOut(
            endpoints=[
                EndpointOut(method=r.method, path=r.path, summary=r.summary) for r in ROUTES
            ],
            openapi="/openapi.json",
        )
    )


async def _get_openapi(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _json(openapi(rig))


def _reachable(uri: str, request: web.Request) -> str:
    url = URL(uri)
    if url.host in ("::", "0.0.0.0") and request.url.host:
        # where it listens, not an address to send to: the host the rig reached this API at
        # is the one it can reach the port at
        url = url.with_host(request.url.host)
    return str(url)


def device_out(rig: RigControls, request: web.Request) -> DeviceOut:
    limits = rig.limits
    lrsn = None
    if (address := rig.lrsn_address) is not None:
        host = address[0]
        if host in ("::", "0.0.0.0") and request.url.host:
            host = request.url.host  # as for `uri`: where a rig reaches it
        lrsn = LrsnAddressOut(host=host, port=address[1])
    fleet = [
        TransmitterOut(
            index=i,
            control=None if t._control_uri is None else _reachable(t._control_uri, request),
            coap=_reachable(t.uri, request),
        )
        for i, t in enumerate(rig.fleet, 1)
    ]
    return DeviceOut(
        uri=_reachable(rig.uri, request),
        numberMin=limits.number_min,
        numberMax=limits.number_max,
        staffPagers=sorted(rig._staff_pagers),
        fleet=fleet,
        lrsn=lrsn,
    )


async def _device(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(device_out(rig, request))


_FILES = StaticFiles()


async def _page(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _FILES.response(PAGE)


async def _static(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _FILES.response(request.match_info["file"])


async def _events(rig: RigControls, request: web.Request, body: Body) -> web.StreamResponse:
    return await rig._wall_stream.serve(request, device_out(rig, request).model_dump(mode="json"))


async def _device_request(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    try:
        code, answer = await rig._device_request(body.method, body.path, body.query, body.body)
    except BadDeviceRequest as e:
        raise BadInput(str(e)) from None
    return _answer(DeviceAnswerOut(code=code, body=answer))


async def _get_clock(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(clock_out(rig.clock_status()))


async def _set_clock(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(clock_out(await rig.set_clock(_time(body.datetime, "datetime"))))


async def _advance(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(clock_out(await rig.advance(body.seconds)))


async def _freeze(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(clock_out(await rig.freeze()))


async def _unfreeze(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(clock_out(await rig.unfreeze()))


async def _speed(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(clock_out(await rig.set_speed(body.factor)))


async def _transmissions(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    number = request.query.get("number")
    records = await rig.transmissions(
        None if number is None else _pager_number(rig, number),
        _query_time(request, "since"),
        _query_int(request, "after"),
    )
    return _answer(TransmissionsOut(transmissions=[wire.page_out(t) for t in records]))


async def _pagers(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(PagersOut(pagers=[pager_out(p) for p in rig.all_pagers()]))


async def _pager(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(pager_out(rig.pager(_number(request, rig))))


async def _wait(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    number = _number(request, rig)
    timeout = _decimal(request.query.get("timeout", "10"), "timeout (seconds)", 0, WAIT_MAX)
    tx = await rig.wait_for_page(
        number, timeout, _query_int(request, "after"), _query_time(request, "since")
    )
    if tx is None:
        return _answer(NotPaged(paged=False, number=number, timeout=timeout), 408)
    return _answer(Paged(paged=True, transmission=wire.page_out(tx)))


async def _faults(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    return _answer(
        FaultsOut(faults=[fault_out(f) for f in rig.list_faults()], unreachable=rig.unreachable)
    )


async def _add_fault(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    try:
        fault = rig.add_fault(**body.model_dump())
    except ValueError as e:  # a member that does not fit the others (a window on a drop)
        raise BadInput(str(e)) from None
    return _answer(fault_out(fault), 201)


async def _clear_faults(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    rig.clear_faults()
    return _answer(FaultsCleared(faults=[]))


async def _remove_fault(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    fault_id = _integer(request.match_info["id"], "a fault id", 1)
    if not rig.remove_fault(fault_id):
        return _error(f"no fault {fault_id}", 404)
    return _answer(FaultRemoved(removed=fault_id))


async def _power_cycle(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    await rig.power_cycle(body.seconds)
    return _answer(PowerCycled(unreachableFor=body.seconds))


def _journal_filters(request: web.Request, after: int | None = None) -> Filters:
    """The filters of `RigControls.journal` a query gives, each checked."""
    q = request.query
    limit = q.get("limit")
    text = q.get("since")
    since = None
    if text is not None:
        try:  # a "+" left unescaped in a URL's query arrives as a space
            since = datetime.fromisoformat(text.replace(" ", "+"))
        except ValueError:
            raise BadInput(f"since must be {SINCE}") from None
        if since.utcoffset() is None:
            raise BadInput(f"since must be {SINCE}")
    try:
        return Filters(
            method=q.get("method"),
            path=q.get("path"),
            number=_query_int(request, "number"),
            code=q.get("code"),
            since=since,
            after=_query_int(request, "after"),
            limit=None if limit is None else _integer(limit, "limit", 1),
        )
    except ValueError as e:
        raise BadInput(str(e)) from None


async def _get_journal(rig: RigControls, request: web.Request, body: Body) -> web.StreamResponse:
    form = request.query.get("format", "json")
    if form not in ("json", "jsonl"):
        raise BadInput(f"format must be json or jsonl, not {form!r}")
    entries = sliced(rig._journal_entries(_journal_filters(request)))
    if form == "json":  # as `_answer(JournalOut(...))` writes it, an entry at a time
        parts = [_entry_json(entry) async for entry in entries]
        text = '{"entries": [' + ", ".join(parts) + "]}"
        return web.Response(text=text, content_type="application/json")
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    lines: list[bytes] = []
    size = 0
    async for entry in entries:
        line = json.dumps(entry.to_json()).encode() + b"\n"
        lines.append(line)
        size += len(line)
        if size >= STREAM_CHUNK:
            await response.write(b"".join(lines))
            lines, size = [], 0
    await response.write(b"".join(lines))
    await response.write_eof()
    return response


def _entry_json(entry: Entry) -> str:
    return json.dumps(EntryOut.model_validate(entry.to_json()).model_dump(mode="json"), default=str)


async def _clear_journal(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    rig.clear_journal()
    return _answer(JournalCleared(entries=[]))


async def _reset(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    await rig.reset()
    return _answer(ResetDone(reset=True))


def _pattern(given: PatternIn) -> verify.Request:
    return verify.Request(
        given.method, given.path, given.query, given.body, given.contains, given.code
    )


async def _verdict(
    model: type[_Answer], verdict: verify.Verdict | verify.SequenceVerdict
) -> web.Response:
    """Dumped through the answer model, as every answer is; the parts a pattern left out
    stay out (`exclude_unset`), a journal entry's nulls stay in. In a thread, and the
    matches (every entry of the journal, it may be) an entry at a time, so that no one long
    call holds the loop that serves CoAP."""
    text = await asyncio.to_thread(_verdict_text, model, verdict)
    return web.Response(
        text=text, status=200 if verdict.holds else 409, content_type="application/json"
    )


def _verdict_text(model: type[_Answer], verdict: verify.Verdict | verify.SequenceVerdict) -> str:
    data = verdict.to_json()
    data["matches"] = []
    answer = model.model_validate(data).model_dump(mode="json", exclude_unset=True)
    parts = []
    for name, value in answer.items():
        if name == "matches":
            text = "[" + ", ".join(_entry_json(e) for e in verdict.matches) + "]"
        else:
            text = json.dumps(value, default=str)
        parts.append(f"{json.dumps(name)}: {text}")
    return "{" + ", ".join(parts) + "}"


async def _verify(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    try:
        pattern = _pattern(body)
        expected = verify.count(body.exactly, body.at_least, body.at_most)
    except verify.BadPattern as e:
        raise BadInput(str(e)) from None
    entries = await _journal_read(rig, body.after)
    verdict = await asyncio.to_thread(verify.verify, entries, pattern, expected)
    return await _verdict(VerdictOut, verdict)


async def _verify_sequence(rig: RigControls, request: web.Request, body: Body) -> web.Response:
    try:
        patterns = verify.sequence([_pattern(p) for p in body.patterns])
    except verify.BadPattern as e:
        raise BadInput(str(e)) from None
    entries = await _journal_read(rig, body.after)
    verdict = await asyncio.to_thread(verify.verify_in_order, entries, patterns)
    return await _verdict(SequenceVerdictOut, verdict)


async def _journal_read(rig: RigControls, after: int | None) -> list[Entry]:
    """The entries after `after`, decoded on the loop a slice at a time: a verdict over them
    is then worked out in a thread, as they are frozen and the loop serves CoAP meanwhile."""
    return [entry async for entry in sliced(rig._journal_entries(Filters(after=after)))]


_CLOCK = {200: ("the clock after the change", ClockOut)}

ROUTES: tuple[Route, ...] = (
    Route("GET", "/api", "index", "this list of endpoints", _get_index,
          {200: ("every endpoint", IndexOut)}),
    Route("GET", "/openapi.json", "openapi", "the OpenAPI 3.1 description of this API",
          _get_openapi, {200: ("the document", None)}),
    Route("GET", "/device", "device", "the CoAP endpoint and pager numbers of the transmitter",
          _device, {200: ("the device", DeviceOut)}),
    Route("GET", "/clock", "get_clock", "read the transmitter's clock", _get_clock,
          {200: ("the clock", ClockOut)}),
    Route("POST", "/clock/set", "set_clock", "set the clock to a local time", _set_clock,
          _CLOCK, body=SetClock,
          description="What the new time makes due (automatic pages, the daily statistics "
          "clear) happens before the answer."),
    Route("POST", "/clock/advance", "advance_clock", "move the clock by seconds (negative: back)",
          _advance, _CLOCK, body=Advance),
    Route("POST", "/clock/freeze", "freeze_clock", "stop the clock where it is", _freeze,
          _CLOCK, body=Empty),
    Route("POST", "/clock/unfreeze", "unfreeze_clock", "let the clock run again from where it "
          "stopped", _unfreeze, _CLOCK, body=Empty),
    Route("POST", "/clock/speed", "set_clock_speed", "run the clock faster or slower", _speed,
          _CLOCK, body=Speed),
    Route("GET", "/transmissions", "list_transmissions", "every page sent, oldest first",
          _transmissions, {200: ("the transmissions that match", TransmissionsOut)},
          (Param("number", "query", INTEGER, "only pages to this pager"),
           Param("since", "query", TIME_SCHEMA, "only pages sent at or after this local time"),
           Param("after", "query", INTEGER, "only transmission records with a greater id"))),
    Route("GET", "/pagers", "list_pagers", "what every pager ever paged shows", _pagers,
          {200: ("the pagers, by number", PagersOut)}),
    Route("GET", "/pagers/{number}", "get_pager", "what one pager shows", _pager,
          {200: ("the pager (idle if never paged)", PagerOut)}, (PAGER_NUMBER,)),
    Route("GET", "/pagers/{number}/wait", "wait_for_page", "long poll until a pager is paged",
          _wait,
          {200: ("the pager was paged", Paged), 408: ("no page within the timeout", NotPaged),
           503: ("the emulator stopped while it waited", ErrorAnswer)},
          (PAGER_NUMBER,
           Param("timeout", "query", {"type": "number", "minimum": 0, "maximum": WAIT_MAX,
                                      "default": 10},
                 "seconds to wait, in digits with an optional fraction"),
           Param("after", "query", INTEGER, "a transmission record after this id counts"),
           Param("since", "query", TIME_SCHEMA, "a transmission sent at or after this local "
                 "time counts")),
          description="Without `after` or `since`: the next page to the pager from now on. "
          "With either or both: the latest transmission that matches them all, at once if "
          "there is one, else the next one."),
    Route("GET", "/faults", "list_faults", "the faults set, and whether a power cycle is on",
          _faults, {200: ("the faults", FaultsOut)}),
    Route("POST", "/faults", "add_fault", "lose, duplicate, reorder or delay datagrams, or "
          "answer an error to requests",
          _add_fault, {201: ("the fault set", FaultOut)}, body=FaultIn),
    Route("DELETE", "/faults", "clear_faults", "remove every fault", _clear_faults,
          {200: ("no faults left", FaultsCleared)}),
    Route("DELETE", "/faults/{id}", "remove_fault", "remove one fault", _remove_fault,
          {200: ("removed", FaultRemoved), 404: ("no fault with that id", ErrorAnswer)},
          (Param("id", "path", {"type": "integer", "minimum": 1}, "the fault's id"),)),
    Route("POST", "/power-cycle", "power_cycle", "lose every observer and go dark for seconds",
          _power_cycle, {200: ("the power is off", PowerCycled)}, body=PowerCycle),
    Route("POST", "/journal/verify", "verify", "did requests like this come, so many times?",
          _verify, {200: ("it holds: the matches", VerdictOut),
                    409: ("it does not: the count, and the closest requests", VerdictOut)},
          body=VerifyIn,
          description="Counts requests, not datagrams: a retransmission, and a request lost "
          "to a fault then retransmitted, count once."),
    Route("POST", "/journal/verify-sequence", "verify_sequence",
          "did requests like these come in this order?", _verify_sequence,
          {200: ("it holds: one match per pattern", SequenceVerdictOut),
           409: ("it does not: which pattern matched nothing after which entry",
                 SequenceVerdictOut)},
          body=SequenceIn, description="Other requests may come between."),
    Route("GET", "/journal", "get_journal", "the CoAP exchanges recorded, oldest first",
          _get_journal, {200: ("the entries that match", JournalOut)},
          (Param("method", "query", {"type": "string", "enum": list(METHODS.values())},
                 "only requests with this method"),
           Param("path", "query", {"type": "string", "pattern": "^/"}, "only requests on this "
                 "path"),
           Param("number", "query", INTEGER, "only requests naming this pager number (query "
                 "or body)"),
           Param("code", "query", {"type": "string", "pattern": r"^[2-5]\.[0-9]{2}$"},
                 "only exchanges answered with this code"),
           Param("since", "query", {"type": "string", "format": "date-time"},
                 "only exchanges recorded at or after this wall time, ISO 8601 with an offset"),
           Param("after", "query", INTEGER, "only entries with a greater id"),
           Param("limit", "query", {"type": "integer", "minimum": 1}, "at most this many, "
                 "the oldest that match"),
           Param("format", "query", {"type": "string", "enum": ["json", "jsonl"],
                                     "default": "json"},
                 "jsonl: the entries as JSON Lines (application/x-ndjson), streamed")),
          description="Every exchange a client started: the request, its answer (null code: "
          "none, such as a request a fault dropped), whether it was a retransmission answered "
          "from the duplicate cache, and the fault that acted on it. Notifications are not "
          "exchanges a client started and are not recorded. With format=jsonl the answer is "
          "one entry per line, application/x-ndjson."),
    Route("DELETE", "/journal", "clear_journal", "forget every exchange recorded",
          _clear_journal, {200: ("the journal is empty; ids go on", JournalCleared)}),
    Route("GET", "/health", "health", "whether the transmitter serves (a readiness check)",
          _health, {200: ("ready", HealthOut), 503: ("not ready: powered off, or its last "
                                                     "commit failed", HealthOut)}),
    Route("POST", "/reset", "reset", "back to factory: an empty store, default settings",
          _reset, {200: ("done", ResetDone)}, body=Empty),
    Route("POST", "/device-request", "device_request", "send a request to the device API over "
          "CoAP, as a client would", _device_request,
          {200: ("the CoAP answer, a 4.xx or 5.xx included", DeviceAnswerOut),
           504: ("no CoAP answer in time", ErrorAnswer)},
          body=DeviceRequestIn,
          description="A Confirmable request from the control API's own CoAP client to the "
          "transmitter's endpoint, so it is committed, notified and journaled like any "
          "client's (the pager wall's page, clear and remove buttons use it)."),
    Route("GET", "/events", "events", "the pager wall's live stream (server-sent events)",
          _events, {200: ("a text/event-stream: hello, then change, transmission, clock, "
                          "faults and journal events", None),
                    503: ("as many streams are open as may be", ErrorAnswer)},
          description="The first event is a full snapshot (hello); see docs/control-api.md "
          "for every event's data.", media="text/event-stream"),
    Route("GET", "/", "page", "the pager wall (a web page)", _page,
          {200: ("the page", None)}, media="text/html"),
    Route("GET", "/static/{file}", "static", "a file of the pager wall", _static,
          {200: ("the file", None), 404: ("no such file", ErrorAnswer)},
          (Param("file", "path", {"type": "string"}, "a file name, such as wall.js"),),
          media="*/*"),
)  # fmt: skip
PUBLIC = frozenset(("page", "static"))  # no token asked (`_guard`)


def _handler(
    rig: RigControls, route: Route
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        if route.method == "GET":  # HEAD too
            _query(request, *route.query)
        body = None if route.body is None else await _body(request, route.body)
        return await route.call(rig, request, body)

    return handle


def runner(emu: RigControls, token: str | None = None) -> web.AppRunner:
    """The control API of one emulator (`pager.app.Emulator`), ready to be set up and bound."""
    return web.AppRunner(build_app(emu, token), access_log=None, handler_cancellation=True)


def build_app(emu: RigControls, token: str | None = None) -> web.Application:
    """The control API of one emulator (`pager.app.Emulator`)."""
    app = web.Application(
        middlewares=[_guard(token), _errors, _finish_for_gone_clients], client_max_size=BODY_MAX
    )
    for route in ROUTES:
        handler = _handler(emu, route)
        app.router.add_route(route.method, route.path, handler, name=route.name)
        if route.name in PUBLIC:  # a file may be asked for its headers alone (not a stream)
            app.router.add_route("HEAD", route.path, handler, name=route.name)
    return app


# ---- the OpenAPI document ---------------------------------------------------------------


def openapi(rig: RigControls) -> dict[str, Any]:
    """The OpenAPI 3.1 description of `ROUTES`, with this transmitter's pager numbers."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for route in ROUTES:
        if route.body is not None:
            models.append((route.body, "validation"))
        models += [(m, "serialization") for _, m in route.answers.values() if m is not None]
    models.append((ErrorAnswer, "serialization"))
    refs, defs = models_json_schema(models, ref_template="#/components/schemas/{model}")
    limits = rig.limits
    numbers = {"minimum": limits.number_min, "maximum": limits.number_max}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        operation: dict[str, Any] = {"operationId": route.name, "summary": route.summary}
        if route.description:
            operation["description"] = route.description
        params = []
        for p in route.params:
            schema = {**p.schema, **numbers} if p.name == "number" else p.schema
            params.append(
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.where == "path",
                    "description": p.description,
                    "schema": schema,
                }
            )
        if params:
            operation["parameters"] = params
        if route.body is not None:
            operation["requestBody"] = {
                "required": any(f.is_required() for f in route.body.model_fields.values()),
                "content": {"application/json": {"schema": refs[(route.body, "validation")]}},
            }
        responses: dict[str, Any] = {}
        for status, (when, model) in route.answers.items():
            if model is None and route.media != "application/json":
                content = {route.media: {"schema": {"type": "string"}}}
            else:
                schema = {"type": "object"} if model is None else refs[(model, "serialization")]
                content = {"application/json": {"schema": schema}}
            responses[str(status)] = {"description": when, "content": content}
        error = {"content": {"application/json": {"schema": refs[(ErrorAnswer, "serialization")]}}}
        if route.method == "GET" or route.params or route.body is not None:  # GET: the query
            responses["400"] = {"description": "bad input: the error says what", **error}
        if route.body is not None:
            responses["413"] = {"description": f"a body over {BODY_MAX} bytes", **error}
        if route.name in PUBLIC:
            operation["security"] = [{}]
        else:
            responses["401"] = {"description": "control_token is set and not given", **error}
        responses["403"] = {"description": "a peer not on loopback, no control_token", **error}
        operation["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pager-emulator control API",
            "version": version("pager-emulator"),
            "description": "The test rig beside the emulated transmitter's CoAP API: clock, "
            "virtual pagers, faults, the request journal, power cycle and factory reset "
            "(docs/control-api.md).",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"token": []}],
    }
