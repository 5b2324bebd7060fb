"""Emulator.start(): one emulator per port and per store, and a start that fails at any step
leaves nothing behind (no store open, no port bound, no task running)."""

import asyncio
import socket
import tempfile

import pytest

from pager.app import Emulator, StartupError
from pager.control.rig import NotRunning
from pager.store import Store, StoreError
from tests.conftest import Client, make_config


def _tasks() -> set[asyncio.Task]:
    return asyncio.all_tasks() - {asyncio.current_task()}


def _bind(kind: int, port: int = 0) -> socket.socket:
    """A socket bound to `port` on 127.0.0.1 without SO_REUSEPORT: it binds only a free port."""
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", port))
    return sock


def _free_udp_port() -> int:
    with _bind(socket.SOCK_DGRAM) as sock:
        return sock.getsockname()[1]


async def _serves(db_path, port: int, coap_context, sessions: int) -> None:
    """A new emulator starts on `db_path` and `port` and finds `sessions` sessions there."""
    async with Emulator(make_config(db_path, port=port)) as emulator:
        assert emulator.port == port
        r = await Client(coap_context, port).post("/v1/sessions", {"number": 7})
        assert r.code == "2.01" and r.json["sessions"][0]["id"] == sessions + 1


async def test_a_second_emulator_on_the_same_port_is_refused(tmp_path, coap_context):
    async with Emulator(make_config(tmp_path / "first.db")) as first:
        before = _tasks()
        second = Emulator(make_config(tmp_path / "second.db", port=first.port))
        with pytest.raises(
            StartupError, match=f"udp port {first.port} on 127.0.0.1 is already in use"
        ):
            await second.start()
        assert _tasks() == before
        client = Client(coap_context, first.port)
        for n in range(6):  # all answers come from the first
            r = await client.post("/v1/sessions", {"number": n})
            assert r.json["sessions"][0]["id"] == n + 1
    await _serves(tmp_path / "second.db", first.port, coap_context, 0)


async def test_a_second_emulator_on_the_same_store_is_refused(db_path, coap_context):
    async with Emulator(make_config(db_path)) as first:
        before = _tasks()
        port = _free_udp_port()
        with pytest.raises(StoreError, match=f"store {db_path} is already open in another"):
            await Emulator(make_config(db_path, port=port)).start()
        assert _tasks() == before
        _bind(socket.SOCK_DGRAM, port).close()  # the refused one bound nothing
        r = await Client(coap_context, first.port).post("/v1/sessions", {"number": 1})
        assert r.json["sessions"][0]["id"] == 1
    await _serves(db_path, port, coap_context, 1)


async def test_a_start_failing_at_the_store_leaves_nothing_behind(db_path, coap_context):
    held = await Store.open(db_path)
    port = _free_udp_port()
    try:
        with pytest.raises(StoreError, match="already open"):
            await Emulator(make_config(db_path, port=port)).start()
    finally:
        await held.close()
    await _serves(db_path, port, coap_context, 0)


async def _refused_beside(taken: socket.socket, db_path, coap_context) -> None:
    """A start on the UDP port `taken` holds fails, leaves no task, and once `taken` is
    closed the same port and store serve."""
    port = taken.getsockname()[1]
    before = _tasks()
    try:
        with pytest.raises(StartupError, match=f"udp port {port} on 127.0.0.1 is already in"):
            await Emulator(make_config(db_path, port=port)).start()
        assert _tasks() == before
    finally:
        taken.close()
    await _serves(db_path, port, coap_context, 0)


async def test_a_start_failing_at_the_coap_bind_leaves_nothing_behind(db_path, coap_context):
    await _refused_beside(_bind(socket.SOCK_DGRAM), db_path, coap_context)


async def test_a_start_failing_at_the_control_bind_leaves_nothing_behind(db_path, coap_context):
    taken = _bind(socket.SOCK_STREAM)
    taken.listen()
    control = taken.getsockname()[1]
    port = _free_udp_port()
    before = _tasks()
    emulator = Emulator(make_config(db_path, port=port, control=True, control_port=control))
    try:
        with pytest.raises(
            StartupError, match=f"control port {control} on 127.0.0.1 is already in use"
        ):
            await emulator.start()
        assert _tasks() == before
        _bind(socket.SOCK_DGRAM, port).close()  # its CoAP socket is closed again
    finally:
        taken.close()
    await _serves(db_path, port, coap_context, 0)
    await emulator.stop()  # stopping a failed start again is harmless


async def test_a_port_held_with_so_reuseport_is_not_shared(db_path, coap_context):
    """aiocoap binds with SO_REUSEPORT, so its own bind succeeds beside another socket that
    has it (an emulator of an older version, or a second one in the instant of its own
    start): the emulator still refuses to share the port."""
    other = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    other.bind(("::", 0))
    await _refused_beside(other, db_path, coap_context)


async def test_rig_controls_refuse_before_start_and_after_stop(db_path):
    emu = Emulator(db=str(db_path))
    with pytest.raises(NotRunning, match="not running"):
        emu.clock_status()
    async with emu:
        assert emu.clock_status()["speed"] == 1.0
        assert emu.list_faults() == [] and not emu.unreachable
    with pytest.raises(NotRunning, match="not running"):
        await emu.advance(1)
    with pytest.raises(NotRunning):
        emu.add_fault("drop")


async def test_constructing_an_emulator_creates_nothing(tmp_path, monkeypatch):
    """The temporary store's folder exists from start to stop only; a second start gets a
    fresh one."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    emu = Emulator()
    assert list(tmp_path.iterdir()) == []
    for _ in range(2):
        async with emu:
            (folder,) = tmp_path.iterdir()
            assert emu.db_path.parent == folder and emu.db_path.exists()
            assert folder.name.startswith("pager-emulator-")
        assert list(tmp_path.iterdir()) == []
