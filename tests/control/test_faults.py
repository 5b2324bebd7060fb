"""Fault injection through the control API (real HTTP), seen by real CoAP clients: dropped
requests, delayed answers, injected error codes, removing faults, and power cycles."""

import asyncio
import time

import aiocoap
import pytest
from aiocoap.numbers.types import Type

from tests.coap.test_notify import Watch
from tests.control.conftest import no_answer

FAULT_KEYS = ["id", "kind", "path", "remaining", "seconds", "code", "hits"]
FAULT_KEYS += ["probability", "seed", "direction", "distribution"]  # chaos faults (issue 14)
FAULT_KEYS += ["min", "max", "median", "sigma", "window"]
FAULT_KEYS += ["ret"]  # an error's LRSN result code (issue 16)
CHAOS_DEFAULTS = dict.fromkeys(FAULT_KEYS[7:]) | {"probability": 1.0, "ret": 7}


async def test_dropped_request_gets_through_on_retransmission(rig):
    http, coap = rig.http, rig.coap
    fault = await http.post(
        "/faults", {"kind": "drop", "path": "/v1/sessions", "count": 1}, status=201
    )
    assert list(fault) == FAULT_KEYS
    assert fault == {
        "id": fault["id"],
        "kind": "drop",
        "path": "/v1/sessions",
        "remaining": 1,
        "seconds": 0.0,
        "code": "5.03",
        "hits": 0,
        **CHAOS_DEFAULTS,
        "direction": "request",
    }
    assert (await http.get("/faults"))["faults"] == [fault]
    (held,) = rig.emu.faults.faults  # the live fault, to read its hits once it is gone

    started = time.monotonic()
    r = await asyncio.wait_for(coap.post("/v1/sessions", {"number": 12}), 10)
    elapsed = time.monotonic() - started
    assert r.code == "2.01"
    assert elapsed >= 1.5, elapsed  # answered only to the retransmission (ACK_TIMEOUT 2-3 s)
    assert held.hits == 1 and held.remaining == 0
    assert await http.get("/faults") == {"faults": [], "unreachable": False}  # spent: gone
    body = (await coap.get("/v1/sessions")).json
    assert [s["number"] for s in body["sessions"]] == [12]
    assert body["globalSessionSequence"] == 1  # created exactly once


async def test_drop_counts_hits_until_spent(rig):
    http = rig.http
    fault = await http.post(
        "/faults", {"kind": "drop", "path": "/v1/settings", "count": 2}, status=201
    )
    assert await no_answer(rig.emu.port, "/v1/settings")
    (seen,) = (await http.get("/faults"))["faults"]
    assert seen == {**fault, "remaining": 1, "hits": 1}
    assert await no_answer(rig.emu.port, "/v1/settings")
    assert (await http.get("/faults"))["faults"] == []
    assert not await no_answer(rig.emu.port, "/v1/settings")


async def test_drop_on_another_path_leaves_sessions_alone(rig):
    http, coap = rig.http, rig.coap
    fault = await http.post("/faults", {"kind": "drop", "path": "/v1/settings"}, status=201)
    assert fault["remaining"] is None  # until cleared
    started = time.monotonic()
    assert (await coap.post("/v1/sessions", {"number": 1})).code == "2.01"
    assert (await coap.get("/v1/sessions/statistics")).code == "2.05"
    assert time.monotonic() - started < 1.5  # no retransmission was needed
    assert (await http.get("/faults"))["faults"] == [fault]  # not hit
    assert await no_answer(rig.emu.port, "/v1/settings")
    assert await no_answer(rig.emu.port, "/v1/settings")
    assert (await http.get("/faults"))["faults"][0]["hits"] == 2
    assert await http.delete(f"/faults/{fault['id']}") == {"removed": fault["id"]}
    assert (await coap.get("/v1/settings")).code == "2.05"


