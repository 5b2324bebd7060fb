"""The pager wall's live stream, `GET /events` (docs/control-api.md, "The pager wall"): what
its snapshot holds, that each kind of change arrives as its event, that a reset starts it
again, and that it ends when the emulator stops or loses power. Over real HTTP, against a
real emulator; CoAP requests from a real aiocoap client."""

import asyncio
import contextlib
import socket
import time

import aiohttp
import pytest

from pager.control import wall_stream
from tests.control.conftest import ts
from tests.control.wall import Events


@pytest.fixture
def config_overrides() -> dict:
    return {"staff_pagers": [90]}


@contextlib.asynccontextmanager
async def events(rig, headers=None):
    async with rig.http.session.get("/events", headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        yield Events(response)


async def test_the_hello_snapshot_holds_all_the_page_shows(frozen):
    http, coap = frozen.http, frozen.coap
    await coap.post("/v1/sessions", {"number": 12, "label": "Ada", "partySize": 3})
    await coap.post("/v1/sessions", {"number": 13})
    await coap.put("/v1/sessions", {"action": "clear"}, query="number=13")
    await coap.post("/v1/page", {"number": 90, "pageMode": "Vibe3", "message": "Kitchen\fV2"})
    fault = await http.post("/faults", {"kind": "drop", "path": "/v1/x"}, status=201)
    async with events(frozen) as stream:
        name, hello = await stream.next()
    assert name == "hello"
    assert set(hello) == {
        "device", "clock", "settings", "statistics", "sessions", "pagers", "transmissions",
        "faults", "journal",
    }  # fmt: skip
    assert hello["device"] == await http.get("/device")
    assert hello["device"]["staffPagers"] == [90]
    assert hello["clock"] == {"now": ts(), "frozen": True, "speed": 1.0}
    assert hello["settings"]["defaultTargetGoal"] == 300
    assert hello["statistics"]["numSessions"] == 2
    assert [(s["number"], s["label"], s["partySize"]) for s in hello["sessions"]] == [
        (12, "Ada", 3)
    ]
    assert hello["pagers"] == await http.get("/pagers")
    assert hello["pagers"]["pagers"][0]["state"] == "alerting"
    assert hello["transmissions"] == (await http.get("/transmissions"))["transmissions"]
    assert hello["transmissions"][0]["overrideCodes"] == [{"code": "V", "value": 2}]
    assert hello["faults"] == await http.get("/faults")
    assert hello["faults"]["faults"][0]["id"] == fault["id"]
    journal = hello["journal"]
    assert journal["enabled"] is True
    assert journal["entries"] == (await http.get("/journal"))["entries"]
    assert [e["path"] for e in journal["entries"]][-1] == "/v1/page"


async def test_the_snapshot_carries_the_last_100_transmissions_and_entries(frozen):
    for n in range(105):
        await frozen.coap.post("/v1/page", {"number": n % 7})
    async with events(frozen) as stream:
        _, hello = await stream.next()
    assert [t["id"] for t in hello["transmissions"]] == list(range(6, 106))
    assert [e["id"] for e in hello["journal"]["entries"]] == list(range(6, 106))


@pytest.mark.parametrize("config_overrides", [{"journal": False}])
async def test_without_the_journal_the_snapshot_says_so_and_no_entry_comes(frozen):
    async with events(frozen) as stream:
        _, hello = await stream.next()
        assert hello["journal"] == {"enabled": False, "entries": []}
        await frozen.coap.post("/v1/sessions", {"number": 4})
        await stream.until("change")
        await frozen.http.post("/clock/advance", {"seconds": 1})
        names = []
        while (name := (await stream.next())[0]) != "clock":
            names.append(name)
    assert "journal" not in names


async def test_a_coap_post_is_a_change_event_within_a_second(frozen):
    async with events(frozen) as stream:
        await stream.until("hello")
        started = time.monotonic()
        answer = await frozen.coap.post("/v1/sessions", {"number": 12, "goal": 60})
        change = await stream.until("change", timeout=1)
        assert time.monotonic() - started < 1
    assert change["kind"] == "sessions"
    assert change["session"] == answer.json["sessions"][0]
    assert change["statistics"] == answer.json["statistics"]


async def test_clear_and_settings_are_changes_in_commit_order(frozen):
    coap = frozen.coap
    await coap.post("/v1/sessions", {"number": 12})
    async with events(frozen) as stream:
        await stream.until("hello")
        await coap.put("/v1/sessions", {"action": "remove"}, query="number=12")
        await coap.post("/v1/settings", {"defaultTargetGoal": 90})
        await coap.delete("/v1/sessions/statistics")
        removed = await stream.until("change")
        settings = await stream.until("change")
        cleared = await stream.until("change")
    assert removed["kind"] == "sessions"
    assert (removed["session"]["state"], removed["session"]["clearType"]) == ("cleared", "REMOVED")
    assert settings["kind"] == "settings" and settings["settings"]["defaultTargetGoal"] == 90
    assert cleared == {"kind": "statistics", "statistics": cleared["statistics"]}
    assert cleared["statistics"]["numSessions"] == 0


async def test_a_page_is_a_transmission_event_with_its_pager(frozen):
    async with events(frozen) as stream:
        await stream.until("hello")
        await frozen.coap.post("/v1/sessions", {"number": 12})
        await frozen.coap.put(
            "/v1/sessions", {"action": "page", "message": "Ready\fF30"}, query="number=12"
        )
        tx = await stream.until("transmission")
    pager = tx.pop("pager")
    assert tx == (await frozen.http.get("/transmissions"))["transmissions"][-1]
    assert tx["overrideCodes"] == [{"code": "F", "value": 30}]
    assert pager == await frozen.http.get("/pagers/12")
    assert (pager["state"], pager["pageMode"], pager["message"]) == (
        "alerting",
        "Flash30Sec",
        "Ready",
    )


async def test_every_clock_move_is_a_clock_event(frozen):
    http = frozen.http
    async with events(frozen) as stream:
        await stream.until("hello")
        assert await stream_clock(stream, http.post("/clock/advance", {"seconds": 60})) == {
            "now": ts(60),
            "frozen": True,
            "speed": 1.0,
        }
        moved = await stream_clock(stream, http.post("/clock/set", {"datetime": ts(3600)}))
        assert moved["now"] == ts(3600)
        assert (await stream_clock(stream, http.post("/clock/speed", {"factor": 5})))["speed"] == 5
        assert not (await stream_clock(stream, http.post("/clock/unfreeze")))["frozen"]
        assert (await stream_clock(stream, http.post("/clock/freeze")))["frozen"]
        # the datetime setting moves the clock too
        await frozen.coap.post("/v1/settings", {"datetime": "2026-05-01T10:00:00"})
        assert (await stream.until("clock"))["now"] == "2026-05-01T10:00:00"


async def stream_clock(stream: Events, call) -> dict:
    answer = await call
    event = await stream.until("clock")
    assert event == answer
    return event


async def test_fault_changes_are_faults_events(frozen):
    http, coap = frozen.http, frozen.coap
    async with events(frozen) as stream:
        await stream.until("hello")
        fault = await http.post(
            "/faults", {"kind": "error", "path": "/v1/settings", "count": 1}, status=201
        )
        added = await stream.until("faults")
        assert added == await http.get("/faults")
        assert added["faults"][0]["remaining"] == 1
        assert (await coap.get("/v1/settings")).code == "5.03"  # consumed: gone
        assert await stream.until("faults") == {"faults": [], "unreachable": False}
        second = await http.post("/faults", {"kind": "drop", "path": "/v1/x"}, status=201)
        await stream.until("faults", lambda d: len(d["faults"]) == 1)
        await http.delete(f"/faults/{second['id']}")
        assert (await stream.until("faults"))["faults"] == []
        await http.post("/faults", {"kind": "drop", "path": "/v1/x"}, status=201)
        await stream.until("faults", lambda d: len(d["faults"]) == 1)
        await http.delete("/faults")
        assert (await stream.until("faults"))["faults"] == []
    assert fault["id"] == 1


async def test_each_exchange_is_a_journal_event_with_its_answer(frozen):
    async with events(frozen) as stream:
        await stream.until("hello")
        await frozen.coap.post("/v1/sessions", {"number": 12})
        entry = await stream.until("journal")
    assert entry == (await frozen.http.get("/journal"))["entries"][-1]
    assert (entry["method"], entry["path"], entry["code"]) == ("POST", "/v1/sessions", "2.01")
    assert entry["answer"]["sessions"][0]["number"] == 12


async def test_a_request_a_fault_drops_is_a_journal_event_with_no_answer(frozen):
    await frozen.http.post("/faults", {"kind": "drop", "path": "/v1/settings"}, status=201)
    async with events(frozen) as stream:
        await stream.until("hello")
        task = asyncio.ensure_future(frozen.coap.get("/v1/settings"))
        try:
            entry = await stream.until("journal", timeout=3)
        finally:
            task.cancel()
    assert (entry["path"], entry["code"], entry["fault"]["kind"]) == ("/v1/settings", None, "drop")


async def test_a_reset_sends_a_new_hello(frozen):
    await frozen.coap.post("/v1/sessions", {"number": 12})
    async with events(frozen) as stream:
        assert len((await stream.until("hello"))["sessions"]) == 1
        await frozen.http.post("/reset")
        hello = await stream.until("hello")
    assert hello["sessions"] == [] and hello["transmissions"] == []
    assert hello["journal"]["entries"] == []
    assert hello["clock"]["frozen"] is False  # the factory clock


async def test_with_no_stream_open_nothing_is_built_for_it(frozen, monkeypatch):
    """The CoAP path's cost with no page open: the journal has no watch, and a change is
    not turned into an event (a broken event builder fails nothing)."""
    journal = frozen.emu._journal
    built = []
    monkeypatch.setattr(wall_stream.wall_events, "encode", lambda *a: built.append(a))
    assert journal.watch is None
    assert (await frozen.coap.post("/v1/sessions", {"number": 12})).code == "2.01"
    assert (await frozen.coap.get("/v1/sessions")).code == "2.05"
    await frozen.http.post("/clock/advance", {"seconds": 1})
    await frozen.http.post("/faults", {"kind": "drop", "path": "/v1/x"}, status=201)
    await asyncio.sleep(0.1)
    assert built == []
    monkeypatch.undo()
    async with events(frozen) as stream:
        await stream.until("hello")
        assert journal.watch is not None
    for _ in range(100):  # the server sees the stream go
        if journal.watch is None:
            break
        await asyncio.sleep(0.02)
    assert journal.watch is None and not frozen.emu._wall.subscribers


async def test_a_ping_comment_keeps_an_idle_stream_alive(frozen, monkeypatch):
    monkeypatch.setattr(wall_stream, "PING_SECONDS", 0.1)
    async with events(frozen) as stream:
        await stream.until("hello")
        with pytest.raises(TimeoutError):
            await stream.next(timeout=0.35)
    assert stream.comments[:2] == [": ping", ": ping"]


async def test_the_stream_ends_cleanly_when_the_emulator_stops(frozen):
    async with events(frozen) as stream:
        await stream.until("hello")
        stopping = asyncio.ensure_future(frozen.emu.stop())
        assert await stream.ended(timeout=3)
        await stopping


async def test_a_power_cycle_ends_the_stream_and_the_next_hello_says_powered_off(frozen):
    async with events(frozen) as stream:
        await stream.until("hello")
        await frozen.http.post("/power-cycle", {"seconds": 0.5})
        assert (await stream.until("faults"))["unreachable"] is True
        assert await stream.ended(timeout=3)
    async with events(frozen) as stream:
        assert (await stream.until("hello"))["faults"]["unreachable"] is True
        # and when the power is back, it says so
        assert (await stream.until("faults", timeout=3))["unreachable"] is False


async def test_a_slow_page_is_disconnected_and_memory_stays_bounded(frozen, monkeypatch):
    """A page that reads nothing: its TCP window fills, the server's write waits, and its
    queue grows to the bound, where it is cut off; a page that reads meanwhile is not."""
    monkeypatch.setattr(wall_stream, "QUEUE_EVENTS", 30)
    http, emu = frozen.http, frozen.emu
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", emu.control_port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    async with events(frozen) as fast:
        await fast.until("hello")
        while len(emu._wall.subscribers) < 2:
            await asyncio.sleep(0.01)
        port = writer.get_extra_info("sockname")[1]
        (slow,) = [
            s
            for s in emu._wall.subscribers
            if s.request.transport.get_extra_info("peername")[1] == port
        ]
        # a faults event of 40 faults is some 15 kB: a few hundred fill any buffer
        most = 0
        for i in range(300):
            await http.post("/faults", {"kind": "drop", "path": f"/v1/x{i % 40}"}, status=201)
            if i >= 40:
                await http.delete(f"/faults/{i - 39}")
            most = max(most, len(slow.queue))
            if slow not in emu._wall.subscribers:
                break
        assert slow.cut and slow not in emu._wall.subscribers
        assert most <= wall_stream.QUEUE_EVENTS
        # the reading page got everything
        last = await fast.until("faults", lambda d: d["faults"][-1]["id"] == i + 1, timeout=10)
        assert len(last["faults"]) <= 41
        assert fast.response.content.exception() is None
    # the slow page's connection is closed: after what was sent, the end
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    writer.close()


async def test_a_page_that_is_gone_is_forgotten(frozen):
    session = aiohttp.ClientSession(f"http://127.0.0.1:{frozen.emu.control_port}")
    async with session:
        response = await session.get("/events")
        await Events(response).until("hello")
        assert len(frozen.emu._wall.subscribers) == 1
        response.close()
    for _ in range(100):
        if not frozen.emu._wall.subscribers:
            break
        await asyncio.sleep(0.02)
    assert not frozen.emu._wall.subscribers
