"""The request journal end to end: real CoAP in (aiocoap clients and raw datagrams), the
journal read back through Python (`emu.journal()`) and over HTTP (`GET /journal`)."""

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta, timezone

import aiocoap
import aiohttp
import cbor2
import pytest
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption, OpaqueOption

from pager.control.journal_entry import Entry, FaultMark
from tests.conftest import Client, datagrams_to


class Raw:
    """CoAP datagram by datagram from one UDP port: a retransmission is the same bytes."""

    def __init__(self, transport, proto):
        self.transport, self.proto, self.mid = transport, proto, 100

    def datagram(
        self, method, path: str, payload: bytes = b"", mid: int | None = None, extra=(), **opt
    ):
        if mid is None:
            self.mid += 1
            mid = self.mid
        m = aiocoap.Message(code=method, payload=payload, **opt)
        m.opt.uri_path = tuple(path.strip("/").split("/"))
        for option in extra:
            m.opt.add_option(option)
        m.mtype, m.mid, m.token = Type.CON, mid, b"t" + bytes([mid % 256])
        return m.encode()

    async def send(self, data: bytes, timeout: float = 5) -> aiocoap.Message | None:
        self.transport.sendto(data)
        try:
            return aiocoap.Message.decode(
                await asyncio.wait_for(self.proto.received.get(), timeout)
            )
        except TimeoutError:
            return None

    async def request(self, method, path: str, payload: bytes = b"", **opt) -> aiocoap.Message:
        answer = await self.send(self.datagram(method, path, payload, **opt))
        assert answer is not None
        return answer


@pytest.fixture
async def raw(rig):
    async with datagrams_to(rig.emu.port) as (transport, proto):
        yield Raw(transport, proto)


def last(emu) -> Entry:
    return emu.journal()[-1]


async def test_every_kind_of_request_is_recorded_with_what_it_carried_and_got(rig, raw):
    emu, coap = rig.emu, rig.coap
    started = datetime.now(UTC)
    await coap.post("/v1/sessions", {"number": 12, "label": "Café ☕ für 4"})
    e = last(emu)
    assert (e.method, e.path, e.query, e.type) == ("POST", "/v1/sessions", (), "CON")
    assert (e.content_format, e.body, e.body_base64) == (
        50,
        {"number": 12, "label": "Café ☕ für 4"},
        None,
    )
    assert (e.number, e.code, e.answer_content_format) == (12, "2.01", 50)
    assert e.answer["sessions"][0]["label"] == "Café ☕ für 4"
    assert e.peer.startswith("127.0.0.1:") and int(e.peer.split(":")[1]) > 0
    assert e.latency_ms is not None and 0 <= e.latency_ms < 5000
    assert not e.duplicate and e.fault is None and e.observe is None
    assert started <= datetime.fromisoformat(e.time) <= datetime.now(UTC)
    assert e.device_time == emu.clock_status()["now"].isoformat()

    await coap.get("/v1/sessions", query="number=12")
    e = last(emu)
    assert (e.method, e.query, e.number, e.body, e.code) == (
        "GET",
        ("number=12",),
        12,
        None,
        "2.05",
    )

    cbor = await coap.post(
        "/v1/sessions", raw=cbor2.dumps({"number": 13}), content_format=60, accept=60
    )
    e = last(emu)
    assert (cbor.code, e.content_format, e.body, e.number) == ("2.01", 60, {"number": 13}, 13)
    assert e.answer_content_format == 60 and e.answer == cbor2.loads(cbor.payload)

    await coap.post("/v1/sessions", raw=b"\xff\x00 not cbor", content_format=60)
    e = last(emu)
    assert e.code == "4.00" and e.body is None
    assert base64.b64decode(e.body_base64) == b"\xff\x00 not cbor"
    assert e.answer["error"]["code"] == "4.00"

    not_json = cbor2.dumps({"number": 14, "label": b"bytes"})  # CBOR, but no JSON value
    await coap.post("/v1/sessions", raw=not_json, content_format=60)
    e = last(emu)
    assert e.body is None and base64.b64decode(e.body_base64) == not_json

    await coap.post("/v1/sessions", raw=b'{"number": 1', content_format=50)
    e = last(emu)
    assert e.code == "4.00" and base64.b64decode(e.body_base64) == b'{"number": 1'

    await coap.post("/v1/sessions", raw=b"number=5", content_format=0)
    assert (last(emu).code, last(emu).body) == ("4.15", "number=5")  # text/plain, as text

    await coap.get("/v1/nowhere")
    e = last(emu)
    assert (e.path, e.code, e.answer, e.answer_base64) == ("/v1/nowhere", "4.04", None, None)

    critical = await raw.request(aiocoap.GET, "/v1/settings")  # a plain one first
    assert critical.code.dotted == "2.05"
    data = raw.datagram(aiocoap.GET, "/v1/settings", extra=[OpaqueOption(2049, b"x")])
    assert (await raw.send(data)).code.dotted == "4.02"
    assert (last(emu).code, last(emu).mid, last(emu).token) == ("4.02", raw.mid, data[4:6].hex())

    huge = b'{"label":"' + "é".encode() * 20_000 + b'"}'  # one datagram, far past 1024 bytes
    answer = await raw.request(aiocoap.POST, "/v1/sessions", huge, content_format=50)
    e = last(emu)
    assert answer.code.dotted == e.code == "4.13"
    assert e.body == {"label": "é" * 20_000} and e.body_base64 is None

    await coap.get("/.well-known/core")
    e = last(emu)
    assert e.path == "/.well-known/core" and e.answer_content_format == 40
    assert "</v1/sessions>" in e.answer  # link-format, as text

    entries = emu.journal()
    assert [x.id for x in entries] == list(range(1, len(entries) + 1))
    assert len(entries) == 12


