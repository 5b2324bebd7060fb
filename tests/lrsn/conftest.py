"""LRSN tests: real TCP on 127.0.0.1, ephemeral ports, the emulator's own store; a client
written from the spec (t7470-lrsn.md), as the vendor's example client behaves."""

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.control.conftest import Rig, rig  # noqa: F401 -- rig: the fixture

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
def lrsn_rig(rig: Rig) -> Rig:  # noqa: F811 -- the fixture imported above
    """The control tests' rig (emulator, control API, CoAP and HTTP clients): every test
    configuration has LRSN on, on a port of its own."""
    return rig


@pytest.fixture
async def logged_in(lrsn_rig) -> AsyncIterator[Lrsn]:
    async with connected(lrsn_rig.emu.lrsn_address) as conn:
        assert await conn.login() == 0
        yield conn
