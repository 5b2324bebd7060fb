"""The stateful test's hands: the emulator as a subprocess on fixed ports (so that a restart
after SIGKILL serves the same CoAP port and a client's retransmission reaches it), raw CoAP
clients that each own one UDP socket and choose their own message ids, and the control API
over HTTP. Nothing here knows what the answers should be; that is `model.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiocoap
import aiohttp
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from tests.conftest import Datagrams
from tests.reliability.harness import HOST, Server, integrity, logged_errors

CONFIG = """\
history_limit = {history_limit}
ping_interval = {ping_interval}
"""


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Exchange:
    """One request as it went over the wire: its datagrams and the answer, if one came."""

    client: int
    mid: int
    datagram: bytes
    sent: list[float] = field(default_factory=list)  # time.monotonic() of each transmission
    answer: aiocoap.Message | None = None
    answered_at: float | None = None
    requests: int = 1  # block requests included
    payload: bytes = b""  # the whole body, blocks joined

    @property
    def code(self) -> str | None:
        return None if self.answer is None else self.answer.code.dotted


class Client:
    """A CoAP client on its own UDP socket: CON requests with message ids it picks, answers
    matched by token, separate responses acknowledged, Block2 answers fetched whole."""

    _tokens = itertools.count(1)

    def __init__(self, index: int):
        self.index = index
        self.mids = itertools.count(1000 * index + 1)
        self.transport = None
        self.proto: Datagrams | None = None

    async def open(self) -> Client:
        self.transport, self.proto = await asyncio.get_running_loop().create_datagram_endpoint(
            Datagrams, local_addr=(HOST, 0)
        )
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def message(
        self,
        method: str,
        path: str,
        query=(),
        payload=b"",
        content_format=None,
        accept=None,
        etag=None,
        block2=None,
    ) -> aiocoap.Message:
        msg = aiocoap.Message(
            code=getattr(aiocoap.Code, method),
            payload=payload,
            uri_path=tuple(p for p in path.split("/") if p),
            uri_query=tuple(query),
        )
        if content_format is not None:
            msg.opt.content_format = content_format
        if accept is not None:
            msg.opt.accept = accept
        if etag is not None:
            msg.opt.etags = (etag,)
        if block2 is not None:
            msg.opt.block2 = block2
        msg.mtype, msg.mid = Type.CON, next(self.mids) & 0xFFFF
        msg.token = next(self._tokens).to_bytes(4, "big")
        return msg

    async def send(
        self,
        msg: aiocoap.Message,
        port: int,
        *,
        first_wait: float = 0.25,
        deadline: float = 8.0,
        dead: asyncio.Event | None = None,
    ) -> Exchange:
        """Send `msg` (retransmitting it unchanged, doubling the wait) until answered, the
        deadline passes or `dead` is set; then fetch the rest of a Block2 answer."""
        ex = Exchange(self.index, msg.mid, msg.encode())
        await self._exchange(ex, msg.token, port, first_wait, deadline, dead)
        block = ex.answer.opt.block2 if ex.answer is not None else None
        ex.payload = ex.answer.payload if ex.answer is not None else b""
        while ex.answer is not None and block is not None and block.more:
            nxt = self.message(
                str(msg.code),
                "/" + "/".join(msg.opt.uri_path),
                msg.opt.uri_query,
                accept=msg.opt.accept,
                block2=BlockOption.BlockwiseTuple(
                    block.block_number + 1, False, block.size_exponent
                ),
            )
            part = Exchange(self.index, nxt.mid, nxt.encode())
            await self._exchange(part, nxt.token, port, first_wait, deadline, dead)
            ex.requests += 1
            ex.answer, ex.answered_at = part.answer, part.answered_at
            if part.answer is None or not part.answer.code.is_successful():
                ex.payload = b"" if part.answer is None else part.answer.payload
                break
            ex.payload += part.answer.payload
            block = part.answer.opt.block2
        return ex

    async def resend(
        self, ex: Exchange, port: int, *, deadline: float = 8.0, dead: asyncio.Event | None = None
    ) -> Exchange:
        """The same datagram again (same message id, same source port): a retransmission."""
        again = Exchange(self.index, ex.mid, ex.datagram)
        token = aiocoap.Message.decode(ex.datagram).token
        await self._exchange(again, token, port, 0.25, deadline, dead)
        again.payload = again.answer.payload if again.answer is not None else b""
        return again

    async def _exchange(
        self,
        ex: Exchange,
        token: bytes,
        port: int,
        first_wait: float,
        deadline: float,
        dead: asyncio.Event | None,
    ) -> None:
        end = time.monotonic() + deadline
        wait = first_wait
        while time.monotonic() < end and not (dead is not None and dead.is_set()):
            self.transport.sendto(ex.datagram, (HOST, port))
            ex.sent.append(time.monotonic())
            retransmit_at = min(end, time.monotonic() + wait)
            wait *= 2
            while (left := retransmit_at - time.monotonic()) > 0:
                try:
                    data = await asyncio.wait_for(self.proto.received.get(), min(left, 0.05))
                except TimeoutError:
                    if dead is not None and dead.is_set():
                        return
                    continue
                try:
                    got = aiocoap.Message.decode(data)
                except Exception:
                    continue
                if got.mtype == Type.CON:  # a separate response (or a notification): ACK it
                    ack = aiocoap.Message(mtype=Type.ACK, mid=got.mid, code=aiocoap.EMPTY)
                    self.transport.sendto(ack.encode(), (HOST, port))
                if got.token == token and got.code != aiocoap.EMPTY:
                    ex.answer, ex.answered_at = got, time.monotonic()
                    return


class Rig:
    """The emulator process, its clients and an HTTP session to its control API."""

    def __init__(
        self, directory: Path, clients: int = 3, history_limit: int = 6, ping_interval: float = 0.3
    ):
        self.directory = directory
        self.db = directory / "pager.db"
        self.config = directory / "stateful.toml"
        self.config.write_text(
            CONFIG.format(history_limit=history_limit, ping_interval=ping_interval)
        )
        self.port = free_port(socket.SOCK_DGRAM)
        self.control_port = free_port(socket.SOCK_STREAM)
        self.logs: list[Path] = []
        self.server: Server | None = None
        self.dead = asyncio.Event()
        self.clients = [Client(i) for i in range(clients)]
        self.http: aiohttp.ClientSession | None = None
        self.lives = 0
        self.integrity_problems: list[str] = []

    async def start(self) -> None:
        for c in self.clients:
            await c.open()
        self.http = aiohttp.ClientSession()
        await self._start_server()

    async def _start_server(self) -> None:
        self.lives += 1
        self.logs.append(self.directory / f"server-{self.lives}.log")
        self.dead = asyncio.Event()
        self.server = await Server(
            self.db,
            self.logs[-1],
            self.port,
            "--config",
            str(self.config),
            control_port=self.control_port,
        ).start()

    async def kill(self) -> None:
        await self.server.kill()
        self.dead.set()

    async def restart(self) -> None:
        """After a kill: SQLite's integrity check on a copy of the store as the kill left
        it, then a new process on the same store and ports."""
        checked = integrity(self.db, self.directory / "copy")
        if checked != "ok":
            self.integrity_problems.append(checked)
        await self._start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.kill()
        for c in self.clients:
            c.close()
        if self.http is not None:
            await self.http.close()

    def log_errors(self) -> list[str]:
        return [line for path in self.logs for line in logged_errors(path)]

    def log_excerpt(self, lines: int = 25) -> list[str]:
        """The log from its first error line on (a traceback's last line names the error)."""
        for path in self.logs:
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            for i, line in enumerate(text):
                if "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
                    return text[i : i + lines]
        return []

    async def control(
        self, method: str, path: str, body=None, timeout: float = 20
    ) -> tuple[int, object]:
        url = f"http://{HOST}:{self.control_port}{path}"
        data = (
            None
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        async with self.http.request(
            method, url, data=data, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as r:
            text = await r.read()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def register_dead_observer(self) -> None:
        """GET /v1/notify with Observe 0 from a socket that then never answers again: a dead
        observer, to be dropped after its notifications go unacknowledged."""
        transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
            Datagrams, local_addr=(HOST, 0)
        )
        msg = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"), observe=0)
        msg.mtype, msg.mid, msg.token = Type.CON, 1, b"dead"
        transport.sendto(msg.encode(), (HOST, self.port))
        try:
            await asyncio.wait_for(proto.received.get(), 5)
        except TimeoutError:
            pass
        transport.close()  # its port now answers nothing (or ICMP unreachable)
