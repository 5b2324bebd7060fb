"""The site (pager.coap.site): which resource a path reaches, what an unknown path gets, the
address check in front of everything, and what /.well-known/core lists."""

import asyncio
import json

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.types import Type

from tests.conftest import datagrams_to, exchange_once

LINKS = [
    '</.well-known/core>;ct="40"',
    '</v1/sessions>;ct="50 60";rt="t7470.sessions"',
    '</v1/sessions/history>;ct="50 60";rt="t7470.session_history"',
    '</v1/sessions/statistics>;ct="50 60";rt="t7470.statistics"',
    '</v1/settings>;ct="50 60";rt="t7470.settings"',
    '</v1/page>;ct="50 60";rt="t7470.page"',
    '</v1/notify>;ct="50 60";rt="t7470.notify";obs',
]


@pytest.mark.parametrize(
    "path, sections",
    [
        ("/v1/sessions", ["sessions", "statistics"]),
        ("/v1/sessions/history", ["session_history"]),
        ("/v1/sessions/statistics", ["statistics"]),
        ("/v1/settings", ["settings"]),
        ("/v1/notify", ["ping"]),
    ],
)
async def test_each_leaf_gets_its_own_requests(client, path, sections):
    """Nested paths are leaves of their own: /v1/sessions/history is not /v1/sessions."""
    r = await client.get(path)
    assert r.code == "2.05" and r.json["responseTypes"] == sections


async def test_page_is_reached_by_post(client):
    r = await client.post("/v1/page", {"number": 3})
    assert r.code == "2.04" and r.json["responseTypes"] == ["page"]


@pytest.mark.parametrize(
    "uri_path",
    [
        (),
        ("v1",),
        ("v1", "nope"),
        ("v1", "sessions", ""),  # a trailing slash
        ("v1", "sessions", "history", "x"),
        ("v1", "sessions", "statistics", "history"),
        ("v2", "sessions"),
        (".well-known",),
        ("V1", "sessions"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_an_unknown_path_is_4_04_without_a_body(emulator, client, uri_path, method):
    m = aiocoap.Message(code=getattr(aiocoap, method), uri_path=uri_path, payload=b'{"number":8}')
    m.opt.content_format = 50
    answer = await exchange_once(emulator.port, m)
    assert answer.code.dotted == "4.04" and answer.payload == b""
    assert (await client.get("/v1/sessions")).json["sessions"] == []


async def test_well_known_core_lists_every_resource_and_nothing_else(client):
    r = await client.get("/.well-known/core")
    assert r.code == "2.05" and r.message.opt.content_format == 40
    assert sorted(r.payload.decode().split(",")) == sorted(LINKS)


async def test_well_known_core_by_its_uri_path_abbreviation(emulator):
    """Uri-Path-Abbrev takes aiocoap's own way to the resource, still behind the gate's
    checks that do not depend on the resource."""
    m = aiocoap.Message(code=aiocoap.GET)
    m.opt.uri_path_abbrev = 0
    answer = await exchange_once(emulator.port, m)
    assert answer.code.dotted == "2.05"
    assert sorted(answer.payload.decode().split(",")) == sorted(LINKS)
    m = aiocoap.Message(code=aiocoap.GET, proxy_scheme="http")
    m.opt.uri_path_abbrev = 0
    answer = await exchange_once(emulator.port, m)
    assert answer.code.dotted == "5.05" and json.loads(answer.payload)["error"]["code"] == "5.05"


@pytest.mark.parametrize(
    "option, value, code",
    [("accept", 50, "4.06"), ("accept", 60, "4.06"), ("content_format", 0, "4.15")],
)
async def test_the_abbreviation_reaches_the_same_checks_as_the_path(emulator, option, value, code):
    """/.well-known/core by Uri-Path-Abbrev is the same resource with the same admission:
    what its path refuses, with the error body, the abbreviation refuses too."""
    answers = []
    for abbreviated in (False, True):
        m = aiocoap.Message(code=aiocoap.GET)
        if abbreviated:
            m.opt.uri_path_abbrev = 0
        else:
            m.opt.uri_path = (".well-known", "core")
        setattr(m.opt, option, value)
        answers.append(await exchange_once(emulator.port, m))
    errors = []
    for answer in answers:
        assert answer.code.dotted == code
        assert answer.opt.content_format == (60 if value == 60 else 50)
        errors.append((cbor2.loads if value == 60 else json.loads)(answer.payload)["error"])
    assert errors[0] == errors[1] and errors[0]["code"] == code


@pytest.mark.parametrize(
    "abbrev, uri_path, code",
    [(1, (), "4.04"), (999, (), "4.02"), (0, ("v1", "sessions"), "4.02")],
)
async def test_other_abbreviations_take_aiocoaps_way(emulator, abbrev, uri_path, code):
    """One we do not serve is an unknown path; one aiocoap does not know, or one beside a
    Uri-Path, is a bad option (with the error body)."""
    m = aiocoap.Message(code=aiocoap.GET, uri_path=uri_path)
    m.opt.uri_path_abbrev = abbrev
    answer = await exchange_once(emulator.port, m)
    assert answer.code.dotted == code
    assert (answer.payload == b"") == (code == "4.04")


class Peer:
    """Requests from one UDP port, so that a proven address stays proven."""

    def __init__(self, transport, proto):
        self.transport, self.proto, self.mid = transport, proto, 0

    async def ask(self, message: aiocoap.Message) -> aiocoap.Message:
        self.mid += 1
        message.mtype, message.mid, message.token = Type.CON, self.mid, b"p"
        self.transport.sendto(message.encode())
        return aiocoap.Message.decode(await asyncio.wait_for(self.proto.received.get(), 5))


@pytest.fixture
async def peer(emulator):
    async with datagrams_to(emulator.port) as (transport, proto):
        yield Peer(transport, proto)


@pytest.mark.parametrize("config_overrides", [{"amplification_protection": True}])
async def test_the_address_check_comes_before_the_gate_and_every_path(peer, emulator):
    """An unproven peer learns nothing, not even which paths exist or that it asked for a
    proxy, and takes no injected fault; once proven, its requests go through the gate."""
    emulator.faults.add("error", code="5.03", count=1)
    for m in [
        aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "nope")),
        aiocoap.Message(code=aiocoap.GET, uri_path=(".well-known", "core")),
        aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions"), proxy_scheme="http"),
        aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"), observe=0),
    ]:
        answer = await peer.ask(m)
        assert answer.code == aiocoap.UNAUTHORIZED and answer.opt.echo and not answer.payload
    assert len(emulator.faults.faults) == 1  # untouched
    assert not emulator.hub.observers
    echo = answer.opt.echo
    answer = await peer.ask(aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "nope"), echo=echo))
    assert answer.code.dotted == "5.03"  # proven: the gate's injected fault
    answer = await peer.ask(aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "nope")))
    assert answer.code.dotted == "4.04"
