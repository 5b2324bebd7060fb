"""What the fuzzing found: one reproducer per bug, kept as regression tests now they are
fixed (the fuzz test itself tolerates none of their symptoms)."""

import asyncio
import logging

import aiocoap
import pytest
from aiocoap.numbers.types import Type

from pager.app import Emulator
from pager.clock import Clock
from tests.conftest import START, Client, Datagrams, make_config
from tests.fuzz import harness

GET, POST = 1, 2


async def exchange(port: int, *datagrams: bytes, wait: float = 1.0) -> list[str]:
    """Send the datagrams one by one from one socket; what each got back (None: nothing)."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        Datagrams, remote_addr=("127.0.0.1", port)
    )
    answers = []
    try:
        for datagram in datagrams:
            transport.sendto(datagram)
            try:
                answers.append(harness.describe(await asyncio.wait_for(proto.received.get(), wait)))
            except TimeoutError:
                answers.append(None)
    finally:
        transport.close()
    return answers


def request(
    code: int,
    mid: int,
    options: list[tuple[int, bytes]],
    payload: bytes = b"",
    token: bytes = b"\x5a\x01",
) -> bytes:
    return (
        harness.header(1, Type.CON, len(token), code, mid)
        + token
        + harness.encode_options(options)
        + (b"\xff" + payload if payload else b"")
    )


def troubles(caplog) -> list[str]:
    return [
        f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records if harness.is_trouble(r)
    ]


SESSIONS = [(11, b"v1"), (11, b"sessions")]


@pytest.mark.parametrize(
    "options",
    [
        pytest.param([(11, b"v1"), (11, b"sessions\xff")], id="uri-path"),
        pytest.param(SESSIONS + [(15, b"number=\xff")], id="uri-query"),
        pytest.param([(3, b"\xc3\x28")] + SESSIONS, id="uri-host"),
    ],
)
async def test_string_option_that_is_not_utf8_is_dropped_quietly(emulator, client, caplog, options):
    caplog.set_level(logging.WARNING)
    answers = await exchange(emulator.port, request(GET, 0x1234, options))
    assert answers[0] in (None, "RST (empty)", "4.00", "4.02")  # a format error: any refusal
    assert (await client.get("/v1/sessions")).code == "2.05"
    assert troubles(caplog) == []


@pytest.mark.parametrize(
    "code, options",
    [
        pytest.param(POST, SESSIONS + [(12, b"\x32")], id="post-v1-sessions"),
        pytest.param(GET, [(11, b".well-known"), (11, b"core")], id="get-well-known-core"),
    ],
)
async def test_block1_block_that_leaves_a_gap_is_4_08(emulator, client, caplog, code, options):
    caplog.set_level(logging.WARNING)
    first = request(code, 1, options + [(27, b"\x08")], b'{"number":12,"la')  # 0, more, 16 B
    gap = request(code, 2, options + [(27, b"\x20")], b'bel":"x"}')  # block 2, last
    answers = await exchange(emulator.port, first, gap)
    assert answers == ["2.31", "4.08"]
    assert (await client.get("/v1/sessions")).code == "2.05"
    assert troubles(caplog) == []


async def test_retransmission_after_a_notification_with_its_message_id_is_answered(
    emulator, client, caplog
):
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        Datagrams, remote_addr=("127.0.0.1", emulator.port)
    )

    async def answer() -> aiocoap.Message | None:
        # an answer comes within milliseconds; only a missing one waits this out, so it can
        # be long enough for the pauses of a loaded machine (the garbage collector's, in the
        # full suite, stop server and test alike)
        try:
            return aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))
        except TimeoutError:
            return None

    statistics = SESSIONS + [(11, b"statistics")]
    try:
        transport.sendto(request(GET, 100, [(6, b""), (11, b"v1"), (11, b"notify")], token=b"\x01"))
        assert (await answer()).code.dotted == "2.05"  # observing /v1/notify
        used, mid = {100}, 101
        while True:
            non = request(GET, mid, statistics, token=b"\x02")
            transport.sendto(bytes([non[0] | 0x10]) + non[1:])  # NON: answered with a NON of
            used.add(mid)
            server_mid = (await answer()).mid  # the server's own next message id
            if (server_mid + 1) & 0xFFFF not in used:
                break
            # The id the server uses next is one of ours, still remembered (RFC 7252 §4.5):
            # a request with it again is a duplicate. Another NON moves the server on.
            mid = (server_mid + 0x8000) & 0xFFFF
        mine = request(GET, (server_mid + 1) & 0xFFFF, statistics, token=b"\x03")
        transport.sendto(mine)  # a request with the id the server will use next
        first = await answer()
        assert first.code.dotted == "2.05" and first.mtype == Type.ACK
        assert (await client.post("/v1/sessions", {"number": 5})).code == "2.01"
        note = await answer()  # the notification of that change, a CON with that same id
        assert note.mtype == Type.CON and note.mid == first.mid
        transport.sendto(harness.header(1, Type.ACK, 0, 0, note.mid))
        transport.sendto(mine)  # its ACK was lost, say: the request again
        again = await answer()
    finally:
        transport.close()
    assert again is not None and again.code.dotted == "2.05" and again.mid == first.mid
    assert troubles(caplog) == []


# ---- found fixed: regression tests ----------------------------------------------------------
# The datetime setting took any date up to 9999-12-31T23:59:59 (up to 856288e), and date
# arithmetic on the transmitter's clock then overflowed (OverflowError: date value out of
# range): 5.00 with ERROR tracebacks, a refused request that still moved the clock, every
# later write answered 5.00, and a store the emulator could no longer start on. 5e794bc
# (CLOCK_RANGE, 2000-2099, in pager/domain/rules.py) fixed all three; these fail before it.

END_OF_TIME = "9999-12-31T23:59:59"


async def test_datetime_on_the_last_day_with_a_clear_mark(emulator, client, caplog):
    """Was: next_clear() added a day past datetime.max in Engine._enqueue after the clock had
    moved and the pending state had changed: 5.00, the clock moved anyway, and every later
    write answered 5.00 until a restart."""
    caplog.set_level(logging.WARNING)
    r = await client.post(
        "/v1/settings", {"datetime": "9999-12-31T23:59:58", "statisticsClearMark": 0}
    )
    assert r.code in ("2.04", "4.00")
    settings = (await client.get("/v1/settings")).json["settings"]
    if r.code == "4.00":  # a refusal changes nothing (spec §2.2)
        assert settings["datetime"] == START.isoformat()
        assert settings["statisticsClearMark"] == 24
    assert (await client.post("/v1/sessions", {"number": 1})).code == "2.01"
    assert troubles(caplog) == []


async def test_datetime_at_the_end_of_time_then_the_clock_runs_on(
    emulator, client, caplog, manual_time
):
    """Was: accepted (2.04); one second later Clock.exact() overflowed, every request answered
    5.00 and the tick task logged 'time-driven update failed' every second."""
    caplog.set_level(logging.WARNING)
    r = await client.post("/v1/settings", {"datetime": END_OF_TIME})
    assert r.code in ("2.04", "4.00")
    manual_time.advance(2)
    await asyncio.sleep(1.5)  # a tick of the time-driven updates
    assert (await client.get("/v1/settings")).code == "2.05"
    assert (await client.post("/v1/sessions", {"number": 1})).code == "2.01"
    assert troubles(caplog) == []


async def test_store_with_the_clock_at_the_end_of_time_starts_again(
    db_path, manual_time, coap_context
):
    """Was: accepted and persisted as the clock offset; a restart on that store failed in
    Engine.__init__ (clock.shift) with OverflowError."""
    async with Emulator(make_config(db_path), Clock(system=manual_time)) as emu:
        r = await Client(coap_context, emu.port).post("/v1/settings", {"datetime": END_OF_TIME})
        assert r.code in ("2.04", "4.00")
    manual_time.advance(2)
    async with Emulator(make_config(db_path), Clock(system=manual_time)) as emu:
        assert (await Client(coap_context, emu.port).get("/v1/settings")).code == "2.05"
