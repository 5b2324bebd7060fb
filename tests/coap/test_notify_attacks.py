"""Attacks on block-wise notifications (issue 13): several observations from one peer."""

import asyncio
import json
import signal

import aiocoap
import pytest
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from pager.coap.seam.mids import BLOCK
from tests.conftest import Client, ServerProcess
from tests.interop.helpers import fill_sessions


async def test_two_list_observations_from_one_socket_each_get_their_whole_list(client, emulator):
    await fill_sessions(client, 60)
    context = await aiocoap.Context.create_client_context()
    uri = f"coap://127.0.0.1:{emulator.port}/v1/notify?action=get_sessions"
    try:
        a = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        b = context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        for req in (a, b):
            first = await asyncio.wait_for(req.response, 20)
            assert first.code.dotted == "2.05", first
            assert len(json.loads(first.payload)["sessions"]) == 60
    finally:
        await context.shutdown()


class Peer(asyncio.DatagramProtocol):
    """A raw observer on a socket of its own that acknowledges every Confirmable message,
    or none."""

    def __init__(self, acknowledges: bool) -> None:
        self.acknowledges = acknowledges
        self.messages: list[aiocoap.Message] = []

    def datagram_received(self, data: bytes, addr) -> None:
        message = aiocoap.Message.decode(data)
        self.messages.append(message)
        if self.acknowledges and message.mtype == Type.CON:
            ack = aiocoap.Message(code=aiocoap.EMPTY)
            # raw: aiocoap warns when a Message is built with an mtype or a message id
            ack.mtype, ack.mid = Type.ACK, message.mid
            self.transport.sendto(ack.encode())

    @classmethod
    async def open(cls, port: int, acknowledges: bool) -> "Peer":
        transport, peer = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: cls(acknowledges), remote_addr=("127.0.0.1", port)
        )
        peer.transport = transport
        return peer

    def register(self, token: bytes = b"obs", mid: int = 1) -> None:
        m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"), observe=0)
        m.mtype, m.mid, m.token = Type.CON, mid, token
        self.transport.sendto(m.encode())


async def test_sigterm_with_300_observers_half_silent_is_bounded_and_tells_the_rest(db_path):
    """Spec §8: a shutdown tells every observer; one that never acknowledges holds it up no
    longer than END_WAIT."""
    server = await ServerProcess(db_path).start()
    peers: list[Peer] = []
    try:
        for n in range(300):
            peers.append(await Peer.open(server.port, acknowledges=n % 2 == 0))
            peers[-1].register()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not all(p.messages for p in peers):
            assert loop.time() < deadline, sum(1 for p in peers if p.messages)
            await asyncio.sleep(0.5)
            for p in peers:
                if not p.messages:  # a retransmission, as a client makes
                    p.register()
        started = loop.time()
        assert await server.stop() == 0
        took = loop.time() - started
        assert took < 3.5, took  # END_WAIT (2 s): the final 5.03 is given up within it
        await asyncio.sleep(0.2)
        told = [p for p in peers if any(m.code.dotted == "5.03" for m in p.messages)]
        assert all(p in told for p in peers if p.acknowledges), len(told)
    finally:
        for p in peers:
            p.transport.close()
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


