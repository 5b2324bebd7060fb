"""The resource tree the transmitter serves, every request passing the gate on its way in."""

from collections.abc import Sequence

from aiocoap import Message, resource
from aiocoap.numbers.codes import Code
from aiocoap.pipe import Pipe

from pager.coap.base import Api
from pager.coap.echo import AddressCheck
from pager.coap.gate import LINK_FORMAT, Admission, Gate, Gated, InjectedErrors
from pager.coap.notify import NotifyResource
from pager.coap.page import PageResource
from pager.coap.seam import Backlogs
from pager.coap.sessions import HistoryResource, SessionsResource, StatisticsResource
from pager.coap.settings import SettingsResource
from pager.hub import Hub

ABBREVIATED = {0: (".well-known", "core")}
"""The Uri-Path-Abbrev values (draft-ietf-core-uri-path-abbrev) of paths this site serves.
Any other value takes aiocoap's way: the path it stands for is unknown here (4.04), or the
value is unknown to aiocoap too, or comes beside a Uri-Path (4.02)."""


class LeafSite(resource.Site):
    """aiocoap's Site, with the gate in front and without a deep copy of every request on the
    way to a leaf resource.

    Site hands each resource a copy of the request with the matched path stripped, so that
    nested sites see relative paths. Our resources are leaves that never read the path, and
    under load that copy was a third of the server's CPU (py-spy). Exact paths of leaves are
    dispatched directly, the abbreviation of one too; anything else (an unknown path, another
    Uri-Path-Abbrev) takes Site's usual way behind the checks that do not depend on the
    resource.
    """

    def __init__(self, gate: Gate, address_check: AddressCheck | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # aiocoap's Site is unannotated
        self.gate = gate
        self._leaves: dict[tuple[str, ...], Gated] = {}
        self.address_check = address_check

    def add_resource(self, path: Sequence[str], resource_: Gated) -> None:
        super().add_resource(path, resource_)  # type: ignore[no-untyped-call]  # as __init__
        self._leaves[tuple(path)] = resource_

    async def render_to_pipe(self, pipe: Pipe) -> None:
        request = pipe.request
        if self.address_check is not None:
            peer = request.remote.hostinfo
            if not self.address_check.admit(peer, request.opt.echo):
                challenge = Message(code=Code.UNAUTHORIZED)
                challenge.opt.echo = self.address_check.challenge(peer)
                pipe.add_response(challenge, is_last=True)
                return
        abbrev = request.opt.uri_path_abbrev
        if abbrev in ABBREVIATED and not request.opt.uri_path:
            # as aiocoap's Site would, so that the leaf gets the checks its path gets
            request.opt.uri_path, request.opt.uri_path_abbrev = ABBREVIATED[abbrev], None
        leaf = self._leaves.get(request.opt.uri_path)
        if leaf is not None and request.opt.uri_path_abbrev is None:
            await self.gate.serve(pipe, leaf.admission, leaf.render_to_pipe)
        else:
            await self.gate.serve(pipe, None, super().render_to_pipe)


class WellKnownCore(resource.WKCResource):
    """aiocoap's /.well-known/core (RFC 6690): link-format only, any query a filter."""

    admission = Admission(answers=(LINK_FORMAT,), queries=None)


def build_site(
    api: Api,
    hub: Hub,
    backlogs: Backlogs,
    faults: InjectedErrors,
    amplification_protection: bool = False,
) -> LeafSite:
    gate = Gate(api.answers, api.reader, faults)
    site = LeafSite(gate, AddressCheck() if amplification_protection else None)
    wkc = WellKnownCore(site.get_resources_as_linkheader, impl_info=None)  # type: ignore[no-untyped-call]
    site.add_resource([".well-known", "core"], wkc)
    site.add_resource(["v1", "sessions"], SessionsResource(api))
    site.add_resource(["v1", "sessions", "history"], HistoryResource(api))
    site.add_resource(["v1", "sessions", "statistics"], StatisticsResource(api))
    site.add_resource(["v1", "settings"], SettingsResource(api))
    site.add_resource(["v1", "page"], PageResource(api))
    site.add_resource(["v1", "notify"], NotifyResource(api, hub, backlogs))
    return site
