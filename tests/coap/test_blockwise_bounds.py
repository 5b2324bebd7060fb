"""Thousands of clients starting block-wise transfers cannot grow the server without bound."""

import asyncio
import json

import aiocoap
import pytest
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from pager.coap.blockwise import BoundedTimeoutDict
from tests.conftest import Datagrams


async def test_bounded_timeout_dict_forgets_the_oldest():
    d = BoundedTimeoutDict(60, 2)
    d["a"], d["b"], d["c"] = 1, 2, 3
    assert list(d._items) == ["b", "c"] and d["c"] == 3
    d["b"] = 2  # stored again (a transfer's next block): now the most recently used
    d["e"] = 5
    assert list(d._items) == ["b", "e"]


def _get(block_number: int, mid: int) -> bytes:
    m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions"))
    if block_number:
        m.opt.block2 = BlockOption.BlockwiseTuple(block_number, False, 6)
    m.mtype, m.mid, m.token = Type.CON, mid, b"b"
    return m.encode()


@pytest.mark.parametrize("config_overrides", [{"max_block_transfers": 5}])
async def test_abandoned_transfers_are_bounded_and_service_continues(emulator, client):
    for n in range(50):  # a session list far larger than one block
        await client.post("/v1/sessions", {"number": n, "label": f"party {n:02d}"})
    loop = asyncio.get_running_loop()
    clients = []
    try:
        for _ in range(20):  # 20 clients (ports) each fetch block 0 and walk away
            transport, proto = await loop.create_datagram_endpoint(
                Datagrams, remote_addr=("127.0.0.1", emulator.port))
            clients.append((transport, proto))
            transport.sendto(_get(0, 1))
            first = aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))
            assert first.opt.block2.block_number == 0 and first.opt.block2.more
        resource = emulator._context.serversite._leaves[("v1", "sessions")]
        assert len(resource._block2._completes._items) == 5

        async def next_block(index: int) -> aiocoap.Message:
            transport, proto = clients[index]
            transport.sendto(_get(1, 2))
            return aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))

        forgotten = await next_block(0)  # the oldest transfer was forgotten
        assert forgotten.code.dotted == "4.08"
        assert json.loads(forgotten.payload)["error"]["code"] == "4.08"
        kept = await next_block(19)  # the newest goes on
        assert kept.code.dotted == "2.05" and kept.opt.block2.block_number == 1
    finally:
        for transport, _ in clients:
            transport.close()
    r = await client.get("/v1/sessions")  # a well-behaved client gets the whole list
    assert r.code == "2.05" and len(r.json["sessions"]) == 50
