"""Crash consistency (issue 6), short version: 3 SIGKILL cycles under load, ~6 s.

The long version, 20 cycles with figures: `scripts/crash_cycles.py`. What is run and checked
is described in `tests/reliability/crash.py` and `harness.py`.
"""

import asyncio
import json
import socket

import aiocoap
from aiocoap.numbers.types import Type

from tests.reliability import crash
from tests.reliability.harness import HOST, Server

DEADLINE = 90  # seconds; a run normally takes about 6


async def test_sigkill_under_load_loses_nothing_acknowledged():
    report = await asyncio.wait_for(
        crash.run(cycles=3, seconds=1.5, clients=8, seed=7470), DEADLINE
    )
    figures = "\n".join(report.lines())
    assert report.violations == [], figures
    assert len(report.in_flight) == 3 and report.verifications == 4, figures
    assert report.acknowledged >= 300, figures
    # the kills landed on a live load: requests were in flight at them
    assert sum(report.in_flight) > 0, figures
    assert report.exit_status == 0 and report.log_errors == [], figures


async def test_sigkill_racing_resets_and_power_cycles():
    """Issue 11: the kill also lands during a POST /reset or a power cycle racing with the
    load. Nothing acknowledged is lost, the store is never corrupt, and after an
    acknowledged reset the old state never comes back (see crash.py)."""
    report = await asyncio.wait_for(
        crash.run(cycles=8, seconds=1.0, clients=4, seed=7470, rig_actions=True), DEADLINE
    )
    figures = "\n".join(report.lines())
    assert report.violations == [], figures
    assert report.rig_actions["power-cycle"] >= 1, figures
    assert (
        report.rig_actions["reset acknowledged"] + report.rig_actions["reset cut by the kill"] >= 1
    ), figures
    assert report.exit_status == 0 and report.log_errors == [], figures