async def test_a_retransmitted_con_is_one_duplicate_entry_beside_the_original(rig, raw):
    emu = rig.emu
    data = raw.datagram(aiocoap.POST, "/v1/sessions", b'{"number":7}', content_format=50)
    first = await raw.send(data)
    again = await raw.send(data)  # the same message id: answered from the cache
    assert first.code.dotted == again.code.dotted == "2.01" and first.payload == again.payload
    original, duplicate = emu.journal()
    assert (original.duplicate, duplicate.duplicate) == (False, True)
    assert original.mid == duplicate.mid and original.token == duplicate.token
    assert duplicate.code == "2.01" and duplicate.answer == original.answer
    assert duplicate.number == 7 and 0 <= duplicate.latency_ms < 1000
    assert len((await rig.coap.get("/v1/sessions")).json["sessions"]) == 1  # created once


async def test_a_retransmission_during_a_delay_waits_with_its_exchange(rig, raw):
    """A delay holds the cached answer to a retransmission too: its entry's latency is the
    rest of the hold, not the moment aiocoap found the answer in its cache."""
    emu = rig.emu
    emu.add_fault("delay", path="/v1/settings", count=1, seconds=0.5)
    data = raw.datagram(aiocoap.GET, "/v1/settings")
    raw.transport.sendto(data)
    began = time.monotonic()
    await asyncio.sleep(0.1)  # answered, and held
    raw.transport.sendto(data)
    gap = (time.monotonic() - began) * 1e3
    first = await asyncio.wait_for(raw.proto.received.get(), 5)
    second = await asyncio.wait_for(raw.proto.received.get(), 5)
    assert first == second  # the one answer, twice, both after the delay
    original, duplicate = emu.journal()
    assert (original.duplicate, duplicate.duplicate) == (False, True)
    assert duplicate.code == original.code == "2.05"
    assert original.latency_ms >= 500
    assert 500 - gap - 50 <= duplicate.latency_ms < original.latency_ms


async def test_a_retransmission_before_its_answer_is_ready_has_none(rig, raw):
    """A duplicate that arrives while its original is still being served gets no answer
    from the cache (aiocoap has none to send yet); the original's answer is the answer."""
    emu = rig.emu
    data = raw.datagram(aiocoap.POST, "/v1/sessions", b'{"number":8}', content_format=50)
    raw.transport.sendto(data)
    raw.transport.sendto(data)  # while the first waits for its commit
    await asyncio.wait_for(raw.proto.received.get(), 5)
    original, duplicate = emu.journal()
    assert (original.code, original.duplicate) == ("2.01", False)
    assert (duplicate.code, duplicate.latency_ms, duplicate.duplicate) == (None, None, True)


