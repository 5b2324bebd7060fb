"""/v1/page (spec §9)."""

from aiocoap import Message
from aiocoap.numbers.codes import Code

from pager import wire
from pager.coap.base import ApiResource
from pager.domain import operations as ops


class PageResource(ApiResource):
    rt = "t7470.page"

    async def render_post(self, request: Message) -> Message:
        answers, config = self.answers, self.engine.config
        page = self.reader.body(request, wire.PageBody, required=("number",)).request()
        return await self.changes.run(
            request,
            lambda state, now: ops.page(state, page, now, config),
            lambda outcome, state, now: answers.respond(
                request, Code.CHANGED, now, state, page=wire.page_out(outcome.transmitted)
            ),
        )
