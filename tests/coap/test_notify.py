"""OBSERVE /v1/notify end to end over real UDP (spec §8)."""

import asyncio
import gc
import json
import logging
import time

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption


class Watch:
    """One observer on its own client context (its own UDP port), collecting notifications."""

    def __init__(self, port: int, query: str | None = None):
        self.uri = f"coap://127.0.0.1:{port}/v1/notify" + (f"?{query}" if query else "")
        self.notes: list[dict] = []
        self.times: list[float] = []
        self._changed = asyncio.Event()

    async def start(self) -> "Watch":
        self.context = await aiocoap.Context.create_client_context()
        self.request = self.context.request(
            aiocoap.Message(code=aiocoap.GET, uri=self.uri, observe=0)
        )
        first = await asyncio.wait_for(self.request.response, 10)
        assert first.code == aiocoap.CONTENT and first.opt.observe is not None
        self._add(first)
        self._task = asyncio.create_task(self._read())
        return self

    def _add(self, message: aiocoap.Message) -> None:
        self.notes.append(json.loads(message.payload))
        self.times.append(time.monotonic())
        self._changed.set()

    async def _read(self) -> None:
        async for message in self.request.observation:
            self._add(message)

    def of(self, kind: str) -> list[dict]:
        return [n for n in self.notes if n["responseTypes"][0] == kind]

    async def until(self, predicate, timeout: float = 10) -> None:
        async def wait():
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)

    async def stop(self) -> None:
        self._task.cancel()
        await self.context.shutdown()


@pytest.fixture
async def watches(emulator):
    started: list[Watch] = []

    async def start(query: str | None = None) -> Watch:
        started.append(await Watch(emulator.port, query).start())
        return started[-1]

    yield start
    for w in started:
        await w.stop()


async def test_first_answer_is_a_ping_or_the_session_list(client, watches):
    await client.post("/v1/sessions", {"number": 4})
    ping = (await watches()).notes[0]
    assert ping["responseTypes"] == ["ping"] and ping["ping"] == {}
    assert list(ping)[:5] == [
        "responseTypes",
        "globalSessionSequence",
        "timestamp",
        "deviceName",
        "firmwareVersion",
    ]
    listing = (await watches("action=get_sessions")).notes[0]
    assert listing["responseTypes"] == ["sessions", "statistics"]
    assert [s["number"] for s in listing["sessions"]] == [4]
    assert listing == (await client.get("/v1/sessions")).json


async def test_fifty_changes_reach_three_observers_in_order(client, watches, emulator):
    observers = [await watches() for _ in range(3)]
    expected: list[tuple[int, str]] = []  # (number, state) per session notification

    async def change(method, query=None, body=None, path="/v1/sessions"):
        reply = await client.request(method, path, body, query=query)
        assert reply.code.startswith("2.")
        return reply

    for n in range(1, 11):
        await change("POST", body={"number": n})
        expected.append((n, "started"))
    for n in range(1, 6):
        await change("PUT", f"number={n}", {"label": f"party {n}"})
        expected.append((n, "started"))
    await change("POST", body={"systemId": 12}, path="/v1/settings")
    for n in range(1, 11):
        await change("PUT", f"number={n}", {"action": "page"})
        expected.append((n, "paged"))
    for n in range(1, 6):
        await change("POST", body={"number": n, "action": "page"})  # re-page
        expected.append((n, "paged"))
    for n in range(1, 6):
        await change("PUT", f"number={n}", {"action": "clear"})
        expected.append((n, "cleared"))
    for n in range(6, 9):
        await change("POST", body={"number": n, "action": "remove"})
        expected.append((n, "cleared"))
    for n in range(11, 21):
        await change("POST", body={"number": n})
        expected.append((n, "started"))
    await change("DELETE")  # clear all: one notification per session, in id order
    expected += [(n, "cleared") for n in [9, 10, *range(11, 21)]]
    assert len(expected) == 60

    for w in observers:
        await w.until(lambda w: len(w.of("sessions")) == 60 and w.of("settings"))
        notes = w.of("sessions")
        assert [(n["sessions"][0]["number"], n["sessions"][0]["state"]) for n in notes] == expected
        assert [n["globalSessionSequence"] for n in notes] == list(range(1, 61))  # no gaps
        assert all(n["sessions"][0]["sessionSequence"] == n["globalSessionSequence"] for n in notes)
        assert all(n["responseTypes"] == ["sessions", "statistics"] for n in notes)
        assert all(
            "cleared" in n["sessions"][0] for n in notes if n["sessions"][0]["state"] == "cleared"
        )
        # the settings notification sits between the updates and the pages, as it happened
        kinds = [n["responseTypes"][0] for n in w.notes if n["responseTypes"][0] != "ping"]
        assert kinds.index("settings") == 15
        assert w.of("settings")[0]["settings"]["systemId"] == 12
        assert w.of("settings")[0]["globalSessionSequence"] == 15
    final = (await client.get("/v1/sessions/statistics")).json["statistics"]
    assert observers[0].of("sessions")[-1]["statistics"] == final


