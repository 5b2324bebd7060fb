"""Spec §1 at the message layer: duplicate CONs are not processed twice; UDP only."""

import asyncio
import json
import socket

import aiocoap
from aiocoap.numbers.types import Type

from tests.conftest import Datagrams, exchange_once


async def test_duplicate_con_is_answered_from_cache_not_reprocessed(emulator, client):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        Datagrams, remote_addr=("127.0.0.1", emulator.port)
    )
    try:
        request = aiocoap.Message(
            code=aiocoap.POST,
            payload=b'{"number":5}',
            content_format=50,
            uri_path=("v1", "sessions"),
        )
        request.mtype, request.mid, request.token = Type.CON, 4711, b"\x01\x02"
        datagram = request.encode()
        transport.sendto(datagram)
        first_raw = await asyncio.wait_for(proto.received.get(), 5)
        transport.sendto(datagram)  # a retransmission: same message id from the same peer
        second_raw = await asyncio.wait_for(proto.received.get(), 5)
    finally:
        transport.close()
    first = aiocoap.Message.decode(first_raw)
    assert first.code == aiocoap.CREATED and first.mtype == Type.ACK and first.mid == 4711
    assert second_raw == first_raw
    body = (await client.get("/v1/sessions")).json
    assert len(body["sessions"]) == 1 and body["globalSessionSequence"] == 1


async def test_no_coap_over_tcp(emulator):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", emulator.port)) != 0


async def test_unknown_critical_option_is_402(emulator, client):
    m = aiocoap.Message(
        code=aiocoap.POST, payload=b'{"number":5}', content_format=50, uri_path=("v1", "sessions")
    )
    m.opt.add_option(aiocoap.optiontypes.OpaqueOption(2049, b"x"))  # odd: critical
    answer = await exchange_once(emulator.port, m)
    assert answer.code.dotted == "4.02"
    assert json.loads(answer.payload)["error"]["code"] == "4.02"
    assert (await client.get("/v1/sessions")).json["sessions"] == []  # nothing was done


async def test_unknown_elective_option_is_ignored(emulator):
    m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions", "statistics"))
    m.opt.add_option(aiocoap.optiontypes.OpaqueOption(2048, b"x"))  # even: elective
    assert (await exchange_once(emulator.port, m)).code.dotted == "2.05"


async def test_proxy_request_is_505(emulator):
    m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions"))
    m.opt.proxy_scheme = "http"
    answer = await exchange_once(emulator.port, m)
    assert answer.code.dotted == "5.05"
    assert json.loads(answer.payload)["error"]["code"] == "5.05"
