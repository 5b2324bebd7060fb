"""/v1/settings (spec §4.6)."""

from aiocoap import Message
from aiocoap.numbers.codes import Code

from pager import wire
from pager.coap.base import ApiResource
from pager.domain import operations as ops


class SettingsResource(ApiResource):
    rt = "t7470.settings"

    async def render_get(self, request: Message) -> Message:
        await self.engine.catch_up()
        return self.answers.respond(request, settings=self.answers.settings())

    async def render_post(self, request: Message) -> Message:
        answers = self.answers
        patch = self.reader.body(request, wire.SettingsBody).patch(self.reader.limits)
        return await self.changes.run(
            request,
            lambda state, now: ops.update_settings(state, patch, now),
            # the clock as the change left it: a datetime setting has just moved it
            lambda outcome, state, now: answers.respond(
                request, Code.CHANGED, None, state, settings=answers.settings(state)
            ),
        )
