"""The resource tree the transmitter serves."""

from aiocoap import resource

from pager.coap.base import Api
from pager.coap.notify import Notify
from pager.coap.sessions import History, Sessions, Statistics
from pager.coap.settings import Page, Settings
from pager.notify import Hub


def build_site(api: Api, hub: Hub) -> resource.Site:
    site = resource.Site()
    site.add_resource([".well-known", "core"],
                      resource.WKCResource(site.get_resources_as_linkheader, impl_info=None))
    site.add_resource(["v1", "sessions"], Sessions(api))
    site.add_resource(["v1", "sessions", "history"], History(api))
    site.add_resource(["v1", "sessions", "statistics"], Statistics(api))
    site.add_resource(["v1", "settings"], Settings(api))
    site.add_resource(["v1", "page"], Page(api))
    site.add_resource(["v1", "notify"], Notify(api, hub))
    return site
