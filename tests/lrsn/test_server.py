"""LRSN end to end over real TCP: the vendor example client's flow, the same state as CoAP,
credentials, max clients, slow and vanishing clients, heartbeats."""

import asyncio
import socket

import pytest

from pager.app import Emulator
from tests.conftest import make_config
from tests.lrsn.conftest import LOGIN, Lrsn, connected, ret

SHORT = b'<PageRequest id="1" pager="2;123" message="Vibe1" system_id="4" />\n'
LONG = (
    b'<PageRequest id="42"><Pager Type="Guest" ID="12" SystemID="4" power="3" color="R" />'
    b"<Message>11</Message></PageRequest>\n"
)


async def test_the_vendor_example_clients_flow(lrsn_rig):
    emu = lrsn_rig.emu
    async with connected(emu.lrsn_address) as conn:
        assert conn.greeting == (
            b'<LRSN services="NetPage:2.0;Heartbeat:1.0" device="T7470" swver="8.4.100.43" '
            b'serno="20384" login="none" />\n'
        )
        assert await conn.ask(LOGIN) == b'<LoginAck ret="0" />\n'
        assert await conn.ask(SHORT) == b'<PageRequestStatus id="1" ret="0" />\n'
        assert await conn.ask(LONG) == b'<PageRequestStatus id="42" ret="0" />\n'
    txs = (await lrsn_rig.http.get("/transmissions"))["transmissions"]
    assert [(t["number"], t["pageMode"], t["systemId"], t["source"]) for t in txs] == [
        (123, "Vibe1", 4, "lrsn"),
        (12, "Vibe3", 4, "lrsn"),  # 11: the 11th page mode of the table
    ]
    assert (txs[1]["power"], txs[1]["color"]) == (3, "R")
    assert "power" not in txs[0] and "color" not in txs[0]  # only what a page gave


async def test_a_page_over_lrsn_is_on_the_same_state_as_coap(lrsn_rig, logged_in):
    http, coap = lrsn_rig.http, lrsn_rig.coap
    r = await coap.post("/v1/settings", {"systemId": 9})
    assert r.code == "2.04"
    before = (await coap.get("/v1/sessions")).json
    # the systemId setting is the one CoAP set; no SystemID given
    page = b'<PageRequest id="7"><Pager Type="Guest" ID="30" /></PageRequest>\n'
    assert ret(await logged_in.ask(page)) == 0
    alpha = b'<PageRequest id="8" pager="0;31" message="Table&#10;ready&#12;F30" />\n'
    assert ret(await logged_in.ask(alpha)) == 0
    txs = (await http.get("/transmissions"))["transmissions"]
    assert [(t["id"], t["number"], t["systemId"], t["pageMode"], t["source"]) for t in txs] == [
        (1, 30, 9, "Flash30Sec", "lrsn"),
        (2, 31, 9, "Flash30Sec", "lrsn"),
    ]
    assert txs[1]["message"] == "Table\nready"
    assert txs[1]["overrideCodes"] == [{"code": "F", "value": 30}]
    pager = await http.get("/pagers/30")
    assert pager["state"] == "alerting" and pager["lastTransmission"]["source"] == "lrsn"
    # a CoAP page comes next in the same record, and CoAP's reader sees no session,
    # statistics or sequence change
    coap_page = (await coap.post("/v1/page", {"number": 30})).json["page"]
    assert (coap_page["id"], coap_page["source"]) == (3, "coap")
    after = (await coap.get("/v1/sessions")).json
    assert after["globalSessionSequence"] == before["globalSessionSequence"]
    assert after["statistics"] == before["statistics"] and after["sessions"] == []


async def test_an_observer_hears_nothing_of_an_lrsn_page_and_then_what_follows(lrsn_rig, logged_in):
    """A standalone page notifies nobody (spec §9): the observer's next notification is the
    session made after it, with the sequence the LRSN page left alone."""
    coap = lrsn_rig.coap
    import aiocoap

    msg = aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{lrsn_rig.emu.port}/v1/notify",
                          observe=0)  # fmt: skip
    req = coap.context.request(msg)
    first = await asyncio.wait_for(req.response, 10)
    assert first.code.is_successful()
    notifications = req.observation.__aiter__()
    assert ret(await logged_in.ask(SHORT)) == 0
    r = await coap.post("/v1/sessions", {"number": 5})
    assert r.code == "2.01"
    note = await asyncio.wait_for(notifications.__anext__(), 10)
    import json

    body = json.loads(note.payload)
    assert [s["number"] for s in body["sessions"]] == [5]
    assert body["globalSessionSequence"] == 1
    req.observation.cancel()