@pytest.mark.parametrize("config_overrides", [{"ping_interval": 0.3}])
async def test_ping_cadence(watches):
    w = await watches()
    await w.until(lambda w: len(w.of("ping")) >= 5, timeout=10)
    gaps = [b - a for a, b in zip(w.times[1:], w.times[2:])]
    assert all(0.15 < g < 1.0 for g in gaps), gaps
    assert sum(gaps) / len(gaps) == pytest.approx(0.3, abs=0.1)


class RawObserver(asyncio.DatagramProtocol):
    """A hand-driven observer: it registers, then acknowledges nothing unless told to."""

    def __init__(self):
        self.datagrams: asyncio.Queue[aiocoap.Message] = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.datagrams.put_nowait(aiocoap.Message.decode(data))

    @classmethod
    async def open(cls, port: int):
        transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
            cls, remote_addr=("127.0.0.1", port)
        )
        proto.transport = transport
        return proto

    def send(self, message: aiocoap.Message, mtype: Type, mid: int, token: bytes = b"") -> None:
        message.mtype, message.mid, message.token = mtype, mid, token
        self.transport.sendto(message.encode())

    def register(self, observe: int = 0, mid: int = 1) -> None:
        self.send(
            aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"), observe=observe),
            Type.CON,
            mid,
            b"obs1",
        )

    async def next(self, timeout: float = 5) -> aiocoap.Message:
        return await asyncio.wait_for(self.datagrams.get(), timeout)


@pytest.mark.parametrize("config_overrides", [{"ping_interval": 0.4}])
async def test_dead_observer_dropped_after_three_pings(client, watches, emulator, caplog):
    caplog.set_level(logging.INFO, logger="pager.notify")
    healthy = await watches()
    dead = await RawObserver.open(emulator.port)
    dead.register()
    first = await dead.next()
    assert first.code == aiocoap.CONTENT and first.mtype == Type.ACK
    assert len(emulator.hub.observers) == 2
    ping = await dead.next()  # a CON ping that will never be acknowledged
    assert ping.mtype == Type.CON and b'"ping"' in ping.payload
    unacked_since = time.monotonic()
    # retransmitting to the dead observer does not hold up anyone else
    r = await client.post("/v1/sessions", {"number": 1})
    assert r.code == "2.01"
    await healthy.until(lambda w: len(w.of("sessions")) == 1)
    await asyncio.sleep(max(0.0, unacked_since + 1.5 * 0.4 - time.monotonic()))
    assert len(emulator.hub.observers) == 2  # one or two unanswered pings are not enough
    deadline = unacked_since + 2.5 * 0.4 + 3
    while len(emulator.hub.observers) == 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(emulator.hub.observers) == 1
    assert any(
        "ended" in rec.getMessage() and "unacknowledged" in rec.getMessage()
        for rec in caplog.records
    )
    retransmissions = [m for m in _drain(dead) if m.mid == ping.mid]
    assert retransmissions  # it really was retransmitted before being given up
    await client.post("/v1/sessions", {"number": 2})
    await healthy.until(lambda w: len(w.of("sessions")) == 2)
    dead.transport.close()


