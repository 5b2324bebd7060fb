"""The request gate (pager.coap.gate) on every path, over real UDP (spec §1, §2, §2.2).

One matrix: each path × each option or fault × each way of asking (a plain request, an
Observe registration, the first block of a Block1 upload), so that no check can hold on
one path or one way only: Proxy-Uri and Proxy-Scheme are 5.05, an unknown critical option
4.02, an unknown elective option is ignored, a bad Content-Format 4.15, a bad Accept 4.06,
an oversize body 4.13, an injected error its code; each with the error body, except on an
unknown path, which is 4.04 without a body whatever it carries (but a proxy request, an
unknown critical option or an injected fault are refused before the path is looked at).
"""

import ast
import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import aiocoap
import cbor2
import pytest
from aiocoap import optiontypes
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption, OpaqueOption

from tests.conftest import datagrams_to, exchange_once

PAGER = Path(__file__).resolve().parents[2] / "pager"


@dataclass(frozen=True)
class Path_:
    path: str
    method: str  # the request that succeeds on it
    ok: str
    body: bytes = b""


PATHS = {
    "sessions": Path_("/v1/sessions", "GET", "2.05"),
    "history": Path_("/v1/sessions/history", "GET", "2.05"),
    "statistics": Path_("/v1/sessions/statistics", "GET", "2.05"),
    "settings": Path_("/v1/settings", "GET", "2.05"),
    "page": Path_("/v1/page", "POST", "2.04", b'{"number":3}'),
    "notify": Path_("/v1/notify", "GET", "2.05"),
    "well-known": Path_("/.well-known/core", "GET", "2.05"),
    "unknown": Path_("/v1/nope", "GET", "4.04"),
}
UPLOADS = ("sessions", "settings", "page")  # the paths a Block1 upload goes to (POST)

CASES = {  # name: (expected code, on an unknown path)
    "proxy-uri": ("5.05", "5.05"),
    "proxy-scheme": ("5.05", "5.05"),
    "critical": ("4.02", "4.02"),
    "elective": ("ok", "4.04"),
    "content-format": ("4.15", "4.04"),
    "accept": ("4.06", "4.04"),
    "oversize": ("4.13", "4.04"),
    "fault": ("5.03", "5.03"),
}


def request(target: Path_, case: str, mode: str) -> aiocoap.Message:
    method, body = (target.method, target.body) if mode != "block1" else ("POST", b"{" * 64)
    m = aiocoap.Message(code=getattr(aiocoap, method), payload=body)
    m.opt.uri_path = tuple(target.path.strip("/").split("/"))
    if body:
        m.opt.content_format = 50
    if mode == "observe":
        m.opt.observe = 0
    if mode == "block1":  # the first of several 64-byte blocks, or one reaching past 1024
        m.opt.block1 = BlockOption.BlockwiseTuple(16 if case == "oversize" else 0, True, 2)
    if case == "proxy-uri":
        m.opt.proxy_uri = "coap://192.0.2.1/v1/sessions"
    elif case == "proxy-scheme":
        m.opt.proxy_scheme = "http"
    elif case == "critical":
        m.opt.add_option(OpaqueOption(2049, b"x"))  # odd: critical
    elif case == "elective":
        m.opt.add_option(OpaqueOption(2048, b"x"))  # even: elective
    elif case == "content-format":
        m.opt.content_format = 0
    elif case == "accept":
        m.opt.accept = 0
    elif case == "oversize" and mode != "block1":
        m.payload = b"{" * 1025
    return m


def matrix():
    for name, target in PATHS.items():
        modes = ["plain"]
        if name == "notify":
            modes.append("observe")
        if name in UPLOADS:
            modes.append("block1")
        for mode in modes:
            for case, (code, unknown_code) in CASES.items():
                expected = unknown_code if name == "unknown" else code
                if expected == "ok":
                    expected = {"plain": target.ok, "observe": "2.05", "block1": "2.31"}[mode]
                yield pytest.param(target, case, mode, expected, id=f"{name}-{mode}-{case}")


