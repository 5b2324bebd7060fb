"""GET /device: what a rig on another machine needs to know to reach the transmitter (the
CoAP endpoint, the pager numbers it accepts); `pager.rig.RemoteEmulator` reads it."""

import aiohttp
import pytest

from pager.app import Emulator


@pytest.mark.parametrize("config_overrides", [{"number_min": 10, "number_max": 999}])
async def test_the_endpoint_and_the_pager_numbers(rig):
    uri = f"coap://127.0.0.1:{rig.emu.port}"
    assert await rig.http.get("/device") == {
        "uri": uri,
        "numberMin": 10,
        "numberMax": 999,
        "staffPagers": [],
        "fleet": [{"index": 1, "control": f"http://127.0.0.1:{rig.emu.control_port}", "coap": uri}],
        "lrsn": {"host": "127.0.0.1", "port": rig.emu.lrsn_address[1]},
    }


async def test_a_fleet_lists_every_transmitter_for_the_pager_walls_switcher(pager_fleet):
    fleet = await pager_fleet(3, control=True, staff_pagers=[7, 3])
    async with aiohttp.ClientSession() as http:
        for emu in fleet:
            async with http.get(f"http://127.0.0.1:{emu.control_port}/device") as response:
                device = await response.json()
            assert device["staffPagers"] == [3, 7]
            assert device["fleet"] == [
                {
                    "index": i,
                    "control": f"http://127.0.0.1:{other.control_port}",
                    "coap": f"coap://127.0.0.1:{other.port}",
                }
                for i, other in enumerate(fleet, 1)
            ]


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
async def test_listening_everywhere_it_names_the_host_the_rig_reached_it_at(host):
    """ "coap://0.0.0.0:5683" is no address to send to: the host the rig's request was
    addressed to is one it can reach the CoAP port at."""
    async with Emulator(host=host, control=True, control_port=0) as emu:
        assert emu.uri == f"coap://{'[::]' if host == '::' else host}:{emu.port}"
        async with aiohttp.ClientSession() as http:
            for reached, written in [("127.0.0.1", "127.0.0.1"), ("localhost", "localhost")]:
                url = f"http://{reached}:{emu.control_port}/device"
                async with http.get(url) as response:
                    assert (await response.json())["uri"] == f"coap://{written}:{emu.port}"
