"""LRSN tests: real TCP on 127.0.0.1, ephemeral ports, the emulator's own store; a client
written from the spec (t7470-lrsn.md), as the vendor's example client behaves."""

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiocoap
import aiohttp
import pytest

from pager.app import Emulator
from tests.conftest import Client, make_config
from tests.control.conftest import Http, Rig

LOGIN = b'<Login services="NetPage;Heartbeat" />\n'
TIMEOUT = 10.0


class Lrsn:
    """One TCP connection to the emulator's LRSN port."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting = b""

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> "Lrsn":
        reader, writer = await asyncio.open_connection(*address)
        conn = cls(reader, writer)
        conn.greeting = await conn.line()
        return conn

    async def line(self, timeout: float = TIMEOUT) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), timeout)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def ask(self, data: bytes, timeout: float = TIMEOUT) -> bytes:
        await self.send(data)
        return await self.line(timeout)

    async def login(self, data: bytes = LOGIN) -> int:
        return ret(await self.ask(data))

    async def closed(self, timeout: float = TIMEOUT) -> bool:
        """Whether the server closes the connection (EOF or reset) within `timeout`."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout) is not None
        except ConnectionError:
            return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


def ret(answer: bytes) -> int:
    match = re.search(rb' ret="(\d+)"', answer)
    assert match and answer.endswith(b"\n"), answer
    return int(match.group(1))


@asynccontextmanager
async def connected(address: tuple[str, int]) -> AsyncIterator[Lrsn]:
    conn = await Lrsn.connect(address)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def lrsn_rig(tmp_path, config_overrides) -> AsyncIterator[Rig]:
    """An emulator with its control API and LRSN on, a CoAP client and an HTTP client."""
    config = make_config(tmp_path / "pager.db", control=True, control_port=0, **config_overrides)
    async with Emulator(config) as emu:
        context = await aiocoap.Context.create_client_context()
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as session:
                yield Rig(emu, Http(session), Client(context, emu.port))
        finally:
            await context.shutdown()


@pytest.fixture
async def logged_in(lrsn_rig) -> AsyncIterator[Lrsn]:
    async with connected(lrsn_rig.emu.lrsn_address) as conn:
        assert await conn.login() == 0
        yield conn