def assert_error_body(answer: aiocoap.Message, code: str) -> None:
    assert answer.code.dotted == code, answer.payload
    assert answer.opt.content_format == 50
    body = json.loads(answer.payload)
    assert body["responseTypes"] == ["error"]
    assert body["error"]["code"] == code and body["error"]["message"]
    assert answer.opt.observe is None  # a refused registration is no observation


@pytest.mark.parametrize("target, case, mode, expected", list(matrix()))
async def test_the_gate_on_every_path(emulator, client, target, case, mode, expected):
    before = (await client.get("/v1/sessions")).json["globalSessionSequence"]
    if case == "fault":
        emulator.faults.add("error", code="5.03", count=1)
    answer = await exchange_once(emulator.port, request(target, case, mode))
    code = answer.code.dotted
    if expected == "4.04":
        assert code == "4.04" and answer.payload == b""
    elif expected.startswith("2."):
        assert code == expected, answer.payload
        if mode == "observe":
            assert answer.opt.observe is not None
    else:
        assert_error_body(answer, expected)
        if expected == "4.13":
            assert answer.opt.size1 == 1024
        if case == "fault":
            assert json.loads(answer.payload)["error"]["message"] == "injected fault"
            assert emulator.faults.faults == []  # the one request took the fault
    if not expected.startswith("2."):
        assert not emulator.hub.observers
        after = (await client.get("/v1/sessions")).json["globalSessionSequence"]
        assert after == before


async def test_well_known_core_answers_link_format_only(emulator, client):
    m = aiocoap.Message(code=aiocoap.GET, uri_path=(".well-known", "core"), accept=40)
    assert (await exchange_once(emulator.port, m)).code.dotted == "2.05"
    for accept in (50, 60):
        m = aiocoap.Message(code=aiocoap.GET, uri_path=(".well-known", "core"), accept=accept)
        answer = await exchange_once(emulator.port, m)
        assert answer.code.dotted == "4.06"
        body = json.loads(answer.payload) if accept == 50 else cbor2.loads(answer.payload)
        assert body["error"]["message"] == "Accept must be 40 (application/link-format)"


async def test_well_known_core_refuses_other_methods_with_the_error_body(emulator):
    m = aiocoap.Message(code=aiocoap.POST, uri_path=(".well-known", "core"))
    assert_error_body(await exchange_once(emulator.port, m), "4.05")


@pytest.mark.parametrize("config_overrides", [{"strict": True}])
async def test_well_known_core_filters_are_no_unknown_queries(client):
    """Any query is an RFC 6690 filter there, even when strict mode refuses unknown names."""
    r = await client.get("/.well-known/core", query="rt=t7470.notify")
    assert r.code == "2.05"
    assert r.payload.decode() == '</v1/notify>;ct="50 60";rt="t7470.notify";obs'


@pytest.mark.parametrize("config_overrides", [{"strict": True}])
async def test_a_registration_with_an_unknown_query_is_refused_when_strict(client):
    r = await client.request("GET", "/v1/notify", query="colour=red")
    assert r.code == "4.00" and r.json["error"]["field"] == "colour"


async def test_a_post_carrying_observe_is_no_registration(emulator, client):
    m = aiocoap.Message(code=aiocoap.POST, uri_path=("v1", "notify"), observe=0)
    assert_error_body(await exchange_once(emulator.port, m), "4.05")
    assert not emulator.hub.observers