async def test_drop_delay_and_error_faults_mark_the_exchanges_they_acted_on(rig, raw):
    emu = rig.emu
    drop = emu.add_fault("drop", path="/v1/settings", count=1)
    assert await raw.send(raw.datagram(aiocoap.GET, "/v1/settings"), timeout=0.3) is None
    e = last(emu)
    assert (e.path, e.code, e.latency_ms, e.fault) == (
        "/v1/settings",
        None,
        None,
        FaultMark(drop.id, "drop"),
    )
    assert e.peer.startswith("127.0.0.1:") and e.mid == raw.mid

    delay = emu.add_fault("delay", path="/v1/settings", count=1, seconds=0.3)
    began = time.monotonic()
    assert (await raw.request(aiocoap.GET, "/v1/settings")).code.dotted == "2.05"
    waited = (time.monotonic() - began) * 1e3
    e = last(emu)
    assert e.code == "2.05" and e.fault == FaultMark(delay.id, "delay")
    assert 300 <= e.latency_ms <= waited

    error = emu.add_fault("error", path="/v1/settings", count=1, code="5.00")
    assert (await raw.request(aiocoap.GET, "/v1/settings")).code.dotted == "5.00"
    e = last(emu)
    assert e.code == "5.00" and e.fault == FaultMark(error.id, "error")

    assert (await raw.request(aiocoap.GET, "/v1/settings")).code.dotted == "2.05"
    assert last(emu).fault is None  # no mark left over for the next exchange
    assert [x.fault.kind for x in emu.journal() if x.fault] == ["drop", "delay", "error"]


async def test_a_fault_on_a_notification_marks_no_exchange(rig):
    """A delay holds notifications too; the mark it leaves is no exchange's, and the next
    request's entry does not take it."""
    emu, coap = rig.emu, rig.coap
    context = await aiocoap.Context.create_client_context()
    try:
        uri = f"coap://127.0.0.1:{emu.port}/v1/notify"
        observation = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        await asyncio.wait_for(observation.response, 5)
        emu.add_fault("delay", path="/v1/notify", count=1, seconds=0.05)
        notes = observation.observation.__aiter__()
        await coap.post("/v1/sessions", {"number": 3})
        await asyncio.wait_for(notes.__anext__(), 5)
        await coap.get("/v1/settings")
        assert [e.fault for e in emu.journal()] == [None, None, None]
    finally:
        await context.shutdown()


async def test_a_block2_transfer_is_one_entry_per_block(rig):
    emu, coap = rig.emu, rig.coap
    for n in range(12):
        await coap.post("/v1/sessions", {"number": n, "label": "a long label " * 4})
    emu.clear_journal()
    whole = await coap.get("/v1/sessions")  # aiocoap fetches every block
    assert len(whole.payload) > 2048
    blocks = emu.journal(path="/v1/sessions")
    assert [e.block2 for e in blocks] == list(range(len(blocks))) and len(blocks) >= 3
    assert {e.code for e in blocks} == {"2.05"}
    assert all(e.answer is None and e.answer_base64 for e in blocks)  # pieces of JSON
    assert b"".join(base64.b64decode(e.answer_base64) for e in blocks) == whole.payload


async def test_a_block1_upload_is_one_entry_per_block(rig, raw):
    emu = rig.emu
    body = json.dumps({"number": 9, "partySize": 4, "goalInSeconds": 600, "label": "Ann"})
    body = body.encode() + b" " * 100  # whitespace, which lenient mode takes: three blocks
    pieces = [body[i : i + 64] for i in range(0, len(body), 64)]
    for n, piece in enumerate(pieces):
        more = n < len(pieces) - 1
        answer = await raw.request(
            aiocoap.POST,
            "/v1/sessions",
            piece,
            content_format=50,
            block1=BlockOption.BlockwiseTuple(n, more, 2),
        )
        assert answer.code.dotted == ("2.31" if more else "2.01")
    entries = emu.journal()
    assert [e.block1 for e in entries] == list(range(len(pieces)))
    assert [e.code for e in entries] == ["2.31"] * (len(pieces) - 1) + ["2.01"]
    assert (
        b"".join(base64.b64decode(e.body_base64) for e in entries[:-1])
        == body[: 64 * (len(pieces) - 1)]
    )


