"""Running a request's change through the engine, its answer kept with it."""

from collections.abc import Callable
from datetime import datetime

from aiocoap import Message

from pager.coap import seam
from pager.domain.model import State
from pager.domain.operations import Outcome
from pager.engine import Engine, Operation
from pager.store import Receipt


class Changes:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(
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
