"""GET /health: 200 while the transmitter serves, 503 while it is powered off or its last
commit failed, and back to 200 as soon as it serves again."""

import asyncio

from tests.test_store_trouble import _cap, _page_count


async def test_ready_while_serving(rig):
    status, body = await rig.http.request("GET", "/health")
    assert (status, body) == (200, {"ready": True, "coap": "serving", "store": "writable"})
    assert rig.emu.health()["ready"] is True


async def test_not_ready_during_a_power_cycle_and_ready_after_it(rig):
    await rig.http.post("/power-cycle", {"seconds": 0.3})
    status, body = await rig.http.request("GET", "/health")
    assert (status, body["ready"], body["coap"], body["store"]) == (
        503,
        False,
        "powered off",
        "writable",
    )
    await asyncio.sleep(0.4)
    status, body = await rig.http.request("GET", "/health")
    assert status == 200 and body["coap"] == "serving"


async def test_not_ready_while_commits_fail_and_ready_once_one_succeeds(rig):
    emulator = rig.emu
    assert (await rig.coap.post("/v1/sessions", {"number": 1})).code == "2.01"
    await _cap(emulator, await _page_count(emulator))
    for n in range(2, 2000):  # fill what is left of the capped file
        if (await rig.coap.post("/v1/sessions", {"number": n, "label": "x" * 64})).code != "2.01":
            break
    else:
        raise AssertionError("the capped store never filled up")
    status, body = await rig.http.request("GET", "/health")
    assert status == 503 and body["store"] == "failing" and body["coap"] == "serving"
    assert "full" in body["error"]
    # a read does not make it healthy: only a commit that succeeds does
    assert (await rig.coap.get("/v1/sessions/statistics")).code == "2.05"
    assert (await rig.http.request("GET", "/health"))[0] == 503
    await _cap(emulator, 1_000_000)
    assert (await rig.coap.post("/v1/sessions", {"number": n})).code == "2.01"
    status, body = await rig.http.request("GET", "/health")
    assert (status, body) == (200, {"ready": True, "coap": "serving", "store": "writable"})


async def test_a_drop_fault_leaves_it_ready(rig):
    """Faults are the rig's, not the transmitter's trouble: the orchestrator must not restart
    an emulator a test is dropping datagrams of."""
    await rig.http.post("/faults", {"kind": "drop"}, status=201)
    assert (await rig.http.request("GET", "/health"))[0] == 200
