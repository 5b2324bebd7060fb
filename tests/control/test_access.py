"""Who may use the control API (issue 6): loopback only, unless a token is configured."""

import pytest
from aiohttp.test_utils import make_mocked_request

from pager.app import Emulator
from pager.control.http import build_app


class Peer:
    def __init__(self, address):
        self.address = address

    def get_extra_info(self, name, default=None):
        return (self.address, 40000) if name == "peername" else default


async def _call(app, address, headers=None):
    request = make_mocked_request(
        "GET", "/clock", headers=headers or {}, app=app, transport=Peer(address)
    )
    match = await app.router.resolve(request)
    request._match_info = match
    handler = match.handler
    for middleware in reversed(app.middlewares):
        handler = _wrap(middleware, handler)
    return await handler(request)


def _wrap(middleware, handler):
    async def call(request):
        return await middleware(request, handler)

    return call


@pytest.fixture
async def emu():
    async with Emulator() as emulator:
        yield emulator


@pytest.mark.parametrize(
    "address,status",
    [
        ("127.0.0.1", 200),
        ("127.8.9.10", 200),
        ("::1", 200),
        ("::ffff:127.0.0.1", 200),
        ("192.168.1.20", 403),
        ("10.0.0.1", 403),
        ("::ffff:192.168.1.20", 403),
        ("fe80::1", 403),
    ],
)
async def test_without_token_only_loopback(emu, address, status):
    response = await _call(build_app(emu), address)
    assert response.status == status


@pytest.mark.parametrize(
    "headers,status",
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-wrong-token"}, 401),
        ({"Authorization": "Bearer 0123456789abcdef0123"}, 200),
        ({"Authorization": "0123456789abcdef0123"}, 401),
    ],
)
async def test_with_token_every_request_carries_it(emu, headers, status):
    app = build_app(emu, token="0123456789abcdef0123")
    assert (await _call(app, "192.168.1.20", headers)).status == status
    assert (await _call(app, "127.0.0.1", headers)).status == status