async def test_drop_without_path_drops_everything(rig):
    await rig.http.post("/faults", {"kind": "drop"}, status=201)
    assert await no_answer(rig.emu.port, "/v1/sessions")
    assert await no_answer(rig.emu.port, "/v1/settings")
    await rig.http.delete("/faults")
    assert (await rig.coap.get("/v1/settings")).code == "2.05"


async def test_delayed_answer(rig):
    http, coap = rig.http, rig.coap
    await http.post(
        "/faults", {"kind": "delay", "seconds": 1.0, "path": "/v1/sessions", "count": 1}, status=201
    )
    started = time.monotonic()
    r = await coap.post("/v1/sessions", {"number": 3})
    elapsed = time.monotonic() - started
    assert r.code == "2.01" and r.json["sessions"][0]["number"] == 3
    assert 0.9 <= elapsed < 5, elapsed
    assert (await http.get("/faults"))["faults"] == []
    started = time.monotonic()
    assert (await coap.get("/v1/sessions")).code == "2.05"
    assert time.monotonic() - started < 0.5  # the count is spent: no delay any more
    assert (await coap.get("/v1/sessions")).json["globalSessionSequence"] == 1


class TimedDatagrams(asyncio.DatagramProtocol):
    """A raw UDP endpoint that notes when each datagram arrived."""

    def __init__(self):
        self.received: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.received.put_nowait((time.monotonic(), data))


@pytest.mark.parametrize("count", [None, 1])
async def test_delay_holds_back_retransmissions_too(rig, count):
    """A CON POST is sent again (same message id) after 1 s and 2 s, while a 3 s delay fault
    holds its answer: no datagram of that exchange arrives before 3 s, the request is
    processed once and the fault hit once."""
    http = rig.http
    await http.post(
        "/faults",
        {"kind": "delay", "seconds": 3.0, "path": "/v1/sessions", "count": count},
        status=201,
    )
    request = aiocoap.Message(
        code=aiocoap.POST, uri_path=("v1", "sessions"), payload=b'{"number": 8}', content_format=50
    )
    request.mtype, request.mid, request.token = Type.CON, 4242, b"dl"
    datagram = request.encode()
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        TimedDatagrams, remote_addr=("127.0.0.1", rig.emu.port)
    )
    arrivals: list[tuple[float, aiocoap.Message]] = []
    try:
        sent = time.monotonic()
        transport.sendto(datagram)
        for resend_at in (1.0, 2.0):
            await asyncio.sleep(max(0.0, sent + resend_at - time.monotonic()))
            transport.sendto(datagram)
        while len(arrivals) < 3:  # one answer per copy sent, at the earliest after 3 s
            arrived, data = await asyncio.wait_for(proto.received.get(), 10)
            arrivals.append((arrived - sent, aiocoap.Message.decode(data)))
    finally:
        transport.close()
    assert min(t for t, _ in arrivals) >= 3.0, [t for t, _ in arrivals]
    for _, answer in arrivals:
        assert (answer.mtype, answer.mid, answer.token, answer.code) == (
            Type.ACK,
            4242,
            b"dl",
            aiocoap.CREATED,
        )
    assert len({a.payload for _, a in arrivals}) == 1  # the same answer, from the cache
    (fault,) = (await http.get("/faults"))["faults"] or [{"hits": 1}]
    assert fault["hits"] == 1
    body = (await rig.coap.get("/v1/sessions")).json
    assert [s["number"] for s in body["sessions"]] == [8] and body["globalSessionSequence"] == 1


async def test_delay_on_another_path_is_not_felt(rig):
    await rig.http.post(
        "/faults", {"kind": "delay", "seconds": 2.0, "path": "/v1/settings"}, status=201
    )
    started = time.monotonic()
    assert (await rig.coap.get("/v1/sessions")).code == "2.05"
    assert time.monotonic() - started < 0.5
    assert (await rig.http.get("/faults"))["faults"][0]["hits"] == 0