async def test_an_observation_is_its_registration_and_deregistration_not_its_notifications(rig):
    emu, coap = rig.emu, rig.coap
    context = await aiocoap.Context.create_client_context()
    try:
        uri = f"coap://127.0.0.1:{emu.port}/v1/notify"
        observation = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        first = await asyncio.wait_for(observation.response, 5)
        notes = observation.observation.__aiter__()
        for n in range(3):
            await coap.post("/v1/sessions", {"number": n})
            await asyncio.wait_for(notes.__anext__(), 5)
        end = await context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=1)).response
    finally:
        await context.shutdown()
    notify = emu.journal(path="/v1/notify")
    assert [(e.observe, e.code) for e in notify] == [(0, "2.05"), (1, end.code.dotted)]
    assert notify[0].answer == json.loads(first.payload)
    assert len(emu.journal()) == 5  # three POSTs beside them; no notification


@pytest.mark.parametrize("config_overrides", [{"journal_limit": 5}])
async def test_at_most_journal_limit_entries_the_oldest_go_first(rig, raw):
    emu = rig.emu
    for _ in range(8):
        await raw.request(aiocoap.GET, "/v1/settings")
    assert [e.id for e in emu.journal()] == [4, 5, 6, 7, 8]
    emu.clear_journal()
    await raw.request(aiocoap.GET, "/v1/settings")
    assert [e.id for e in emu.journal()] == [9]  # ids go on after a clear


@pytest.mark.parametrize("config_overrides", [{"journal_bytes": 2**17}])
async def test_the_datagrams_kept_stay_within_journal_bytes(rig, raw):
    emu = rig.emu
    journal = emu._journal
    big = b'{"label":"' + b"y" * 30_000 + b'"}'
    for _ in range(6):
        await raw.request(aiocoap.POST, "/v1/sessions", big, content_format=50)
        assert journal.held_bytes <= 2**17
    kept = emu.journal()
    assert 3 <= len(kept) <= 4 and kept[-1].id == 6
    assert [e.id for e in kept] == list(range(7 - len(kept), 7))
    await raw.request(aiocoap.GET, "/v1/settings")
    assert emu.journal()[-1].id == 7


@pytest.mark.parametrize("config_overrides", [{"journal": False}])
async def test_journal_false_records_nothing(rig, raw):
    emu = rig.emu
    emu.add_fault("drop", count=1)
    await raw.send(raw.datagram(aiocoap.GET, "/v1/settings"), timeout=0.2)
    await raw.request(aiocoap.GET, "/v1/settings")
    await rig.coap.post("/v1/sessions", {"number": 1})
    assert emu.journal() == []
    assert await rig.http.get("/journal") == {"entries": []}


async def test_cleared_by_factory_reset_and_by_delete(rig, raw):
    emu, http = rig.emu, rig.http
    await raw.request(aiocoap.GET, "/v1/settings")
    await emu.reset()
    assert emu.journal() == []
    await raw.request(aiocoap.GET, "/v1/settings")
    assert [e.id for e in emu.journal()] == [2]
    assert await http.delete("/journal") == {"entries": []}
    assert emu.journal() == [] and (await http.get("/journal")) == {"entries": []}
    await http.post("/reset")
    await raw.request(aiocoap.GET, "/v1/settings")
    assert [e["id"] for e in (await http.get("/journal"))["entries"]] == [3]


