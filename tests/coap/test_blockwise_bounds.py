"""Thousands of clients starting block-wise transfers cannot grow the server without bound."""

import asyncio
import json
import threading
from datetime import datetime

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from pager import wire
from pager.coap.seam.blockwise import Block2Transfers, BoundedBlock2Cache, BoundedTimeoutDict
from pager.domain.model import Archived, Session
from pager.domain.timefmt import parse
from tests.conftest import Datagrams


async def test_bounded_timeout_dict_forgets_the_oldest():
    d = BoundedTimeoutDict(60, 2)
    d["a"], d["b"], d["c"] = 1, 2, 3
    assert list(d._items) == ["b", "c"] and d["c"] == 3
    d["b"] = 2  # stored again (a transfer's next block): now the most recently used
    d["e"] = 5
    assert list(d._items) == ["b", "e"]


async def test_block2_transfers_count_shared_answers_once_and_expire():
    transfers = Block2Transfers(10_000, 10, timeout=0.05)
    owner = BoundedBlock2Cache(transfers, 10)
    shared = aiocoap.Message(code=aiocoap.CONTENT, payload=b"x" * 5000)
    transfers.put(owner, "a", shared)
    transfers.put(owner, "b", shared)
    assert transfers.held_bytes == 5000 and transfers.holds(shared.payload)
    assert not transfers.holds(b"x" * 5000)  # equal bytes, another object: not held
    transfers.put(owner, "c", aiocoap.Message(code=aiocoap.CONTENT, payload=b"y" * 6000))
    assert list(owner.keys) == ["c"] and transfers.held_bytes == 6000  # a, then b, went
    transfers.put(owner, "d", aiocoap.Message(code=aiocoap.CONTENT, payload=b"z" * 20_000))
    assert list(owner.keys) == ["d"] and transfers.held_bytes == 20_000  # too big: alone
    for _ in range(500):  # deadline 5 s
        if not owner.keys:
            break
        await asyncio.sleep(0.01)
    assert transfers.held_bytes == 0 and not transfers._transfers and not transfers._payloads


def _get(block_number: int, mid: int) -> bytes:
    m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions"))
    if block_number:
        m.opt.block2 = BlockOption.BlockwiseTuple(block_number, False, 6)
    m.mtype, m.mid, m.token = Type.CON, mid, b"b"
    return m.encode()


@pytest.mark.parametrize("config_overrides", [{"max_block_transfers": 5}])
async def test_abandoned_transfers_are_bounded_and_service_continues(emulator, client):
    for n in range(50):  # a session list far larger than one block
        await client.post("/v1/sessions", {"number": n, "label": f"party {n:02d}"})
    loop = asyncio.get_running_loop()
    clients = []
    try:
        for _ in range(20):  # 20 clients (ports) each fetch block 0 and walk away
            transport, proto = await loop.create_datagram_endpoint(
                Datagrams, remote_addr=("127.0.0.1", emulator.port)
            )
            clients.append((transport, proto))
            transport.sendto(_get(0, 1))
            first = aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))
            assert first.opt.block2.block_number == 0 and first.opt.block2.more
        resource = emulator._context.serversite._leaves[("v1", "sessions")]
        assert len(resource._block2.keys) == 5

        async def next_block(index: int) -> aiocoap.Message:
            transport, proto = clients[index]
            transport.sendto(_get(1, 2))
            return aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))

        forgotten = await next_block(0)  # the oldest transfer was forgotten
        assert forgotten.code.dotted == "4.08"
        assert json.loads(forgotten.payload)["error"]["code"] == "4.08"
        kept = await next_block(19)  # the newest goes on
        assert kept.code.dotted == "2.05" and kept.opt.block2.block_number == 1
    finally:
        for transport, _ in clients:
            transport.close()
    r = await client.get("/v1/sessions")  # a well-behaved client gets the whole list
    assert r.code == "2.05" and len(r.json["sessions"]) == 50


# ---- history: byte budget, shared renderings, consistency, writes beside reads -----------

BUDGET = 400_000  # bytes: one history of 1,000 sessions (about 300 kB), not two


def _history(
    block_number: int, mid: int, query: str | None = None, accept: int | None = None
) -> bytes:
    m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions", "history"))
    if query:
        m.opt.uri_query = (query,)
    if accept is not None:
        m.opt.accept = accept
    m.opt.block2 = BlockOption.BlockwiseTuple(block_number, False, 6)
    m.mtype, m.mid, m.token = Type.CON, mid, b"h"
    return m.encode()