async def test_checks_catch_a_server_that_answers_before_committing():
    """Negative control: the same run against an emulator patched to answer before the commit
    (tests/reliability/broken_server.py) must be caught losing acknowledged changes."""
    report = await asyncio.wait_for(
        crash.run(
            cycles=2,
            seconds=1.0,
            clients=4,
            seed=7470,
            server_module="tests.reliability.broken_server",
        ),
        DEADLINE,
    )
    lost = [v for v in report.violations if v.startswith("after restart")]
    assert any("is missing" in v for v in lost), "\n".join(report.lines())


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Peer:
    """One client socket (one source port) sending raw CON datagrams, as a client that
    retransmits does: the same bytes, the same message id."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)

    async def send(self, datagram: bytes, port: int) -> bytes:
        loop = asyncio.get_running_loop()
        await loop.sock_sendto(self.sock, datagram, (HOST, port))
        return await asyncio.wait_for(loop.sock_recv(self.sock, 4096), 5)

    def close(self) -> None:
        self.sock.close()


def con(code, path, payload=b"", query=(), mid=0x1234, token=b"rt") -> bytes:
    request = aiocoap.Message(
        code=code, payload=payload, content_format=50, uri_path=path, uri_query=query
    )
    request.mtype, request.mid, request.token = Type.CON, mid, token
    return request.encode()


class Restarts:
    """An emulator process on a fixed port and store, a client socket, and restarts."""

    def __init__(self, tmp_path):
        self.port = _free_udp_port()
        self.db, self.log = tmp_path / "pager.db", tmp_path / "server.log"
        self.server: Server | None = None
        self.peer = Peer()

    async def __aenter__(self) -> "Restarts":
        self.server = await Server(self.db, self.log, self.port).start()
        return self

    async def __aexit__(self, *exc) -> None:
        self.peer.close()
        await self.server.kill()

    async def restart(self, how: str = "kill") -> None:
        await getattr(self.server, how)()
        self.server = await Server(self.db, self.log, self.port).start()

    async def send(self, datagram: bytes) -> bytes:
        return await self.peer.send(datagram, self.port)

    async def code(self, datagram: bytes) -> str:
        return aiocoap.Message.decode(await self.send(datagram)).code.dotted

    async def body(self, datagram: bytes) -> dict:
        return json.loads(aiocoap.Message.decode(await self.send(datagram)).payload)


async def test_a_retransmission_reaching_the_restarted_server_is_not_processed_again(tmp_path):
    """A create-and-page is committed and answered, but the answer is lost in the crash; the
    client retransmits the same message (same id, same source port) to the restarted server
    on the same port. It must not be processed again (no second page, no 2.00), and the
    answer is the one the first got, to the byte."""
    create = con(aiocoap.POST, ("v1", "sessions"), b'{"number":7,"action":"page"}')
    async with Restarts(tmp_path) as rig:
        first = await rig.send(create)
        assert aiocoap.Message.decode(first).code.dotted == "2.01"
        assert await rig.send(create) == first  # deduplicated while it runs
        await rig.restart()
        again = await rig.send(create)  # the client's next retransmission
        assert again == first, f"processed again: {aiocoap.Message.decode(again)}"
        # what it created was created once
        body = await rig.body(con(aiocoap.GET, ("v1", "sessions"), mid=0x2000))
        assert [s["number"] for s in body["sessions"]] == [7]
        assert body["globalSessionSequence"] == 1


async def test_a_retransmitted_clear_after_a_restart_gets_its_answer_not_4_04(tmp_path):
    create = con(aiocoap.POST, ("v1", "sessions"), b'{"number":8}', mid=1)
    clear = con(aiocoap.PUT, ("v1", "sessions"), b'{"action":"clear"}', ("number=8",), mid=2)
    async with Restarts(tmp_path) as rig:
        assert await rig.code(create) == "2.01"
        first = await rig.send(clear)
        assert aiocoap.Message.decode(first).code.dotted == "2.04"
        await rig.restart()
        assert await rig.send(clear) == first
        # a new request (a new message id) from the same peer is processed as usual
        assert (
            await rig.code(
                con(aiocoap.PUT, ("v1", "sessions"), b'{"action":"clear"}', ("number=8",), mid=3)
            )
            == "4.04"
        )
        # and the same message id from another port is another peer's request
        other = Peer()
        try:
            again = aiocoap.Message.decode(await other.send(create, rig.port))
        finally:
            other.close()
        assert again.code.dotted == "2.01"
        assert json.loads(again.payload)["sessions"][0]["id"] == 2


async def test_receipts_survive_several_restarts_and_a_sigterm(tmp_path):
    """Receipts are loaded at start and kept: a second restart (this time a clean stop)
    still answers a retransmission from before the first."""
    page = con(aiocoap.POST, ("v1", "page"), b'{"number":9}', mid=40)
    async with Restarts(tmp_path) as rig:
        first = await rig.send(page)
        assert aiocoap.Message.decode(first).code.dotted == "2.04"
        for how in ("kill", "stop"):
            await rig.restart(how)
            assert await rig.send(page) == first


async def test_a_retransmitted_history_deletion_after_a_restart_deletes_nothing_newer(tmp_path):
    async with Restarts(tmp_path) as rig:

        async def archived(number: int, mid: int) -> None:
            body = b'{"number":%d}' % number
            assert await rig.code(con(aiocoap.POST, ("v1", "sessions"), body, mid=mid)) == "2.01"
            assert (
                await rig.code(
                    con(
                        aiocoap.PUT,
                        ("v1", "sessions"),
                        b'{"action":"clear"}',
                        (f"number={number}",),
                        mid=mid + 1,
                    )
                )
                == "2.04"
            )

        await archived(1, 10)
        delete = con(aiocoap.DELETE, ("v1", "sessions", "history"), mid=20)
        first = await rig.send(delete)
        assert aiocoap.Message.decode(first).code.dotted == "2.02"
        await archived(2, 30)
        await rig.restart()
        assert await rig.send(delete) == first
        body = await rig.body(con(aiocoap.GET, ("v1", "sessions", "history"), mid=40))
        assert [s["number"] for s in body["session_history"]] == [2]


async def test_a_retransmitted_conditional_request_gets_its_answer_not_its_check_again(tmp_path):
    """A PUT with If-Match on the session's ETag changes it, so the ETag moves: checked
    again, its retransmission would be 4.12. Deduplicated, it is answered what the first got,
    while the server runs and after a kill."""
    create = con(aiocoap.POST, ("v1", "sessions"), b'{"number":5}', mid=1)
    async with Restarts(tmp_path) as rig:
        etag = aiocoap.Message.decode(await rig.send(create)).opt.etag
        request = aiocoap.Message(
            code=aiocoap.PUT,
            payload=b'{"label":"Ada"}',
            content_format=50,
            uri_path=("v1", "sessions"),
            uri_query=("number=5",),
            if_match=[etag],
        )
        request.mtype, request.mid, request.token = Type.CON, 2, b"im"
        put = request.encode()
        first = await rig.send(put)
        assert aiocoap.Message.decode(first).code.dotted == "2.04"
        assert await rig.send(put) == first
        await rig.restart()
        assert await rig.send(put) == first