@pytest.mark.parametrize("code", ["5.03", "4.04"])
async def test_error_fault_answers_that_code_for_count_requests(rig, code):
    http, coap = rig.http, rig.coap
    fault = await http.post(
        "/faults", {"kind": "error", "code": code, "path": "/v1/sessions", "count": 2}, status=201
    )
    assert fault["code"] == code and fault["remaining"] == 2
    for _ in range(2):
        r = await coap.post("/v1/sessions", {"number": 8})
        assert r.code == code
        assert r.message.opt.content_format == 50
        body = r.json
        assert body["responseTypes"] == ["error"]
        assert body["error"] == {"code": code, "message": "injected fault"}
        assert body["globalSessionSequence"] == 0  # nothing was done
    assert (await http.get("/faults"))["faults"] == []
    assert (await coap.get("/v1/settings")).code == "2.05"  # other paths were never touched
    r = await coap.post("/v1/sessions", {"number": 8})
    assert r.code == "2.01" and r.json["sessions"][0]["id"] == 1


@pytest.mark.parametrize("code", ["4.32", "4.35", "5.39", "2.05", "x", "5.3", ""])
async def test_an_error_code_that_is_no_coap_error_is_refused_by_the_python_api(rig, code):
    """What the HTTP control API refuses with 400 `Emulator.add_fault` refuses too, instead
    of answering another code (4.35 would be 5.03) or failing each request it meets."""
    with pytest.raises(ValueError, match="code"):
        rig.emu.add_fault("error", code=code)
    assert rig.emu.list_faults() == []
    assert (await rig.coap.get("/v1/settings")).code == "2.05"


@pytest.mark.parametrize(
    "args, word",
    [
        ({"kind": "dorp"}, "kind"),
        ({"kind": "Drop"}, "kind"),
        ({"kind": "delay", "seconds": -1}, "seconds"),
        ({"kind": "delay", "seconds": 601}, "seconds"),
        ({"kind": "delay", "seconds": float("nan")}, "seconds"),
        ({"kind": "drop", "count": 0}, "count"),
        ({"kind": "drop", "path": "v1/settings"}, "path"),
    ],
)
async def test_a_fault_the_control_api_refuses_is_refused_by_the_python_api(rig, args, word):
    """A typo in a kind set a fault that never applied; the same bounds as the HTTP API."""
    with pytest.raises(ValueError, match=word):
        rig.emu.add_fault(**args)
    assert rig.emu.list_faults() == []
    assert (await rig.coap.get("/v1/settings")).code == "2.05"


async def test_the_highest_error_details_are_answered_as_set(rig):
    for code in ("4.31", "5.31"):
        rig.emu.add_fault("error", code=code, count=1)
        r = await rig.coap.get("/v1/settings")
        assert r.code == code and r.json["error"]["code"] == code


async def test_error_fault_without_path_or_count_until_cleared(rig):
    http, coap = rig.http, rig.coap
    fault = await http.post("/faults", {"kind": "error", "code": "5.00"}, status=201)
    assert (fault["path"], fault["remaining"]) == (None, None)
    for path in ("/v1/settings", "/v1/sessions/statistics", "/v1/sessions"):
        r = await coap.get(path)
        assert r.code == "5.00" and r.json["error"]["code"] == "5.00"
    r = await coap.get("/v1/settings", accept=60)  # the body follows the Accept option
    assert r.code == "5.00" and r.cbor["error"]["message"] == "injected fault"
    assert (await http.get("/faults"))["faults"][0]["hits"] == 4
    assert await http.delete("/faults") == {"faults": []}
    assert (await coap.get("/v1/settings")).code == "2.05"