def _drain(raw: RawObserver) -> list[aiocoap.Message]:
    out = []
    while not raw.datagrams.empty():
        out.append(raw.datagrams.get_nowait())
    return out


async def test_deregister_with_observe_1(client, emulator):
    raw = await RawObserver.open(emulator.port)
    raw.register()
    await raw.next()
    await client.post("/v1/sessions", {"number": 1})
    note = await raw.next()
    raw.send(aiocoap.Message(code=aiocoap.EMPTY), Type.ACK, note.mid)
    raw.register(observe=1, mid=2)
    answer = await raw.next()
    assert answer.code == aiocoap.CONTENT and answer.opt.observe is None
    await _until(lambda: not emulator.hub.observers)
    await client.post("/v1/sessions", {"number": 2})
    await asyncio.sleep(0.3)
    assert _drain(raw) == []
    raw.transport.close()


async def test_reset_ends_the_observation(client, emulator):
    raw = await RawObserver.open(emulator.port)
    raw.register()
    await raw.next()
    await client.post("/v1/sessions", {"number": 1})
    note = await raw.next()
    assert note.mtype == Type.CON
    raw.send(aiocoap.Message(code=aiocoap.EMPTY), Type.RST, note.mid)
    await _until(lambda: not emulator.hub.observers)
    await client.post("/v1/sessions", {"number": 2})
    await asyncio.sleep(0.3)
    assert _drain(raw) == []
    raw.transport.close()


