"""Per-session ETags and conditional requests over real UDP (spec §1, §4; RFC 7252 §5.10.8),
the clearing of every session, and a settings request that changes nothing (spec §8)."""

import asyncio
import json

import aiocoap
import pytest
from aiocoap.optiontypes import OpaqueOption

from pager.app import Emulator
from pager.clock import Clock
from tests.conftest import Client, Reply, exchange_once, make_config

STALE = b"\x00" * 8


async def ask(
    client: Client,
    method: str,
    path: str,
    body: dict | None = None,
    *,
    query: str | None = None,
    if_match: tuple[bytes, ...] = (),
    if_none_match: bool = False,
    accept: int | None = None,
) -> Reply:
    uri = f"coap://127.0.0.1:{client.port}{path}" + (f"?{query}" if query else "")
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    m = aiocoap.Message(code=getattr(aiocoap.Code, method), uri=uri, payload=payload)
    if payload:
        m.opt.content_format = 50
    if accept is not None:
        m.opt.accept = accept
    m.opt.if_match = if_match
    m.opt.if_none_match = if_none_match
    response = await asyncio.wait_for(client.context.request(m).response, 20)
    return Reply(response.code.dotted, response.payload, response)


def etag(reply: Reply) -> bytes:
    tag = reply.message.opt.etag
    assert tag, f"{reply.code} answer without an ETag"
    return tag


def assert_failed_precondition(reply: Reply, sequence: int) -> None:
    assert reply.code == "4.12", reply.payload
    body = reply.json
    assert body["responseTypes"] == ["error"] and body["globalSessionSequence"] == sequence
    assert body["error"]["code"] == "4.12" and body["error"]["message"]
    assert "field" not in body["error"]


async def session(client: Client, number: int) -> dict:
    return (await client.get("/v1/sessions", query=f"number={number}")).json["sessions"][0]


async def test_every_single_session_answer_carries_that_sessions_etag(client):
    created = await client.post("/v1/sessions", {"number": 5})
    other = await client.post("/v1/sessions", {"number": 6})
    assert created.code == "2.01" and etag(created) != etag(other)
    got = await client.get("/v1/sessions", query="number=5")
    assert got.code == "2.05" and etag(got) == etag(created)
    as_cbor = await client.get("/v1/sessions", query="number=5", accept=60)
    assert etag(as_cbor) == etag(created)  # the session's state, whatever the format

    updated = await client.post("/v1/sessions", {"number": 5, "label": "Ada"})
    assert updated.code == "2.00" and etag(updated) not in (etag(created), etag(other))
    put = await client.put("/v1/sessions", {"action": "page"}, query="number=5")
    assert put.code == "2.04" and etag(put) != etag(updated)
    assert etag(await client.get("/v1/sessions", query="number=5")) == etag(put)
    unchanged = await client.put("/v1/sessions", {"label": "Ada"}, query="number=5")
    assert etag(unchanged) == etag(put)  # no change, no new ETag

    cleared = await client.put("/v1/sessions", {"action": "clear"}, query="number=5")
    assert cleared.json["sessions"][0]["state"] == "cleared"
    assert etag(cleared) != etag(put)  # the archived form is another state of it
    removed = await client.post("/v1/sessions", {"number": 6, "action": "remove"})
    assert removed.json["sessions"][0]["state"] == "cleared" and etag(removed) != etag(other)

    # the list keeps its own ETag, and 2.03 (spec §4.3)
    listed = await client.get("/v1/sessions")
    assert (await client.get("/v1/sessions", etags=(etag(listed),))).code == "2.03"


async def test_a_put_with_a_stale_if_match_is_4_12_and_changes_nothing(client):
    first = await client.post("/v1/sessions", {"number": 5, "label": "Ada"})
    await client.put("/v1/sessions", {"label": "Bea"}, query="number=5")
    before = await session(client, 5)
    stale = await ask(
        client, "PUT", "/v1/sessions", {"label": "Cy"}, query="number=5", if_match=(etag(first),)
    )
    assert_failed_precondition(stale, sequence=2)
    assert await session(client, 5) == before
    assert (await client.get("/v1/sessions")).json["globalSessionSequence"] == 2


@pytest.mark.parametrize(
    "if_match",
    [
        pytest.param(lambda tag: (tag,), id="its-etag"),
        pytest.param(lambda tag: (STALE, tag), id="one-of-two"),
        pytest.param(lambda tag: (b"",), id="empty-exists"),
    ],
)
async def test_a_put_whose_if_match_holds_changes_the_session(client, if_match):
    tag = etag(await client.post("/v1/sessions", {"number": 5}))
    r = await ask(
        client, "PUT", "/v1/sessions", {"label": "Cy"}, query="number=5", if_match=if_match(tag)
    )
    assert r.code == "2.04" and r.json["sessions"][0]["label"] == "Cy" and etag(r) != tag