FIRST = 101  # archived ids start here; sessions created after them take the ids past theirs


async def _archive(emulator, count: int, label=lambda i: f"party {i}") -> None:
    t = datetime(2026, 3, 14, 10, 0, 0)
    await emulator.engine.archive_in_bulk(
        Archived(
            Session(i, i, f"00000000-0000-4000-8000-{i:012d}", i % 4096, 2, 300, t, t, label(i)),
            t,
            "STOP" if i % 2 else "REMOVED",
        )
        for i in range(FIRST, FIRST + count)
    )


class _Peer:
    """One source port fetching history block by block."""

    def __init__(self, port: int):
        self.port, self.mid = port, 0

    async def open(self) -> "_Peer":
        self.transport, self.proto = await asyncio.get_running_loop().create_datagram_endpoint(
            Datagrams, remote_addr=("127.0.0.1", self.port)
        )
        return self

    async def block(
        self, number: int, query: str | None = None, accept: int | None = None
    ) -> aiocoap.Message:
        self.mid += 1
        self.transport.sendto(_history(number, self.mid, query, accept))
        while True:
            answer = aiocoap.Message.decode(await asyncio.wait_for(self.proto.received.get(), 20))
            if answer.code != aiocoap.EMPTY:  # an empty ACK first when rendering takes long
                return answer

    async def rest(
        self, first: aiocoap.Message, query: str | None = None, accept: int | None = None
    ) -> bytes:
        """The whole answer, from its first block on."""
        payload, answer = first.payload, first
        while answer.opt.block2.more:
            answer = await self.block(answer.opt.block2.block_number + 1, query, accept)
            assert answer.code.dotted == "2.05", answer
            payload += answer.payload
        return payload

    def close(self) -> None:
        self.transport.close()


async def _peers(emulator, count: int) -> list[_Peer]:
    return [await _Peer(emulator.port).open() for _ in range(count)]


def _held_payload_bytes(transfers) -> int:
    """What the transfers hold, counted from their answers: each distinct payload once."""
    payloads = {
        id(t.response.payload): len(t.response.payload) for t in transfers._transfers.values()
    }
    return sum(payloads.values())


async def _expected(emulator, body: bytes, accept: int | None, query: str = "") -> bytes:
    """Today's rendering of the history (the whole envelope encoded at once), at the answer's
    own sequence and timestamp."""
    decoded = cbor2.loads(body) if accept == wire.CBOR else json.loads(body)
    params = dict(q.split("=") for q in query.split("&") if q)
    after = int(params["after"]) if "after" in params else None
    limit = int(params["limit"]) if "limit" in params else None
    archived = (await emulator.engine.store.history(after, limit)).sessions
    envelope = wire.envelope(
        wire.Identity(),
        decoded["globalSessionSequence"],
        parse(decoded["timestamp"]),
        session_history=[wire.session_out(a, history=True) for a in archived],
    )
    return wire.encode(envelope, wire.CBOR if accept == wire.CBOR else wire.JSON)


@pytest.mark.parametrize("config_overrides", [{"max_block_transfer_bytes": BUDGET}])
async def test_half_finished_history_transfers_stay_within_the_byte_budget(emulator):
    await _archive(emulator, 1000)
    peers = await _peers(emulator, 30)
    try:
        for i, peer in enumerate(peers):  # every answer different: no sharing to save bytes
            first = await peer.block(0, f"after={i}")
            assert first.code.dotted == "2.05" and first.opt.block2.more
        transfers = emulator.api.block2
        assert 0 < transfers.held_bytes <= BUDGET
        assert transfers.held_bytes == _held_payload_bytes(transfers)
        assert len(transfers._transfers) == 1  # each answer is over half the budget
    finally:
        for peer in peers:
            peer.close()


async def test_clients_fetching_the_same_history_share_one_rendering(emulator, client):
    await _archive(emulator, 1000)
    whole = (await client.get("/v1/sessions/history")).payload
    peers = await _peers(emulator, 30)
    try:
        for peer in peers:
            assert (await peer.block(0)).opt.block2.more
        assert emulator.api.block2.held_bytes == len(whole)  # 30 transfers, one answer
        assert len(emulator.api.block2._transfers) == 30
        assert await peers[7].rest(await peers[7].block(0)) == whole
    finally:
        for peer in peers:
            peer.close()


