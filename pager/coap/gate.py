"""The one gate every request passes before a resource sees it (spec §1, §2, §2.2).

The site calls `Gate.serve` for every request: plain ones, each block of a Block1 upload and
of a Block2 transfer, Observe registrations, `/.well-known/core` and unknown paths. Checks
that lived in each resource's own way in drifted apart (an Observe registration went past
the critical-option check), so they live here once, in the order the spec gives:

1. an injected error fault (the test rig's, through `InjectedErrors`), before anything else,
   as a transmitter that is failing does not look at the request;
2. Proxy-Uri or Proxy-Scheme: 5.05, this is not a proxy (RFC 7252 §5.7.2);
3. an unrecognised critical option: 4.02 (RFC 7252 §5.4.1), one the transmitter does not act
   on, a second occurrence of one that may come once (§5.4.5), or one whose length was out
   of its range (§5.4.3, found by `seam.datagrams`); aiocoap would answer the request as if
   the option were not there;
4. for a known resource only (an unknown path is 4.04 without a body, whatever it carries):
   If-Match or If-None-Match on a request that does not act on them (4.02: a condition is
   never ignored; see `Admission.conditional`), Content-Format (4.15), Accept (4.06,
   against the formats the resource answers in), body size (4.13; a Block1 upload at the
   first block that reaches past the limit, not at its last, by its block size or its
   payload, whichever is longer), and query names (unknown ones follow the unknown-field
   rule).

Errors aiocoap raises while serving (4.05 for a missing render method, Block1 trouble) come
without a body; the gate renders them with the spec's error body, except the 4.04 of an
unknown path.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from aiocoap import Message, error
from aiocoap.numbers.codes import Code
from aiocoap.numbers.contentformat import ContentFormat
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.pipe import Pipe

from pager import wire
from pager.coap.answers import Answers
from pager.coap.reading import Reader, query
from pager.coap.seam import OPTION_LENGTHS, unrecognised
from pager.domain import rules
from pager.domain.errors import Invalid

LINK_FORMAT = int(ContentFormat.LINKFORMAT)
CRITICAL = frozenset(
    int(n)
    for n in (
        OptionNumber.IF_MATCH,
        OptionNumber.URI_HOST,
        OptionNumber.IF_NONE_MATCH,
        OptionNumber.URI_PORT,
        OptionNumber.URI_PATH,
        OptionNumber.URI_PATH_ABBREV,
        OptionNumber.URI_QUERY,
        OptionNumber.ACCEPT,
        OptionNumber.BLOCK2,
        OptionNumber.BLOCK1,
        OptionNumber.PROXY_URI,
        OptionNumber.PROXY_SCHEME,
    )
)
"""The critical options the transmitter acts on. That aiocoap knows an option's name does
not make it one: a request protected by OSCORE, or sent with Q-Block, read as if the option
were not there would be misread."""
REPEATABLE = frozenset(
    int(n) for n in (OptionNumber.IF_MATCH, OptionNumber.URI_PATH, OptionNumber.URI_QUERY)
)
"""Of those, the ones that may come more than once; another one's second occurrence is an
unrecognised option (RFC 7252 §5.4.5)."""
_PROXY = frozenset((int(OptionNumber.PROXY_URI), int(OptionNumber.PROXY_SCHEME)))
_CONDITIONS = frozenset((int(OptionNumber.IF_MATCH), int(OptionNumber.IF_NONE_MATCH)))
_BLOCKS = frozenset((int(OptionNumber.BLOCK1), int(OptionNumber.BLOCK2)))
_CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
_ACCEPT = int(OptionNumber.ACCEPT)
_BLOCK1 = int(OptionNumber.BLOCK1)
_URI_QUERY = int(OptionNumber.URI_QUERY)
_FORMAT_NAMES = {
    LINK_FORMAT: "application/link-format",
    wire.JSON: "application/json",
    wire.CBOR: "application/cbor",
}


class InjectedErrors(Protocol):
    """Error answers a test rig wants given instead of serving a request."""

    active: bool
    """False while no fault is set: no request is asked about."""

    def error_for(self, path: str) -> str | None:
        """The dotted code to answer a request on `path` with, if any (and count it)."""
        ...


def request_path(message: Message) -> str:
    return "/" + "/".join(message.opt.uri_path)


@dataclass(frozen=True)
class Admission:
    """What a resource lets through beyond what every resource does.

    `answers`: the Accept values it answers in. `queries`: the query names each method reads
    (any other is unknown), or None for a resource that reads any query (the RFC 6690 filters
    of `/.well-known/core`). `conditional`: the methods that act on If-Match and
    If-None-Match (RFC 7252 §5.10.8), each with the query name it needs for that, if any;
    elsewhere they are options the transmitter does not act on, and a request carrying one
    is not served without its condition: 4.02.
    """

    answers: tuple[int, ...] = wire.FORMATS
    queries: Mapping[str, tuple[str, ...]] | None = field(default_factory=dict)
    conditional: Mapping[str, str | None] = field(default_factory=dict)


class Gated(Protocol):
    admission: Admission

    async def render_to_pipe(self, pipe: Pipe) -> None: ...


class Gate:
    def __init__(self, answers: Answers, reader: Reader, faults: InjectedErrors) -> None:
        self.answers = answers
        self.reader = reader
        self.faults = faults

    async def serve(
        self, pipe: Pipe, admission: Admission | None, render: Callable[[Pipe], Awaitable[None]]
    ) -> None:
        """Answer a refused request, or let `render` serve it; `admission` is None for a
        request whose resource the site does not know (yet)."""
        request = pipe.request
        refusal = self.refusal(request, admission)
        if refusal is not None:
            pipe.add_response(refusal, is_last=True)
            return
        try:
            await render(pipe)
        except ValueError:
            if request.opt.block1 is None:
                raise
            # aiocoap's Block1 reassembly lets this out for a block that leaves a gap
            incomplete = Code.REQUEST_ENTITY_INCOMPLETE
            pipe.add_response(self._error(request, incomplete, _AIOCOAP_TEXT[incomplete]), True)
        except error.RenderableError as e:
            raw = e.to_message()
            if raw.code.is_successful() or raw.code in (Code.CONTINUE, Code.NOT_FOUND):
                raise  # a 4.04 from aiocoap is an unknown path's: no body (spec §2.2)
            text = _AIOCOAP_TEXT.get(raw.code, str(raw.code))
            pipe.add_response(self._error(request, raw.code, text), is_last=True)

    def refusal(self, request: Message, admission: Admission | None) -> Message | None:
        faults = self.faults
        if faults.active:
            injected = faults.error_for(request_path(request))
            if injected is not None:
                code = Code(int(injected[0]) << 5 | int(injected[2:]))
                return self._error(request, code, "injected fault")
        # One walk over the options finds which are there; only those are read below (each
        # of aiocoap's option properties searches the options again).
        opt = request.opt
        present: set[int] = set()
        critical: str | None = None
        for option in opt.option_list():
            number = int(option.number)
            if critical is None and number & 1:  # elective: ignored when unknown (§5.4.1)
                if number not in CRITICAL:
                    critical = f"critical option {number} is not supported"
                elif number in present and number not in REPEATABLE:
                    critical = f"critical option {number} given more than once"
            present.add(number)
        if _PROXY & present:
            return self._error(request, Code.PROXYING_NOT_SUPPORTED, "this server is not a proxy")
        beyond = unrecognised(request)  # its length out of range (RFC 7252 §5.4.3)
        if beyond is not None:
            lo, hi = OPTION_LENGTHS[beyond]
            text = f"critical option {beyond} must be {lo} to {hi} bytes long"
            return self._error(request, Code.BAD_OPTION, text)
        if critical is not None:
            return self._error(request, Code.BAD_OPTION, critical)
        if admission is None:
            return None
        if _CONDITIONS & present:
            refused = _unconditional(request, admission)
            if refused is not None:
                return self._error(request, Code.BAD_OPTION, refused)
        if _CONTENT_FORMAT in present and opt.content_format not in wire.FORMATS:
            text = f"request Content-Format must be {_named(wire.FORMATS)}"
            return self._error(request, Code.UNSUPPORTED_CONTENT_FORMAT, text)
        if _ACCEPT in present and opt.accept not in admission.answers:
            text = f"Accept must be {_named(admission.answers)}"
            return self._error(request, Code.NOT_ACCEPTABLE, text)
        reach = len(request.payload)
        block1 = opt.block1 if _BLOCK1 in present else None
        if block1 is not None:  # a last block may be longer than its size: aiocoap takes it
            reach = block1.start + max(block1.size, reach)
        if reach > rules.BODY_MAX:
            return self.too_large(request)
        if (
            admission.queries is not None
            and _URI_QUERY in present
            and not (_BLOCKS & present and _continuation(request))
        ):
            try:
                known = admission.queries.get(str(request.code), ())
                for name in query(request):
                    if name not in known:
                        self.reader.lenient(f"unknown query {name}", name)
            except Invalid as e:
                return self._error(request, Code.BAD_REQUEST, e.message, e.field)
        return None

    def too_large(self, request: Message) -> Message:
        too_large = Code.REQUEST_ENTITY_TOO_LARGE
        response = self._error(request, too_large, _AIOCOAP_TEXT[too_large])
        response.opt.size1 = rules.BODY_MAX
        return response

    def _error(self, request: Message, code: Code, text: str, field: str | None = None) -> Message:
        return self.answers.error(request, code, text, field)


def _continuation(request: Message) -> bool:
    """A later block of a block-wise exchange: its query was read (and any unknown name
    warned about) with the first."""
    block1, block2 = request.opt.block1, request.opt.block2
    return (block1 is not None and block1.block_number > 0) or (
        block2 is not None and block2.block_number > 0
    )


def _unconditional(request: Message, admission: Admission) -> str | None:
    """Why a conditional request is not served as one, if it is not."""
    method = str(request.code)
    if method not in admission.conditional:
        return (
            f"If-Match and If-None-Match are acted on only by requests that change one "
            f"session, not by {method} {request_path(request)}"
        )
    needed = admission.conditional[method]
    if needed is not None and not any(q.startswith(f"{needed}=") for q in request.opt.uri_query):
        return f"If-Match and If-None-Match are acted on by {method} only with {needed}=N"
    return None


def _named(formats: tuple[int, ...]) -> str:
    return " or ".join(f"{ct} ({_FORMAT_NAMES[ct]})" for ct in formats)


_AIOCOAP_TEXT = {
    Code.BAD_REQUEST: "bad request",
    Code.BAD_OPTION: "bad option",
    Code.METHOD_NOT_ALLOWED: "method not allowed on this resource",
    Code.REQUEST_ENTITY_INCOMPLETE: "block-wise request body incomplete",
    Code.REQUEST_ENTITY_TOO_LARGE: f"request body must be at most {rules.BODY_MAX} bytes",
    Code.UNSUPPORTED_CONTENT_FORMAT: "unsupported Content-Format",
}