@pytest.mark.parametrize("config_overrides", [{"lrsn_user": "admin", "lrsn_password": "s3cret"}])
async def test_credentials_right_and_wrong(lrsn_rig):
    emu = lrsn_rig.emu
    async with connected(emu.lrsn_address) as conn:
        assert b'login="required"' in conn.greeting
        # before a login, a page is refused and nothing is done
        assert await conn.ask(SHORT) == b'<PageRequestStatus id="1" ret="1" />\n'
        assert await conn.login() == 1  # no credentials
        wrong = b'<Login user="admin" passwd="s3creT" services="NetPage" />\n'
        assert await conn.login(wrong) == 1
        assert ret(await conn.ask(SHORT)) == 1
        right = b'<Login user="admin" passwd="s3cret" services="NetPage" />\n'
        assert await conn.login(right) == 0
        assert ret(await conn.ask(SHORT)) == 0
    assert len((await lrsn_rig.http.get("/transmissions"))["transmissions"]) == 1


async def test_without_credentials_any_login_succeeds_but_a_page_needs_netpage(lrsn_rig):
    async with connected(lrsn_rig.emu.lrsn_address) as conn:
        assert await conn.login(b'<Login user="x" passwd="y" services="Heartbeat" />\n') == 0
        assert ret(await conn.ask(SHORT)) == 1
    assert (await lrsn_rig.http.get("/transmissions"))["transmissions"] == []


@pytest.mark.parametrize("config_overrides", [{"lrsn_max_clients": 3}])
async def test_one_client_more_than_the_most_gets_ret_5_and_is_closed(lrsn_rig):
    address = lrsn_rig.emu.lrsn_address
    clients = [await Lrsn.connect(address) for _ in range(3)]
    try:
        for c in clients:
            assert await c.login() == 0
        extra = await Lrsn.connect(address)
        assert extra.greeting.startswith(b"<LRSN ")
        assert await extra.line() == b'<LoginAck ret="5" />\n'
        assert await extra.closed()
        # the others are still served, and one leaving makes room
        assert ret(await clients[0].ask(SHORT)) == 0
        await clients.pop().close()
        for _ in range(50):
            if lrsn_rig.emu._lrsn.connections == 2:
                break
            await asyncio.sleep(0.05)
        again = await Lrsn.connect(address)
        clients.append(again)
        assert await again.login() == 0
    finally:
        for c in clients:
            await c.close()


async def test_a_client_that_never_reads_is_closed_and_others_stay_served(lrsn_rig, logged_in):
    """It sends request after request and reads no answer: the server keeps a bounded part of
    its answers (`WRITE_BUFFER_MAX`; here checked against 1 MiB), then closes it; a second
    client is answered all along. The requests are refused as they are read (an unknown
    attribute), so that the answers pile up fast."""
    host, port = lrsn_rig.emu.lrsn_address
    server = lrsn_rig.emu._lrsn
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, LOGIN)
    request = b'<PageRequest id="' + b"9" * 64 + b'" pager="2;5" x="1" />\n'
    closed = False
    deadline = loop.time() + 60
    try:
        while loop.time() < deadline and not closed:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, request * 100), 1)
            except ConnectionError:
                closed = True
            except TimeoutError:
                pass  # the server reads no faster than it answers: go on
            buffers = [c.writer.transport.get_write_buffer_size() for c in server._connections]
            assert max(buffers, default=0) <= 2**20
            assert ret(await logged_in.ask(b'<Login services="NetPage" />\n', 5)) == 0
            closed = closed or server.connections == 1
    finally:
        sock.close()
    assert closed, "the server kept a client that reads nothing"
    assert ret(await logged_in.ask(SHORT)) == 0


async def test_a_client_gone_mid_message_changes_nothing(lrsn_rig, logged_in):
    host, port = lrsn_rig.emu.lrsn_address
    for cut in (b'<PageRequest id="1" pager="2;1', b"<Login serv", b"<"):
        gone = await Lrsn.connect((host, port))
        assert await gone.login() == 0
        gone.writer.write(cut)
        await gone.writer.drain()
        gone.writer.transport.abort()
    for _ in range(50):
        if lrsn_rig.emu._lrsn.connections == 1:
            break
        await asyncio.sleep(0.05)
    assert lrsn_rig.emu._lrsn.connections == 1
    assert (await lrsn_rig.http.get("/transmissions"))["transmissions"] == []
    assert ret(await logged_in.ask(SHORT)) == 0


