"""The resource tree the transmitter serves."""

from aiocoap import Message, resource
from aiocoap.numbers.codes import Code

from pager.coap.base import Api
from pager.coap.echo import AddressCheck
from pager.coap.notify import Notify
from pager.coap.seam import Backlogs
from pager.coap.sessions import History, Sessions, Statistics
from pager.coap.settings import Page, Settings
from pager.notify import Hub


class LeafSite(resource.Site):
    """aiocoap's Site, without a deep copy of every request on the way to a leaf resource.

    Site hands each resource a copy of the request with the matched path stripped, so that
    nested sites see relative paths. Our resources are leaves that never read the path, and
    under load that copy was a third of the server's CPU (py-spy). Exact paths of leaves are
    dispatched directly; anything else takes Site's usual way.
    """

    def __init__(self, address_check: AddressCheck | None = None):
        super().__init__()
        self._leaves: dict[tuple[str, ...], resource.Resource] = {}
        self.address_check = address_check

    def add_resource(self, path, resource_):
        super().add_resource(path, resource_)
        self._leaves[tuple(path)] = resource_

    async def render_to_pipe(self, pipe) -> None:
        request = pipe.request
        if self.address_check is not None:
            peer = request.remote.hostinfo
            if not self.address_check.admit(peer, request.opt.echo):
                challenge = Message(code=Code.UNAUTHORIZED)
                challenge.opt.echo = self.address_check.challenge(peer)
                pipe.add_response(challenge, is_last=True)
                return
        leaf = self._leaves.get(request.opt.uri_path)
        if leaf is not None and request.opt.uri_path_abbrev is None:
            return await leaf.render_to_pipe(pipe)
        return await super().render_to_pipe(pipe)


class WellKnownCore(resource.WKCResource):
    """aiocoap's /.well-known/core, with the same answer to a broken block-wise upload (a
    block leaving a gap, which aiocoap lets out as a ValueError) as every /v1 resource."""

    def __init__(self, api: Api, listgenerator):
        super().__init__(listgenerator, impl_info=None)
        self.api = api

    async def render_to_pipe(self, pipe) -> None:
        try:
            await super().render_to_pipe(pipe)
        except ValueError:
            if pipe.request.opt.block1 is None:
                raise
            pipe.add_response(
                self.api.error(
                    pipe.request,
                    Code.REQUEST_ENTITY_INCOMPLETE,
                    "block-wise request body incomplete",
                    None,
                ),
                True,
            )


def build_site(
    api: Api, hub: Hub, backlogs: Backlogs, amplification_protection: bool = False
) -> resource.Site:
    site = LeafSite(AddressCheck() if amplification_protection else None)
    site.add_resource([".well-known", "core"], WellKnownCore(api, site.get_resources_as_linkheader))
    site.add_resource(["v1", "sessions"], Sessions(api))
    site.add_resource(["v1", "sessions", "history"], History(api))
    site.add_resource(["v1", "sessions", "statistics"], Statistics(api))
    site.add_resource(["v1", "settings"], Settings(api))
    site.add_resource(["v1", "page"], Page(api))
    site.add_resource(["v1", "notify"], Notify(api, hub, backlogs))
    return site
