"""The pager wall's files (`pager/control/static/`), served as they ship in the package.

Only the files that are there when the control API starts are served, each by its bare
name: a name is looked up in that list, never joined to a path, so `..`, an encoded slash
or an absolute path names no file and is a 404 like any unknown one. The files hold no
data (every datum comes from the API behind its token), so they need no token.
"""

from importlib.resources import files
from importlib.resources.abc import Traversable

from aiohttp import web

TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
PAGE = "index.html"
# The page loads nothing from elsewhere: a file or a fetch() that would is refused by the
# browser, so a link outside the emulator shows up as a console error in the browser tests.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _shipped() -> dict[str, Traversable]:
    folder = files("pager.control") / "static"
    return {
        item.name: item
        for item in folder.iterdir()
        if item.is_file() and any(item.name.endswith(ext) for ext in TYPES)
    }


class StaticFiles:
    """The files of the page, listed once (`_shipped`), read on each request (they are
    small, and a developer editing one sees it on reload)."""

    def __init__(self) -> None:
        self.names = _shipped()

    def response(self, name: str) -> web.Response:
        item = self.names.get(name)
        if item is None:
            raise web.HTTPNotFound()
        ext = name[name.rindex(".") :]
        content_type = TYPES[ext]
        charset = None if content_type.startswith("image/") else "utf-8"
        return web.Response(
            body=item.read_bytes(), content_type=content_type, charset=charset, headers=HEADERS
        )
