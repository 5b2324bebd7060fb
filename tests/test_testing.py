"""The pytest plugin's fixture, used exactly as the README shows."""

import json

import aiocoap


async def test_a_party_paged_ten_minutes_late(pager_emulator):
    context = await aiocoap.Context.create_client_context()
    try:
        create = aiocoap.Message(
            code=aiocoap.POST,
            uri=f"{pager_emulator.uri}/v1/sessions",
            payload=b'{"number":12,"goal":300}',
            content_format=50,
        )
        assert (await context.request(create).response).code == aiocoap.CREATED

        await pager_emulator.advance(600)  # ten minutes later, without waiting
        page = aiocoap.Message(
            code=aiocoap.PUT,
            uri=f"{pager_emulator.uri}/v1/sessions?number=12",
            payload=b'{"action":"page"}',
            content_format=50,
        )
        body = json.loads((await context.request(page).response).payload)
        assert body["statistics"]["percentLate"] == 100
        assert body["sessions"][0]["notified"] == "2026-01-15T18:10:00"

        pager = pager_emulator.pager(12)
        assert pager.alerting and pager.last_transmission.page_mode == "Flash30Sec"
    finally:
        await context.shutdown()
