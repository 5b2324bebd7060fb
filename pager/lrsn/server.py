"""The LRSN TCP server: moves bytes between sockets and `pager.lrsn.protocol`, and runs the
pages it reads through the same domain operation and engine as `POST /v1/page`.

The test rig reaches it only through the interfaces defined here: `Faults` (what a fault does
to a request, and whether a power cycle keeps the port shut) and `Requests` (the journal), as
the CoAP layer's rig interfaces are its own.
"""

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from pager.domain.errors import Refused
from pager.domain.operations import PageRequest
from pager.domain.pagemodes import Transmission
from pager.lrsn import protocol as lp
from pager.lrsn.protocol import Ret

log = logging.getLogger("pager.lrsn")

READ_SIZE = 65536
CLOSE_WAIT = 5.0  # how long `close` lets handlers finish a page under way
WRITE_BUFFER_MAX = 256 * 1024
"""The most answer bytes kept for a client that does not read them: past it the connection
is closed, so a client that never reads cannot make the server hold its answers forever."""


@dataclass(frozen=True)
class Action:
    """What fault `fault_id` does to one LRSN request: lose it, refuse it with `ret`, hold it
    `seconds`, or let it act and lose its answer."""

    kind: Literal["drop", "error", "delay", "lose answer"]
    fault_id: int
    seconds: float = 0.0
    ret: int = int(Ret.EOPFAIL)


class Faults(Protocol):
    """The rig's faults as the LRSN server sees them."""

    def lrsn_action(self, element: str) -> Action | None:
        """The fault acting on a request that is the element `element` (counted), if any."""
        ...


class Requests(Protocol):
    """The request journal as the LRSN server tells it of each request and its answer."""

    def lrsn_request(
        self,
        peer: tuple[str, int],
        message: bytes,
        answer: bytes | None,
        sent: bool,
        fault: tuple[int, str] | None,
        arrived: float,
    ) -> None:
        """`message` arrived at `arrived` (time.monotonic) and was answered `answer` (None:
        dropped), which left unless `sent` is False; `fault`: the (id, kind) that acted."""
        ...


Pager = Callable[[PageRequest, Callable[[], bool]], Awaitable[Transmission]]
"""Runs a page through the engine; the second argument says, when the engine computes the
page, whether it is still wanted: a page whose connection a power cycle (or a stop) closed
while it waited for the engine is `Gone`, not recorded after the power went off."""


class Gone(Exception):
    """The page's connection closed before the engine computed it: nothing was done."""


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    device: str
    swver: str
    serno: str
    user: str | None
    passwd: str | None
    max_clients: int
    heartbeat_interval: float


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1]))
        self.logged_in = False
        self.services: frozenset[str] = frozenset()
        self.heartbeat: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> bool:
        """Queue `data`; False (and the connection aborted) when the client has left more
        unread than `WRITE_BUFFER_MAX`."""
        transport = self.writer.transport
        if transport.is_closing():
            return False
        self.writer.write(data)
        if transport.get_write_buffer_size() > WRITE_BUFFER_MAX:
            log.info("lrsn %s:%d reads nothing of its answers: closed", *self.peer)
            transport.abort()
            return False
        return True

    def abort(self) -> None:
        self.writer.transport.abort()

    @property
    def closed(self) -> bool:
        return self.writer.transport.is_closing()


