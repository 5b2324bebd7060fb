"""The journal's deferred filing (`Journal._file`) attacked: batch boundaries, answers that
come late, records dropped by the limit or the byte ring, the watch, and what the seam
records as an answer against what went on the wire."""

import asyncio
import socket
import time
from datetime import UTC, datetime, timedelta

import aiocoap
import pytest
from aiocoap.numbers.types import Type
from hypothesis import given, settings
from hypothesis import strategies as st

from pager.app import Emulator
from pager.clock import Clock
from pager.control import journal as J
from pager.control.faults import Fault
from pager.control.journal import FILE_EVERY, Filters, Journal
from pager.control.journal_entry import FaultMark
from tests.conftest import ManualTime, datagrams_to, make_config
from tests.control.wall import Events

PEER = ("::ffff:127.0.0.1", 40000, 0, 0)


def _request(mid: int, size: int = 0, path: str = "p") -> bytes:
    m = aiocoap.Message(code=aiocoap.POST, payload=b"%05d" % mid * (size // 5))
    m.opt.uri_path = (path, str(mid))
    m.mtype, m.mid, m.token = Type.CON, mid & 0xFFFF, mid.to_bytes(4, "big")
    return m.encode()


def _answer(mid: int, payload: bytes = b"ok") -> bytes:
    m = aiocoap.Message(code=aiocoap.CONTENT, payload=payload)
    m.mtype, m.mid, m.token = Type.ACK, mid & 0xFFFF, mid.to_bytes(4, "big")
    return m.encode()


def _drop() -> Fault:
    return Fault(1, "drop", "/p")


def test_lost_requests_and_lrsn_requests_are_filed_in_batches_too():
    """Only `arrived` filed a batch once it was full: a journal told of nothing but requests
    a drop fault lost, or of nothing but LRSN requests, kept every one unfiled, datagram and
    all, past `limit` and `max_bytes`, until someone read it."""
    journal = Journal(Clock(), limit=5, max_bytes=2**17)
    for mid in range(1000):
        journal.acted(_drop())
        assert journal.undelivered(_request(mid, 1000), PEER) is None
        journal.lrsn_request(
            ("127.0.0.1", 4000), b"<Login/>" * 100, b'<LoginAck ret="0"/>', True, None,
            time.monotonic(),
        )  # fmt: skip
        assert len(journal._unfiled) < FILE_EVERY
    assert len(journal) == 5
    entries = list(journal.entries())
    assert [e.id for e in entries] == list(range(1996, 2001))
    assert [e.method for e in entries] == ["LRSN", "POST", "LRSN", "POST", "LRSN"]
    assert entries[1].fault.kind == "drop" and entries[1].path == "/p/998"


# -- what the journal keeps as an answer is what went on the wire --------------------------


def _kept(journal: Journal) -> list[tuple[bytes, bytes | None]]:
    """Each kept record's request and answer datagrams, as the journal's buffer holds them."""
    len(journal)  # filed
    ring = journal._datagrams
    kept = []
    for r in journal._records:
        answer = ring.get(r[J._ANSWER_AT], r[J._ANSWER_SIZE]) if r[J._ANSWER_SIZE] else None
        kept.append((ring.get(r[J._AT], r[J._SIZE]), answer))
    return kept


class _Wire:
    """One UDP port speaking CoAP datagram by datagram; every datagram it got, in order."""

    def __init__(self, transport, proto):
        self.transport, self.proto, self.mid = transport, proto, 200

    def datagram(self, method, path: str, payload=b"", mtype=Type.CON, mid=None, **opt) -> bytes:
        if mid is None:
            self.mid += 1
            mid = self.mid
        m = aiocoap.Message(code=method, payload=payload, **opt)
        m.opt.uri_path = tuple(path.strip("/").split("/"))
        m.mtype, m.mid, m.token = mtype, mid, b"w" + mid.to_bytes(2, "big")
        return m.encode()

    async def send(self, data: bytes, count: int = 1) -> list[bytes]:
        self.transport.sendto(data)
        return [await asyncio.wait_for(self.proto.received.get(), 5) for _ in range(count)]


@pytest.fixture
async def wire(rig):
    async with datagrams_to(rig.emu.port) as (transport, proto):
        yield _Wire(transport, proto)


async def test_every_answer_kept_is_the_datagram_that_went_on_the_wire(rig, wire):
    """The seam keeps `message.encode()` as the answer (RecentMessages.sent is gone): for
    piggybacked answers (one with a receipt among them), a duplicate answered from the
    deduplication table after its original was filed, an error, every block of a block-wise
    answer, a NON answer, a separate response and an observation's registration, the bytes
    kept are the bytes the client got."""
    emu = rig.emu
    journal = emu._journal
    got: list[bytes] = []
    got += await wire.send(wire.datagram(aiocoap.GET, "/v1/settings"))
    post = wire.datagram(aiocoap.POST, "/v1/sessions", b'{"number":5}', content_format=50)
    got += await wire.send(post)  # committed with its receipt: encoded for it
    assert len(journal) == 2  # filed before its retransmission comes
    again = await wire.send(post)
    assert again == got[-1:]  # the same datagram, from the deduplication table
    got += again
    got += await wire.send(wire.datagram(aiocoap.GET, "/v1/nowhere"))
    assert [answer for _, answer in _kept(journal)] == got
    entries = list(journal.entries())
    assert [(e.duplicate, e.code) for e in entries] == [
        (False, "2.05"), (False, "2.01"), (True, "2.01"), (False, "4.04"),
    ]  # fmt: skip
    assert entries[2].answer == entries[1].answer and entries[2].mid == entries[1].mid
    got.clear()
    for n in range(2, 30):
        await rig.coap.post("/v1/sessions", {"number": n, "label": "a long label " * 4})
    emu.clear_journal()
    number = 0
    while True:  # block by block
        block = wire.datagram(
            aiocoap.GET,
            "/v1/sessions",
            block2=aiocoap.optiontypes.BlockOption.BlockwiseTuple(number, False, 6),
        )
        (answer,) = await wire.send(block)
        got.append(answer)
        number += 1
        if not aiocoap.Message.decode(answer).opt.block2.more:
            break
    assert number >= 3
    got += await wire.send(wire.datagram(aiocoap.GET, "/v1/settings", mtype=Type.NON))
    got += await wire.send(wire.datagram(aiocoap.GET, "/v1/notify", observe=0))
    release = asyncio.Event()
    held = asyncio.create_task(emu.engine.exclusive(release.wait))
    await asyncio.sleep(0.05)
    wire.transport.sendto(
        wire.datagram(aiocoap.POST, "/v1/sessions", b'{"number":99}', content_format=50)
    )
    empty = await asyncio.wait_for(wire.proto.received.get(), 5)  # no answer yet: an ACK
    assert aiocoap.Message.decode(empty).code == aiocoap.EMPTY
    release.set()
    await held
    separate = await asyncio.wait_for(wire.proto.received.get(), 5)
    decoded = aiocoap.Message.decode(separate)
    assert decoded.mtype == Type.CON and decoded.code.dotted == "2.01"
    got.append(separate)

    assert [answer for _, answer in _kept(journal)] == got


async def test_a_retransmission_answered_from_a_receipt_after_a_restart_keeps_that_answer(
    tmp_path,
):
    """The answer a restarted emulator sends a retransmission from its restored receipts
    is the journal's answer to that duplicate, to the byte."""
    db = tmp_path / "pager.db"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with datagrams_to(port) as (transport, proto):  # one source port throughout
        w = _Wire(transport, proto)
        post = w.datagram(aiocoap.POST, "/v1/sessions", b'{"number":7}', content_format=50)
        async with Emulator(make_config(db, port=port)):
            (answer,) = await w.send(post)
        async with Emulator(make_config(db, port=port)) as second:
            assert await w.send(post) == [answer]
            assert _kept(second._journal) == [(post, answer)]
            (entry,) = second._journal.entries()
            assert entry.duplicate and entry.code == "2.01" and entry.number == 7


# -- batch boundaries, late answers and the bounds, on a real server ------------------------


@pytest.mark.parametrize("count", [FILE_EVERY - 1, FILE_EVERY, FILE_EVERY + 1, 2 * FILE_EVERY + 1])
async def test_entries_around_a_batch_are_each_exchange_once_with_its_answer(rig, wire, count):
    journal = rig.emu._journal
    sent = []
    for _ in range(count):
        data = wire.datagram(aiocoap.GET, "/v1/settings")
        sent.append((data, (await wire.send(data))[0]))
    assert len(journal._unfiled) == count % FILE_EVERY  # those of no full batch yet
    entries = list(journal.entries())
    assert [e.id for e in entries] == list(range(1, count + 1))
    assert [e.mid for e in entries] == [aiocoap.Message.decode(d).mid for d, _ in sent]
    assert all(e.code == "2.05" and e.answer for e in entries)
    assert _kept(journal) == sent
    assert journal.held_bytes == sum(len(d) + len(a) for d, a in sent)


@pytest.mark.parametrize(
    "config_overrides", [{}, {"journal_limit": 1}, {"journal_limit": 3}, {"journal_bytes": 2**17}]
)
async def test_an_answer_that_comes_after_its_record_was_filed(rig, wire, config_overrides):
    """A write held past a whole batch of quick reads: its answer (a separate response)
    comes after its record was filed, and goes to its entry if that is still kept."""
    emu = rig.emu
    journal = emu._journal
    limit = config_overrides.get("journal_limit", 10_000)
    release = asyncio.Event()
    held = asyncio.create_task(emu.engine.exclusive(release.wait))
    await asyncio.sleep(0.05)
    post = wire.datagram(aiocoap.POST, "/v1/sessions", b'{"number":4}', content_format=50)
    wire.transport.sendto(post)
    empty = await asyncio.wait_for(wire.proto.received.get(), 5)
    assert aiocoap.Message.decode(empty).code == aiocoap.EMPTY
    sent = [(post, None)]
    for _ in range(FILE_EVERY + 2):  # answered while writes wait
        data = wire.datagram(aiocoap.GET, "/.well-known/core")
        sent.append((data, (await wire.send(data))[0]))
    assert journal._records and journal._unfiled  # the write's record filed, unanswered
    release.set()
    await held
    separate = await asyncio.wait_for(wire.proto.received.get(), 5)
    sent[0] = (post, separate)
    kept = sent[-limit:]
    assert _kept(journal) == kept
    assert journal.held_bytes == sum(len(d) + len(a) for d, a in kept)
    entries = list(journal.entries())
    assert [e.id for e in entries] == list(range(len(sent) - len(kept) + 1, len(sent) + 1))
    if limit > len(sent):
        assert entries[0].code == "2.01" and entries[0].number == 4
        assert entries[0].latency_ms >= 40


def test_batches_written_in_one_piece_over_many_laps_of_the_buffer_read_back_whole():
    """Each batch's datagrams go into the ring in one write, moved to its start when they
    would not fit before its end: over many laps, with sizes that end batches anywhere,
    some answers late, every entry still kept reads as its own exchange."""
    journal = Journal(Clock(), limit=10_000, max_bytes=2**17)
    late = []
    for m in range(1, 5000):
        record = journal.arrived(_request(m, size=(m * 37) % 900), PEER, False, None)
        if m % 7 == 0:
            late.append((m, record))  # answered after its batch is filed
        else:
            journal.answered(record, _answer(m, b"%d" % m), True)
        if len(late) > 20:
            n, held = late.pop(0)
            journal.answered(held, _answer(n, b"%d" % n), True)
    entries = list(journal.entries())
    assert 50 < len(entries) < 1000 and journal.held_bytes <= 2**17
    assert [e.id for e in entries] == list(range(entries[0].id, 5000))
    unanswered = {n for n, _ in late}
    for e in entries:
        assert e.path == f"/p/{e.id}"
        assert e.answer == (None if e.id in unanswered else e.id), e.id


def test_batches_that_end_at_the_buffers_end_exactly_or_a_byte_past_it() -> None:
    """Exchanges of 125 bytes in a buffer of 1,000: a batch that ends right at the buffer's
    end lies where it is (nothing before it is written over), one of the buffer's size
    fills it, one a byte longer than what is left goes to its start, and one larger than
    the buffer keeps its last whole exchanges."""
    journal = Journal(Clock(), max_bytes=1000)
    mids = iter(range(10, 100))  # two digits: every exchange 114 + 11 bytes

    def batch(count: int, longer: bool = False) -> list[int]:
        made = []
        for i in range(count):
            m = next(mids)
            record = journal.arrived(_request(m, 100), PEER, False, None)
            pad = b" " if longer and i == count - 1 else b""
            journal.answered(record, _answer(m, b"%d" % m + pad), True)
            made.append(m)
        len(journal)  # filed
        return made

    def kept() -> list[int]:
        entries = list(journal.entries())
        for e in entries:
            assert e.path == f"/p/{e.answer}", e.id
        return [e.answer for e in entries]

    first = batch(3) + batch(5)  # 375 bytes, then 625 to the end
    assert kept() == first and journal.held_bytes == 1000
    whole = batch(8)  # all of it
    assert kept() == whole and journal.held_bytes == 1000
    two = batch(2)
    moved = batch(6, longer=True)  # 751 bytes after 250
    assert kept() == moved and journal.held_bytes == 751
    larger = batch(9)  # 1,125 bytes
    assert kept() == larger[-len(kept()) :] and len(kept()) >= 7
    assert two and journal.held_bytes <= 1000


@pytest.mark.parametrize("config_overrides", [{"journal_bytes": 2**17}])
async def test_a_batch_larger_than_the_buffer_keeps_only_whole_exchanges(rig, wire):
    """64 requests of ~2.2 kB and their answers filed at once: more than the 128 kB buffer.
    The first are written over by the last of the same batch: every entry left decodes to
    its own exchange, and held_bytes is what the entries hold."""
    journal = rig.emu._journal
    sent = []
    for i in range(FILE_EVERY):
        body = b'{"number":%d,"label":"%s"}' % (1000 + i, b"%03d" % i * 700)
        data = wire.datagram(aiocoap.POST, "/v1/sessions", body, content_format=50)
        sent.append((data, (await wire.send(data))[0]))
    assert sum(len(d) + len(a) for d, a in sent) > 2**17 and len(journal._unfiled) == 0
    kept = _kept(journal)
    assert 10 < len(kept) < FILE_EVERY and kept == sent[-len(kept) :]
    entries = list(journal.entries())
    assert [e.id for e in entries] == list(range(FILE_EVERY - len(kept) + 1, FILE_EVERY + 1))
    for e in entries:
        assert e.body["number"] == 1000 + e.id - 1
    assert journal.held_bytes == sum(len(d) + len(a) for d, a in kept)


# -- the watch (the pager wall) and the deferred filing ------------------------------------


def test_a_watch_set_while_records_are_unfiled_is_told_each_with_its_id_and_entry():
    journal = Journal(Clock())
    before = [journal.arrived(_request(m), PEER, False, None) for m in range(1, 4)]
    journal.answered(before[0], _answer(1), True)  # answered, unfiled: kept with it
    told: list[tuple[int, bool, object]] = []
    journal.watch = lambda r, done: told.append((r[J.ID], done, journal.entry(r)))
    journal.answered(before[1], _answer(2, b'"late"'), True)  # the watch files them all
    journal.answered(before[2], _answer(3, b'"held"'), False)  # held back: not left yet
    now = journal.arrived(_request(4), PEER, False, None)
    journal.left(before[2])
    journal.watch = None  # the stream closes mid-batch
    journal.answered(now, _answer(4), True)
    later = journal.arrived(_request(5), PEER, False, None)
    assert [(i, done) for i, done, _ in told] == [(2, True), (4, False), (3, True)]
    assert all(entry is not None for _, _, entry in told)
    assert told[0][2].answer == "late" and told[2][2].answer == "held"
    assert later[J.ID] is None  # unfiled again, no watch
    entries = list(journal.entries())
    assert [(e.id, e.path, e.code) for e in entries] == [
        (m, f"/p/{m}", "2.05" if m < 5 else None) for m in range(1, 6)
    ]
    assert all(e.latency_ms is not None for e in entries[:4])


def test_a_fault_marks_a_held_answer_that_the_watch_filed_as_it_left():
    """The seam tells `marked` after handing the answer to the filter, which may let it
    leave at once: `left`, and the watch set since the request came files it there. The
    mark told after must still reach the entry (a record complete when filed is kept as a
    tuple, and the seam marks the list it holds)."""
    journal = Journal(Clock())
    record = journal.arrived(_request(1), PEER, False, None)
    journal.answered(record, _answer(1), False)  # handed to the filter
    told: list[int] = []
    journal.watch = lambda r, done: told.append(r[J.ID])
    journal.acted(Fault(7, "duplicate", "/p"))  # the filter sends it twice
    journal.left(record)
    journal.left(record)
    journal.marked(record)
    journal.watch = None
    for m in range(2, FILE_EVERY + 2):  # a batch filed after, frozen
        r = journal.arrived(_request(m), PEER, False, None)
        journal.answered(r, _answer(m), True)
    assert told == [1]
    entries = list(journal.entries())
    assert entries[0].fault == FaultMark(7, "duplicate") and entries[0].code == "2.05"
    assert [e.id for e in entries] == list(range(1, FILE_EVERY + 2))
    assert all(e.fault is None and e.code == "2.05" for e in entries[1:])
    assert sum(type(r) is tuple for r in journal._records) >= FILE_EVERY - 1


async def test_a_wall_stream_opened_while_an_answer_is_held_unfiled_gets_it_as_it_leaves(rig, wire):
    """A request answered, its answer held by a delay, its record not filed yet when a page
    opens the wall: the snapshot files and shows it, and its event comes when it leaves."""
    emu = rig.emu
    journal = emu._journal
    await wire.send(wire.datagram(aiocoap.GET, "/.well-known/core"))
    emu.add_fault("delay", path="/v1/settings", count=1, seconds=0.5)
    wire.transport.sendto(wire.datagram(aiocoap.GET, "/v1/settings"))
    await asyncio.sleep(0.1)  # answered, and held
    assert len(journal._unfiled) == 2 and journal._unfiled[1][J._ANSWER_AT] is not None
    async with rig.http.session.get("/events") as response:
        stream = Events(response)
        hello = await stream.until("hello")
        shown = [(e["id"], e["path"], e["latency_ms"]) for e in hello["journal"]["entries"]]
        assert shown[:1] == [(1, "/.well-known/core", shown[0][2])] and shown[0][2] is not None
        assert shown[1:] == [(2, "/v1/settings", None)]
        entry = await stream.until("journal", lambda e: e["id"] == 2)
        assert entry["code"] == "2.05" and entry["latency_ms"] >= 500
        await wire.send(wire.datagram(aiocoap.GET, "/.well-known/core"))
        entry = await stream.until("journal", lambda e: e["id"] == 3)
        assert entry["code"] == "2.05"
    await asyncio.wait_for(wire.proto.received.get(), 5)  # the held answer
    for _ in range(3):
        await wire.send(wire.datagram(aiocoap.GET, "/.well-known/core"))
    for _ in range(50):  # the stream's end reaches the server
        if journal.watch is None:
            break
        await asyncio.sleep(0.02)
    assert journal.watch is None
    entries = list(journal.entries())
    assert [e.id for e in entries] == [1, 2, 3, 4, 5, 6]
    assert all(e.code == "2.05" for e in entries)


def test_ids_and_fault_marks_follow_the_order_things_happened_across_a_filing():
    """CoAP, LRSN and lost requests take their ids in the order they were told, a filing
    among them; each fault's mark goes to what it acted on, told before or after filing."""
    journal = Journal(Clock())
    order = []
    for m in range(FILE_EVERY + 6):
        if m % 3 == 0:
            journal.acted(Fault(m, "drop", "/p"))
            journal.undelivered(_request(m), PEER)
            order.append(("POST", FaultMark(m, "drop")))
        elif m % 3 == 1:
            journal.lrsn_request(
                ("127.0.0.1", 4000), b"<Login/>", b'<LoginAck ret="0"/>', True, (m, "delay"),
                time.monotonic(),
            )  # fmt: skip
            order.append(("LRSN", FaultMark(m, "delay")))
        else:
            record = journal.arrived(_request(m), PEER, False, None)
            journal.answered(record, _answer(m), False)  # held back
            journal.acted(Fault(m, "reorder", "/p"))
            journal.marked(record)
            journal.left(record)
            order.append(("POST", FaultMark(m, "reorder")))
    held = journal.undelivered(_request(999), PEER)  # no fault: lost for no reason
    journal.acted(Fault(1000, "delay", "/p"))
    mark = journal.undelivered(_request(1000), PEER)  # held by a delay: no record yet
    assert held is None and mark == FaultMark(1000, "delay")
    late = journal.arrived(_request(1000), PEER, False, mark)
    journal.acted(Fault(1001, "error", "/p"))  # acts on its answer
    journal.answered(late, _answer(1000), True)
    order += [("POST", None), ("POST", FaultMark(1001, "error"))]
    entries = list(journal.entries())
    assert [e.id for e in entries] == list(range(1, len(order) + 1))
    assert [(e.method, e.fault) for e in entries] == order
    assert all(e.latency_ms is not None for e in entries if e.method == "POST" and e.code)


def test_device_time_of_an_injected_system_clock_is_its_reading_at_arrival():
    """With a system clock of its own (the tests' manual time) the clock has no wall offset:
    each record keeps the clock's reading as it came, filed or not, whatever moves after."""
    manual = ManualTime(datetime(2030, 1, 2, 3, 4, 5))
    journal = Journal(Clock(system=manual))
    assert journal.clock.wall_offset is None
    started = datetime.now(UTC)
    journal.arrived(_request(1), PEER, False, None)
    manual.advance(60)
    list(journal.entries())  # filed
    journal.arrived(_request(2), PEER, False, None)
    manual.advance(60)
    journal.clock.set_speed(10)
    journal.arrived(_request(3), PEER, False, None)
    manual.advance(1)
    a, b, c = journal.entries()
    assert [e.device_time for e in (a, b, c)] == [
        "2030-01-02T03:04:05", "2030-01-02T03:05:05", "2030-01-02T03:06:05",
    ]  # fmt: skip
    since = Filters(since=started - timedelta(seconds=1))
    assert [e.id for e in journal.entries(since)] == [1, 2, 3]
    assert [e.id for e in journal.entries(Filters(since=datetime.now(UTC) + timedelta(1)))] == []


# -- the filing against a model: any order the seam, the faults and the rig tell things in --


_KINDS = ("drop", "delay", "duplicate", "reorder", "error")


class _Model:
    """What the journal must give back, worked out without its buffer or its filing: each
    record's expected entry by id (ids go by the order records are made), the fault mark
    pending (`acted`), the bytes told since each record came (what may have written it
    over), and the records the seam and the faults still hold."""

    def __init__(self, journal: Journal, limit: int, max_bytes: int) -> None:
        self.journal, self.limit, self.max_bytes = journal, limit, max_bytes
        self.expected: dict[int, dict[str, object]] = {}
        self.bytes: dict[int, int] = {}  # id -> its datagrams' bytes told
        self.told_at: dict[int, int] = {}  # id -> bytes told before it was made
        self.told = 0
        self.made = 0
        self.cleared = 0  # ids up to this one went with a clear
        self.pending: FaultMark | None = None
        self.open: list[tuple[int, J.Record]] = []  # arrived, not answered yet
        self.held: list[tuple[int, J.Record]] = []  # answered, held back, not left yet
        self.requests: list[tuple[int, bytes, FaultMark]] = []  # held before delivery
        self.records: dict[int, J.Record] = {}  # the lists the seam holds
        self.watched: list[J.Record] = []

    def _take(self) -> FaultMark | None:
        mark, self.pending = self.pending, None
        return mark

    def _made(self, n: int, size: int, **expected: object) -> None:
        self.made += 1
        assert n == self.made
        self.expected[n] = {"answer": None, "fault": None, "latency": False} | expected
        self.told_at[n] = self.told
        self.bytes[n] = size
        self.told += size

    def arrive(self, size: int, duplicate: bool, mark: FaultMark | None = None) -> None:
        n = self.made + 1
        data = _request(n, size)
        fault = mark if mark is not None else self._take()
        record = self.journal.arrived(data, PEER, duplicate, mark)
        self._made(n, len(data), path=f"/p/{n}", fault=fault, duplicate=duplicate)
        self.open.append((n, record))
        self.records[n] = record

    def answer(self, pick: int, mode: int, size: int, kind: int) -> None:
        if not self.open:
            return
        n, record = self.open.pop(pick % len(self.open))
        datagram = _answer(n, b"%d" % n + b" " * size)
        expected = self.expected[n]
        expected["answer"] = n
        self.bytes[n] += len(datagram)
        self.told += len(datagram)
        journal = self.journal
        if mode == 0:  # no filter: it leaves as it is sent
            if self.pending is not None:
                expected["fault"] = self._take()
            journal.answered(record, datagram, True)
            expected["latency"] = True
            return
        if self.pending is not None:
            expected["fault"] = self._take()
        journal.answered(record, datagram, False)
        fault = Fault(100 + kind, _KINDS[kind % len(_KINDS)], "/p")
        if mode == 1:  # duplicated: it leaves at once, and again later
            journal.acted(fault)
            journal.left(record)
            journal.left(record)
            expected["latency"] = True
        elif mode == 2:  # delayed
            journal.acted(fault)
            self.held.append((n, record))
        elif mode == 3:  # dropped: it never leaves
            journal.acted(fault)
        elif mode == 4:  # a reorder window full with it: the ones it held leave first
            journal.acted(fault)
            for m, other in self.held:
                journal.left(other)
                self.expected[m]["latency"] = True
            self.held.clear()
            journal.left(record)
            expected["latency"] = True
        else:  # no answer fault: it leaves as the filter sees it
            journal.left(record)
            expected["latency"] = True
        journal.marked(record)
        if mode != 5:
            expected["fault"] = FaultMark(fault.id, fault.kind)

    def leave(self, pick: int) -> None:
        if self.held:
            n, record = self.held.pop(pick % len(self.held))
            self.journal.left(record)
            self.journal.left(record)
            self.expected[n]["latency"] = True

    def acted(self, kind: int) -> None:
        fault = Fault(kind, _KINDS[kind % len(_KINDS)], "/p")
        self.journal.acted(fault)
        self.pending = FaultMark(fault.id, fault.kind)

    def passed(self) -> None:
        self.journal.passed()
        self.pending = None

    def lose(self, size: int, dropped: bool) -> None:
        if dropped:
            self.acted(0)  # a drop
        else:  # lost with the power
            self.passed()
        n = self.made + 1
        data = _request(n, size)
        assert self.journal.undelivered(data, PEER) is None
        self._made(n, len(data), path=f"/p/{n}", fault=self._take(), duplicate=False)

    def hold_request(self, kind: int, size: int) -> None:
        self.acted(1 + kind % 4)  # not a drop
        data = _request(0, size)  # its number is the one it has when it arrives
        mark = self.journal.undelivered(data, PEER)
        assert mark == self._take() and mark is not None
        self.requests.append((size, data, mark))

    def deliver(self, pick: int) -> None:
        if self.requests:
            size, _, mark = self.requests.pop(pick % len(self.requests))
            self.arrive(size, False, mark)

    def lrsn(self, size: int, sent: bool, fault: int) -> None:
        n = self.made + 1
        message = b'<Login n="%d"/>' % n + b" " * size
        answer = b'<LoginAck ret="0"/>'
        mark = (fault, "delay") if fault else None
        self.journal.lrsn_request(
            ("127.0.0.1", 4000), message, answer, sent, mark, time.monotonic()
        )
        self._made(
            n, len(message) + len(answer), path="/lrsn/Login", lrsn=True,
            fault=None if mark is None else FaultMark(*mark), latency=sent,
        )  # fmt: skip

    def clear(self) -> None:
        self.journal.clear()
        self.cleared = self.made

    def watch(self, on: bool) -> None:
        self.journal.watch = (lambda r, done: self.watched.append(r)) if on else None

    def check(self, how: int) -> None:
        journal = self.journal
        if how == 1:
            assert len(journal) == len(list(journal.entries()))
        elif how == 2:
            assert 0 <= journal.held_bytes <= self.max_bytes
        elif how == 3:
            entries = list(journal.entries())
            assert list(journal.tail(7)) == entries[-7:]
        elif how == 4:
            entries = list(journal.entries())
            after = entries[len(entries) // 2].id if entries else 0
            assert list(journal.entries(Filters(after=after))) == [
                e for e in entries if e.id > after
            ]
        else:
            self.check_all()

    def check_all(self) -> None:
        journal = self.journal
        entries = list(journal.entries())
        ids = [e.id for e in entries]
        if ids:  # the newest ones since the last clear, none missing between
            assert ids == list(range(ids[0], self.made + 1))
            assert ids[0] > self.cleared
        for n in range(max(self.cleared, self.made - self.limit) + 1, self.made + 1):
            written = self.told - self.told_at[n]  # at most what may lie after it
            if written + FILE_EVERY * 900 <= self.max_bytes:
                assert n in ids, (n, ids[:3])  # nothing can have written it over
        assert journal.held_bytes == sum(self.bytes[n] for n in ids)
        for e in entries:
            expected = self.expected[e.id]
            assert e.path == expected["path"], e.id
            assert e.fault == expected["fault"], e.id
            assert (e.latency_ms is not None) == expected["latency"], e.id
            if expected.get("lrsn"):
                assert e.code == "0" and e.body.startswith(f'<Login n="{e.id}"')
            else:
                assert e.answer == expected["answer"], e.id
                assert e.duplicate == expected["duplicate"], e.id
        # the seam's lists, and the ones the watch was told of, read as the journal keeps them
        by_id = {e.id: e for e in entries}
        for record in [*self.records.values(), *self.watched]:
            if record[J.ID] in by_id:
                assert journal.entry(record) == by_id[record[J.ID]], record[J.ID]


def _drive(journal: Journal, ops: list[tuple[int, int]], limit: int, max_bytes: int) -> None:
    model = _Model(journal, limit, max_bytes)
    for op, p in ops:
        size = (p >> 4) % 400
        if op == 0:
            model.arrive(size, bool(p & 1))
        elif op == 1:
            model.answer(p >> 8, p % 6, size, p >> 3)
        elif op == 2:
            model.leave(p)
        elif op == 3:
            model.acted(p % 50)
        elif op == 4:
            model.passed()
        elif op == 5:
            model.lose(size, bool(p & 1))
        elif op == 6:
            model.hold_request(p, size)
        elif op == 7:
            model.deliver(p)
        elif op == 8:
            model.lrsn(size, bool(p & 1), p % 3)
        elif op == 9:
            model.check(p % 6)
        elif op == 10:
            model.clear()
        else:
            model.watch(bool(p & 1))
            if p & 3 == 3:  # the page opens as an answer leaves: its record unfiled still
                model.answer(p >> 8, (1, 4, 5)[(p >> 2) % 3], size, p >> 3)
    model.check_all()


_OPS = st.lists(
    st.tuples(
        st.sampled_from([0] * 6 + [1] * 6 + [2, 2, 3, 4, 5, 6, 7, 8, 9, 9, 10, 11]),
        st.integers(0, 2**16),
    ),
    min_size=300,
    max_size=1000,
)


@settings(max_examples=50, derandomize=True, deadline=None)
@given(
    ops=_OPS, limit=st.sampled_from([3, 50, 10_000]),
    max_bytes=st.sampled_from([2**22, 2**17, 8192, 1500]),
)  # fmt: skip
def test_any_order_of_what_is_told_reads_back_as_a_model_of_it(
    ops: list[tuple[int, int]], limit: int, max_bytes: int
) -> None:
    """Records made, answered, held, left, marked, lost, over LRSN, read, cleared, with the
    watch set and unset anywhere, the buffer lapped (in batches that fit it, and in ones
    larger than it): what is read back is each exchange as told, the newest kept with no
    gap, and the lists the seam and the watch hold read as the journal keeps them (a
    record complete when filed is kept as a tuple: a copy, which nothing may change after)."""
    _drive(Journal(Clock(), limit=limit, max_bytes=max_bytes), ops, limit, max_bytes)
