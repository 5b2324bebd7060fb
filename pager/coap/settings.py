"""/v1/settings and /v1/page (spec §4.6, §9)."""

from aiocoap import Message
from aiocoap.numbers.codes import Code

from pager import wire
from pager.coap.base import ApiResource
from pager.domain import operations as ops


class Settings(ApiResource):
    rt = "t7470.settings"

    async def render_get(self, request: Message) -> Message:
        await self.api.engine.catch_up()
        return self.api.respond(request, settings=self.api.settings())

    async def render_post(self, request: Message) -> Message:
        api = self.api
        patch = api.body(request, wire.SettingsBody).patch(api.limits)
        return await api.change(
            request,
            lambda state, now: ops.update_settings(state, patch, now),
            # the clock as the change left it: a datetime setting has just moved it
            lambda outcome, state, now: api.respond(
                request, Code.CHANGED, None, state, settings=api.settings(state)
            ),
        )


class Page(ApiResource):
    rt = "t7470.page"

    async def render_post(self, request: Message) -> Message:
        api = self.api
        page = api.body(request, wire.PageBody, required=("number",)).request()
        return await api.change(
            request,
            lambda state, now: ops.page(state, page, now, api.engine.config),
            lambda outcome, state, now: api.respond(
                request, Code.CHANGED, now, state, page=wire.page_out(outcome.transmission)
            ),
        )
