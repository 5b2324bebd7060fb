"""Spec §1: the message ids the emulator sends one peer are not reused for that peer within
EXCHANGE_LIFETIME (RFC 7252 §4.4), at any notification rate.

The proof is a strict client: it deduplicates as RFC 7252 §4.5 says, treating a message id
seen from the server within EXCHANGE_LIFETIME as a retransmission (acknowledged again and
dropped). Many observations on several sockets get more notifications in all than 16-bit
ids, so one counter shared by every peer comes round to ids each socket has seen seconds
before; numbered per peer, no socket sees an id twice and no notification is dropped."""

import asyncio
import json
import time

import aiocoap
import pytest
from aiocoap.numbers.types import Type

from pager.coap.seam import Backlogs, mids
from pager.coap.seam.mids import BLOCK, Exhausted, MessageIds

SOCKETS = 32
OBSERVATIONS_PER_SOCKET = 4
CHANGES = 560  # x 128 observations: 71,680 notifications, more than 65,536 ids


class StrictPeer(asyncio.DatagramProtocol):
    """One client socket with several observations; drops what it takes for a duplicate."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: dict[int, tuple[float, bytes]] = {}  # mid -> (first seen, datagram)
        self.reuses = 0  # an id seen within EXCHANGE_LIFETIME on a different message
        self.retransmissions = 0  # the same id on the same message
        self.sequences: dict[bytes, list[int]] = {}  # token -> globalSessionSequence seen

    def connection_made(self, transport) -> None:
        self.transport = transport

    def register(self, token: bytes, mid: int) -> None:
        request = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"), observe=0)
        request.mtype, request.mid, request.token = Type.CON, mid, token
        self.sequences[token] = []
        self.transport.sendto(request.encode())

    def datagram_received(self, data: bytes, addr) -> None:
        message = aiocoap.Message.decode(data)
        if message.mtype in (Type.CON, Type.NON):
            if message.mtype == Type.CON:
                ack = aiocoap.Message(code=aiocoap.EMPTY)
                ack.mtype, ack.mid = Type.ACK, message.mid
                self.transport.sendto(ack.encode())
            now = time.monotonic()
            seen = self.seen.get(message.mid)
            if seen is not None and now - seen[0] < mids.EXCHANGE_LIFETIME:
                if seen[1] == data:
                    self.retransmissions += 1
                else:
                    self.reuses += 1
                return  # a duplicate, as far as this client can tell: dropped
            self.seen[message.mid] = (now, data)
        received = self.sequences.get(message.token)
        if received is None or not message.payload:
            return
        body = json.loads(message.payload)
        if "sessions" in body["responseTypes"]:
            received.append(body["globalSessionSequence"])


@pytest.mark.parametrize("config_overrides", [{"observer_queue_limit": 100_000}])
async def test_a_strict_client_loses_no_notification_to_a_reused_id(emulator, client):
    loop = asyncio.get_running_loop()
    peers = []
    for _ in range(SOCKETS):
        _, peer = await loop.create_datagram_endpoint(
            StrictPeer, remote_addr=("127.0.0.1", emulator.port)
        )
        peers.append(peer)
    try:
        for i, peer in enumerate(peers):
            for j in range(OBSERVATIONS_PER_SOCKET):
                peer.register(bytes([i, j]), 1000 + j)
        while len(emulator.hub.observers) < SOCKETS * OBSERVATIONS_PER_SOCKET:
            await asyncio.sleep(0.05)
        await client.post("/v1/sessions", {"number": 1})
        for k in range(CHANGES - 1):
            await client.put("/v1/sessions", {"label": f"change {k}"}, query="number=1")
        deadline = loop.time() + 60
        while loop.time() < deadline and any(
            len(seqs) < CHANGES for peer in peers for seqs in peer.sequences.values()
        ):
            await asyncio.sleep(0.2)
    finally:
        for peer in peers:
            peer.transport.close()
    every = list(range(1, CHANGES + 1))
    lost = {  # observation -> notifications it did not get (or not in order)
        token: len(every) - len(set(seqs))
        for peer in peers
        for token, seqs in peer.sequences.items()
        if seqs != every
    }
    assert (sum(peer.reuses for peer in peers), lost) == (0, {})


def test_ids_run_on_per_peer_and_do_not_wrap_into_ids_still_remembered():
    now = [0.0]
    ids = MessageIds(lifetime=247.0, clock=lambda: now[0])
    first = ids.take("a")
    ids.sent("a", first)
    assert ids.take("a") == (first + 1) & 0xFFFF  # one counter per peer ...
    ids.take("b")  # ... and another peer's does not move it
    assert ids.take("a") == (first + 2) & 0xFFFF
    for _ in range(64 * BLOCK):  # every id sent within 247 s: the counter stops
        try:
            mid = ids.take("a")
        except Exhausted as e:
            free_at = e.free_at
            break
        ids.sent("a", mid)
    else:
        pytest.fail("65,536 ids handed out within the lifetime")
    blocked = (mid + 1) & 0xFFFF  # the first id of the block the counter came round to
    assert blocked % BLOCK == 0 and free_at == 247.0
    now[0] = 246.9
    with pytest.raises(Exhausted):
        ids.take("a")
    now[0] = 247.0  # the block's ids were last sent 247 s ago: free again
    assert ids.take("a") == blocked


def test_a_peer_silent_for_the_lifetime_is_forgotten():
    now = [0.0]
    ids = MessageIds(lifetime=247.0, clock=lambda: now[0])
    for peer in range(1000):
        ids.sent(peer, ids.take(peer))
    assert len(ids) == 1000
    now[0] = 100.0
    ids.sent(5, ids.take(5))
    now[0] = 247.0
    ids.sent("new", ids.take("new"))  # forgets those silent since 0
    assert len(ids) == 2
    now[0] = 347.0
    ids.sent("later", ids.take("later"))
    assert len(ids) == 2  # "new" (247) and "later"; 5 (100) went at 347


def test_random_start_per_peer():
    ids = MessageIds()
    assert len({ids.take(peer) for peer in range(50)}) > 40


class FakeManager:
    """What of aiocoap's MessageManager the hook uses, sending onto a list."""

    def __init__(self) -> None:
        self.message_id = 0
        self.wire: list[tuple[str, int]] = []

    def _next_message_id(self) -> int:
        raise AssertionError("the shared counter is not used")

    def send_message(self, message, messageerror_monitor) -> None:
        message.mid = self._next_message_id()
        self._send_initially(message, messageerror_monitor)

    def _send_initially(self, message, messageerror_monitor=None) -> None:
        self.wire.append((message.remote, message.mid))

    async def shutdown(self) -> None:
        pass