async def test_if_match_on_a_number_with_no_session_is_4_12(client):
    for value in (STALE, b""):
        put = await ask(
            client, "PUT", "/v1/sessions", {"label": "x"}, query="number=5", if_match=(value,)
        )
        assert_failed_precondition(put, sequence=0)
        post = await ask(client, "POST", "/v1/sessions", {"number": 5}, if_match=(value,))
        assert_failed_precondition(post, sequence=0)
    assert (await client.get("/v1/sessions")).json["sessions"] == []


async def test_post_with_if_none_match_creates_only_a_new_session(client):
    created = await ask(client, "POST", "/v1/sessions", {"number": 5}, if_none_match=True)
    assert created.code == "2.01"
    again = await ask(
        client, "POST", "/v1/sessions", {"number": 5, "label": "x"}, if_none_match=True
    )
    assert_failed_precondition(again, sequence=1)
    assert (await session(client, 5))["label"] is None
    put = await ask(
        client, "PUT", "/v1/sessions", {"label": "x"}, query="number=5", if_none_match=True
    )
    assert_failed_precondition(put, sequence=1)


async def test_delete_one_with_if_match(client):
    tag = etag(await client.post("/v1/sessions", {"number": 5}))
    await client.put("/v1/sessions", {"label": "moved on"}, query="number=5")
    stale = await ask(client, "DELETE", "/v1/sessions", query="number=5", if_match=(tag,))
    assert_failed_precondition(stale, sequence=2)
    current = etag(await client.get("/v1/sessions", query="number=5"))
    deleted = await ask(client, "DELETE", "/v1/sessions", query="number=5", if_match=(current,))
    assert deleted.code == "2.02" and deleted.payload == b""
    history = (await client.get("/v1/sessions/history")).json["session_history"]
    assert [h["clearType"] for h in history] == ["REMOVED"]


async def test_two_concurrent_puts_on_one_etag_one_2_04_and_one_4_12(client, emulator):
    """The condition is checked where the change is computed: the second request computed
    sees the first one's change, committed or not. Two clients (aiocoap keeps one request
    in flight per server and context, NSTART = 1), their datagrams sent together."""
    second = await aiocoap.Context.create_client_context()
    try:
        clients = (client, Client(second, emulator.port))
        for round_ in range(5):
            number = 10 + round_
            tag = etag(await client.post("/v1/sessions", {"number": number}))
            replies = await asyncio.gather(
                *(
                    ask(
                        c,
                        "PUT",
                        "/v1/sessions",
                        {"label": f"writer {i}"},
                        query=f"number={number}",
                        if_match=(tag,),
                    )
                    for i, c in enumerate(clients)
                )
            )
            codes = sorted(r.code for r in replies)
            assert codes == ["2.04", "4.12"], [r.payload for r in replies]
            won = next(r for r in replies if r.code == "2.04")
            assert (await session(client, number))["label"] == won.json["sessions"][0]["label"]
    finally:
        await second.shutdown()


@pytest.mark.parametrize(
    "method, path, query, body",
    [
        ("GET", "/v1/sessions", None, None),
        ("GET", "/v1/sessions", "number=5", None),
        ("DELETE", "/v1/sessions", None, None),
        ("GET", "/v1/settings", None, None),
        ("POST", "/v1/settings", None, {"systemId": 9}),
        ("POST", "/v1/page", None, {"number": 7}),
        ("DELETE", "/v1/sessions/statistics", None, None),
        ("GET", "/v1/sessions/history", None, None),
        ("GET", "/v1/notify", None, None),
    ],
)
@pytest.mark.parametrize("condition", ["if_match", "if_match_empty", "if_none_match"])
async def test_a_condition_on_a_request_that_changes_no_one_session_is_4_02(
    client, emulator, method, path, query, body, condition
):
    """Critical options the transmitter does not act on there: never ignored (RFC 7252
    §5.4.1), so the request is not served, and nothing changes."""
    tag = etag(await client.post("/v1/sessions", {"number": 5}))
    state = emulator.engine.state
    before = state.device, dict(state.active)
    kw: dict = {
        "if_match": {"if_match": (tag,), "if_match_empty": (b"",)}.get(condition, ()),
        "if_none_match": condition == "if_none_match",
    }
    r = await ask(client, method, path, body, query=query, **kw)
    assert r.code == "4.02", r.payload
    assert r.json["error"]["code"] == "4.02" and "If-Match" in r.json["error"]["message"]
    assert (state.device, state.active) == before  # no transmission, setting or session


