"""Amplification protection and the real clients: libcoap repeats with the Echo value by
itself; node-coap (the vendor's client) does not, which is why the protection is off by
default."""

import pytest

from tests.interop.helpers import COAP_CLIENT, NODE_COAP, CoapClient, NodeCoap, require

PROTECTED = [{"amplification_protection": True}]


@pytest.mark.parametrize("config_overrides", PROTECTED)
async def test_coap_client_proves_its_address_and_creates_once(emulator, client):
    coap = CoapClient(require(COAP_CLIENT), emulator.port)
    r = await coap.request("POST", "/v1/sessions", content_format="json", payload={"number": 9})
    assert r.code == "2.01", r
    assert [s.number for s in emulator.engine.state.active.values()] == [9]
    assert emulator.engine.state.device.counters.num_sessions == 1


@pytest.mark.parametrize("config_overrides", PROTECTED)
async def test_node_coap_gets_401_with_protection_on(emulator):
    node = NodeCoap(require(NODE_COAP), emulator.port)
    r = await node.request("GET", "/v1/sessions/statistics")
    assert r.code == "4.01"
    assert emulator.engine.state.active == {}


async def test_both_work_with_protection_off(emulator):
    node = NodeCoap(require(NODE_COAP), emulator.port)
    assert (await node.request("GET", "/v1/sessions/statistics")).code == "2.05"
    coap = CoapClient(require(COAP_CLIENT), emulator.port)
    assert (await coap.request("GET", "/v1/sessions/statistics")).code == "2.05"
