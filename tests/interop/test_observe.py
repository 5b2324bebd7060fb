"""Interop: observing /v1/notify (spec §8) with node-coap and with libcoap's coap-client-notls.

Each observer is a client process that runs while the test changes the transmitter through
the aiocoap `client` fixture; how its notifications are read is described in helpers.py
("observe"). Unless a test sets a short `ping_interval`, the default of 30 s keeps periodic
pings out of the way, so the notifications a test expects are exactly the ones it gets."""

import asyncio

import pytest

from tests.interop.helpers import Notification, assert_envelope

SHORT_PING = {"ping_interval": 0.5}


async def observers_gone(emulator, within: float = 2.0) -> None:
    """The emulator ends the observation: a deregistration, not the liveness timeout, since
    that takes 2.5 ping intervals (75 s at the default)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while emulator.hub.observers and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert not emulator.hub.observers, "the emulator still counts the observer"


def assert_ping(note: Notification, sequence: int = 0) -> None:
    body = note.json
    assert_envelope(body, "ping")
    assert body["ping"] == {}
    assert body["globalSessionSequence"] == sequence


def assert_session_note(note: Notification, reply, sequence: int) -> dict:
    """A session notification: the one changed session and the statistics, as the request's
    own answer (`reply`, from the aiocoap client) has them."""
    body = note.json
    assert_envelope(body, "sessions", "statistics")
    assert body["globalSessionSequence"] == sequence
    (session,) = body["sessions"]
    assert session["sessionSequence"] == sequence
    assert body["sessions"] == reply.json["sessions"]
    assert body["statistics"] == reply.json["statistics"]
    assert body["timestamp"] == reply.json["timestamp"]
    return session


async def change_sessions(client, manual_time) -> list:
    """Create pager 66, page it 42 s later, clear it 10 s after that: gss 1, 2, 3."""
    create = await client.post("/v1/sessions", {"number": 66, "label": "Sarah", "partySize": 4})
    assert create.code == "2.01", create.payload
    manual_time.advance(42)
    page = await client.put("/v1/sessions", {"action": "page"}, query="number=66")
    assert page.code == "2.04", page.payload
    manual_time.advance(10)
    clear = await client.put("/v1/sessions", {"action": "clear"}, query="number=66")
    assert clear.code == "2.04", clear.payload
    return [create, page, clear]


def assert_changes(notes: list[Notification], replies: list) -> None:
    create, page, clear = (
        assert_session_note(n, r, seq) for n, r, seq in zip(notes, replies, (1, 2, 3), strict=True)
    )
    assert (create["number"], create["label"], create["state"]) == (66, "Sarah", "started")
    assert "notified" not in create
    assert (page["id"], page["state"], page["notified"]) == (
        create["id"],
        "paged",
        "2026-03-15T11:56:02",
    )
    assert (clear["id"], clear["state"], clear["cleared"]) == (
        create["id"],
        "cleared",
        "2026-03-15T11:56:12",
    )
    assert [n.json["statistics"]["guestsServed"] for n in notes] == [0, 1, 1]


async def make_listing(client) -> dict:
    """Sessions 7 and 8 active, 9 cleared; returns GET /v1/sessions."""
    for n in (7, 8, 9):
        assert (await client.post("/v1/sessions", {"number": n, "label": f"P{n}"})).code == "2.01"
    assert (await client.put("/v1/sessions", {"action": "clear"}, query="number=9")).code == "2.04"
    listing = await client.get("/v1/sessions")
    assert [s["number"] for s in listing.json["sessions"]] == [7, 8]
    return listing.json


def assert_listing(note: Notification, listing: dict) -> None:
    body = note.json
    assert_envelope(body, "sessions", "statistics")
    for key in ("globalSessionSequence", "timestamp", "sessions", "statistics"):
        assert body[key] == listing[key], key
    assert body["globalSessionSequence"] == 4


# ---------------------------------------------------------------------------- node-coap


async def test_node_observer_gets_each_change_in_order(node, client, manual_time, emulator):
    async with node.observe(count=4) as obs:
        first = await obs.next()  # the registration's answer: a ping
        assert_ping(first)
        assert len(emulator.hub.observers) == 1
        replies = await change_sessions(client, manual_time)
        notes = [await obs.next() for _ in replies]
        rest, deregistered = await obs.finish()
    assert rest == []
    assert_changes(notes, replies)
    assert [n.observe for n in [first, *notes]] == [0, 1, 2, 3]
    # observe.js cancels with GET + Observe 1, answered by a plain 2.05
    assert deregistered == "2.05"
    await observers_gone(emulator)


async def test_node_observer_get_sessions_lists_active_sessions(node, client, emulator):
    listing = await make_listing(client)
    async with node.observe(query="action=get_sessions", count=1) as obs:
        first = await obs.next()
        rest, deregistered = await obs.finish()
    assert rest == []
    assert_listing(first, listing)
    assert deregistered == "2.05"
    await observers_gone(emulator)


@pytest.mark.parametrize("config_overrides", [SHORT_PING])
async def test_node_observer_acknowledges_pings(node, emulator):
    # Each ping is Confirmable; an observer that did not ACK would be given up 1.25 s (2.5
    # intervals) after the first one, and the notifications queued behind it never sent.
    async with node.observe(count=5) as obs:
        notes = [await obs.next(timeout=3) for _ in range(5)]
        rest, deregistered = await obs.finish()
    assert rest == []
    for note in notes:
        assert_ping(note)
    assert [n.observe for n in notes] == [0, 1, 2, 3, 4]
    assert deregistered == "2.05"
    await observers_gone(emulator)


# ---------------------------------------------------------------------- coap-client-notls


async def test_coap_client_observer_gets_each_change_in_order(coap, client, manual_time, emulator):
    async with coap.observe(2) as obs:
        await obs.wait_for(1)  # the registration's answer
        assert len(emulator.hub.observers) == 1
        replies = await change_sessions(client, manual_time)
        notes = await obs.finish()
    first, *changes = notes
    assert_ping(first)
    assert first.type == "ACK"  # piggybacked on the registration's ACK
    assert_changes(changes, replies)
    assert [n.observe for n in notes] == [0, 1, 2, 3]
    # every notification after the first is Confirmable, and libcoap ACKed each one
    assert [n.type for n in changes] == ["CON"] * 3
    assert {n.mid for n in changes} <= obs.acked()
    # at the end of -s, libcoap deregisters: GET + Observe 1 on the registration's token
    (register,) = {p.mid: p for p in obs.sent("CON") if p.option("Observe") == "0"}.values()
    (cancel,) = {p.mid: p for p in obs.sent("CON") if p.option("Observe") == "1"}.values()
    assert (cancel.code, cancel.token) == ("GET", register.token)
    await observers_gone(emulator)


async def test_coap_client_get_sessions_lists_active_sessions(coap, client, emulator):
    listing = await make_listing(client)
    async with coap.observe(1, query="action=get_sessions") as obs:
        (first,) = await obs.finish()
    assert (first.type, first.code, first.observe) == ("ACK", "2.05", 0)
    assert_listing(first, listing)
    await observers_gone(emulator)


@pytest.mark.parametrize("config_overrides", [SHORT_PING])
async def test_coap_client_observer_acknowledges_pings(coap, emulator):
    async with coap.observe(2) as obs:
        notes = await obs.finish()
    # 2 s of observing at one ping per 0.5 s: the first answer and 3 or 4 pings. One that did
    # not ACK would have got 2 (the first answer and the first ping; see the node test).
    assert len(notes) >= 4, notes
    for note in notes:
        assert_ping(note)
    assert [n.observe for n in notes] == list(range(len(notes)))
    assert [n.type for n in notes[1:]] == ["CON"] * (len(notes) - 1)
    assert {n.mid for n in notes[1:]} <= obs.acked()
    await observers_gone(emulator)


async def test_coap_client_observer_in_cbor(coap, client, manual_time, emulator):
    async with coap.observe(1, accept="60") as obs:
        await obs.wait_for(1)
        replies = await change_sessions(client, manual_time)
        notes = await obs.finish()
    assert [n.type for n in notes] == ["ACK", "CON", "CON", "CON"]
    assert {p.option("Content-Format") for p in obs.received()} == {"application/cbor"}
    first, *changes = notes
    assert_envelope(first.cbor, "ping")
    for note, reply in zip(changes, replies, strict=True):
        body = note.cbor
        assert_envelope(body, "sessions", "statistics")
        assert body["sessions"] == reply.json["sessions"]
        assert body["statistics"] == reply.json["statistics"]
    await observers_gone(emulator)
