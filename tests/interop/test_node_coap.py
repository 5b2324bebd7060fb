"""Interop with node-coap, the client library of the vendor's documented example code.

Each request is one `node coap_request.js` process (or one of the vendor example scripts),
run with asyncio.create_subprocess_exec against the in-process emulator (see helpers.py)."""

import json

from tests.interop.helpers import assert_envelope, fill_sessions, session_lifecycle

JSON = "application/json"


async def test_session_lifecycle(node, manual_time):
    # the steps, and what every client must see in them, are in helpers.session_lifecycle
    r = await session_lifecycle(
        node,
        manual_time,
        update={"partySize": 5},
        updated={"partySize": 5, "label": "Sarah"},
        page=(42, "2026-03-15T11:56:02"),
        clear=(10, "2026-03-15T11:56:12"),
    )
    assert r["created"].content_format == 50
    assert r["paged"].json["statistics"]["guestsServed"] == 1
    assert r["got"].json["sessions"][0]["number"] == 66


async def test_list_sessions(node, client):
    for n in (3, 1, 2):
        assert (await client.post("/v1/sessions", {"number": n})).code == "2.01"
    r = await node.request("GET", "/v1/sessions")
    assert r.code == "2.05", r
    assert r.content_format == 50
    body = r.json
    assert_envelope(body, "sessions", "statistics")
    assert [s["number"] for s in body["sessions"]] == [3, 1, 2]  # by id
    assert [s["id"] for s in body["sessions"]] == [1, 2, 3]
    assert body["statistics"]["numSessions"] == 3


async def test_request_without_content_format_is_json(node):
    r = await node.request("POST", "/v1/sessions", payload={"number": 9})
    assert r.code == "2.01", r
    assert r.json["sessions"][0]["number"] == 9


async def test_vendor_create_created_then_exists(node, client):
    assert await node.vendor("vendor_create.js", 66, "Yuri.", 3, 200) == "created"
    assert await node.vendor("vendor_create.js", 66, "Yuri.", 3, 200) == "exists"
    r = await client.get("/v1/sessions")
    (s,) = r.json["sessions"]
    assert (s["number"], s["label"], s["partySize"], s["goalInSeconds"]) == (66, "Yuri.", 3, 200)


async def test_vendor_get_found_and_missing(node, client):
    await client.post("/v1/sessions", {"number": 23, "label": "Ann"})
    await client.post("/v1/sessions", {"number": 24})
    line = await node.vendor("vendor_get.js", 23)
    assert line.startswith("found "), line
    found = json.loads(line.removeprefix("found "))
    assert (found["number"], found["label"], found["state"]) == (23, "Ann", "started")

    # an inactive (cleared) session and a number never used are both missing
    assert (await client.put("/v1/sessions", {"action": "clear"}, query="number=24")).code == "2.04"
    assert await node.vendor("vendor_get.js", 24) == "missing"
    assert await node.vendor("vendor_get.js", 25) == "missing"


async def test_standalone_page(node, client):
    before = (await client.get("/v1/sessions")).json
    r = await node.request(
        "POST",
        "/v1/page",
        content_format=JSON,
        payload={"number": 12, "pageMode": "Vibe1", "message": "Hi"},
    )
    assert r.code == "2.04", r
    body = r.json
    assert_envelope(body, "page")
    page = body["page"]
    assert (page["number"], page["pageMode"], page["message"]) == (12, "Vibe1", "Hi")
    assert page["sessionId"] is None
    # no session, no statistics, no sequence change
    after = (await client.get("/v1/sessions")).json
    assert after["sessions"] == []
    assert after["statistics"] == before["statistics"]
    assert (
        after["globalSessionSequence"]
        == before["globalSessionSequence"]
        == body["globalSessionSequence"]
    )


async def test_etag_valid(node, client):
    await client.post("/v1/sessions", {"number": 5})
    first = await node.request("GET", "/v1/sessions")
    assert first.code == "2.05" and first.etag, first

    again = await node.request("GET", "/v1/sessions", etag=first.etag)
    assert again.code == "2.03", again
    assert again.payload == ""
    assert again.etag == first.etag

    await client.post("/v1/sessions", {"number": 6})
    changed = await node.request("GET", "/v1/sessions", etag=first.etag)
    assert changed.code == "2.05", changed
    assert changed.etag and changed.etag != first.etag
    assert len(changed.json["sessions"]) == 2


async def test_block2_listing_arrives_whole(node, client):
    await fill_sessions(client, 60)
    r = await node.request("GET", "/v1/sessions")
    assert r.code == "2.05", r
    assert len(r.payload.encode()) > 1024  # more than one block
    body = r.json
    assert len(body["sessions"]) == 60
    assert [s["number"] for s in body["sessions"]] == list(range(100, 160))
    assert body["statistics"]["numSessions"] == 60