async def test_delete_faults_by_id_and_all(rig):
    http, coap = rig.http, rig.coap
    a = await http.post(
        "/faults", {"kind": "error", "code": "4.03", "path": "/v1/settings"}, status=201
    )
    b = await http.post(
        "/faults", {"kind": "error", "code": "5.03", "path": "/v1/sessions/statistics"}, status=201
    )
    c = await http.post("/faults", {"kind": "delay", "seconds": 5, "path": "/v1/page"}, status=201)
    assert a["id"] < b["id"] < c["id"]
    assert [f["id"] for f in (await http.get("/faults"))["faults"]] == [a["id"], b["id"], c["id"]]
    assert (await coap.get("/v1/sessions/statistics")).code == "5.03"

    assert await http.delete(f"/faults/{b['id']}") == {"removed": b["id"]}
    assert [f["id"] for f in (await http.get("/faults"))["faults"]] == [a["id"], c["id"]]
    assert (await coap.get("/v1/sessions/statistics")).code == "2.05"
    assert (await coap.get("/v1/settings")).code == "4.03"
    status, body = await http.request("DELETE", f"/faults/{b['id']}")
    assert status == 404 and "error" in body

    assert await http.delete("/faults") == {"faults": []}
    assert await http.get("/faults") == {"faults": [], "unreachable": False}
    assert (await coap.get("/v1/settings")).code == "2.05"
    # ids are not reused
    d = await http.post("/faults", {"kind": "drop", "path": "/x"}, status=201)
    assert d["id"] > c["id"]


async def test_power_cycle_drops_observers_keeps_the_store(rig):
    http, coap, emu = rig.http, rig.coap, rig.emu
    await coap.post("/v1/sessions", {"number": 1, "label": "Ann"})
    watch = await Watch(emu.port).start()
    try:
        await coap.post("/v1/sessions", {"number": 2})
        await watch.until(lambda w: len(w.of("sessions")) == 1)
        assert len(emu.hub.observers) == 1
        heard = len(watch.notes)

        assert await http.post("/power-cycle", {"seconds": 1.5}) == {"unreachableFor": 1.5}
        off_until = time.monotonic() + 1.5
        assert emu.hub.observers == set()
        assert (await http.get("/faults")) == {"faults": [], "unreachable": True}
        assert await no_answer(emu.port, "/v1/sessions", 0.4)
        assert await no_answer(emu.port, "/v1/sessions", 0.3, aiocoap.POST)

        await asyncio.sleep(max(0.0, off_until - time.monotonic()) + 0.1)
        assert (await http.get("/faults"))["unreachable"] is False
        body = (await coap.get("/v1/sessions")).json
        assert [(s["number"], s["label"]) for s in body["sessions"]] == [(1, "Ann"), (2, None)]
        assert body["globalSessionSequence"] == 2
        assert (await coap.post("/v1/sessions", {"number": 3})).code == "2.01"
        await asyncio.sleep(0.3)
        # the old observation is gone for good, announced by a final 5.03 (spec §8)
        assert len(watch.notes) == heard + 1
        assert watch.notes[-1]["error"]["code"] == "5.03"
        assert emu.hub.observers == set()

        again = await Watch(emu.port, "action=get_sessions").start()  # observing works again
        try:
            assert [s["number"] for s in again.notes[0]["sessions"]] == [1, 2, 3]
            assert len(emu.hub.observers) == 1
        finally:
            await again.stop()
    finally:
        await watch.stop()


async def test_a_confirmable_request_sent_while_off_is_answered_after(rig):
    """A CON request retransmitted past the unreachable window is answered, and only once."""
    await rig.http.post("/power-cycle", {"seconds": 1.0})
    started = time.monotonic()
    r = await asyncio.wait_for(rig.coap.post("/v1/sessions", {"number": 5}), 10)
    assert r.code == "2.01" and time.monotonic() - started >= 1.0
    assert (await rig.coap.get("/v1/sessions")).json["globalSessionSequence"] == 1


async def test_clearing_faults_ends_a_power_cycle(rig):
    await rig.http.post("/power-cycle", {"seconds": 600})
    assert await no_answer(rig.emu.port, "/v1/settings", 0.3)
    assert await rig.http.delete("/faults") == {"faults": []}
    assert (await rig.http.get("/faults"))["unreachable"] is False
    assert (await rig.coap.get("/v1/settings")).code == "2.05"