def _non(peer: str) -> aiocoap.Message:
    message = aiocoap.Message(code=aiocoap.CONTENT, payload=b"x")
    message.mtype, message.remote = Type.NON, peer
    return message


async def test_a_peer_out_of_ids_has_its_messages_held_in_order_until_one_is_free():
    manager, backlogs = FakeManager(), Backlogs()
    ids = MessageIds(lifetime=0.5)
    mids.install(manager, ids, backlogs)
    for _ in range(70_000):  # every id of "a" sent within the lifetime
        manager.send_message(_non("a"), None)
        if backlogs.waiting("a"):
            break
    sent = len(manager.wire)  # the last one is held
    first = manager.wire[0][1]  # random; its block's ids below it were never used
    assert sent == 64 * BLOCK - first % BLOCK
    assert len({mid for _, mid in manager.wire}) == sent  # none twice
    manager.send_message(_non("a"), None)
    manager.send_message(_non("b"), None)  # another peer has ids of its own
    assert backlogs.waiting("a") == 2 and manager.wire[-1][0] == "b"
    drained = asyncio.ensure_future(backlogs.drained("a"))
    await asyncio.sleep(0.1)
    assert not drained.done()
    await asyncio.wait_for(drained, 2)  # released once the first block is free
    held = [mid for peer, mid in manager.wire[sent + 1 :] if peer == "a"]
    assert held == [first - first % BLOCK, first - first % BLOCK + 1]  # in order
    assert backlogs.waiting("a") == 0
