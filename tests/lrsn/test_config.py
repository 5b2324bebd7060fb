"""LRSN's configuration: defaults, the fleet's ports, the flags, a taken port."""

import asyncio
import socket

import pytest

from pager.app import Emulator, StartupError
from pager.config import Config, ConfigError, load
from pager.fleet import fleet_configs
from tests.conftest import make_config
from tests.lrsn.conftest import connected
from tests.test_cli import _run_failing


def test_defaults():
    c = Config()
    assert (c.lrsn, c.lrsn_host, c.lrsn_port, c.lrsn_max_clients) == (True, None, 3700, 16)
    assert (c.lrsn_heartbeat_interval, c.lrsn_user, c.lrsn_password) == (60.0, None, None)


def test_the_fleet_numbers_lrsn_ports_consecutively_and_zero_stays_zero():
    assert [c.lrsn_port for c in fleet_configs(Config(lrsn_port=4000), 3)] == [4000, 4001, 4002]
    assert [c.lrsn_port for c in fleet_configs(Config(lrsn_port=0), 3)] == [0, 0, 0]


def test_a_user_without_a_password_is_refused():
    with pytest.raises(ConfigError, match="lrsn_user and lrsn_password"):
        load(lrsn_user="admin")


async def test_a_taken_lrsn_port_is_a_startup_error_naming_it(db_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        emu = Emulator(make_config(db_path, lrsn_port=port))
        with pytest.raises(StartupError, match=f"lrsn tcp port {port} on 127.0.0.1"):
            await emu.start()
        # the command line: exit status 1 and the port named
        code, output = await _run_failing("--db", str(db_path), "--lrsn-port", str(port))
        assert code == 1 and f"lrsn tcp port {port} on 127.0.0.1 is already in use" in output
    finally:
        taken.close()


async def test_lrsn_host_and_off(db_path, tmp_path):
    async with Emulator(make_config(db_path, lrsn=False)) as emu:
        assert emu.lrsn_address is None
    async with Emulator(make_config(tmp_path / "b.db", host="::1", lrsn_host="127.0.0.1")) as emu:
        assert emu.lrsn_address[0] == "127.0.0.1"
        async with connected(emu.lrsn_address) as conn:
            assert conn.greeting.startswith(b"<LRSN ")


async def test_listening_on_every_address_takes_ipv4_and_ipv6_on_one_port(db_path):
    async with Emulator(make_config(db_path, host="::")) as emu:
        host, port = emu.lrsn_address
        assert host == "::"
        for address in ("127.0.0.1", "::1"):
            async with connected((address, port)) as conn:
                assert conn.greeting.startswith(b"<LRSN ")


async def test_stopped_emulator_lets_the_port_go(db_path):
    emu = await Emulator(make_config(db_path)).start()
    address = emu.lrsn_address
    await emu.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection(*address)
