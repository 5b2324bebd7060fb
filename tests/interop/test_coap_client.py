"""Interop with libcoap's coap-client-notls.

How the response code is read from coap-client (it does not print 2.xx codes at its default
verbosity) is described in helpers.py: `-v 6` PDU log lines on stdout give the code and
options, `-o FILE` gives the 2.xx body byte-exact, stderr gives a non-2.xx body."""

import cbor2

from tests.interop.helpers import assert_envelope, fill_sessions, session_lifecycle


async def test_session_lifecycle(coap, manual_time):
    # the steps, and what every client must see in them, are in helpers.session_lifecycle
    r = await session_lifecycle(
        coap,
        manual_time,
        update={"label": "Sarah B."},
        updated={"label": "Sarah B.", "partySize": 4},
        page=(30, "2026-03-15T11:55:50"),
        clear=(5, "2026-03-15T11:55:55"),
    )
    assert r["created"].option("Content-Format") == "application/json"
    # gone: 4.04 with the JSON error body (read from coap-client's stderr)
    assert_envelope(r["gone"].json, "error")


async def test_list_sessions_and_etag(coap, client):
    for n in (7, 8):
        assert (await client.post("/v1/sessions", {"number": n})).code == "2.01"
    r = await coap.request("GET", "/v1/sessions")
    assert r.code == "2.05", r
    assert_envelope(r.json, "sessions", "statistics")
    assert [s["number"] for s in r.json["sessions"]] == [7, 8]
    etag = r.option("ETag")
    assert etag and etag.startswith("0x"), r.responses

    again = await coap.request("GET", "/v1/sessions", etag=etag[2:])
    assert again.code == "2.03", again
    assert again.payload == b""
    assert again.option("ETag") == etag


async def test_block2_listing_arrives_whole(coap, client):
    await fill_sessions(client, 60)
    r = await coap.request("GET", "/v1/sessions")
    assert r.code == "2.05", r
    assert len(r.options("Block2")) > 1, r.responses  # it really was block-wise
    assert len(r.payload) > 1024
    body = r.json
    assert len(body["sessions"]) == 60
    assert [s["number"] for s in body["sessions"]] == list(range(100, 160))


async def test_cbor_accept(coap, client):
    await client.post("/v1/sessions", {"number": 31, "label": "Kim"})
    r = await coap.request("GET", "/v1/sessions", query="number=31", accept="60")
    assert r.code == "2.05", r
    assert r.option("Content-Format") == "application/cbor"
    body = r.cbor
    assert_envelope(body, "sessions")
    (s,) = body["sessions"]
    assert (s["number"], s["label"], s["state"]) == (31, "Kim", "started")

    r = await coap.request(
        "POST", "/v1/sessions", content_format="json", accept="60", payload={"number": 32}
    )
    assert r.code == "2.01", r
    assert r.cbor["sessions"][0]["number"] == 32

    # a CBOR request body (Content-Format 60), answered in JSON
    r = await coap.request(
        "POST",
        "/v1/sessions",
        content_format="60",
        payload=cbor2.dumps({"number": 33, "label": "Zoë", "partySize": 2}),
    )
    assert r.code == "2.01", r
    assert r.option("Content-Format") == "application/json"
    (s,) = r.json["sessions"]
    assert (s["number"], s["label"], s["partySize"]) == (33, "Zoë", 2)


async def test_non_request_and_delete(coap, client):
    r = await coap.request(
        "POST", "/v1/sessions", content_format="json", payload={"number": 40}, extra=("-N",)
    )
    assert r.code == "2.01", r
    assert r.responses[-1]["type"] == "NON"  # a NON request gets a NON answer
    r = await coap.request("DELETE", "/v1/sessions", query="number=40")
    assert r.code == "2.02", r
    assert r.payload == b""
    r = await coap.request("DELETE", "/v1/sessions", query="number=40")
    assert r.code == "4.04", r
    assert r.json["error"]["code"] == "4.04"
    assert (await client.get("/v1/sessions")).json["sessions"] == []


async def test_bad_request_error_body(coap, client):
    r = await coap.request("POST", "/v1/sessions", content_format="json", payload={"number": "x"})
    assert r.code == "4.00", r
    body = r.json
    assert_envelope(body, "error")
    assert body["error"]["code"] == "4.00"
    assert body["error"]["field"] == "number"
    assert (await client.get("/v1/sessions")).json["sessions"] == []  # nothing changed