async def test_every_filter_in_python_and_over_http(rig, raw):
    emu, coap, http = rig.emu, rig.coap, rig.http
    await coap.post("/v1/sessions", {"number": 21})  # 1
    await coap.get("/v1/sessions", query="number=21")  # 2
    await coap.get("/v1/settings")  # 3
    middle = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await coap.put("/v1/sessions", {"action": "page"}, query="number=21")  # 4
    await coap.get("/v1/nowhere")  # 5
    await coap.post("/v1/sessions", {"number": 22})  # 6

    cases = [
        ({"method": "GET"}, [2, 3, 5]),
        ({"path": "/v1/sessions"}, [1, 2, 4, 6]),
        ({"number": 21}, [1, 2, 4]),
        ({"code": "2.01"}, [1, 6]),
        ({"code": "4.04"}, [5]),
        ({"since": middle}, [4, 5, 6]),
        ({"after": 4}, [5, 6]),
        ({"limit": 2}, [1, 2]),
        ({"method": "POST", "number": 22}, [6]),
        ({"path": "/v1/sessions", "after": 1, "limit": 2}, [2, 4]),
        ({"method": "DELETE"}, []),
    ]
    for filters, ids in cases:
        assert [e.id for e in emu.journal(**filters)] == ids, filters
        params = {
            k: (v.isoformat() if isinstance(v, datetime) else str(v)) for k, v in filters.items()
        }
        answer = await http.get("/journal", params=params)
        assert [e["id"] for e in answer["entries"]] == ids, filters
    zulu = middle.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert [e["id"] for e in (await http.get("/journal", params={"since": zulu}))["entries"]] == [
        4,
        5,
        6,
    ]
    elsewhere = middle.astimezone(timezone(timedelta(hours=2)))  # the same time, another offset
    assert [e.id for e in emu.journal(since=elsewhere)] == [4, 5, 6]


@pytest.mark.parametrize(
    "name, value",
    [
        ("method", "get"),
        ("method", "BREW"),
        ("path", "v1/sessions"),
        ("number", "-1"),
        ("number", "x"),
        ("code", "2.5"),
        ("code", "205"),
        ("since", "2026-01-15T18:00:00"),  # no offset
        ("since", "yesterday"),
        ("after", "1.5"),
        ("limit", "0"),
        ("limit", "many"),
        ("format", "xml"),
    ],
)
async def test_a_bad_filter_is_400_naming_it(rig, name, value):
    status, answer = await rig.http.request("GET", "/journal", params={name: value})
    assert status == 400 and name in answer["error"], answer


@pytest.mark.parametrize(
    "filters",
    [
        {"method": "get"},
        {"path": "v1"},
        {"number": -1},
        {"code": "2.5"},
        {"since": datetime(2026, 1, 15, 18, 0)},  # naive
        {"after": -1},
        {"limit": 0},
    ],
)
async def test_a_bad_filter_in_python_raises_naming_it(rig, filters):
    [name] = filters
    with pytest.raises(ValueError, match=name):
        rig.emu.journal(**filters)


async def test_unknown_and_repeated_query_names_are_400(rig):
    status, answer = await rig.http.request("GET", "/journal", params={"peer": "x"})
    assert status == 400 and "peer" in answer["error"]


async def test_jsonl_streams_every_entry_as_a_line_that_reads_back(rig, raw):
    emu = rig.emu
    await rig.coap.post("/v1/sessions", {"number": 31, "label": "naïve"})
    await raw.request(aiocoap.POST, "/v1/sessions", b"\x80\x81", content_format=50)
    for _ in range(300):
        await raw.request(aiocoap.GET, "/v1/settings")
    async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as session:
        async with session.get("/journal", params={"format": "jsonl"}) as r:
            assert r.status == 200 and r.content_type == "application/x-ndjson"
            assert r.headers.get("Transfer-Encoding") == "chunked"  # streamed, no length
            lines = (await r.read()).decode().splitlines()
        async with session.get("/journal", params={"format": "jsonl", "method": "POST"}) as r:
            posts = [Entry.from_json(json.loads(line)) for line in (await r.text()).splitlines()]
    entries = [Entry.from_json(json.loads(line)) for line in lines]
    assert entries == emu.journal() and len(entries) == 302
    assert posts == emu.journal(method="POST") and posts[0].body["label"] == "naïve"