async def _until(predicate, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_get_sessions_delivers_300_active_sessions(client, watches):
    """Spec §8: the whole list in one notification, block-wise (aiocoap fetches the rest)."""
    for n in range(300):
        await client.post("/v1/sessions", {"number": n, "label": f"guest {n:03d}"})
    w = await watches("action=get_sessions")
    (listing,) = w.notes
    assert [s["id"] for s in listing["sessions"]] == list(range(1, 301))
    assert listing["globalSessionSequence"] == 300
    assert listing["statistics"]["numSessions"] == 300
    await client.put("/v1/sessions", {"action": "page"}, query="number=7")
    await w.until(lambda w: w.notes[-1]["globalSessionSequence"] == 301)
    assert len(w.notes) == 2
    assert w.notes[-1]["sessions"][0]["number"] == 7


async def test_cbor_observer(client, emulator):
    context = await aiocoap.Context.create_client_context()
    try:
        request = context.request(
            aiocoap.Message(
                code=aiocoap.GET,
                uri=f"coap://127.0.0.1:{emulator.port}/v1/notify",
                observe=0,
                accept=60,
            )
        )
        first = await request.response
        assert first.opt.content_format == 60
        assert cbor2.loads(first.payload)["responseTypes"] == ["ping"]
        await client.post("/v1/sessions", {"number": 3})
        note = await asyncio.wait_for(request.observation.__aiter__().__anext__(), 5)
        assert cbor2.loads(note.payload)["sessions"][0]["number"] == 3
    finally:
        await context.shutdown()


@pytest.mark.parametrize("config_overrides", [{"auto_page_at_goal": True}])
async def test_time_driven_changes_notify(client, watches, manual_time):
    w = await watches()
    await client.post(
        "/v1/settings", {"statisticsClearMark": 12, "datetime": "2026-03-15T11:59:50"}
    )
    await client.post("/v1/sessions", {"number": 5, "goal": 5})
    manual_time.advance(5)  # the goal passes: the ticker pages it
    await w.until(lambda w: any(n["sessions"][0]["state"] == "paged" for n in w.of("sessions")))
    paged = [n for n in w.of("sessions") if n["sessions"][0]["state"] == "paged"]
    assert len(paged) == 1
    assert paged[0]["sessions"][0]["notified"] == "2026-03-15T11:59:55"
    assert paged[0]["statistics"]["percentOnTime"] == 100
    manual_time.advance(5)  # 12:00:00, the clear mark
    await w.until(lambda w: w.of("statistics"))
    (cleared,) = w.of("statistics")
    assert cleared["statistics"]["numSessions"] == 0 and cleared["responseTypes"] == ["statistics"]


async def test_statistics_reset_notifies(client, watches):
    w = await watches()
    await client.delete("/v1/sessions/statistics")
    await w.until(lambda w: w.of("statistics"))


async def test_bad_registration_is_refused(client):
    r = await client.get("/v1/notify", query="action=dance")
    assert r.code == "4.00" and r.json["error"]["field"] == "action"
    r = await client.post("/v1/notify")
    assert r.code == "4.05"


async def test_well_known_core_marks_notify_observable(client):
    links = (await client.get("/.well-known/core")).payload.decode()
    assert '</v1/notify>;ct="50 60";rt="t7470.notify";obs' in links


@pytest.mark.parametrize("config_overrides", [{"max_observers": 2}])
async def test_observers_beyond_the_limit_get_503(client, watches, emulator):
    await watches()
    await watches()
    raw = await RawObserver.open(emulator.port)
    raw.register()
    answer = await raw.next()
    assert answer.code.dotted == "5.03" and answer.opt.observe is None
    body = json.loads(answer.payload)
    assert body["error"]["code"] == "5.03" and "too many observers" in body["error"]["message"]
    assert len(emulator.hub.observers) == 2
    raw.transport.close()


@pytest.mark.parametrize("config_overrides", [{"observer_queue_limit": 5}])
async def test_slow_observer_falls_behind_in_a_bounded_queue(client, emulator, caplog):
    """aiocoap holds one notification behind the one in flight; the hub queue drops its oldest.

    The observer withholds its acknowledgement of the first session notification while 30
    more sessions are created: the second waits in aiocoap, the next 29 in the observer's
    queue of 5, which keeps the newest 5. Once acknowledging, the observer gets exactly those,
    in order, with a gap in globalSessionSequence where the 24 dropped ones were.
    """
    caplog.set_level(logging.INFO, logger="pager.notify")
    slow = await RawObserver.open(emulator.port)
    slow.register()
    assert (await slow.next()).mtype == Type.ACK  # the first answer: a ping
    await client.post("/v1/sessions", {"number": 1})
    first = await slow.next()
    assert first.mtype == Type.CON
    for n in range(2, 32):
        assert (await client.post("/v1/sessions", {"number": n})).code == "2.01"
    (observer,) = emulator.hub.observers
    remote = next(iter(emulator.backlogs))
    assert emulator.backlogs.waiting(remote) == 1  # not 30
    await _until(lambda: observer.dropped == 24)
    assert _drain(slow) == []  # nothing overtakes the unacknowledged notification

    received = [json.loads(first.payload)["globalSessionSequence"]]
    note = first
    while received[-1] != 31:
        slow.send(aiocoap.Message(code=aiocoap.EMPTY), Type.ACK, note.mid)
        note = await slow.next()
        assert note.mtype == Type.CON
        received.append(json.loads(note.payload)["globalSessionSequence"])
    assert received == [1, 2, 27, 28, 29, 30, 31]
    slow.send(aiocoap.Message(code=aiocoap.EMPTY), Type.ACK, note.mid)
    await _until(lambda: remote not in emulator.backlogs)  # nothing left in aiocoap either
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("5 notifications behind" in w for w in warnings)
    assert any("caught up after 24 session notifications were dropped" in w for w in warnings)

    # caught up, it is served as before: the next change arrives, nothing dropped
    await client.post("/v1/sessions", {"number": 40})
    note = await slow.next()
    assert json.loads(note.payload)["globalSessionSequence"] == 32
    assert observer.dropped == 24
    slow.transport.close()


@pytest.mark.parametrize("config_overrides", [{"observer_queue_limit": 2}])
async def test_the_first_session_list_is_never_dropped(client, emulator):
    """The list, sent block-wise, reaches a slow observer whole, and nothing overtakes it."""
    for n in range(60):
        await client.post("/v1/sessions", {"number": n, "label": f"guest {n:03d}"})
    slow = await RawObserver.open(emulator.port)
    register = aiocoap.Message(
        code=aiocoap.GET,
        uri_path=("v1", "notify"),
        observe=0,
        uri_query=("action=get_sessions",),
    )
    slow.send(register, Type.CON, 1, b"obs2")
    first = await slow.next()
    assert first.opt.block2.block_number == 0 and first.opt.block2.more
    for n in range(60, 70):  # changes pile up behind the list while the rest is not fetched
        await client.post("/v1/sessions", {"number": n})
    await asyncio.sleep(0.2)
    assert _drain(slow) == []  # no notification overtakes the rest of the list
    whole, number = first.payload, 1
    while True:
        m = aiocoap.Message(
            code=aiocoap.GET, uri_path=("v1", "notify"), uri_query=("action=get_sessions",)
        )
        m.opt.block2 = BlockOption.BlockwiseTuple(number, False, 6)
        slow.send(m, Type.CON, 100 + number, b"blk")
        block = await slow.next()
        assert block.mtype == Type.ACK and block.opt.etag == first.opt.etag
        whole += block.payload
        if not block.opt.block2.more:
            break
        number += 1
    body = json.loads(whole)
    assert [s["id"] for s in body["sessions"]] == list(range(1, 61))
    assert body["globalSessionSequence"] == 60
    sequences = []
    while not sequences or sequences[-1] != 70:
        note = await slow.next()
        sequences.append(json.loads(note.payload)["globalSessionSequence"])
        if note.mtype == Type.CON:
            slow.send(aiocoap.Message(code=aiocoap.EMPTY), Type.ACK, note.mid)
    assert sequences[-2:] == [69, 70]  # the newest two changes stayed, older ones were dropped
    assert len(sequences) < 10
    slow.transport.close()


@pytest.mark.parametrize("config_overrides", [{"ping_interval": 0.2}])
async def test_vanished_observers_are_dropped_quietly(client, watches, emulator, caplog):
    """Observers that go away without deregistering are dropped without an error or a
    traceback, and without harm to anyone else: closed sockets (their notifications draw
    "port unreachable") and silent ones (never acknowledging, given up after 2.5 pings)."""
    caplog.set_level(logging.DEBUG)
    healthy = await watches()
    closed, silent = [], []
    for group, size in ((closed, 40), (silent, 10)):
        for _ in range(size):
            raw = await RawObserver.open(emulator.port)
            raw.register()
            assert (await raw.next()).code == aiocoap.CONTENT
            group.append(raw)
    assert len(emulator.hub.observers) == 51
    for raw in closed:
        raw.transport.close()
    r = await client.post("/v1/sessions", {"number": 1})
    assert r.code == "2.01"
    await healthy.until(lambda w: len(w.of("sessions")) == 1)
    await _until(lambda: len(emulator.hub.observers) == 1, timeout=10)
    await asyncio.sleep(3 * 0.2)  # anything still to happen to the given-up observations
    gc.collect()  # an unretrieved task exception is logged when its task is collected
    await asyncio.sleep(0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]
    # the healthy observer is unaffected
    await client.post("/v1/sessions", {"number": 2})
    await healthy.until(lambda w: len(w.of("sessions")) == 2)
    for raw in silent:
        raw.transport.close()


@pytest.mark.parametrize("config_overrides", [{"max_observers": 2}])
async def test_registrations_waiting_together_stay_within_the_limit(emulator):
    """Registrations that arrive while a whole-state operation runs all wait for it; once it
    is over, the limit still holds: the first two observe, the others get 5.03."""
    release = asyncio.Event()
    held = asyncio.create_task(emulator.engine.exclusive(release.wait))
    await asyncio.sleep(0.05)
    raws = [await RawObserver.open(emulator.port) for _ in range(4)]
    for raw in raws:
        raw.register()
    await asyncio.sleep(0.3)  # every registration is in, waiting
    release.set()
    await held
    answers = [await _answer(raw) for raw in raws]
    codes = sorted(a.code.dotted for a in answers)
    assert codes == ["2.05", "2.05", "5.03", "5.03"]
    assert len(emulator.hub.observers) == 2
    for raw in raws:
        raw.transport.close()


async def _answer(raw: RawObserver) -> aiocoap.Message:
    """The answer to a registration, past the empty ACK of a separate response."""
    while (message := await raw.next()).code == aiocoap.EMPTY:
        pass
    return message


async def test_a_later_block_asked_for_with_observe_is_that_block_not_a_registration(
    client, emulator
):
    """Spec §8: the rest of a large answer is fetched with GETs carrying Block2, with or
    without Observe; a later block carrying Observe 0 is served from the transfer like one
    without, and observes nothing."""
    for n in range(1, 40):
        await client.post("/v1/sessions", {"number": n})
    raw = await RawObserver.open(emulator.port)
    whole = b""
    for number in range(30):
        m = aiocoap.Message(
            code=aiocoap.GET, uri_path=("v1", "notify"), uri_query=("action=get_sessions",)
        )
        m.opt.block2 = BlockOption.BlockwiseTuple(number, False, 6)
        if number:
            m.opt.observe = 0
        raw.send(m, Type.CON, 10 + number, b"b")
        answer = await _answer(raw)
        assert answer.code.dotted == "2.05" and answer.opt.observe is None
        assert answer.opt.block2.block_number == number
        whole += answer.payload
        if not answer.opt.block2.more:
            break
    assert number > 0 and not emulator.hub.observers
    assert [s["number"] for s in json.loads(whole)["sessions"]] == list(range(1, 40))
    raw.transport.close()


# ------------------------------------------------------------- the end: a final 5.03 (§8)


def _assert_final(message: aiocoap.Message) -> None:
    """The 5.03 that ends an observation: the error body, no Observe (RFC 7641 §3.2)."""
    assert message.code.dotted == "5.03" and message.opt.observe is None
    body = json.loads(message.payload)
    assert body["responseTypes"] == ["error"]
    assert body["error"]["code"] == "5.03" and "shutting down" in body["error"]["message"]


async def test_close_tells_every_observer_and_waits_for_the_acknowledgements(emulator):
    raws = [await RawObserver.open(emulator.port) for _ in range(3)]
    for raw in raws:
        raw.register()
        assert (await raw.next()).code == aiocoap.CONTENT

    async def acknowledge(raw: RawObserver) -> None:
        final = await raw.next()
        raw.send(aiocoap.Message(code=aiocoap.EMPTY), Type.ACK, final.mid)
        _assert_final(final)
        assert final.mtype == Type.CON

    acks = [asyncio.ensure_future(acknowledge(raw)) for raw in raws]
    await emulator.stop()
    await asyncio.gather(*acks)
    for raw in raws:
        raw.transport.close()


async def test_close_does_not_hang_on_an_observer_that_never_acknowledges(emulator):
    from pager.hub import END_WAIT

    deaf = await RawObserver.open(emulator.port)
    deaf.register()
    await deaf.next()
    started = time.monotonic()
    await emulator.stop()
    assert time.monotonic() - started < END_WAIT + 0.5
    finals = _drain(deaf)
    assert finals and all(m.mid == finals[0].mid for m in finals)  # retransmitted, no more
    _assert_final(finals[0])
    deaf.transport.close()


async def test_a_power_cycle_tells_every_observer_first(client, emulator):
    watcher = await RawObserver.open(emulator.port)
    watcher.register()
    await watcher.next()
    cycling = asyncio.ensure_future(emulator.power_cycle(0.5))
    final = await watcher.next()
    watcher.send(aiocoap.Message(code=aiocoap.EMPTY), Type.ACK, final.mid)
    _assert_final(final)
    await cycling
    assert not emulator.hub.observers
    watcher.transport.close()


async def test_sigterm_tells_an_aiocoap_observer(db_path, coap_context):
    from tests.conftest import ServerProcess

    server = await ServerProcess(db_path).start()
    try:
        uri = f"coap://127.0.0.1:{server.port}/v1/notify"
        request = coap_context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        await asyncio.wait_for(request.response, 10)
        updates = request.observation.__aiter__()
        final = asyncio.ensure_future(updates.__anext__())
        assert await server.stop() == 0
        _assert_final(await asyncio.wait_for(final, 5))
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(updates.__anext__(), 5)
    finally:
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


async def test_a_block_size_asked_for_at_registration_holds_for_every_notification(
    client, emulator
):
    """RFC 7959 §2.6: Block2 0/64 in the registration makes every notification over 64 bytes
    go out block-wise in 64-byte blocks, the first answer (a ping) and the changes alike."""
    raw = await RawObserver.open(emulator.port)
    register = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"), observe=0)
    register.opt.block2 = BlockOption.BlockwiseTuple(0, False, 2)
    raw.send(register, Type.CON, 1, b"obs4")
    bodies, mid = [], 10
    for expected in ("ping", "sessions"):
        first = await raw.next()
        if first.mtype == Type.CON:
            raw.send(aiocoap.Message(code=aiocoap.EMPTY), Type.ACK, first.mid)
        assert (first.opt.block2.size, len(first.payload)) == (64, 64)
        assert first.opt.observe is not None and first.opt.etag is not None
        whole, block = first.payload, first
        while block.opt.block2.more:
            m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"))
            m.opt.block2 = BlockOption.BlockwiseTuple(block.opt.block2.block_number + 1, 0, 2)
            mid += 1
            raw.send(m, Type.CON, mid, b"b%d" % mid)
            block = await raw.next()
            assert block.opt.etag == first.opt.etag and block.opt.observe is None
            whole += block.payload
        bodies.append(json.loads(whole))
        assert bodies[-1]["responseTypes"][0] == expected
        if expected == "ping":
            assert (await client.post("/v1/sessions", {"number": 5})).code == "2.01"
    assert bodies[1]["sessions"][0]["number"] == 5
    raw.transport.close()


async def test_later_blocks_asked_for_on_the_observation_token_leave_it_running(client, emulator):
    """As node-coap asks for them: GET + Observe 0 + Block2 on the observation's own token.
    Each is answered with its block (no Observe), and the observation goes on."""
    for n in range(1, 30):
        await client.post("/v1/sessions", {"number": n})
    raw = await RawObserver.open(emulator.port)
    register = aiocoap.Message(
        code=aiocoap.GET, uri_path=("v1", "notify"), observe=0, uri_query=("action=get_sessions",)
    )
    raw.send(register, Type.CON, 1, b"same")
    block = await raw.next()
    whole = block.payload
    while block.opt.block2.more:
        m = register.copy(mid=None)
        m.opt.block2 = BlockOption.BlockwiseTuple(block.opt.block2.block_number + 1, 0, 6)
        raw.send(m, Type.CON, 2 + block.opt.block2.block_number, b"same")
        block = await raw.next()
        assert block.mtype == Type.ACK and block.opt.observe is None
        whole += block.payload
    assert len(json.loads(whole)["sessions"]) == 29
    assert len(emulator.hub.observers) == 1
    await client.post("/v1/sessions", {"number": 40})
    note = await raw.next()
    assert (note.token, note.mtype) == (b"same", Type.CON) and note.opt.observe == 1
    assert json.loads(note.payload)["globalSessionSequence"] == 30
    raw.transport.close()