@pytest.mark.parametrize("config_overrides", [{"lrsn_heartbeat_interval": 0.3}])
async def test_heartbeats_and_a_reconnect_when_one_is_missed(lrsn_rig):
    """The vendor client's loop: it reconnects when no heartbeat came within an interval and
    a margin. Here the emulator powers off, so the heartbeat is missed, then comes back."""
    address = lrsn_rig.emu.lrsn_address
    conn = await Lrsn.connect(address)
    assert await conn.login() == 0
    beats = [await conn.line(2) for _ in range(3)]
    assert beats == [b'<Heartbeat interval="0.3" />\n'] * 3
    await lrsn_rig.http.post("/power-cycle", {"seconds": 1})
    reconnected = None
    for _ in range(100):
        try:
            line = await conn.line(0.3 * 2)
        except TimeoutError:
            line = b""
        if line.startswith(b"<Heartbeat"):
            continue
        await conn.close()  # a heartbeat missed (or the connection gone): reconnect
        try:
            conn = await Lrsn.connect(address)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        assert await conn.login() == 0
        reconnected = await conn.line(2)
        break
    assert reconnected == b'<Heartbeat interval="0.3" />\n'
    await conn.close()


async def test_no_heartbeat_without_the_service(lrsn_rig):
    async with connected(lrsn_rig.emu.lrsn_address) as conn:
        assert await conn.login(b'<Login services="NetPage" />\n') == 0
        with pytest.raises(TimeoutError):
            await conn.line(0.5)


async def test_the_fixture_and_device_show_the_address(db_path):
    async with Emulator(make_config(db_path)) as emu:
        host, port = emu.lrsn_address
        assert host == "127.0.0.1" and port not in (0, 3700)
    assert emu.lrsn_address is None


# ---- the rig's faults and power cycle (spec §7) ----------------------------------------------


async def _count(rig) -> int:
    return len((await rig.http.get("/transmissions"))["transmissions"])


async def test_a_dropped_request_does_nothing_and_gets_no_answer(lrsn_rig, logged_in):
    await lrsn_rig.http.post("/faults", {"kind": "drop", "path": "/lrsn/PageRequest", "count": 1},
                             status=201)  # fmt: skip
    await logged_in.send(SHORT)
    with pytest.raises(TimeoutError):
        await logged_in.line(0.5)
    assert await _count(lrsn_rig) == 0
    assert ret(await logged_in.ask(SHORT)) == 0  # spent: the next one passes
    assert await _count(lrsn_rig) == 1
    assert (await lrsn_rig.http.get("/faults"))["faults"] == []  # count 1: spent, gone


async def test_a_lost_answer_still_pages(lrsn_rig, logged_in):
    await lrsn_rig.http.post("/faults", {"kind": "drop", "direction": "answer", "count": 1},
                             status=201)  # fmt: skip
    await logged_in.send(SHORT)
    with pytest.raises(TimeoutError):
        await logged_in.line(0.5)
    assert await _count(lrsn_rig) == 1


async def test_an_error_answers_the_chosen_result_code_and_does_nothing(lrsn_rig, logged_in):
    fault = await lrsn_rig.http.post(
        "/faults", {"kind": "error", "path": "/lrsn/PageRequest", "ret": 4}, status=201
    )
    assert fault["ret"] == 4
    assert await logged_in.ask(SHORT) == b'<PageRequestStatus id="1" ret="4" />\n'
    assert await logged_in.ask(LONG) == b'<PageRequestStatus id="42" ret="4" />\n'
    assert await logged_in.login() == 0  # another path: not this fault's
    assert await _count(lrsn_rig) == 0
    # a CoAP path's fault leaves LRSN alone
    await lrsn_rig.http.delete("/faults")
    await lrsn_rig.http.post("/faults", {"kind": "error", "path": "/v1/page"}, status=201)
    assert ret(await logged_in.ask(SHORT)) == 0
    assert (await lrsn_rig.coap.post("/v1/page", {"number": 3})).code == "5.03"


async def test_a_bad_ret_is_refused(lrsn_rig):
    for bad in (0, 11, "4"):
        status, _ = await lrsn_rig.http.request("POST", "/faults", {"kind": "error", "ret": bad})
        assert status == 400


async def test_a_delay_holds_the_request(lrsn_rig, logged_in):
    import time

    await lrsn_rig.http.post("/faults", {"kind": "delay", "seconds": 0.6, "count": 1}, status=201)
    start = time.monotonic()
    assert ret(await logged_in.ask(SHORT)) == 0
    assert time.monotonic() - start >= 0.6
    assert await _count(lrsn_rig) == 1