def test_the_coap_layer_does_not_import_the_rig():
    """The device API must not depend on the test rig: faults reach it through
    `pager.coap.gate.InjectedErrors`."""
    offenders = []
    for path in sorted((PAGER / "coap").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            offenders += [
                f"{path.relative_to(PAGER)}: {n}"
                for n in names
                if n == "pager.control" or n.startswith("pager.control.")
            ]
    assert offenders == []


class _Uploader:
    """Blocks of one upload from one UDP port, so that aiocoap keeps them together."""

    def __init__(self, transport, proto):
        self.transport, self.proto, self.mid = transport, proto, 0

    async def block(self, path: str, payload: bytes, block1) -> aiocoap.Message:
        self.mid += 1
        m = aiocoap.Message(code=aiocoap.POST, payload=payload, content_format=50, block1=block1)
        m.opt.uri_path = tuple(path.strip("/").split("/"))
        m.mtype, m.mid, m.token = Type.CON, self.mid, b"u"
        self.transport.sendto(m.encode())
        return aiocoap.Message.decode(await asyncio.wait_for(self.proto.received.get(), 5))


@pytest.fixture
async def uploader(emulator):
    async with datagrams_to(emulator.port) as (transport, proto):
        yield _Uploader(transport, proto)


@pytest.mark.parametrize("blocks_before", [0, 4])
async def test_a_last_block_larger_than_its_size_cannot_carry_a_body_past_the_limit(
    client, uploader, blocks_before
):
    """The last block of an upload may be shorter than the block size, and aiocoap does not
    check that it is not longer: a body past 1024 bytes in one last block is 4.13 all the
    same, and creates nothing (a valid body padded with whitespace, which lenient mode takes)."""
    body = b'{"number":5}' + b" " * 1500
    for n in range(blocks_before):
        answer = await uploader.block("/v1/sessions", body[n * 64 : (n + 1) * 64], _b1(n, True))
        assert answer.code.dotted == "2.31"
    rest = body[blocks_before * 64 :]
    answer = await uploader.block("/v1/sessions", rest, _b1(blocks_before, False))
    assert_error_body(answer, "4.13")
    assert answer.opt.size1 == 1024
    assert (await client.get("/v1/sessions")).json["sessions"] == []


def _b1(number: int, more: bool):
    return BlockOption.BlockwiseTuple(number, more, 2)  # 64-byte blocks


def _opt(kind, number: int, value):
    return getattr(optiontypes, kind)(number, value)


REFUSED_OPTIONS = {  # critical options the transmitter does not act on, RFC 7252 §5.4.1
    "oscore": [("OpaqueOption", 9, b"")],
    "edhoc": [("OpaqueOption", 21, b"")],
    "q-block1": [("UintOption", 19, 0)],
    "q-block2": [("UintOption", 31, 0)],
    # a supernumerary occurrence is an unrecognised option (RFC 7252 §5.4.5)
    "accept-twice": [("UintOption", 17, 50), ("UintOption", 17, 0)],
    "uri-host-twice": [("StringOption", 3, "a"), ("StringOption", 3, "b")],
    "if-none-match-twice": [("OpaqueOption", 5, b""), ("OpaqueOption", 5, b"")],
    "block1-twice": [("UintOption", 27, 6), ("UintOption", 27, 0x16)],
    "block2-twice": [("UintOption", 23, 6), ("UintOption", 23, 0x16)],
    # a condition on a request that changes no session is not acted on (If-Match may come
    # twice: tests/coap/test_conditional.py shows it on a session)
    "if-match-twice": [("OpaqueOption", 1, b"a"), ("OpaqueOption", 1, b"b")],
}
SERVED_OPTIONS = {  # electives repeated (the first counts), options that may repeat
    "content-format-twice": [("UintOption", 12, 50), ("UintOption", 12, 0)],
    "size1-twice": [("UintOption", 60, 14), ("UintOption", 60, 15)],
    "hop-limit": [("UintOption", 16, 3)],
    "uri-port": [("UintOption", 7, 5683)],
}


@pytest.mark.parametrize(
    "options, expected",
    [pytest.param(o, "4.02", id=k) for k, o in REFUSED_OPTIONS.items()]
    + [pytest.param(o, "2.04", id=k) for k, o in SERVED_OPTIONS.items()],
)
async def test_critical_options_it_does_not_act_on_or_given_twice_are_4_02(
    emulator, client, options, expected
):
    before = (await client.get("/v1/settings")).json["settings"]
    m = aiocoap.Message(code=aiocoap.POST, payload=b'{"defaultTargetGoal":1234}')
    m.opt.uri_path = ("v1", "settings")
    m.opt.content_format = 50
    for option in options:
        m.opt.add_option(_opt(*option))
    answer = await exchange_once(emulator.port, m)
    after = (await client.get("/v1/settings")).json["settings"]
    if expected == "4.02":
        assert_error_body(answer, "4.02")
        assert after == before
    else:
        assert answer.code.dotted == expected, answer.payload
        assert after["defaultTargetGoal"] == 1234
