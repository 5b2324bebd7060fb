"""Fixtures shared by the suite: a real emulator on 127.0.0.1 with an ephemeral UDP port and a
real SQLite file in a temp dir, a real aiocoap client, and a clock the tests move by hand."""

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiocoap
import cbor2
import pytest
from aiocoap.numbers.types import Type

from pager.app import Emulator
from pager.clock import Clock
from pager.config import Config

# Assertions in tests/interop/helpers.py (session_lifecycle's among them) report their operands
# like the tests' own; registered here, before any test module (not only the interop ones)
# imports it.
pytest.register_assert_rewrite("tests.interop.helpers")

REPO = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 15, 11, 55, 20)


class Datagrams(asyncio.DatagramProtocol):
    """A raw UDP endpoint for tests that speak CoAP datagram by datagram."""

    def __init__(self):
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.received.put_nowait(data)


@contextlib.asynccontextmanager
async def datagrams_to(port: int) -> AsyncIterator[tuple[asyncio.DatagramTransport, Datagrams]]:
    """A raw UDP socket aimed at 127.0.0.1:`port`, closed on leaving."""
    transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
        Datagrams, remote_addr=("127.0.0.1", port)
    )
    try:
        yield transport, proto
    finally:
        transport.close()


async def exchange_once(port: int, message: aiocoap.Message) -> aiocoap.Message:
    """Send `message` as one CON datagram from a fresh socket; the answer, decoded."""
    async with datagrams_to(port) as (transport, proto):
        message.mtype, message.mid, message.token = Type.CON, 77, b"o"
        transport.sendto(message.encode())
        return aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))


class ManualTime:
    """A system clock that moves only when told to."""

    def __init__(self, start: datetime = START):
        self.value = start

    def __call__(self) -> datetime:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += timedelta(seconds=seconds)


class DecodedPayload:
    """`json` and `cbor`: the record's `payload` bytes decoded (for reply and notification
    records, here and in tests/interop/helpers.py)."""

    payload: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def cbor(self) -> Any:
        return cbor2.loads(self.payload)


@dataclass
class Reply(DecodedPayload):
    code: str  # dotted, e.g. "2.05"
    payload: bytes
    message: aiocoap.Message


class Client:
    """A thin wrapper over a real aiocoap client context aimed at one server."""

    def __init__(self, context: aiocoap.Context, port: int):
        self.context = context
        self.port = port

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: str | None = None,
        raw: bytes | None = None,
        content_format: int | None = None,
        accept: int | None = None,
        etags: tuple[bytes, ...] = (),
        reliable: bool = True,
    ) -> Reply:
        payload = (
            raw
            if raw is not None
            else (b"" if body is None else json.dumps(body, separators=(",", ":")).encode())
        )
        uri = f"coap://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")
        msg = aiocoap.Message(
            code=getattr(aiocoap.Code, method),
            uri=uri,
            payload=payload,
            transport_tuning=aiocoap.Reliable if reliable else aiocoap.Unreliable,
        )
        if content_format is not None:
            msg.opt.content_format = content_format
        elif payload and raw is None:
            msg.opt.content_format = 50
        if accept is not None:
            msg.opt.accept = accept
        if etags:
            msg.opt.etags = etags
        response = await asyncio.wait_for(self.context.request(msg).response, 20)
        return Reply(response.code.dotted, response.payload, response)

    async def get(self, path: str, **kw) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw) -> Reply:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw) -> Reply:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, **kw) -> Reply:
        return await self.request("DELETE", path, **kw)


@pytest.fixture
def manual_time() -> ManualTime:
    return ManualTime()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "pager.db"


def make_config(db_path: Path, **overrides) -> Config:
    return Config(
        **{
            "host": "127.0.0.1",
            "port": 0,
            "lrsn_port": 0,
            "db": str(db_path),
            "control": False,
            **overrides,
        }
    )


@pytest.fixture
def config_overrides() -> dict:
    """Override in a test module (or parametrize) to change the emulator's configuration."""
    return {}


@pytest.fixture
async def emulator(db_path, manual_time, config_overrides):
    async with Emulator(make_config(db_path, **config_overrides), Clock(system=manual_time)) as emu:
        yield emu


@pytest.fixture
async def coap_context():
    context = await aiocoap.Context.create_client_context()
    yield context
    await context.shutdown()


@pytest.fixture
async def client(emulator, coap_context) -> Client:
    return Client(coap_context, emulator.port)


def run_script(name: str, *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run scripts/<name> to the end: (exit status, stdout, stderr). It gets a session of its
    own, so that on a timeout the servers it started go with it."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / name), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        raise AssertionError(
            f"{name} took over {timeout} s\n{out[-3000:]}\n{err[-3000:]}"
        ) from None
    return proc.returncode, out, err


class ServerProcess:
    """The emulator as users run it: `python -m pager serve` in its own process."""

    def __init__(self, db_path: Path, *extra: str):
        self.db_path = db_path
        self.extra = extra
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self.banner = ""

    async def start(self) -> "ServerProcess":
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pager",
            "serve",
            "--lrsn-port",
            "0",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--db",
            str(self.db_path),
            "--control-port",
            "0",
            *self.extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = await asyncio.wait_for(self.process.stdout.readline(), 20)
        self.banner = line.decode()
        match = re.search(r":(\d+), store ", self.banner)
        if not match:
            err = await self.process.stderr.read()
            raise RuntimeError(f"server did not start: {self.banner!r} {err.decode()}")
        self.port = int(match.group(1))
        return self

    async def stop(self, sig: int = 15) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 20)
