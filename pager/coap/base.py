"""What every API resource shares: formats, size limits, queries and error bodies.

aiocoap raises its own errors (4.05 for a missing render method, Block1 trouble) without a
body; the spec wants a JSON error body on every 4.xx but the 4.04 of an unknown path, so
`ApiResource` catches them on the way out and renders them like our own refusals.
"""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiocoap import Message, error, resource
from aiocoap.numbers.codes import Code

from pager import wire
from pager.coap import seam
from pager.control.faults import FaultInjector, request_path
from pager.domain import rules
from pager.domain.errors import Invalid, NoActiveSession, Refused
from pager.domain.model import State
from pager.domain.operations import Outcome
from pager.engine import Engine, Operation
from pager.store import Receipt, StoreUnavailable

log = logging.getLogger("pager.coap")

CODE_2_00 = Code(0x40)  # not registered in CoAP; the vendor's clients test for '2.00'


class ApiError(Exception):
    def __init__(self, code: Code, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


class Api:
    """The context every resource works in: the engine, identity and request rules."""

    def __init__(
        self,
        engine: Engine,
        identity: wire.Identity,
        strict: bool,
        faults: FaultInjector,
        max_block_transfers: int,
        max_block_transfer_bytes: int,
    ):
        # shared by every resource
        self.block2 = seam.Block2Transfers(max_block_transfer_bytes, max_block_transfers)
        self.engine = engine
        self.identity = identity
        self.strict = strict
        self.faults = faults
        self.limits = engine.config.limits

    def envelope(
        self, now: datetime | None = None, state: State | None = None, **sections: Any
    ) -> wire.Envelope:
        """An envelope on `state` (the committed state unless given); reads the clock once
        (unless given `now`)."""
        device = (state or self.engine.state).device
        return wire.envelope(
            self.identity,
            device.global_sequence,
            self.engine.clock.now() if now is None else now,
            **sections,
        )

    def respond(
        self,
        request: Message,
        code: Code | None = None,
        now: datetime | None = None,
        state: State | None = None,
        **sections: Any,
    ) -> Message:
        ct = response_format(request)
        return Message(
            code=code, payload=self.envelope(now, state, **sections).encode(ct), content_format=ct
        )

    async def change(
        self,
        request: Message,
        operation: Operation,
        answer: Callable[[Outcome, State, datetime], Message],
    ) -> Message:
        """Run a request's change; its answer shows the state right after it.

        The answer to a Confirmable request that changed something is kept with the change,
        in its transaction, as the datagram that answers it (`pager.coap.seam.dedup`), so that a
        retransmission reaching a restarted emulator gets it instead of being processed
        again. An answer too large for one datagram (it would go block-wise) is not kept."""
        answered: list[Message] = []

        def receipt(outcome: Outcome, state: State, at: datetime) -> Receipt | None:
            response = answer(outcome, state, at)
            answered.append(response)
            return seam.receipt(request, response)

        await self.engine.run(operation, receipt)
        return answered[0]

    def active_sessions(self) -> list[wire.SessionOut]:
        return [
            wire.session_out(s)
            for s in sorted(self.engine.state.active.values(), key=lambda s: s.id)
        ]

    def statistics(self, state: State | None = None) -> wire.StatisticsOut:
        return wire.statistics_out((state or self.engine.state).device.counters)

    def settings(self, state: State | None = None) -> wire.SettingsOut:
        return wire.settings_out(
            (state or self.engine.state).device.settings, self.engine.clock.now()
        )

    def error(
        self,
        request: Message,
        code: Code,
        message: str,
        field: str | None,
        state: State | None = None,
    ) -> Message:
        ct = response_format(request) if request.opt.accept in wire.FORMATS else wire.JSON
        body = self.envelope(None, state, error=wire.error_out(code.dotted, message, field))
        return Message(code=code, payload=body.encode(ct), content_format=ct)

    def body(self, request: Message, model: type[wire._Body], required: tuple[str, ...] = ()):
        """Decode a request body, applying the compact-JSON and unknown-field rules."""
        ct = request.opt.content_format
        if ct == wire.JSON or ct is None:
            if not wire.is_compact(request.payload):
                self._lenient("body is not compact JSON (tabs or newlines)", None)
        body = wire.decode(model, request.payload, ct, self.limits, required)
        for name in body.model_extra or {}:
            self._lenient(f"unknown field {name}", name)
        return body

    def check_query(self, request: Message, known: tuple[str, ...]) -> None:
        """Refuse a malformed query; unknown names follow the unknown-field rule."""
        for name in query(request):
            if name not in known:
                self._lenient(f"unknown query {name}", name)

    def query_int(self, query: dict[str, str], name: str, lo: int, hi: int) -> int | None:
        text = query.get(name)
        if text is None:
            return None
        if not text.isascii() or not text.isdigit() or int(text) < lo or int(text) > hi:
            raise Invalid(rules.requirement(name, self.limits), name)
        return int(text)

    def number(self, request: Message, required: bool = True) -> int | None:
        number = self.query_int(
            query(request), "number", self.limits.number_min, self.limits.number_max
        )
        if number is None and required:
            raise Invalid("number is required in the query (number=<integer>)", "number")
        return number

    def _lenient(self, what: str, field: str | None) -> None:
        if self.strict:
            raise Invalid(what, field)
        log.warning("accepted a request with %s", what)


def query(request: Message) -> dict[str, str]:
    items: dict[str, str] = {}
    for q in request.opt.uri_query:
        name, sep, value = q.partition("=")
        if not sep or not name:
            raise Invalid(f"malformed query {q!r}: expected name=value", name or None)
        if name in items:
            raise Invalid(f"query {name} given twice", name)
        items[name] = value
    return items


def response_format(request: Message) -> int:
    return wire.CBOR if request.opt.accept == wire.CBOR else wire.JSON


class ApiResource(resource.Resource):
    """Base of every /v1 resource.

    `queries` names the query parameters each method reads; any other is unknown.
    """

    ct = "50 60"
    queries: dict[str, tuple[str, ...]] = {}

    def __init__(self, api: Api):
        super().__init__()
        self.api = api
        api.block2.add(self)  # bounded when the seam is installed

    def answered_by_fault(self, pipe) -> bool:
        """Answer with an injected error code (control API), if one is set for this path."""
        injected = self.api.faults.error_for(request_path(pipe.request))
        if injected is None:
            return False
        code = Code(int(injected[0]) << 5 | int(injected[2:]))
        pipe.add_response(self.api.error(pipe.request, code, "injected fault", None), True)
        return True

    def refused_options(self, request: Message) -> Message | None:
        """RFC 7252 §5.4.1, §5.7: an unrecognised critical option is 4.02; this is not a proxy
        (5.05). aiocoap answers such requests as if the option were not there."""
        if request.opt.proxy_uri is not None or request.opt.proxy_scheme is not None:
            return self.api.error(
                request, Code.PROXYING_NOT_SUPPORTED, "this server is not a proxy", None
            )
        for option in request.opt.option_list():
            number = option.number
            if number.is_critical() and not hasattr(number, "name"):
                return self.api.error(
                    request,
                    Code.BAD_OPTION,
                    f"critical option {int(number)} is not supported",
                    None,
                )
        return None

    async def render_to_pipe(self, pipe) -> None:
        if self.answered_by_fault(pipe):
            return
        request = pipe.request
        refused = self.refused_options(request)
        if refused is not None:
            pipe.add_response(refused, is_last=True)
            return
        block1 = request.opt.block1
        if block1 is not None:  # refuse a block-wise upload at its first block, not its last
            try:
                self._check_formats(request)
            except ApiError as e:
                pipe.add_response(self.api.error(request, e.code, e.message, e.field), True)
                return
            if block1.start + block1.size > rules.BODY_MAX:
                pipe.add_response(self._too_large(request), is_last=True)
                return
        try:
            await super().render_to_pipe(pipe)
        except ValueError:
            if block1 is None:
                raise
            # aiocoap's Block1 reassembly lets this out for a block that leaves a gap
            pipe.add_response(
                self.api.error(
                    request,
                    Code.REQUEST_ENTITY_INCOMPLETE,
                    _AIOCOAP_TEXT[Code.REQUEST_ENTITY_INCOMPLETE],
                    None,
                ),
                is_last=True,
            )
        except error.RenderableError as e:
            raw = e.to_message()
            if raw.code.is_successful() or raw.code == Code.CONTINUE:
                raise
            pipe.add_response(
                self.api.error(request, raw.code, _AIOCOAP_TEXT.get(raw.code, str(raw.code)), None),
                is_last=True,
            )

    async def render(self, request: Message) -> Message:
        try:
            self._check_formats(request)
            if len(request.payload) > rules.BODY_MAX:
                return self._too_large(request)
            self.api.check_query(request, self.queries.get(str(request.code), ()))
            return await super().render(request)
        except ApiError as e:
            return self.api.error(request, e.code, e.message, e.field)
        except Refused as e:
            code = Code.NOT_FOUND if isinstance(e, NoActiveSession) else Code.BAD_REQUEST
            seen = None if e.seen is None else State(e.seen)
            return self.api.error(request, code, e.message, e.field, seen)
        except StoreUnavailable as e:
            return self.api.error(request, Code.SERVICE_UNAVAILABLE, str(e), None)
        except error.UnallowedMethod:
            return self.api.error(
                request,
                Code.METHOD_NOT_ALLOWED,
                f"method {request.code} is not allowed on this resource",
                None,
            )

    def _check_formats(self, request: Message) -> None:
        if request.opt.content_format not in (None, *wire.FORMATS):
            raise ApiError(
                Code.UNSUPPORTED_CONTENT_FORMAT,
                "request Content-Format must be 50 (application/json) or 60 (application/cbor)",
            )
        if request.opt.accept not in (None, *wire.FORMATS):
            raise ApiError(
                Code.NOT_ACCEPTABLE, "Accept must be 50 (application/json) or 60 (application/cbor)"
            )

    def _too_large(self, request: Message) -> Message:
        response = self.api.error(
            request,
            Code.REQUEST_ENTITY_TOO_LARGE,
            f"request body must be at most {rules.BODY_MAX} bytes",
            None,
        )
        response.opt.size1 = rules.BODY_MAX
        return response


_AIOCOAP_TEXT = {
    Code.BAD_REQUEST: "bad request",
    Code.METHOD_NOT_ALLOWED: "method not allowed on this resource",
    Code.REQUEST_ENTITY_INCOMPLETE: "block-wise request body incomplete",
    Code.REQUEST_ENTITY_TOO_LARGE: f"request body must be at most {rules.BODY_MAX} bytes",
    Code.UNSUPPORTED_CONTENT_FORMAT: "unsupported Content-Format",
}
