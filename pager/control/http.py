"""The control API: HTTP/JSON beside the device's CoAP API, for test rigs (README: "Test-rig
control"). Bound to 127.0.0.1 by default. Every answer is JSON; bad input is 400 with
{"error": "..."}; nothing here changes the device API.
"""

import asyncio
import hmac
import ipaddress
import json
import re
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pager import wire
from pager.control.faults import ERROR_CODE, Fault
from pager.control.rig import PagerState, RigControls
from pager.domain import digits
from pager.domain.errors import Refused
from pager.domain.pagemodes import Transmission
from pager.domain.timefmt import WRITTEN, fmt, parse

WAIT_MAX = 300.0
INT_MAX = 10**18 - 1  # 18 digits: fits SQLite's 64 bits
COUNT_MAX = 10**9
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
    kind: Literal["drop", "delay", "error"]
    path: str | None = Field(None, pattern=r"^/")
    count: int | None = Field(None, ge=1, le=COUNT_MAX)
    seconds: float = Field(0.0, ge=0, le=600)
    code: str = Field("5.03", pattern=ERROR_CODE)


class PowerCycle(_In):
    seconds: float = Field(gt=0, le=3600)


class BadInput(Exception):
    pass


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=str))


def transmission_json(t: Transmission) -> dict[str, Any]:
    return wire.page_out(t).model_dump(mode="json")


def pager_json(p: PagerState) -> dict[str, Any]:
    return {
        "number": p.number,
        "state": p.state,
        "pageMode": p.page_mode,
        "message": p.message,
        "overrideCodes": [{"code": c.code, "value": c.value} for c in p.override_codes],
        "alertingUntil": None if p.alerting_until is None else fmt(p.alerting_until),
        "lastTransmission": (
            None if p.last_transmission is None else transmission_json(p.last_transmission)
        ),
    }


def fault_json(f: Fault) -> dict[str, Any]:
    return {
        "id": f.id,
        "kind": f.kind,
        "path": f.path,
        "remaining": f.remaining,
        "seconds": f.seconds,
        "code": f.code,
        "hits": f.hits,
    }


def clock_json(status: dict[str, Any]) -> dict[str, Any]:
    return {"now": fmt(status["now"]), "frozen": status["frozen"], "speed": status["speed"]}


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
    for name in request.query:
        if name not in known:
            raise BadInput(
                f"unknown query parameter {name}; this call takes " + (", ".join(known) or "none")
            )


def _guard(token: str | None) -> Middleware:
    """Without a token only loopback peers may use the API; with one, every request must
    carry it as `Authorization: Bearer <token>`."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is not None:
            # as bytes: compare_digest refuses str that is not ASCII
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, f"Bearer {token}".encode()):
                return _json({"error": "a valid Authorization: Bearer token is required"}, 401)
        elif not _loopback(request.remote):
            return _json(
                {
                    "error": "the control API answers loopback peers only unless "
                    "control_token is set"
                },
                403,
            )
        return await handler(request)

    return guard


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
        return _json({"error": str(e)}, 400)
    except web.HTTPException as e:
        if e.status >= 400:
            return _json({"error": e.reason}, e.status)
        raise


@web.middleware
async def _finish_for_gone_clients(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp cancels the handler of a client that went away (`runner`), so that a long
    poll ends, and its wait is forgotten, with its connection; every other call finishes
    what it started (a reset half done would leave the pager board behind the store)."""
    if request.match_info.route.name == "wait":
        return await handler(request)
    return await asyncio.shield(handler(request))


def runner(emu: RigControls, token: str | None = None) -> web.AppRunner:
    """The control API of one emulator (`pager.app.Emulator`), ready to be set up and bound."""
    return web.AppRunner(build_app(emu, token), access_log=None, handler_cancellation=True)