async def test_many_clients_at_once_every_exchange_recorded_once(rig):
    emu = rig.emu
    contexts = [await aiocoap.Context.create_client_context() for _ in range(12)]
    try:
        clients = [Client(c, emu.port) for c in contexts]

        async def work(i: int, client: Client) -> list[str]:
            codes = []
            for k in range(10):
                if k % 2:
                    codes.append((await client.get("/v1/sessions", query=f"number={i}")).code)
                else:
                    codes.append((await client.post("/v1/sessions", {"number": i})).code)
            return codes

        results = await asyncio.gather(*(work(i, c) for i, c in enumerate(clients)))
    finally:
        for c in contexts:
            await c.shutdown()
    entries = emu.journal()
    assert len(entries) == 120
    assert len({(e.peer, e.mid) for e in entries}) == 120
    assert not any(e.duplicate for e in entries)
    for i, codes in enumerate(results):
        mine = [e.code for e in entries if e.number == i]
        assert sorted(mine) == sorted(codes)


async def test_the_pytest_fixture_has_the_journal_on_its_frozen_clock(pager_emulator):
    context = await aiocoap.Context.create_client_context()
    try:
        await Client(context, pager_emulator.port).post("/v1/sessions", {"number": 4})
    finally:
        await context.shutdown()
    [entry] = pager_emulator.journal(number=4)
    assert (entry.code, entry.device_time) == ("2.01", "2026-01-15T18:00:00")
    pager_emulator.clear_journal()
    assert pager_emulator.journal() == []


async def test_a_dropped_datagram_that_is_no_request_leaves_no_mark_behind(rig, raw):
    """aiocoap reads a request ending in a payload marker with no payload, so a drop fault
    takes it; the seam would refuse it as malformed, so it is no exchange, and the next
    request's entry does not take the drop's mark."""
    emu = rig.emu
    emu.add_fault("drop", count=1)
    malformed = raw.datagram(aiocoap.GET, "/v1/settings") + b"\xff"
    assert await raw.send(malformed, timeout=0.3) is None
    assert emu.list_faults() == []  # the drop acted
    assert (await raw.request(aiocoap.GET, "/v1/settings")).code.dotted == "2.05"
    [entry] = emu.journal()
    assert entry.fault is None


async def test_chaos_faults_mark_what_they_did(rig, raw):
    """An answer lost on its way out keeps its code and has no latency; a duplicated request
    is two entries, the copy answered from the cache; reordered requests carry the mark of
    the fault that held them."""
    emu = rig.emu
    lost = emu.add_fault("drop", path="/v1/settings", direction="answer", count=1)
    assert await raw.send(raw.datagram(aiocoap.GET, "/v1/settings"), timeout=0.3) is None
    e = last(emu)
    assert (e.code, e.latency_ms, e.fault) == ("2.05", None, FaultMark(lost.id, "drop"))

    emu.clear_journal()
    copied = emu.add_fault("duplicate", path="/v1/settings", count=1, seconds=0.05)
    assert (await raw.request(aiocoap.GET, "/v1/settings")).code.dotted == "2.05"
    await asyncio.wait_for(raw.proto.received.get(), 5)  # the cached answer to the copy
    original, copy = emu.journal()
    assert (original.duplicate, original.fault) == (False, FaultMark(copied.id, "duplicate"))
    assert (copy.duplicate, copy.mid, copy.code) == (True, original.mid, "2.05")

    emu.clear_journal()
    held = emu.add_fault("reorder", path="/v1/settings", count=2, window=2, seconds=1.0)
    first = raw.datagram(aiocoap.GET, "/v1/settings")
    second = raw.datagram(aiocoap.GET, "/v1/settings")
    raw.transport.sendto(first)
    raw.transport.sendto(second)
    answers = [await asyncio.wait_for(raw.proto.received.get(), 5) for _ in range(2)]
    assert sorted(aiocoap.Message.decode(a).mid for a in answers) == [raw.mid - 1, raw.mid]
    entries = emu.journal()
    assert [e.mid for e in entries] == [raw.mid, raw.mid - 1]  # as the emulator read them
    assert {e.fault for e in entries} == {FaultMark(held.id, "reorder")}
    assert all(e.code == "2.05" for e in entries)