async def test_a_settings_request_that_changes_nothing_notifies_nobody(client, emulator):
    """A real observer: after requests that change nothing, its next notification is the
    real change."""
    context = await aiocoap.Context.create_client_context()
    try:
        uri = f"coap://127.0.0.1:{emulator.port}/v1/notify"
        observation = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        first = await asyncio.wait_for(observation.response, 10)
        assert json.loads(first.payload)["responseTypes"] == ["ping"]
        notes: list[dict] = []
        arrived = asyncio.Event()

        async def read() -> None:  # one in flight per peer: each is read before the next
            async for message in observation.observation:
                notes.append(json.loads(message.payload))
                arrived.set()

        reader = asyncio.create_task(read())

        current = (await client.get("/v1/settings")).json["settings"]
        same = {k: v for k, v in current.items() if k != "datetime"}
        for body in (
            {},
            same,
            {"systemId": current["systemId"]},
            {"datetime": current["datetime"]},
        ):
            r = await client.post("/v1/settings", body)
            assert r.code == "2.04" and r.json["settings"] == current
        # a session change next: a settings notification waiting is replaced by a newer one,
        # but never overtaken by a session's
        await client.post("/v1/sessions", {"number": 5})
        assert (await client.post("/v1/settings", {"systemId": 42})).code == "2.04"

        async def real_change() -> None:
            while not notes or notes[-1].get("settings", {}).get("systemId") != 42:
                arrived.clear()
                await arrived.wait()

        await asyncio.wait_for(real_change(), 10)
        assert [n["responseTypes"][0] for n in notes] == ["sessions", "settings"]
        reader.cancel()
    finally:
        await context.shutdown()


@pytest.mark.parametrize(
    "option,value",
    [(1, 9), (1, 300), (5, 1), (5, 8)],  # (option number, value length)
    ids=["if-match-9", "if-match-300", "if-none-match-1", "if-none-match-8"],
)
async def test_a_condition_longer_than_its_option_allows_is_4_02_and_changes_nothing(
    client, emulator, option, value
):
    """If-Match takes 0-8 bytes and If-None-Match none (RFC 7252 §5.10): a longer value is
    an unrecognised critical option (§5.4.3). Read as a condition, a 9-byte If-Match was a
    4.12 and an If-None-Match with a value created the session."""
    before = etag(await client.post("/v1/sessions", {"number": 5}))
    for method, query, body in (
        (aiocoap.PUT, ("number=5",), b'{"label":"Cy"}'),
        (aiocoap.POST, (), b'{"number":6}'),
    ):
        request = aiocoap.Message(
            code=method,
            uri_path=("v1", "sessions"),
            uri_query=query,
            payload=body,
            content_format=50,
        )
        request.opt.add_option(OpaqueOption(option, b"\x5a" * value))
        reply = await exchange_once(emulator.port, request)
        assert reply.code.dotted == "4.02", reply.payload
        assert json.loads(reply.payload)["error"]["code"] == "4.02"
    assert etag(await client.get("/v1/sessions", query="number=5")) == before
    assert (await client.get("/v1/sessions", query="number=6")).code == "4.04"


async def test_an_etag_outlives_a_restart_and_not_a_factory_reset(db_path, manual_time):
    """A restart keeps the session, so its ETag names it still; after a factory reset the
    same number's new session has the same id and sequence numbers as the old one had, and
    the old ETag must not name it."""
    context = await aiocoap.Context.create_client_context()
    try:
        async with Emulator(make_config(db_path), Clock(system=manual_time)) as emu:
            client = Client(context, emu.port)
            before_reset = etag(await client.post("/v1/sessions", {"number": 5}))
            await emu.reset()
            created = await client.post("/v1/sessions", {"number": 5})
            assert created.json["sessions"][0]["sessionSequence"] == 1  # as the first one's
            kept = etag(created)
            assert kept != before_reset
            stale = await ask(client, "PUT", "/v1/sessions", {"label": "x"}, query="number=5",
                              if_match=(before_reset,))  # fmt: skip
            assert_failed_precondition(stale, 1)
            port = emu.port
        async with Emulator(make_config(db_path, port=port), Clock(system=manual_time)) as emu:
            client = Client(context, emu.port)
            assert etag(await client.get("/v1/sessions", query="number=5")) == kept
            held = await ask(client, "PUT", "/v1/sessions", {"label": "Ada"}, query="number=5",
                             if_match=(kept,))  # fmt: skip
            assert held.code == "2.04"
    finally:
        await context.shutdown()