@pytest.mark.parametrize("config_overrides", [{"max_block_transfer_bytes": BUDGET}])
async def test_a_transfer_forgotten_for_the_budget_gets_4_08_and_can_start_over(emulator):
    await _archive(emulator, 1000)
    old, new = await _peers(emulator, 2)
    try:
        assert (await old.block(0, "after=1")).opt.block2.more
        newest = await new.block(0, "after=2")  # does not fit beside the first: it goes
        forgotten = await old.block(1, "after=1")
        assert forgotten.code.dotted == "4.08"
        assert json.loads(forgotten.payload)["error"]["code"] == "4.08"
        body = await new.rest(newest, "after=2")
        assert body == await _expected(emulator, body, None, "after=2")
        again = await old.block(0, "after=1")  # the forgotten client starts over
        body = await old.rest(again, "after=1")
        assert body == await _expected(emulator, body, None, "after=1")
    finally:
        old.close()
        new.close()


@pytest.mark.parametrize("accept", [None, wire.CBOR])
async def test_a_whole_history_reassembles_to_the_same_bytes(emulator, client, accept):
    labels = ["Ana", None, 'quote " and \\ backslash', "Zoë ✓ 日本", "x" * 64]
    await _archive(emulator, 700, lambda i: labels[i % len(labels)])
    r = await client.get("/v1/sessions/history", accept=accept)
    assert r.code == "2.05" and r.message.opt.content_format == (accept or wire.JSON)
    assert r.payload == await _expected(emulator, r.payload, accept)
    for query in ("limit=1000", "after=650", "after=300&limit=30", "after=800"):
        r = await client.get("/v1/sessions/history", query=query, accept=accept)
        assert r.payload == await _expected(emulator, r.payload, accept, query), query


async def test_history_changing_mid_transfer_keeps_each_transfer_consistent(emulator, client):
    await _archive(emulator, 1000)
    before, during = await _peers(emulator, 2)
    try:
        first = await before.block(0)
        await client.post("/v1/sessions", {"number": 4000})
        await client.delete("/v1/sessions", query="number=4000")  # archived: id FIRST + 1000
        started_after = await during.block(0)
        assert started_after.payload != first.payload  # a new sequence, a new rendering
        old = json.loads(await before.rest(first))  # the whole of what it started on
        new = json.loads(await during.rest(started_after))
        assert [h["id"] for h in old["session_history"]] == list(range(FIRST, FIRST + 1000))
        assert [h["id"] for h in new["session_history"]] == list(range(FIRST, FIRST + 1001))
        assert new["globalSessionSequence"] == old["globalSessionSequence"] + 2

        # history deleted, the sequence unchanged: still a new rendering
        first = await before.block(0)
        assert (await client.delete("/v1/sessions/history")).code == "2.02"
        r = await client.get("/v1/sessions/history")
        assert r.json["session_history"] == []
        assert r.json["globalSessionSequence"] == new["globalSessionSequence"]
        assert [h["id"] for h in json.loads(await before.rest(first))["session_history"]] == list(
            range(FIRST, FIRST + 1001)
        )
    finally:
        before.close()
        during.close()


async def test_a_write_completes_while_a_whole_history_read_is_pending(emulator, client):
    await _archive(emulator, 3000)
    assert (await client.get("/v1/sessions/history")).code == "2.05"
    reading, release = threading.Event(), threading.Event()

    def hold_history_reads(sql: str) -> None:  # runs in the thread that runs the statement
        if sql.lstrip().upper().startswith("SELECT") and "FROM history" in sql:
            reading.set()
            release.wait(30)

    store = emulator.engine.store
    connections = [c for c in (store._conn, getattr(store, "_reader", None)) if c is not None]
    for c in connections:
        await c._execute(c._conn.set_trace_callback, hold_history_reads)
    try:
        read = asyncio.create_task(client.get("/v1/sessions/history"))
        assert await asyncio.to_thread(reading.wait, 10), "the history read never started"
        created = await asyncio.wait_for(client.post("/v1/sessions", {"number": 9}), 10)
        assert created.code == "2.01" and not read.done()
        release.set()
        history = (await read).json["session_history"]
        assert [h["id"] for h in history] == list(range(FIRST, FIRST + 3000))
    finally:
        release.set()
        for c in connections:
            await c._execute(c._conn.set_trace_callback, None)