class LrsnServer:
    """`start` listens, `close` stops listening and closes every connection."""

    def __init__(
        self,
        settings: Settings,
        pager: Pager,
        faults: Faults | None = None,
        requests: Requests | None = None,
    ) -> None:
        self.settings = settings
        self._pager = pager
        self.faults = faults
        self.requests = requests
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._reopen: asyncio.TimerHandle | None = None
        self._reopening: asyncio.Task[None] | None = None
        self.port: int | None = None
        # False from a power-off or close on: a connection the loop had accepted just before
        # it, whose handler starts after, is closed, not served while the power is off
        self._listening = False

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise RuntimeError("the LRSN server is not listening")
        return (self.settings.host, self.port)

    @property
    def connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Listen; an `OSError` (a port taken) is the caller's to report."""
        self._listening = True
        port = self.settings.port if self.port is None else self.port
        if self.settings.host == "::":
            # every address, IPv4 too, on one port: asyncio makes an IPv6 listener take IPv6
            # only, and two listeners would get two ports from port 0
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::", port))
            except OSError:
                sock.close()
                raise
            self._server = await asyncio.start_server(self._serve, sock=sock, limit=READ_SIZE)
        else:
            self._server = await asyncio.start_server(
                self._serve, self.settings.host, port, limit=READ_SIZE
            )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await self._reopening
            self._reopening = None
        await self._stop_listening()  # every connection aborted: their handlers end
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=CLOSE_WAIT)
        for task in list(self._handlers):  # one still waiting for a commit
            task.cancel()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        self._listening = False
        if server is not None:
            server.close()
        for conn in list(self._connections):
            conn.abort()
        if server is not None:
            await server.wait_closed()

    async def power_off(self, seconds: float) -> None:
        """Every connection closed, the port refusing connections for `seconds`, then
        listening again on the same port (spec §7)."""
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._reopening is not None:
            # the last power cycle's listening again, under way: let it finish (cancelled,
            # it could leave a listener bound and unknown to us), then shut it with the rest
            with contextlib.suppress(OSError):
                await self._reopening
            self._reopening = None
        await self._stop_listening()
        loop = asyncio.get_running_loop()
        self._reopen = loop.call_later(seconds, self._power_on)

    def _power_on(self) -> None:
        self._reopen = None
        self._reopening = asyncio.create_task(self._listen_again())

    async def _listen_again(self) -> None:
        try:
            await self.start()
        except OSError as e:
            log.error("lrsn port %s cannot be listened on again after a power cycle: %s",
                      self.port, e)  # fmt: skip

    # ---- one connection ---------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._listening:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = _Connection(reader, writer)
        self._connections.add(conn)
        s = self.settings
        try:
            conn.send(lp.greeting(s.device, s.swver, s.serno, s.user is not None))
            if len(self._connections) > s.max_clients:
                conn.send(lp.login_ack(Ret.EMAXCLIENTS))
                return
            framer = lp.Framer()
            while not writer.transport.is_closing():
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                for message in framer.feed(data):
                    if not await self._one(conn, message):
                        return
        except (ConnectionError, OSError):
            pass  # the client went away; nothing of it is kept
        except asyncio.CancelledError:
            # only `close` cancels a handler, and asyncio's stream callback would log a
            # cancelled handler as an error: it ends here, quietly
            pass
        except Exception:
            log.exception("lrsn %s:%d: unexpected error; connection closed", *conn.peer)
        finally:
            self._connections.discard(conn)
            if conn.heartbeat is not None:
                conn.heartbeat.cancel()
            conn.writer.close()  # what is queued still goes, unless aborted
            self._handlers.discard(task)

    async def _one(self, conn: _Connection, message: bytes | None) -> bool:
        """Answer one message; False when the connection is closed."""
        request = lp.Bad(Ret.EFAIL, "Error", "too long") if message is None else lp.parse(message)
        if request is None:
            return True
        arrived = time.monotonic()
        action = None
        if self.faults is not None and not isinstance(request, lp.Bad):
            element = "Login" if isinstance(request, lp.Login) else "PageRequest"
            action = self.faults.lrsn_action(element)
        answer: bytes | None
        if action is None or action.kind in ("delay", "lose answer"):
            if action is not None and action.kind == "delay":
                await asyncio.sleep(action.seconds)
            if conn.closed:  # a power cycle or a stop while it was held: nothing is done
                return False
            try:
                answer = await self._answer(conn, request)
            except Gone:
                return False
        elif action.kind == "error":
            assert not isinstance(request, lp.Bad)
            answer = self._refused(request, Ret(action.ret))
        else:  # drop: nothing done, nothing answered
            answer = None
        sent = answer if action is None or action.kind != "lose answer" else None
        if self.requests is not None:
            fault = None if action is None else (action.fault_id, action.kind)
            self.requests.lrsn_request(
                conn.peer, message or b"", answer, sent is not None, fault, arrived
            )
        return True if sent is None else conn.send(sent)

    @staticmethod
    def _refused(request: lp.Request, ret: Ret) -> bytes:
        if isinstance(request, lp.Login):
            return lp.login_ack(ret)
        return lp.page_status(request.id, ret)

    async def _answer(self, conn: _Connection, request: lp.Request | lp.Bad) -> bytes:
        if isinstance(request, lp.Bad):
            log.debug("lrsn %s:%d refused: %s", *conn.peer, request.reason)
            return lp.refusal(request)
        if isinstance(request, lp.Login):
            ret = lp.login_result(request, self.settings.user, self.settings.passwd)
            conn.logged_in = ret == Ret.ESUCCESS
            conn.services = request.services if conn.logged_in else frozenset()
            self._heartbeats(conn)
            return lp.login_ack(ret)
        if not conn.logged_in or "NetPage" not in conn.services:
            return lp.page_status(request.id, Ret.ELOGIN)
        try:
            await self._pager(lp.page_request(request), lambda: not conn.closed)
        except Refused as e:
            log.debug("lrsn %s:%d page refused: %s", *conn.peer, e.message)
            return lp.page_status(request.id, Ret.EINVAL)
        except Exception:
            log.exception("lrsn %s:%d: page failed", *conn.peer)
            return lp.page_status(request.id, Ret.EOPFAIL)
        return lp.page_status(request.id, Ret.ESUCCESS)

    # ---- heartbeats ------------------------------------------------------------------------

    def _heartbeats(self, conn: _Connection) -> None:
        wanted = "Heartbeat" in conn.services
        if wanted and conn.heartbeat is None:
            conn.heartbeat = asyncio.create_task(self._beat(conn))
        elif not wanted and conn.heartbeat is not None:
            conn.heartbeat.cancel()
            conn.heartbeat = None

    async def _beat(self, conn: _Connection) -> None:
        """A heartbeat every interval; a socket that has not taken the last one within the
        interval is closed (spec §4: the client's own check is the other side of it)."""
        interval = self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval)
            if not conn.send(lp.heartbeat(interval)):
                return
            try:
                await asyncio.wait_for(conn.writer.drain(), interval)
            except TimeoutError:
                log.info("lrsn %s:%d takes no heartbeat: closed", *conn.peer)
                conn.abort()
                return
            except (ConnectionError, OSError):
                return
