"""The request journal and verification attacked: a full journal read while the device
serves, odd datagrams that must not fail a read, reads racing with recording. Real CoAP in
(raw datagrams and aiocoap), the journal read back over HTTP."""

import asyncio
import base64
import json
from typing import Any

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.types import Type

from tests.conftest import datagrams_to


def _strict(text: str) -> Any:
    """JSON as every other language reads it: no NaN or Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _datagram(
    mid: int, path: tuple[str, ...], payload: bytes = b"", cf: int | None = None
) -> bytes:
    m = aiocoap.Message(code=aiocoap.POST if payload else aiocoap.GET, payload=payload)
    m.opt.uri_path = path
    if cf is not None:
        m.opt.content_format = cf
    m.mtype, m.mid, m.token = Type.CON, mid, mid.to_bytes(2, "big")
    return m.encode()


async def _fill(port: int, n: int) -> None:
    """`n` exchanges recorded, a window of them in flight at a time."""
    async with datagrams_to(port) as (transport, proto):
        for start in range(0, n, 100):
            for mid in range(start, min(n, start + 100)):
                transport.sendto(_datagram(mid, ("v1", "sessions")))
            for _ in range(min(n, start + 100) - start):
                await asyncio.wait_for(proto.received.get(), 20)


READS = {
    "json": ("GET", "/journal", None),
    "jsonl": ("GET", "/journal?format=jsonl", None),
    "verify": ("POST", "/journal/verify", {"path": "/v1/sessions", "exactly": 1}),
    "verify-sequence": ("POST", "/journal/verify-sequence", {"patterns": [{"path": "/nope"}]}),
}


@pytest.mark.parametrize("read", sorted(READS))
async def test_a_coap_request_is_answered_while_a_full_journal_is_read(rig, read):
    """The read decodes thousands of entries on the loop that serves CoAP: a request sent
    once the read has begun is answered before the read has decoded the last entry."""
    emu = rig.emu
    await _fill(emu.port, 3000)
    await rig.coap.get("/v1/sessions")  # the client's first request resolves the address
    journal = emu._journal
    entries = journal.entries
    begun, done = asyncio.Event(), asyncio.Event()

    def watched(*args: Any, **kwargs: Any) -> Any:
        for n, entry in enumerate(entries(*args, **kwargs)):
            if n == 0:
                begun.set()
            yield entry
        done.set()

    journal.entries = watched  # type: ignore[method-assign]
    method, path, body = READS[read]
    reading = asyncio.create_task(rig.http.session.request(method, path, json=body))
    await begun.wait()
    answer = await rig.coap.get("/v1/sessions")
    assert answer.code == "2.05"
    assert not done.is_set(), "the CoAP request waited for the whole journal to be decoded"
    async with await reading as response:
        assert response.status in (200, 409)
        text = await response.text()
    lines = text.splitlines() if read == "jsonl" else [text]
    assert all(_strict(line) for line in lines)


def _bignum() -> bytes:
    return cbor2.dumps(10**4400)  # more digits than Python writes as text


ODD = {
    "CBOR bignum past the digit limit": (60, _bignum()),
    "CBOR with data after the item": (60, cbor2.dumps({"number": 1}) + b"\x00"),
    "CBOR tag": (60, cbor2.dumps(cbor2.CBORTag(4242, [1, 2]))),
    "CBOR byte string": (60, cbor2.dumps({"a": b"\x00\xff"})),
    "CBOR NaN": (60, cbor2.dumps(float("nan"))),
    "CBOR undefined": (60, cbor2.dumps(cbor2.undefined)),
    "CBOR integer key": (60, cbor2.dumps({1: "x"})),
    "CBOR 900 deep": (60, b"\x81" * 900 + b"\x00"),
    "JSON 1e999": (50, b'{"a":1e999}'),
    "JSON 300 deep": (50, b"[" * 300 + b"]" * 300),
    "JSON NaN": (50, b'{"a":NaN}'),
    "bad UTF-8 as text": (0, b"\xff\xfe"),
}


async def test_odd_payloads_are_kept_as_base64_and_never_fail_a_read(rig):
    emu, http = rig.emu, rig.http
    async with datagrams_to(emu.port) as (transport, proto):
        for mid, (cf, payload) in enumerate(ODD.values()):
            transport.sendto(_datagram(mid, ("v1", "sessions"), payload, cf))
            await asyncio.wait_for(proto.received.get(), 10)
        transport.sendto(_datagram(99, ("v1", "sessions"), b'{"number": 7}', 50))
        await asyncio.wait_for(proto.received.get(), 10)
    sent = [payload for _, payload in ODD.values()]
    in_python = [e.to_json() for e in emu.journal()]
    for entries in (in_python, (await http.get("/journal"))["entries"]):
        assert [(e["body"], e["body_base64"]) for e in entries[:-1]] == [
            (None, base64.b64encode(p).decode()) for p in sent
        ]
        assert entries[-1]["body"] == {"number": 7}
    async with http.session.get("/journal?format=jsonl") as r:
        assert r.status == 200
        lines = [_strict(line) for line in (await r.text()).splitlines()]
    assert [line["body_base64"] for line in lines[:-1]] == [
        base64.b64encode(p).decode() for p in sent
    ]
    async with http.session.get("/journal") as r:
        assert r.status == 200 and _strict(await r.text())
    pattern = {"path": "/v1/sessions", "body": {"a": 1}}
    async with http.session.post("/journal/verify", json=pattern) as r:
        assert r.status == 409 and _strict(await r.text())["near_misses"]
    async with http.session.post("/journal/verify-sequence", json={"patterns": [pattern]}) as r:
        assert r.status == 409 and _strict(await r.text())["unmatched"]["near_misses"]


async def test_a_piece_of_a_block1_upload_is_base64_even_when_it_parses(rig):
    """The second block of `{"number":111...1}` is all digits: JSON, but not what was sent."""
    emu = rig.emu
    body = b'{"number":' + b"1" * 3000 + b"}"
    await rig.coap.post("/v1/sessions", raw=body, content_format=50)
    pieces = emu.journal(path="/v1/sessions")
    assert [e.block1 for e in pieces][:2] == [0, 1]
    assert all(e.body is None and e.body_base64 for e in pieces)
    assert base64.b64decode(pieces[1].body_base64) == body[1024:2048]


async def test_a_read_is_of_the_journal_as_it_began_while_requests_come_and_it_is_cleared(rig):
    emu, http = rig.emu, rig.http
    await _fill(emu.port, 3000)
    await rig.coap.get("/v1/sessions")
    before = [e.id for e in emu.journal()]
    journal = emu._journal
    entries = journal.entries
    begun = asyncio.Event()

    def watched(*args: Any, **kwargs: Any) -> Any:
        for n, entry in enumerate(entries(*args, **kwargs)):
            if n == 0:
                begun.set()
            yield entry

    journal.entries = watched  # type: ignore[method-assign]
    reading = asyncio.create_task(http.session.get("/journal?format=jsonl"))
    await begun.wait()
    await rig.coap.get("/v1/sessions")  # recorded during the read
    assert await http.delete("/journal") == {"entries": []}
    await rig.coap.get("/v1/sessions")  # recorded after the clear, during the read
    async with await reading as response:
        read = [_strict(line)["id"] for line in (await response.text()).splitlines()]
    assert read == before == list(range(1, len(before) + 1))
    after = [e["id"] for e in (await http.get("/journal"))["entries"]]
    assert len(after) == 1 and after[0] > before[-1] + 1  # ids go on, none reused


async def test_paging_with_after_skips_and_repeats_nothing_while_requests_come(rig):
    emu, http = rig.emu, rig.http
    traffic = asyncio.create_task(_fill(emu.port, 2000))
    seen: list[int] = []
    while True:
        done = traffic.done()
        query = {"limit": "37", **({"after": str(seen[-1])} if seen else {})}
        page = (await http.get("/journal", params=query))["entries"]
        seen += [e["id"] for e in page]
        if done and not page or len(seen) > 4000:  # the bound: a repeating page never ends
            break
    await traffic
    assert seen == list(range(1, 2001))
