"""The control API end to end: real HTTP (aiohttp) against an emulator whose device API is
driven over real CoAP (aiocoap). Clock, virtual pagers, reset and bad input; faults have
their own module."""

import asyncio
import json
import logging
import time
import urllib.parse
from datetime import datetime

import aiohttp
import pytest
import yarl

from tests.control.conftest import T0, parse, ts

# Alert length of each page mode in seconds (spec §9).
ALERT_LENGTHS = {
    "Flash1Sec": 1,
    "Flash30Sec": 30,
    "Flash5Min": 300,
    "FlashBeep5x5": 25,
    "Beep3Times": 3,
    "Beep5Min": 300,
    "Glow5Min": 300,
    "Glow15Times": 15,
    "Vibe1": 1,
    "Vibe2": 2,
    "Vibe3": 3,
    "VibeBeep1": 1,
    "VibeBeep2": 2,
    "VibeBeep3": 3,
}


# ---- clock --------------------------------------------------------------------------------


async def test_clock_reads_system_time_at_first(rig):
    body = await rig.http.get("/clock")
    assert list(body) == ["now", "frozen", "speed"]
    assert body["frozen"] is False and body["speed"] == 1.0
    assert abs((parse(body["now"]) - datetime.now()).total_seconds()) < 5


async def test_set_and_advance_move_every_timestamp(frozen):
    http, coap = frozen.http, frozen.coap
    assert await http.post("/clock/advance", {"seconds": 90}) == {
        "now": ts(90),
        "frozen": True,
        "speed": 1.0,
    }
    assert (await http.post("/clock/advance", {"seconds": -50}))["now"] == ts(40)
    await http.post("/clock/advance", {"seconds": 0.5})
    assert (await http.post("/clock/advance", {"seconds": 0.5}))["now"] == ts(
        41
    )  # fractions add up
    assert (await http.get("/clock"))["now"] == ts(41)
    settings = (await coap.get("/v1/settings")).json
    assert settings["timestamp"] == settings["settings"]["datetime"] == ts(41)
    r = await coap.post("/v1/sessions", {"number": 4})
    assert r.json["sessions"][0]["created"] == ts(41)

    body = await http.post("/clock/set", {"datetime": "2030-01-02T03:04:05"})
    assert body == {"now": "2030-01-02T03:04:05", "frozen": True, "speed": 1.0}
    assert (await coap.get("/v1/settings")).json["settings"]["datetime"] == "2030-01-02T03:04:05"