def test_the_datagram_buffer_writes_over_the_oldest_and_keeps_each_datagram_whole():
    from pager.control.journal import _Datagrams

    ring = _Datagrams(100)
    a, b = ring.put(b"a" * 40), ring.put(b"b" * 40)
    assert (a, b) == (0, 40) and ring.get(a, 40) == b"a" * 40
    c = ring.put(b"c" * 30)  # does not fit before the end: starts the buffer again
    assert c == 100 and ring.get(c, 30) == b"c" * 30
    assert ring.get(a, 40) is None and ring.get(b, 40) == b"b" * 40  # b's bytes are intact
    d = ring.put(b"d" * 20)
    assert ring.get(b, 40) is None and ring.get(d, 20) == b"d" * 20
    too_big = ring.put(b"e" * 101)
    assert ring.get(too_big, 101) is None and ring.get(d, 20) == b"d" * 20


@pytest.mark.parametrize("config_overrides", [{"journal_bytes": 2**17}])
async def test_entries_stay_whole_while_the_buffer_goes_round_many_times(rig, raw):
    emu = rig.emu
    for i in range(40):  # ~ 40 x 6 kB requests and their answers: the buffer goes round
        body = json.dumps({"number": 1000 + i, "label": f"{i:03d}" * 2000}).encode()
        await raw.request(aiocoap.POST, "/v1/sessions", body, content_format=50)
    kept = emu.journal()
    assert 5 <= len(kept) < 40 and kept[-1].id == 40
    assert [e.id for e in kept] == list(range(41 - len(kept), 41))
    for e in kept:  # each entry decodes to its own request and answer
        assert e.body["number"] == 1000 + e.id - 1 and e.body["label"] == f"{e.id - 1:03d}" * 2000
        assert e.code == "4.13" or e.code in ("2.01", "2.00")


def test_recording_keeps_no_datagram_as_an_object_of_its_own():
    """The datagrams live in the journal's one buffer (a mapping tracemalloc does not see):
    what each record adds is the record, not its datagrams' ~1,100 bytes."""
    import tracemalloc

    from pager.clock import Clock
    from pager.control.journal import Journal

    journal = Journal(Clock(), limit=10_000)
    request = Raw(None, None).datagram(aiocoap.POST, "/v1/sessions", b"x" * 500)
    answer = b"\x60\x41\x00\x01" + b"y" * 600
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for port in range(2000):
            peer = ("::ffff:127.0.0.1", 40000 + port % 4, 0, 0)
            record = journal.arrived(bytes(bytearray(request)), peer, False, None)
            journal.answered(record, bytes(bytearray(answer)), True)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(journal) == 2000 and journal.held_bytes == 2000 * (len(request) + len(answer))
    assert grown / 2000 < 600, f"{grown / 2000:.0f} B per record"


def test_a_peer_reads_alike_whichever_socket_it_came_through():
    """CoAP's IPv6 socket gives an IPv4 peer as mapped; LRSN's may give it plain or mapped:
    the journal writes each as host:port, and an IPv6 one as [host]:port."""
    from pager.control.journal import _peer

    assert _peer(("::ffff:10.0.0.7", 5683, 0, 0)) == "10.0.0.7:5683"
    assert _peer(("10.0.0.7", 40000)) == "10.0.0.7:40000"
    assert _peer(("::1", 5683, 0, 0)) == "[::1]:5683"


def _journal_of(limit=10_000, max_bytes=16 * 2**20):
    from pager.clock import Clock
    from pager.control.journal import Journal

    return Journal(Clock(), limit=limit, max_bytes=max_bytes)


def _answer_to(request: bytes, payload: bytes = b"ok") -> bytes:
    m = aiocoap.Message.decode(request)
    answer = aiocoap.Message(code=aiocoap.CONTENT, payload=payload)
    answer.mtype, answer.mid, answer.token = Type.ACK, m.mid, m.token
    return answer.encode()


