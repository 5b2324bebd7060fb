"""Attacks on block-wise notifications (issue 13): several observations from one peer."""

import asyncio
import json

import aiocoap

from tests.interop.helpers import fill_sessions


async def test_two_list_observations_from_one_socket_each_get_their_whole_list(client, emulator):
    await fill_sessions(client, 60)
    context = await aiocoap.Context.create_client_context()
    uri = f"coap://127.0.0.1:{emulator.port}/v1/notify?action=get_sessions"
    try:
        a = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        b = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        for req in (a, b):
            first = await asyncio.wait_for(req.response, 20)
            assert first.code.dotted == "2.05", first
            assert len(json.loads(first.payload)["sessions"]) == 60
    finally:
        await context.shutdown()