async def test_body_sent_as_curl_sends_it(frozen):
    """`curl -d` (the README's examples) labels the body as a form; it is read as JSON."""
    async with frozen.http.session.post(
        "/clock/advance",
        data=b'{"seconds": 600}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as r:
        assert r.status == 200 and (await r.json())["now"] == ts(600)


async def test_set_while_running_keeps_running(rig):
    body = await rig.http.post("/clock/set", {"datetime": ts()})
    assert body["frozen"] is False and body["now"] in (ts(), ts(1))


async def test_freeze_stops_time_and_unfreeze_resumes_it(rig):
    http, coap = rig.http, rig.coap
    body = await http.post("/clock/freeze")
    assert body["frozen"] is True
    first = (await http.get("/clock"))["now"]
    await asyncio.sleep(1.1)
    assert (await http.get("/clock")) == {"now": first, "frozen": True, "speed": 1.0}
    assert (await coap.get("/v1/settings")).json["settings"]["datetime"] == first

    started = time.monotonic()
    body = await http.post("/clock/unfreeze")
    assert body == {"now": first, "frozen": False, "speed": 1.0}  # resumes where it stopped
    await asyncio.sleep(1.1)
    moved = (parse((await http.get("/clock"))["now"]) - parse(first)).total_seconds()
    assert 1 <= moved <= time.monotonic() - started + 1


async def test_speed_factor_60(frozen):
    http, coap = frozen.http, frozen.coap
    assert await http.post("/clock/speed", {"factor": 60}) == {
        "now": ts(),
        "frozen": True,
        "speed": 60.0,
    }
    started = time.monotonic()
    await http.post("/clock/unfreeze")
    await asyncio.sleep(1.0)
    moved = (parse((await http.get("/clock"))["now"]) - T0).total_seconds()
    elapsed = time.monotonic() - started
    assert 40 <= moved <= 60 * elapsed + 2, (moved, elapsed)
    device = parse((await coap.get("/v1/settings")).json["settings"]["datetime"])
    assert (device - T0).total_seconds() >= moved
    body = await http.post("/clock/speed", {"factor": 1})
    assert body["speed"] == 1.0 and parse(body["now"]) >= device
    assert (await http.get("/clock"))["speed"] == 1.0


async def test_advance_past_goal_then_page_is_late(frozen):
    http, coap = frozen.http, frozen.coap
    r = await coap.post("/v1/sessions", {"number": 12, "goal": 60})
    assert r.code == "2.01" and r.json["sessions"][0]["created"] == ts()
    await http.post("/clock/advance", {"seconds": 600})
    r = await coap.put("/v1/sessions", {"action": "page"}, query="number=12")
    assert r.code == "2.04"
    (s,) = r.json["sessions"]
    assert s["state"] == "paged" and s["notified"] == ts(600)
    expected = {
        "guestsServed": 1,
        "percentLate": 100,
        "percentOnTime": 0,
        "averageTimeServed": 600,
        "numSessions": 1,
    }
    assert r.json["statistics"] == expected
    assert (await coap.get("/v1/sessions/statistics")).json["statistics"] == expected
    (tx,) = (await http.get("/transmissions"))["transmissions"]
    assert (tx["time"], tx["number"], tx["sessionId"]) == (ts(600), 12, s["id"])


@pytest.mark.parametrize("config_overrides", [{"auto_page_at_goal": True}])
async def test_auto_page_at_goal_follows_the_clock(frozen):
    http, coap = frozen.http, frozen.coap
    await coap.post("/v1/sessions", {"number": 21, "goal": 120})
    await coap.post("/v1/sessions", {"number": 22, "goal": 600})
    await http.post("/clock/advance", {"seconds": 119})
    assert (await coap.get("/v1/sessions", query="number=21")).json["sessions"][0][
        "state"
    ] == "started"
    assert (await http.get("/pagers")) == {"pagers": []}

    await http.post("/clock/advance", {"seconds": 2})  # the goal passes: paged at once
    (s,) = (await coap.get("/v1/sessions", query="number=21")).json["sessions"]
    assert s["state"] == "paged" and s["notified"] == ts(120)
    assert (await coap.get("/v1/sessions", query="number=22")).json["sessions"][0][
        "state"
    ] == "started"
    (p,) = (await http.get("/pagers"))["pagers"]
    assert (p["number"], p["state"], p["pageMode"], p["alertingUntil"]) == (
        21,
        "alerting",
        "Flash30Sec",
        ts(150),
    )
    assert p["lastTransmission"]["sessionId"] == s["id"]
    stats = (await coap.get("/v1/sessions/statistics")).json["statistics"]
    assert (stats["guestsServed"], stats["percentOnTime"]) == (1, 100)


async def test_statistics_clear_mark_follows_the_clock(frozen):
    http, coap = frozen.http, frozen.coap
    await http.post("/clock/set", {"datetime": "2026-03-15T11:58:00"})
    r = await coap.post("/v1/settings", {"statisticsClearMark": 12})
    assert r.code == "2.04" and r.json["settings"]["statisticsClearMark"] == 12
    await coap.post("/v1/sessions", {"number": 3, "action": "page"})
    await http.post("/clock/advance", {"seconds": 60})  # 11:59:00
    stats = (await coap.get("/v1/sessions/statistics")).json["statistics"]
    assert (stats["guestsServed"], stats["numSessions"]) == (1, 1)
    await http.post("/clock/advance", {"seconds": 61})  # 12:00:01: past the mark
    assert (await coap.get("/v1/sessions/statistics")).json["statistics"] == {
        "guestsServed": 0,
        "percentLate": 0,
        "percentOnTime": 0,
        "averageTimeServed": 0,
        "numSessions": 0,
    }
    assert [s["number"] for s in (await coap.get("/v1/sessions")).json["sessions"]] == [3]


# ---- virtual pagers -----------------------------------------------------------------------


async def test_transmissions_filtered_by_number_since_and_after(frozen):
    http, coap = frozen.http, frozen.coap
    first = (await coap.post("/v1/page", {"number": 5})).json["page"]
    await http.post("/clock/advance", {"seconds": 10})
    await coap.post("/v1/page", {"number": 7, "pageMode": "Vibe2", "message": "Hi"})
    await http.post("/clock/advance", {"seconds": 10})
    await coap.post("/v1/sessions", {"number": 5, "action": "page"})

    async def ids(**params) -> list[int]:
        body = await http.get("/transmissions", params={k: str(v) for k, v in params.items()})
        return [t["id"] for t in body["transmissions"]]

    everything = (await http.get("/transmissions"))["transmissions"]
    assert everything[0] == first
    assert [
        (t["id"], t["time"], t["number"], t["pageMode"], t["message"], t["sessionId"])
        for t in everything
    ] == [
        (1, ts(), 5, "Flash30Sec", None, None),
        (2, ts(10), 7, "Vibe2", "Hi", None),
        (3, ts(20), 5, "Flash30Sec", None, 1),
    ]
    assert list(everything[1]) == [
        "id",
        "time",
        "number",
        "systemId",
        "pageMode",
        "message",
        "overrideCodes",
        "sessionId",
        "alertUntil",
        "source",
    ]
    assert everything[1]["alertUntil"] == ts(12)
    assert await ids(number=5) == [1, 3]
    assert await ids(number=7) == [2]
    assert await ids(number=8) == []
    assert await ids(since=ts(10)) == [2, 3]
    assert await ids(since=ts(11)) == [3]
    assert await ids(since=ts(21)) == []
    assert await ids(after=1) == [2, 3]
    assert await ids(after=3) == []
    assert await ids(number=5, after=1) == [3]
    assert await ids(number=5, since=ts(5)) == [3]
    assert await ids(number=7, since=ts(5), after=1) == [2]


async def test_pagers_show_who_is_alerting_until_when(frozen):
    http, coap = frozen.http, frozen.coap
    r = await coap.post(
        "/v1/page", {"number": 5, "pageMode": "Flash30Sec", "message": "Table ready\fA3B"}
    )
    assert r.code == "2.04"
    await coap.post("/v1/page", {"number": 9, "pageMode": "Flash5Min", "message": "Bar"})
    await coap.post("/v1/sessions", {"number": 2, "action": "page"})
    pagers = (await http.get("/pagers"))["pagers"]
    assert [p["number"] for p in pagers] == [2, 5, 9]
    five = pagers[1]
    assert five == {
        "number": 5,
        "state": "alerting",
        "pageMode": "Flash30Sec",
        "message": "Table ready",
        "overrideCodes": [{"code": "A", "value": 3}, {"code": "B", "value": None}],
        "alertingUntil": ts(30),
        "lastTransmission": r.json["page"],
    }
    assert await http.get("/pagers/5") == five
    assert pagers[0]["message"] is None and pagers[0]["overrideCodes"] == []
    assert pagers[2]["alertingUntil"] == ts(300)

    await http.post("/clock/advance", {"seconds": 29})
    assert (await http.get("/pagers/5"))["state"] == "alerting"
    await http.post("/clock/advance", {"seconds": 2})  # 31 s after the page
    assert await http.get("/pagers/5") == {
        "number": 5,
        "state": "idle",
        "pageMode": None,
        "message": None,
        "overrideCodes": [],
        "alertingUntil": None,
        "lastTransmission": r.json["page"],
    }
    states = {p["number"]: p["state"] for p in (await http.get("/pagers"))["pagers"]}
    assert states == {2: "idle", 5: "idle", 9: "alerting"}
    assert await http.get("/pagers/77") == {
        "number": 77,
        "state": "idle",
        "pageMode": None,
        "message": None,
        "overrideCodes": [],
        "alertingUntil": None,
        "lastTransmission": None,
    }


async def test_alert_length_of_every_page_mode(frozen):
    http, coap = frozen.http, frozen.coap
    numbers = {}
    for n, mode in enumerate(ALERT_LENGTHS, 1):
        assert (await coap.post("/v1/page", {"number": n, "pageMode": mode})).code == "2.04"
        numbers[n] = mode
    pagers = {p["number"]: p for p in (await http.get("/pagers"))["pagers"]}
    assert {n: (p["pageMode"], p["alertingUntil"]) for n, p in pagers.items()} == {
        n: (m, ts(ALERT_LENGTHS[m])) for n, m in numbers.items()
    }
    for length in sorted(set(ALERT_LENGTHS.values())):
        for at in (length - 1, length):  # alerting up to, not at, time + length
            await http.post("/clock/set", {"datetime": ts(at)})
            states = {p["number"]: p["state"] for p in (await http.get("/pagers"))["pagers"]}
            expected = {
                n: "alerting" if ALERT_LENGTHS[m] > at else "idle" for n, m in numbers.items()
            }
            assert states == expected, (at, states)


async def test_wait_started_before_the_page(frozen):
    http, coap = frozen.http, frozen.coap

    async def page_later():
        await asyncio.sleep(0.3)
        return await coap.post("/v1/page", {"number": 42, "message": "Ready"})

    started = time.monotonic()
    (status, body), reply = await asyncio.gather(
        http.request("GET", "/pagers/42/wait", params={"timeout": "10"}), page_later()
    )
    elapsed = time.monotonic() - started
    assert status == 200 and body == {"paged": True, "transmission": reply.json["page"]}
    assert 0.25 <= elapsed < 5


async def test_wait_is_for_that_pager_and_after_a_record(frozen):
    http, coap = frozen.http, frozen.coap
    page = (await coap.post("/v1/page", {"number": 43})).json["page"]

    async def page_other_later():
        await asyncio.sleep(0.2)
        await coap.post("/v1/page", {"number": 44})

    (status, body), _ = await asyncio.gather(
        http.request("GET", "/pagers/43/wait", params={"timeout": "0.8"}), page_other_later()
    )
    assert status == 408 and body == {"paged": False, "number": 43, "timeout": 0.8}
    # a record already sent after `after` answers at once
    body = await http.get("/pagers/43/wait", params={"after": "0", "timeout": "5"})
    assert body == {"paged": True, "transmission": page}


async def test_wait_since_a_time_answers_at_once_for_a_page_already_sent(frozen):
    """The race `after` and `since` close: the rig pages, then asks whether it was paged."""
    http, coap = frozen.http, frozen.coap
    page = (await coap.post("/v1/page", {"number": 45})).json["page"]
    assert page["time"] == ts()
    for timeout in ("0", "5"):
        body = await http.get("/pagers/45/wait", params={"since": ts(), "timeout": timeout})
        assert body == {"paged": True, "transmission": page}
    # one sent before `since` does not count: the wait is for the next one
    await http.post("/clock/advance", {"seconds": 30})

    async def page_later():
        await asyncio.sleep(0.2)
        return await coap.post("/v1/page", {"number": 45, "message": "Again"})

    (status, body), reply = await asyncio.gather(
        http.request("GET", "/pagers/45/wait", params={"since": ts(10), "timeout": "5"}),
        page_later(),
    )
    assert status == 200 and body == {"paged": True, "transmission": reply.json["page"]}
    status, body = await http.request(
        "GET", "/pagers/45/wait", params={"since": ts(31), "timeout": "0.2"}
    )
    assert status == 408 and body == {"paged": False, "number": 45, "timeout": 0.2}


async def test_wait_since_finds_a_record_sent_before_the_clock_was_set_back(frozen):
    http, coap = frozen.http, frozen.coap
    await http.post("/clock/advance", {"seconds": 60})
    first = (await coap.post("/v1/page", {"number": 46})).json["page"]
    await http.post("/clock/set", {"datetime": ts()})
    latest = (await coap.post("/v1/page", {"number": 46})).json["page"]
    assert (first["time"], latest["time"]) == (ts(60), ts())
    body = await http.get("/pagers/46/wait", params={"since": ts(30), "timeout": "0"})
    assert body == {"paged": True, "transmission": first}
    # `after` and `since` together: both must hold
    status, _ = await http.request(
        "GET",
        "/pagers/46/wait",
        params={"since": ts(30), "after": str(first["id"]), "timeout": "0"},
    )
    assert status == 408


async def test_wait_times_out_with_408(frozen):
    started = time.monotonic()
    status, body = await frozen.http.request("GET", "/pagers/8/wait", params={"timeout": "0.5"})
    elapsed = time.monotonic() - started
    assert status == 408 and body == {"paged": False, "number": 8, "timeout": 0.5}
    assert 0.45 <= elapsed < 3


async def test_wait_started_before_a_reset_sees_the_next_page(frozen):
    http, coap = frozen.http, frozen.coap
    for _ in range(3):
        await coap.post("/v1/page", {"number": 6})

    async def reset_and_page():
        await asyncio.sleep(0.3)
        await http.post("/reset")
        await asyncio.sleep(0.1)
        return await coap.post("/v1/page", {"number": 6})

    (status, body), reply = await asyncio.gather(
        http.request("GET", "/pagers/6/wait", params={"timeout": "2"}), reset_and_page()
    )
    assert reply.json["page"]["id"] == 1
    assert status == 200 and body["transmission"] == reply.json["page"]


# ---- reset --------------------------------------------------------------------------------


async def test_reset_back_to_factory(rig):
    http, coap = rig.http, rig.coap
    await coap.post(
        "/v1/settings",
        {
            "systemId": 9,
            "defaultTargetGoal": 120,
            "statisticsClearMark": 3,
            "datetime": "2031-05-06T07:08:09",
        },
    )
    for n in (1, 2, 3):
        await coap.post("/v1/sessions", {"number": n})
    await coap.put("/v1/sessions", {"action": "page"}, query="number=2")
    await coap.put("/v1/sessions", {"action": "clear"}, query="number=2")
    await coap.post("/v1/page", {"number": 99})
    await http.post("/faults", {"kind": "delay", "path": "/nowhere"}, status=201)
    assert (await coap.get("/v1/sessions")).json["globalSessionSequence"] == 5
    assert (await http.get("/pagers"))["pagers"]

    assert await http.post("/reset") == {"reset": True}

    body = (await coap.get("/v1/sessions")).json
    assert body["sessions"] == [] and body["globalSessionSequence"] == 0
    assert body["statistics"] == {
        "guestsServed": 0,
        "percentLate": 0,
        "percentOnTime": 0,
        "averageTimeServed": 0,
        "numSessions": 0,
    }
    assert (await coap.get("/v1/sessions/history")).json["session_history"] == []
    settings = (await coap.get("/v1/settings")).json["settings"]
    assert (
        settings["systemId"],
        settings["defaultTargetGoal"],
        settings["statisticsClearMark"],
    ) == (0, 300, 24)
    # the datetime setting is undone: back on system time
    assert abs((parse(settings["datetime"]) - datetime.now()).total_seconds()) < 5
    assert await http.get("/transmissions") == {"transmissions": []}
    assert await http.get("/pagers") == {"pagers": []}
    assert await http.get("/faults") == {"faults": [], "unreachable": False}

    r = await coap.post("/v1/sessions", {"number": 7})
    assert r.code == "2.01"
    (s,) = r.json["sessions"]
    assert (s["id"], s["sessionSequence"], s["goalInSeconds"]) == (1, 1, 300)
    assert r.json["globalSessionSequence"] == 1
    assert (await coap.post("/v1/page", {"number": 7})).json["page"]["id"] == 1


async def test_reset_puts_the_clock_back_on_system_time(frozen):
    await frozen.http.post("/clock/speed", {"factor": 60})
    await frozen.http.post("/reset")
    body = await frozen.http.get("/clock")
    assert body["frozen"] is False and body["speed"] == 1.0
    assert abs((parse(body["now"]) - datetime.now()).total_seconds()) < 5


# ---- bad input ----------------------------------------------------------------------------

BODY_ENDPOINTS = ["/clock/set", "/clock/advance", "/clock/speed", "/faults", "/power-cycle"]

BAD_BODIES = [
    # malformed or not an object
    *[
        (path, raw)
        for path in BODY_ENDPOINTS
        for raw in ("{bad", '{"seconds": 1,}', "[1, 2]", "null", '"text"', "5")
    ],
    # missing required fields
    *[
        (path, "{}")
        for path in ("/clock/set", "/clock/advance", "/clock/speed", "/faults", "/power-cycle")
    ],
    # wrong types
    ("/clock/set", '{"datetime": 20260315}'),
    ("/clock/set", '{"datetime": null}'),
    ("/clock/advance", '{"seconds": "60"}'),
    ("/clock/advance", '{"seconds": true}'),
    ("/clock/advance", '{"seconds": null}'),
    ("/clock/speed", '{"factor": "60"}'),
    ("/clock/speed", '{"factor": [60]}'),
    ("/faults", '{"kind": 1}'),
    ("/faults", '{"kind": "drop", "count": "1"}'),
    ("/faults", '{"kind": "drop", "count": 1.5}'),
    ("/faults", '{"kind": "drop", "path": ["v1", "sessions"]}'),
    ("/faults", '{"kind": "delay", "seconds": "1"}'),
    ("/faults", '{"kind": "error", "code": 503}'),
    ("/power-cycle", '{"seconds": "5"}'),
    ("/power-cycle", '{"seconds": false}'),
    # out of range or malformed values
    ("/clock/set", '{"datetime": "2026-03-15 11:55:20"}'),
    ("/clock/set", '{"datetime": "2026-03-15T11:55"}'),
    ("/clock/set", '{"datetime": "2026-02-30T00:00:00"}'),
    ("/clock/set", '{"datetime": "2026-03-15T11:55:20Z"}'),
    ("/clock/set", '{"datetime": "tomorrow"}'),
    ("/clock/advance", '{"seconds": 1e12}'),
    ("/clock/advance", '{"seconds": -1e12}'),
    ("/clock/advance", '{"seconds": NaN}'),
    ("/clock/advance", '{"seconds": Infinity}'),
    ("/clock/speed", '{"factor": 0}'),
    ("/clock/speed", '{"factor": -60}'),
    ("/clock/speed", '{"factor": 1e6}'),
    ("/clock/speed", '{"factor": NaN}'),
    ("/faults", '{"kind": "explode"}'),
    ("/faults", '{"kind": "drop", "count": 0}'),
    ("/faults", '{"kind": "drop", "count": -3}'),
    ("/faults", '{"kind": "drop", "path": "v1/sessions"}'),
    ("/faults", '{"kind": "delay", "seconds": -1}'),
    ("/faults", '{"kind": "delay", "seconds": 601}'),
    ("/faults", '{"kind": "error", "code": "2.05"}'),
    ("/faults", '{"kind": "error", "code": "5.99"}'),
    ("/faults", '{"kind": "error", "code": "503"}'),
    ("/faults", '{"kind": "error", "code": "4.32"}'),  # a detail has 5 bits: 4.35 is 5.03
    ("/faults", '{"kind": "error", "code": "5.39"}'),
    ("/power-cycle", '{"seconds": 0}'),
    ("/power-cycle", '{"seconds": -5}'),
    ("/power-cycle", '{"seconds": 3601}'),
    ("/power-cycle", '{"seconds": NaN}'),
    # unknown fields
    ("/clock/set", '{"datetime": "2026-03-15T11:55:20", "timezone": "UTC"}'),
    ("/clock/advance", '{"seconds": 60, "minutes": 1}'),
    ("/clock/speed", '{"factor": 60, "frozen": false}'),
    ("/faults", '{"kind": "drop", "paths": "/v1/sessions"}'),
    ("/power-cycle", '{"seconds": 5, "keepObservers": true}'),
]


@pytest.mark.parametrize("path,raw", BAD_BODIES)
async def test_bad_body_is_refused_with_400(frozen, path, raw):
    status, body = await frozen.http.request("POST", path, raw=raw)
    assert status == 400, body
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    # and nothing changed
    assert await frozen.http.get("/clock") == {"now": ts(), "frozen": True, "speed": 1.0}
    assert await frozen.http.get("/faults") == {"faults": [], "unreachable": False}


@pytest.mark.parametrize("path", ["/clock/freeze", "/clock/unfreeze", "/reset"])
async def test_endpoints_without_a_body_accept_none_or_empty(frozen, path):
    assert (await frozen.http.request("POST", path))[0] == 200
    assert (await frozen.http.request("POST", path, raw="{}"))[0] == 200


@pytest.mark.parametrize("path", ["/clock/freeze", "/clock/unfreeze", "/reset"])
@pytest.mark.parametrize("raw", ["{bad", '{"keepHistory": true}'])
async def test_endpoints_without_a_body_refuse_bad_bodies(frozen, path, raw):
    await frozen.coap.post("/v1/sessions", {"number": 1})
    status, body = await frozen.http.request("POST", path, raw=raw)
    assert status == 400 and "error" in body
    assert (await frozen.coap.get("/v1/sessions")).json["sessions"]


async def test_clock_stays_within_the_calendar_it_supports(frozen):
    """2000-01-01T00:00:00 to 2099-12-31T23:59:59, like the datetime setting."""
    for when in ("9999-12-31T23:00:00", "1999-12-31T23:59:59", "2100-01-01T00:00:00"):
        status, body = await frozen.http.request("POST", "/clock/set", {"datetime": when})
        assert status == 400 and "2099-12-31T23:59:59" in body["error"]
    await frozen.http.post("/clock/set", {"datetime": "2099-12-31T23:00:00"})
    status, body = await frozen.http.request("POST", "/clock/advance", {"seconds": 7200})
    assert status == 400 and "error" in body
    assert (await frozen.http.get("/clock"))["now"] == "2099-12-31T23:00:00"
    r = await frozen.coap.post("/v1/settings", {"datetime": "2100-01-01T00:00:00"})
    assert r.code == "4.00" and r.json["error"]["field"] == "datetime"


@pytest.mark.parametrize(
    "query",
    [
        "/transmissions?number=abc",
        "/transmissions?number=-1",
        "/transmissions?number=",
        "/transmissions?number=1.5",
        "/transmissions?since=yesterday",
        "/transmissions?since=2026-03-15",
        "/transmissions?since=2026-03-15T25:00:00",
        "/transmissions?after=x",
        "/transmissions?after=-1",
        "/pagers/abc",
        "/pagers/-1",
        "/pagers/1.5",
        "/pagers/5/wait?timeout=-1",
        "/pagers/5/wait?timeout=abc",
        "/pagers/5/wait?timeout=301",
        "/pagers/5/wait?timeout=nan",
        "/pagers/5/wait?timeout=inf",
        "/pagers/5/wait?after=x",
        "/pagers/5/wait?since=yesterday",
        "/pagers/5/wait?since=2026-01-15T18:00:00Z",
        "/pagers/abc/wait?timeout=0",
    ],
)
async def test_bad_query_is_refused_with_400(frozen, query):
    path, _, qs = query.partition("?")
    params = dict(p.split("=", 1) for p in qs.split("&")) if qs else None
    status, body = await frozen.http.request("GET", path, params=params)
    assert status == 400 and list(body) == ["error"] and body["error"], body


@pytest.mark.parametrize(
    "path,params",
    [
        ("/pagers/5/wait", [("timeout", "0"), ("since", ts(3600)), ("since", ts(-3600))]),
        ("/pagers/5/wait", [("timeout", "0"), ("timeout", "300")]),
        ("/transmissions", [("number", "5"), ("number", "6")]),
        ("/transmissions", [("after", "0"), ("after", "1")]),
    ],
)
async def test_a_query_parameter_given_twice_is_refused(frozen, path, params):
    """Which of two values is meant cannot be known (the device API refuses the same:
    "query number given twice"); the first was taken, the second silently ignored."""
    status, body = await frozen.http.request("GET", path, params=params)
    assert status == 400 and body == {"error": f"query parameter {params[-1][0]} given twice"}


@pytest.mark.parametrize(
    "path,params",
    [
        ("/pagers/4096", None),
        ("/pagers/4096/wait", {"timeout": "0"}),
        ("/transmissions", {"number": "4096"}),
    ],
)
async def test_pager_number_out_of_range_is_refused(frozen, path, params):
    status, body = await frozen.http.request("GET", path, params=params)
    assert status == 400 and "error" in body


@pytest.mark.parametrize(
    "method,path,status",
    [
        ("GET", "/nope", 404),
        ("POST", "/clock/rewind", 404),
        ("GET", "/pagers/5/ring", 404),
        ("DELETE", "/faults/999", 404),
        ("POST", "/", 405),  # GET / is the pager wall
        ("GET", "/static/nope.js", 404),
        ("PUT", "/clock", 405),
        ("GET", "/reset", 405),
        ("DELETE", "/clock", 405),
    ],
)
async def test_unknown_routes_and_methods_answer_json(rig, method, path, status):
    got, body = await rig.http.request(method, path)
    assert got == status and list(body) == ["error"] and body["error"]


# ---- long polls leave nothing behind -----------------------------------------------------


def waiting(emu) -> int:
    """Futures the pager board holds for waiting rigs, and the pagers it holds lists for."""
    board = emu.pagers._waiters
    return sum(len(ws) for ws in board.values()) + len(board)


async def until(condition, deadline: float = 10.0) -> None:
    stop = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < stop, "condition not met before the deadline"
        await asyncio.sleep(0.02)


async def test_timed_out_waits_are_forgotten(frozen):
    http, emu = frozen.http, frozen.emu
    answers = await asyncio.gather(
        *(
            http.request("GET", f"/pagers/{n % 7 + 1}/wait", params={"timeout": t})
            for n in range(60)
            for t in ("0", "0.05")
        )
    )
    assert {status for status, _ in answers} == {408}
    assert waiting(emu) == 0
    # a wait that outlives timed-out ones on the same pager still gets its page
    live = asyncio.ensure_future(http.request("GET", "/pagers/3/wait", params={"timeout": "20"}))
    await asyncio.gather(
        *(http.request("GET", "/pagers/3/wait", params={"timeout": "0.05"}) for _ in range(20))
    )
    await until(lambda: waiting(emu) == 2)  # the live one, in pager 3's list
    page = (await frozen.coap.post("/v1/page", {"number": 3})).json["page"]
    assert await live == (200, {"paged": True, "transmission": page})
    assert waiting(emu) == 0


async def test_cancelled_waits_are_forgotten(frozen):
    emu = frozen.emu
    for n in range(50):
        task = asyncio.ensure_future(emu.wait_for_page(n % 5 + 1, timeout=30))
        await asyncio.sleep(0)
        task.cancel()
    await until(lambda: waiting(emu) == 0)
    await emu.reset()  # a reset between registration and cancellation
    task = asyncio.ensure_future(emu.wait_for_page(9, timeout=30, after_id=5))
    await until(lambda: waiting(emu) == 2)
    await emu.reset()
    task.cancel()
    await until(lambda: waiting(emu) == 0)


async def test_a_wait_whose_client_went_away_is_forgotten(frozen, caplog):
    """The client disconnects long before its timeout: the wait ends with the connection."""
    emu = frozen.emu
    for _ in range(5):
        async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as session:
            task = asyncio.ensure_future(session.get("/pagers/4/wait", params={"timeout": "300"}))
            await until(lambda: waiting(emu) == 2)
            task.cancel()
        await until(lambda: waiting(emu) == 0)
    # and the control API still answers, with nothing changed or complained about
    assert await frozen.http.get("/pagers") == {"pagers": []}
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# ---- hostile input, endpoint by endpoint -------------------------------------------------

HOSTILE = [
    "9" * 5000,
    "1" + "0" * 18,
    "٤٢",
    "４２",
    "42\u0663",
    "-1",
    "-0",
    "+5",
    "",
    " ",
    " 42",
    "42 ",
    "\t",
    "42\n",
    "\x00",
    "4\x002",
    "😀",
    "42😀",
    "x" * 5000,
    "4_2",
    "0x10",
    "1e3",
    "1e999",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1.5e2",
    ".5",
    "5.",
    "1.2.3",
    "0." + "5" * 5000,
    "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
    "/",
    "..",
    "%",
    "4/2",
    "42?",
]
# where each hostile text goes: a path segment or a query value
HOSTILE_SLOTS = [
    ("GET", "/pagers/{}", None),
    ("GET", "/pagers/{}/wait", {"timeout": "0"}),
    ("GET", "/pagers/5/wait", {"timeout": "{}"}),
    ("GET", "/pagers/5/wait", {"after": "{}", "timeout": "0"}),
    ("GET", "/transmissions", {"number": "{}"}),
    ("GET", "/transmissions", {"after": "{}"}),
    ("GET", "/transmissions", {"since": "{}"}),
    ("DELETE", "/faults/{}", None),
    ("GET", "/clock", {"{}": "1"}),
]
HUGE = "9" * 5000
HOSTILE_BODIES = [
    *[
        (path, f'{{"{field}": {literal}}}')
        for path, field in (
            ("/clock/advance", "seconds"),
            ("/clock/speed", "factor"),
            ("/power-cycle", "seconds"),
        )
        for literal in (
            HUGE,
            "-" + HUGE,
            f"{HUGE}.5",
            "1e999",
            "-1e999",
            "NaN",
            "-Infinity",
            '"٤٢"',
            '"4\\u0000"',
        )
    ],
    *[("/faults", f'{{"kind": "drop", "count": {v}}}') for v in (HUGE, "1e999", "NaN", "10e9")],
    *[
        ("/faults", f'{{"kind": "delay", "seconds": {v}}}')
        for v in (HUGE, "1e999", "NaN", "Infinity")
    ],
    *[
        ("/faults", json.dumps({"kind": "error", "code": v}))
        for v in ("٥.٠٣", "5.0３", "5.03\n", "\x00", "😀", HUGE)
    ],
    *[("/faults", json.dumps({"kind": v})) for v in ("drop\x00", "😀", "DROP", HUGE)],
    *[
        ("/clock/set", json.dumps({"datetime": v}))
        for v in (
            "٢٠٢٦-03-15T11:55:20",
            "2026-03-15T11:55:2٠",
            "2026-03-15T11:55:20\x00",
            "😀" * 19,
            "x" * 100_000,
            HUGE,
            "",
        )
    ],
    ("/clock/set", '{"datetime": "2026-03-15T11:55:20", "datetime": 5}'),
    ("/clock/advance", "[" * 5000 + "]" * 5000),
    ("/clock/advance", '{"seconds": 1' + " " * 100_000 + "}" + "x"),
]


async def _everything(rig) -> tuple:
    http = rig.http
    return (
        await http.get("/clock"),
        await http.get("/faults"),
        await http.get("/transmissions"),
        await http.get("/pagers"),
    )


@pytest.fixture
async def furnished(frozen):
    """A frozen rig with a page and a fault, so that a change would show."""
    await frozen.coap.post("/v1/page", {"number": 42})
    await frozen.http.post("/faults", {"kind": "delay", "path": "/nowhere"}, status=201)
    return frozen


def _bad(status: int, body) -> bool:
    return (
        status in (400, 404)
        and list(body) == ["error"]
        and isinstance(body["error"], str)
        and bool(body["error"])
    )


@pytest.mark.parametrize("method,path,params", HOSTILE_SLOTS)
async def test_hostile_path_or_query_is_refused(furnished, method, path, params):
    before = await _everything(furnished)
    for text in HOSTILE:
        # as it is: "." escaped too, or the client would take ".." for the folder above
        segment = urllib.parse.quote(text, safe="").replace(".", "%2E")
        url = yarl.URL(path.format(segment), encoded=True)
        query = (
            None if params is None else {k.format(text): v.format(text) for k, v in params.items()}
        )
        status, body = await furnished.http.request(method, url, params=query)
        assert _bad(status, body), (text[:40], status, body)
    assert await _everything(furnished) == before


@pytest.mark.parametrize("path,raw", HOSTILE_BODIES, ids=lambda v: v[:40])
async def test_hostile_body_is_refused(furnished, path, raw):
    before = await _everything(furnished)
    status, body = await furnished.http.request("POST", path, raw=raw)
    assert status == 400 and _bad(status, body), body
    assert await _everything(furnished) == before


@pytest.mark.parametrize("config_overrides", [{"control_token": "0123456789abcdef0123"}])
async def test_hostile_bearer_token_is_401(rig):
    """Sent as raw bytes: UTF-8 outside ASCII, bytes that are not UTF-8, huge. (Control
    characters never get this far: aiohttp's parser answers them 400 itself.)"""
    for token in (
        "Bearer ٤٢".encode(),
        "Bearer 😀".encode(),
        b"Bearer \xff\xfe",
        b"Bearer 0123456789abcdef012\xc3\xa9",
        "Bearer é".encode("latin-1"),
        "Bearer 0123456789abcdef0123😀".encode(),
        b"Bearer " + b"\xe9" * 4000,
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.emu.control_port)
        writer.write(
            b"GET /clock HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: "
            + token
            + b"\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"401", (token, head)
        assert list(json.loads(payload)) == ["error"]
    status, _ = await rig.http.request(
        "GET", "/clock", headers={"Authorization": "Bearer 0123456789abcdef0123"}
    )
    assert status == 200


async def test_numbers_in_digits_0_to_9_still_work(furnished):
    http = furnished.http
    page = (await http.get("/transmissions"))["transmissions"][0]
    assert (await http.get("/pagers/042"))["number"] == 42
    assert await http.get("/transmissions", params={"number": "0042", "after": "0"}) == {
        "transmissions": [page]
    }
    assert (await http.get("/pagers/42/wait", params={"after": "0", "timeout": "0.5"})) == {
        "paged": True,
        "transmission": page,
    }
    status, body = await http.request("GET", "/pagers/42/wait", params={"timeout": "000.000"})
    assert status == 408 and body["timeout"] == 0
    assert await http.delete("/faults/1") == {"removed": 1}
    status, body = await http.request("DELETE", "/faults/" + "9" * 18)
    assert status == 404 and body == {"error": f"no fault {'9' * 18}"}