async def test_messages_held_for_a_message_id_go_with_the_emulator(client, emulator):
    """A peer sent every id within EXCHANGE_LIFETIME has its notifications held (seam.mids);
    when the emulator stops, they and the timer that would send them go with it, not 247 s
    later onto a closed transport."""
    peer = await Peer.open(emulator.port, acknowledges=True)
    try:
        peer.register()
        probe = aiocoap.Message(code=aiocoap.GET, uri_path=(".well-known", "core"))
        probe.mtype, probe.mid, probe.token = Type.NON, 2, b"p"
        peer.transport.sendto(probe.encode())  # a NON answer: the peer's counter is made
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while len(peer.messages) < 2:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        held = emulator.backlogs.held.__self__  # seam.mids: what waits for a free id
        ((remote, counter),) = held.ids._peers.items()
        now = held.ids.clock()
        counter.blocks = {block: now for block in range(0x10000 // BLOCK)}  # all used just now
        counter.next = (counter.next // BLOCK + 1) * BLOCK & 0xFFFF
        await client.post("/v1/sessions", {"number": 5})
        deadline = loop.time() + 5
        while not held.count(remote):
            assert loop.time() < deadline, "the notification was not held"
            await asyncio.sleep(0.01)
        await emulator.stop()
        assert not held.queues
        pending = [h for h in loop._scheduled if not h.cancelled()]
        assert not [h for h in pending if getattr(h._callback, "__self__", None) is held], pending
    finally:
        peer.transport.close()


@pytest.mark.parametrize(
    "config_overrides", [{"observer_queue_limit": 20, "max_block_transfer_bytes": 200_000}]
)
async def test_200_observers_that_never_fetch_the_rest_hold_up_nobody(client, emulator):
    """200 observers take the first block of the session list and never ask for the rest:
    their lists are held within the byte budget, their queues within the limit, and an
    observer that does fetch gets the list and every change after it."""
    await fill_sessions(client, 60)
    stuck = [await Peer.open(emulator.port, acknowledges=True) for _ in range(200)]
    healthy = None
    try:
        for n, peer in enumerate(stuck):
            m = aiocoap.Message(
                code=aiocoap.GET, uri_path=("v1", "notify"), uri_query=("action=get_sessions",)
            )
            m.opt.observe = 0
            m.mtype, m.mid, m.token = Type.CON, n, b"s"
            peer.transport.sendto(m.encode())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len(emulator.hub.observers) < 200:
            assert loop.time() < deadline, len(emulator.hub.observers)
            await asyncio.sleep(0.05)
        assert all(p.messages[0].opt.block2.more for p in stuck if p.messages)
        healthy = await aiocoap.Context.create_client_context()
        uri = f"coap://127.0.0.1:{emulator.port}/v1/notify?action=get_sessions"
        obs = healthy.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
        first = await asyncio.wait_for(obs.response, 20)
        assert len(json.loads(first.payload)["sessions"]) == 60
        updates = obs.observation.__aiter__()
        for n in range(40):
            await client.post("/v1/sessions", {"number": 900 + n})
            note = json.loads((await asyncio.wait_for(updates.__anext__(), 10)).payload)
            assert note["sessions"][0]["number"] == 900 + n
        assert emulator.api.block2.held_bytes <= 200_000
        assert all(len(o._changes) <= 20 for o in emulator.hub.observers)
    finally:
        if healthy is not None:
            await healthy.shutdown()
        for p in stuck:
            p.transport.close()


async def test_16_writers_and_50_list_observers_each_see_every_change_in_order(client, emulator):
    """50 get_sessions observers (25 on sockets of their own, 25 sharing one) while 16
    clients create sessions: each observer gets its whole list, then every later change
    once, in globalSessionSequence order, up to the last."""
    await fill_sessions(client, 40)
    uri = f"coap://127.0.0.1:{emulator.port}/v1/notify?action=get_sessions"
    shared = await aiocoap.Context.create_client_context()
    contexts = [await aiocoap.Context.create_client_context() for _ in range(25)]
    writers = [await aiocoap.Context.create_client_context() for _ in range(4)]
    try:
        requests = [
            ctx.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
            for ctx in contexts + [shared] * 25
        ]
        seen: list[list[dict]] = [[] for _ in requests]

        async def follow(i: int, request) -> None:
            seen[i].append(json.loads((await request.response).payload))
            async for note in request.observation:
                seen[i].append(json.loads(note.payload))

        followers = [asyncio.ensure_future(follow(i, r)) for i, r in enumerate(requests)]

        async def write(w: int) -> None:
            writer = Client(writers[w % 4], emulator.port)
            for n in range(10):
                reply = await writer.post("/v1/sessions", {"number": 200 + w * 10 + n})
                assert reply.code == "2.01", reply.payload

        await asyncio.gather(*(write(w) for w in range(16)))
        final = (await client.get("/v1/sessions")).json["globalSessionSequence"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not all(s and s[-1]["globalSessionSequence"] == final for s in seen):
            done = sum(1 for s in seen if s and s[-1]["globalSessionSequence"] == final)
            assert loop.time() < deadline, f"{done} of 50 observers caught up"
            await asyncio.sleep(0.1)
        for notes in seen:
            listing, *changes = notes
            assert len(listing["sessions"]) == listing["statistics"]["numSessions"]
            sequences = [n["globalSessionSequence"] for n in changes]
            assert sequences == list(range(listing["globalSessionSequence"] + 1, final + 1))
        for f in followers:
            f.cancel()
    finally:
        for ctx in contexts + writers + [shared]:
            await ctx.shutdown()


def _list_request(token: bytes, mid: int, block: int | None = None, observe: int | None = 0):
    m = aiocoap.Message(
        code=aiocoap.GET, uri_path=("v1", "notify"), uri_query=("action=get_sessions",)
    )
    if observe is not None:
        m.opt.observe = observe
    if block is not None:
        m.opt.block2 = BlockOption.BlockwiseTuple(block, False, 6)
    m.mtype, m.mid, m.token = Type.CON, mid, token
    return m


async def _answer(peer: Peer, mid: int, timeout: float = 5) -> aiocoap.Message:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for m in peer.messages:
            if m.mid == mid and m.mtype == Type.ACK:
                return m
        assert loop.time() < deadline, f"no answer to {mid}"
        await asyncio.sleep(0.01)


async def test_kill_9_during_a_block_wise_notification_then_a_restart(db_path, coap_context):
    """The transfer dies with the process: the client's next block is 4.08 from the
    restarted emulator, and registering again brings the whole list."""
    server = await ServerProcess(db_path).start()
    peer = None
    try:
        await fill_sessions(Client(coap_context, server.port), 60)
        peer = await Peer.open(server.port, acknowledges=True)
        peer.transport.sendto(_list_request(b"o", 1).encode())
        first = await _answer(peer, 1)
        assert first.opt.block2.more and first.opt.etag
        peer.transport.sendto(_list_request(b"b", 2, block=1, observe=None).encode())
        assert (await _answer(peer, 2)).opt.block2.block_number == 1
        port = server.port
        assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
        server = await ServerProcess(db_path, "--port", str(port)).start()
        peer.transport.sendto(_list_request(b"b", 3, block=2, observe=None).encode())
        assert (await _answer(peer, 3)).code.dotted == "4.08"
        peer.transport.sendto(_list_request(b"o2", 4).encode())
        again = await _answer(peer, 4)
        assert again.code.dotted == "2.05" and again.opt.observe is not None
        assert again.opt.block2.more and again.opt.etag
    finally:
        if peer is not None:
            peer.transport.close()
        if server.process.returncode is None:
            server.process.kill()
            await server.process.wait()


@pytest.mark.parametrize("how", ["power cycle", "factory reset"])
async def test_a_block_wise_transfer_does_not_outlive_the_transmitter_state(how, client, emulator):
    """A power cycle loses what the transmitter held in memory, and a factory reset the
    sessions: the rest of a list fetched before either is 4.08, never the old list."""
    await fill_sessions(client, 60)
    peer = await Peer.open(emulator.port, acknowledges=True)
    try:
        peer.transport.sendto(_list_request(b"o", 1).encode())
        assert (await _answer(peer, 1)).opt.block2.more
        peer.transport.sendto(_list_request(b"b", 2, block=1, observe=None).encode())
        assert (await _answer(peer, 2)).opt.block2.block_number == 1
        if how == "power cycle":
            await emulator.power_cycle(0.1)
            await asyncio.sleep(0.2)
        else:
            await emulator.reset()
        peer.transport.sendto(_list_request(b"b", 3, block=2, observe=None).encode())
        assert (await _answer(peer, 3)).code.dotted == "4.08"
    finally:
        peer.transport.close()


async def test_20_observations_on_one_socket_get_ids_unique_to_that_peer(client, emulator):
    """RFC 7252 §4.4: one peer, many tokens, changes as fast as the server commits them:
    every Confirmable notification to the peer has an id of its own."""
    peer = await Peer.open(emulator.port, acknowledges=True)
    try:
        for n in range(20):
            peer.register(token=b"t%d" % n, mid=n)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(emulator.hub.observers) < 20:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        await asyncio.gather(*(client.post("/v1/sessions", {"number": n}) for n in range(150)))
        deadline = loop.time() + 30
        while sum(1 for m in peer.messages if m.mtype == Type.CON) < 20 * 150:
            assert loop.time() < deadline, len(peer.messages)
            await asyncio.sleep(0.05)
        notes: dict[int, set[tuple[bytes, int]]] = {}
        for m in peer.messages:
            if m.mtype == Type.CON:
                notes.setdefault(m.mid, set()).add((m.token, m.opt.observe))
        assert all(len(seen) == 1 for seen in notes.values())  # a retransmission at most
        assert len(notes) >= 20 * 150
    finally:
        peer.transport.close()