def test_an_answer_after_its_request_was_filed_is_still_its_entrys():
    """Records are filed in batches (`FILE_EVERY`), or when the journal is read: an answer
    that comes after that (a slow request among many in flight) goes to its entry, and a
    record gone since (a clear, the limit) takes none and breaks nothing."""
    from pager.control.journal import FILE_EVERY

    journal = _journal_of(limit=FILE_EVERY + 10)
    raw = Raw(None, None)
    peer = ("::ffff:127.0.0.1", 40000, 0, 0)
    slow_request = raw.datagram(aiocoap.GET, "/slow")
    slow = journal.arrived(slow_request, peer, False, None)
    quick = []
    for _ in range(FILE_EVERY):  # the slow one is filed among them, unanswered
        request = raw.datagram(aiocoap.GET, "/quick")
        quick.append(request)
        record = journal.arrived(request, peer, False, None)
        journal.answered(record, _answer_to(request), True)
    slow_answer = _answer_to(slow_request, b'"late"')
    journal.answered(slow, slow_answer, True)
    entries = list(journal.entries())
    assert [e.path for e in entries] == ["/slow"] + ["/quick"] * FILE_EVERY
    assert [e.id for e in entries] == list(range(1, FILE_EVERY + 2))
    assert (entries[0].code, entries[0].answer) == ("2.05", "late")
    assert entries[0].latency_ms is not None and all(e.code == "2.05" for e in entries)
    held = sum(len(r) + len(_answer_to(r)) for r in quick) + len(slow_request + slow_answer)
    assert journal.held_bytes == held

    cleared = journal.arrived(raw.datagram(aiocoap.GET, "/cleared"), peer, False, None)
    journal.clear()
    journal.answered(cleared, b"\x60\x45\x00\x00", True)
    assert list(journal.entries()) == [] and journal.held_bytes == 0
    gone = journal.arrived(raw.datagram(aiocoap.GET, "/gone"), peer, False, None)
    for _ in range(FILE_EVERY + 10):  # past the limit: "gone" is the oldest, and goes
        journal.arrived(raw.datagram(aiocoap.GET, "/after"), peer, False, None)
    assert len(journal) == FILE_EVERY + 10
    journal.answered(gone, b"\x60\x45\x00\x00", True)
    entries = list(journal.entries())
    assert {e.path for e in entries} == {"/after"} and len(entries) == FILE_EVERY + 10
    # ids go on through the clear: slow, the quick ones, cleared and gone came before
    assert entries[0].id == 1 + FILE_EVERY + 1 + 1 + 1


def test_device_and_wall_time_are_the_moment_a_request_came_not_when_it_was_filed():
    """A record's device time is made from its wall time when read: a clock set, shifted,
    frozen or sped up after the request came (before the record was filed, and after)
    changes neither."""
    journal = _journal_of()
    clock = journal.clock
    raw = Raw(None, None)
    peer = ("::ffff:127.0.0.1", 40000, 0, 0)
    before = time.time()
    journal.arrived(raw.datagram(aiocoap.GET, "/a"), peer, False, None)
    clock.shift(86_400)  # a day on: the first request's device time stays today's
    journal.arrived(raw.datagram(aiocoap.GET, "/b"), peer, False, None)
    clock.freeze()
    clock.shift(86_400)
    journal.arrived(raw.datagram(aiocoap.GET, "/c"), peer, False, None)  # frozen, two days on
    clock.unfreeze()
    clock.set_speed(100)
    after = time.time()
    a, b, c = journal.entries()
    now = datetime.now()
    day = timedelta(days=1)
    for entry, days in ((a, 0), (b, 1), (c, 2)):
        device = datetime.fromisoformat(entry.device_time)
        assert abs(device - (now + days * day)) < timedelta(seconds=5), (entry.path, device)
        wall = datetime.fromisoformat(entry.time).timestamp()
        assert before - 0.01 <= wall <= after + 0.01, entry.path
    clock.reset()
    assert [e.device_time for e in journal.entries()] == [
        a.device_time,
        b.device_time,
        c.device_time,
    ]


def test_wall_time_is_read_as_the_request_comes_not_when_it_is_filed(monkeypatch):
    """A laptop suspended (the monotonic clock stands still, the wall clock does not) or a
    system clock stepped between a request and its filing must not move its entry."""
    journal = _journal_of()
    raw = Raw(None, None)
    peer = ("::ffff:127.0.0.1", 40000, 0, 0)
    came = time.time()
    journal.arrived(raw.datagram(aiocoap.GET, "/a"), peer, False, None)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # an hour's suspend, then a read
    (entry,) = journal.entries()
    wall = datetime.fromisoformat(entry.time).timestamp()
    assert came - 0.01 <= wall <= came + 5, wall - came
    device = datetime.fromisoformat(entry.device_time)
    assert abs(device - datetime.fromtimestamp(came)) < timedelta(seconds=5)