def build_app(emu: RigControls, token: str | None = None) -> web.Application:
    """The control API of one emulator (`pager.app.Emulator`)."""
    routes = web.RouteTableDef()

    @routes.get("/clock")
    async def get_clock(request: web.Request) -> web.Response:
        _query(request)
        return _json(clock_json(emu.clock_status()))

    @routes.post("/clock/set")
    async def set_clock(request: web.Request) -> web.Response:
        when = _time((await _body(request, SetClock)).datetime, "datetime")
        return _json(clock_json(await emu.set_clock(when)))

    @routes.post("/clock/advance")
    async def advance(request: web.Request) -> web.Response:
        return _json(clock_json(await emu.advance((await _body(request, Advance)).seconds)))

    @routes.post("/clock/freeze")
    async def freeze(request: web.Request) -> web.Response:
        await _body(request, Empty)
        return _json(clock_json(await emu.freeze()))

    @routes.post("/clock/unfreeze")
    async def unfreeze(request: web.Request) -> web.Response:
        await _body(request, Empty)
        return _json(clock_json(await emu.unfreeze()))

    @routes.post("/clock/speed")
    async def speed(request: web.Request) -> web.Response:
        return _json(clock_json(await emu.set_speed((await _body(request, Speed)).factor)))

    @routes.get("/transmissions")
    async def transmissions(request: web.Request) -> web.Response:
        _query(request, "number", "since", "after")
        number = request.query.get("number")
        records = await emu.transmissions(
            None if number is None else _pager_number(emu, number),
            _query_time(request, "since"),
            _query_int(request, "after"),
        )
        return _json({"transmissions": [transmission_json(t) for t in records]})

    @routes.get("/pagers")
    async def pagers(request: web.Request) -> web.Response:
        _query(request)
        return _json({"pagers": [pager_json(p) for p in emu.all_pagers()]})

    @routes.get("/pagers/{number}")
    async def pager(request: web.Request) -> web.Response:
        _query(request)
        return _json(pager_json(emu.pager(_number(request, emu))))

    @routes.get("/pagers/{number}/wait", name="wait")
    async def wait(request: web.Request) -> web.Response:
        _query(request, "timeout", "after", "since")
        number = _number(request, emu)
        timeout = _decimal(request.query.get("timeout", "10"), "timeout (seconds)", 0, WAIT_MAX)
        tx = await emu.wait_for_page(
            number, timeout, _query_int(request, "after"), _query_time(request, "since")
        )
        if tx is None:
            return _json({"paged": False, "number": number, "timeout": timeout}, 408)
        return _json({"paged": True, "transmission": transmission_json(tx)})

    @routes.get("/faults")
    async def faults(request: web.Request) -> web.Response:
        _query(request)
        return _json(
            {
                "faults": [fault_json(f) for f in emu.list_faults()],
                "unreachable": emu.unreachable,
            }
        )

    @routes.post("/faults")
    async def add_fault(request: web.Request) -> web.Response:
        body = await _body(request, FaultIn)
        return _json(
            fault_json(emu.add_fault(body.kind, body.path, body.count, body.seconds, body.code)),
            201,
        )

    @routes.delete("/faults")
    async def clear_faults(request: web.Request) -> web.Response:
        emu.clear_faults()
        return _json({"faults": []})

    @routes.delete("/faults/{id}")
    async def remove_fault(request: web.Request) -> web.Response:
        fault_id = _integer(request.match_info["id"], "a fault id", 1)
        if not emu.remove_fault(fault_id):
            return _json({"error": f"no fault {fault_id}"}, 404)
        return _json({"removed": fault_id})

    @routes.post("/power-cycle")
    async def power_cycle(request: web.Request) -> web.Response:
        seconds = (await _body(request, PowerCycle)).seconds
        await emu.power_cycle(seconds)
        return _json({"unreachableFor": seconds})

    @routes.post("/reset")
    async def reset(request: web.Request) -> web.Response:
        await _body(request, Empty)
        await emu.reset()
        return _json({"reset": True})

    app = web.Application(middlewares=[_guard(token), _errors, _finish_for_gone_clients])
    app.add_routes(routes)
    return app
