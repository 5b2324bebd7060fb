"""What every /v1 resource works with, and how its refusals become answers."""

from dataclasses import dataclass

from aiocoap import Message, error, resource
from aiocoap.numbers.codes import Code

from pager import wire
from pager.coap.answers import Answers
from pager.coap.changes import Changes
from pager.coap.gate import Admission
from pager.coap.reading import Reader
from pager.coap.seam import Block2Transfers
from pager.domain.errors import NoActiveSession, PreconditionFailed, Refused
from pager.domain.model import State
from pager.engine import Engine
from pager.store import StoreUnavailable

_REFUSAL_CODES = {NoActiveSession: Code.NOT_FOUND, PreconditionFailed: Code.PRECONDITION_FAILED}


@dataclass(frozen=True)
class Api:
    """The parts every resource works with: the engine, how answers look (`answers`), how
    requests are read (`reader`), how changes run (`changes`), and the Block2 budget shared
    by every resource."""

    engine: Engine
    answers: Answers
    reader: Reader
    changes: Changes
    block2: Block2Transfers

    @classmethod
    def create(
        cls,
        engine: Engine,
        identity: wire.Identity,
        strict: bool,
        max_block_transfers: int,
        max_block_transfer_bytes: int,
    ) -> "Api":
        return cls(
            engine,
            Answers(engine, identity),
            Reader(engine.config.limits, strict),
            Changes(engine),
            Block2Transfers(max_block_transfer_bytes, max_block_transfers),
        )


class ApiResource(resource.Resource):
    """Base of every /v1 resource: the gate has let the request in; what a render method
    refuses is answered here with the error body."""

    ct = "50 60"
    admission = Admission()

    def __init__(self, api: Api) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # aiocoap's is unannotated
        self.api = api
        self.engine = api.engine
        self.answers = api.answers
        self.reader = api.reader
        self.changes = api.changes
        api.block2.add(self)  # bounded when the seam is installed

    async def render(self, request: Message) -> Message:
        try:
            response: Message = await super().render(request)  # type: ignore[no-untyped-call]
            return response
        except Refused as e:
            code = _REFUSAL_CODES.get(type(e), Code.BAD_REQUEST)
            seen = None if e.seen is None else State(e.seen)
            return self.answers.error(request, code, e.message, e.field, seen)
        except StoreUnavailable as e:
            return self.answers.error(request, Code.SERVICE_UNAVAILABLE, str(e), None)
        except error.UnallowedMethod:
            return self.answers.error(
                request,
                Code.METHOD_NOT_ALLOWED,
                f"method {request.code} is not allowed on this resource",
                None,
            )