async def test_a_power_cycle_closes_every_connection_and_refuses_new_ones(lrsn_rig, logged_in):
    address = lrsn_rig.emu.lrsn_address
    await lrsn_rig.http.post("/power-cycle", {"seconds": 1.5})
    assert await logged_in.closed(2)
    with pytest.raises(OSError):
        await asyncio.open_connection(*address)
    await asyncio.sleep(2)
    async with connected(address) as again:  # the same port, serving again
        assert await again.login() == 0
        assert ret(await again.ask(SHORT)) == 0


# ---- the request journal -------------------------------------------------------------------


async def test_lrsn_requests_are_in_the_journal_and_replay_skips_them(lrsn_rig, logged_in):
    from pager.control.journal_entry import Entry
    from pager.replay import plan

    await lrsn_rig.http.post("/faults", {"kind": "error", "path": "/lrsn/PageRequest",
                             "count": 1, "ret": 8}, status=201)  # fmt: skip
    assert ret(await logged_in.ask(LONG)) == 8
    assert ret(await logged_in.ask(SHORT)) == 0
    assert ret(await logged_in.ask(b"<Foo />\n")) == 6
    assert ret(await logged_in.ask(b"\xff\n")) == 10
    r = await lrsn_rig.coap.post("/v1/page", {"number": 3})
    assert r.code == "2.04"
    entries = (await lrsn_rig.http.get("/journal"))["entries"]
    lrsn = [e for e in entries if e["transport"] == "lrsn"]
    assert [(e["path"], e["number"], e["code"]) for e in lrsn] == [
        ("/lrsn/Login", None, "0"),
        ("/lrsn/PageRequest", 12, "8"),
        ("/lrsn/PageRequest", 123, "0"),
        ("/lrsn/Foo", None, "6"),
        ("/lrsn/", None, "10"),
    ]
    assert lrsn[1]["fault"]["kind"] == "error" and lrsn[2]["fault"] is None
    assert lrsn[2]["body"] == SHORT.decode().strip()
    assert lrsn[2]["answer"] == '<PageRequestStatus id="1" ret="0" />\n'
    assert lrsn[2]["type"] is None and lrsn[2]["method"] == "LRSN"
    assert lrsn[4]["body"] is None and lrsn[4]["body_base64"] == "/w=="
    (coap,) = [e for e in entries if e["transport"] == "coap"]
    assert (coap["path"], coap["code"]) == ("/v1/page", "2.04")
    only = (await lrsn_rig.http.get("/journal", params={"path": "/lrsn/PageRequest"}))["entries"]
    assert [e["number"] for e in only] == [12, 123]
    # verify reads them; replay skips each with its reason
    verified = await lrsn_rig.http.post(
        "/journal/verify", {"path": "/lrsn/PageRequest", "exactly": 2}
    )
    assert verified["holds"] is True and verified["count"] == 2
    exchanges, skipped = plan([Entry.from_json(e) for e in entries])
    assert [s.reason for s in skipped if s.path.startswith("/lrsn/")] == [
        "a request over LRSN (TCP): a replay speaks CoAP only"
    ] * 5
    assert len(exchanges) == 1


@pytest.mark.parametrize("config_overrides", [{"journal": False}])
async def test_no_journal_no_lrsn_entries(lrsn_rig, logged_in):
    assert ret(await logged_in.ask(SHORT)) == 0
    assert lrsn_rig.emu._journal.entries() is not None
    assert list(lrsn_rig.emu._journal.entries()) == []


@pytest.mark.parametrize("config_overrides", [{"journal_limit": 5}])
async def test_the_journal_counts_lrsn_answers_in_its_bytes_as_they_come_and_go(
    lrsn_rig, logged_in
):
    journal = lrsn_rig.emu._journal
    for _ in range(12):  # past the limit of 5: the oldest go, their answers with them
        assert ret(await logged_in.ask(SHORT)) == 0
        kept = list(journal.entries())
        assert journal.held_bytes == sum(len(e.body) + len(e.answer or "") for e in kept)
        assert all(e.answer for e in kept)
    assert len(journal) == 5


async def test_a_page_over_lrsn_reaches_an_open_pager_wall_as_transmission_and_journal_entry(
    lrsn_rig, logged_in
):
    from tests.control.wall import Events

    async with lrsn_rig.http.session.get("/events") as response:
        assert response.status == 200
        stream = Events(response)
        await stream.until("hello")
        assert ret(await logged_in.ask(SHORT)) == 0
        sent = await stream.until("transmission")
        entry = await stream.until("journal", lambda e: e["transport"] == "lrsn")
    assert sent["source"] == "lrsn" and sent["number"] == 123
    assert (entry["path"], entry["number"], entry["code"]) == ("/lrsn/PageRequest", 123, "0")
    assert entry == (await lrsn_rig.http.get("/journal"))["entries"][-1]
