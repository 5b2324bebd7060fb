"""Bounded duplicate detection (pager.coap.seam.dedup)."""

import asyncio
import socket

import aiocoap
import pytest
from aiocoap.numbers.types import Type

from pager.coap.seam.dedup import WINDOW, RecentMessages
from tests.conftest import Datagrams, datagrams_to, exchange_once


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_forgets_oldest_beyond_the_count():
    recent = RecentMessages(3, clock=FakeClock())
    for key in "abcd":
        recent[key] = None
    assert list(recent) == ["b", "c", "d"]
    recent["c"] = "response"  # storing the response does not reorder or evict
    assert list(recent) == ["b", "c", "d"] and recent["c"] == "response"


def test_forgets_by_age_as_new_requests_arrive():
    clock = FakeClock()
    recent = RecentMessages(100, window=49, clock=clock)
    recent["a"] = None
    clock.now += 20
    recent["b"] = None
    clock.now += 29  # "a" is exactly 49 s old: a retransmission at 45 s was still caught
    recent["c"] = None
    assert list(recent) == ["a", "b", "c"]
    clock.now += 1
    recent["d"] = None
    assert list(recent) == ["b", "c", "d"]


def test_aiocoaps_early_expiry_timers_are_ignored():
    recent = RecentMessages(10, clock=FakeClock())
    recent["a"] = "response"
    assert recent.pop("a") == "response" and "a" in recent
    assert recent.pop("zz") is None


def test_window_covers_a_clients_retransmissions(emulator):
    assert WINDOW > aiocoap.numbers.constants.TransportTuning().MAX_TRANSMIT_SPAN  # 45 s


@pytest.mark.parametrize("config_overrides", [{"dedup_max_entries": 100}])
async def test_duplicate_recognised_within_bound_and_forgotten_beyond(emulator, client):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        Datagrams, remote_addr=("127.0.0.1", emulator.port)
    )

    async def send(mid: int, body: bytes) -> bytes:
        m = aiocoap.Message(
            code=aiocoap.POST, payload=body, content_format=50, uri_path=("v1", "sessions")
        )
        m.mtype, m.mid, m.token = Type.CON, mid, b"t"
        transport.sendto(m.encode())
        return await asyncio.wait_for(proto.received.get(), 5)

    try:
        first = await send(1, b'{"number":1}')
        for mid in range(2, 50):  # 48 more requests: still within the bound of 100
            await send(mid, b'{"number":1,"partySize":2}')
        assert await send(1, b'{"number":1}') == first  # answered from the cache
        for mid in range(50, 160):  # push mid 1 out of the 100 remembered
            await send(mid, b'{"number":1,"partySize":2}')
        again = aiocoap.Message.decode(await send(1, b'{"number":1}'))
        assert again.code.dotted == "2.00"  # processed anew: an update of session 1
    finally:
        transport.close()
    assert (await client.get("/v1/sessions/statistics")).json["statistics"]["numSessions"] == 1


async def test_expiry_timers_fire_at_once_for_this_server_only(emulator, monkeypatch):
    """aiocoap schedules a timer per request to forget it; for the emulator's requests it
    fires at the next turn of the loop (the table expires itself), while any other aiocoap
    context in the process keeps RFC 7252's EXCHANGE_LIFETIME."""
    recent = next(i.token_interface._recent_messages for i in emulator._context.request_interfaces)
    pops = []
    monkeypatch.setattr(recent, "pop", lambda key, default=None: pops.append(key))
    answer = await exchange_once(
        emulator.port, aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "settings"))
    )
    assert answer.code == aiocoap.CONTENT
    await asyncio.sleep(0.05)
    assert [mid for _, mid in pops] == [77] and len(recent) == 1
    assert aiocoap.numbers.constants.TransportTuning().EXCHANGE_LIFETIME == 247.0


async def test_a_piggybacked_answer_is_encoded_once_and_sent_as_its_receipt_keeps_it(
    emulator, monkeypatch
):
    """encode-once: the receipt's datagram is the one filed for duplicates and sent, without
    encoding the answer again; a restarted emulator would send these very bytes."""
    encode = aiocoap.Message.encode
    answers: list[bytes] = []

    def counted(self: aiocoap.Message) -> bytes:
        data = encode(self)
        if self.code.is_response():
            answers.append(data)
        return data

    monkeypatch.setattr(aiocoap.Message, "encode", counted)
    async with datagrams_to(emulator.port) as (transport, proto):
        m = aiocoap.Message(
            code=aiocoap.POST,
            payload=b'{"number":7}',
            content_format=50,
            uri_path=("v1", "sessions"),
        )
        m.mtype, m.mid, m.token = Type.CON, 4242, b"eo"
        transport.sendto(encode(m))
        sent = await asyncio.wait_for(proto.received.get(), 5)
        transport.sendto(encode(m))  # a retransmission: answered from the table, not encoded
        again = await asyncio.wait_for(proto.received.get(), 5)
    assert aiocoap.Message.decode(sent).code.dotted == "2.01"
    assert again == sent and answers == [sent]
    [(kept,)] = await (
        await emulator._store._conn.execute("SELECT datagram FROM receipt WHERE mid = 4242")
    ).fetchall()
    assert kept == sent


async def test_an_answer_to_a_read_is_encoded_once(emulator, monkeypatch):
    encode = aiocoap.Message.encode
    calls: list[str] = []

    def counted(self: aiocoap.Message) -> bytes:
        if self.code.is_response():
            calls.append(self.code.dotted)
        return encode(self)

    monkeypatch.setattr(aiocoap.Message, "encode", counted)
    answer = await exchange_once(
        emulator.port, aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "settings"))
    )
    assert answer.code == aiocoap.CONTENT and calls == ["2.05"]


class _Interface:
    """What an address refers to (weakly) as its interface."""


def test_a_peer_reads_its_local_address_once_and_as_aiocoap_does(monkeypatch):
    """peer-address-once: whether a request came to a multicast address, as aiocoap
    works it out, parsed once per local address however many answers it is asked for."""
    from aiocoap.transports.udp6 import UDP6EndpointAddress

    from pager.coap.seam import datagrams

    monkeypatch.setattr(datagrams, "_MULTICAST_LOCAL", {})
    parse = UDP6EndpointAddress._strip_v4mapped
    parsed: list[bytes] = []

    def counting(address: bytes) -> str:
        parsed.append(address)
        return parse(address)

    monkeypatch.setattr(UDP6EndpointAddress, "_strip_v4mapped", staticmethod(counting))
    unicast = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1") + bytes(4)
    multicast = socket.inet_pton(socket.AF_INET6, "ff02::fd") + (1).to_bytes(4, "little")
    sockaddr = ("::ffff:127.0.0.1", 5683, 0, 0)
    interface = _Interface()
    for pktinfo, expected in ((unicast, False), (multicast, True)):
        plain = UDP6EndpointAddress(sockaddr, interface, pktinfo=pktinfo)
        assert plain.is_multicast_locally is expected
        parsed.clear()
        for _ in range(3):
            peer = datagrams.Peer(sockaddr, interface, pktinfo=pktinfo)
            assert peer.is_multicast_locally is expected
            assert (peer.as_response_address() is peer) is not expected
        assert len(parsed) == 1


def test_a_peer_is_hashed_once_and_as_aiocoap_hashes_its_address(monkeypatch):
    """peer-address-once: a peer is hashed and compared as aiocoap's own address is (the
    tables aiocoap keys by it find one for the other), its hash worked out once."""
    from aiocoap.transports.udp6 import UDP6EndpointAddress

    from pager.coap.seam import datagrams

    interface = _Interface()
    for sockaddr in (("::ffff:127.0.0.1", 5683, 0, 0), ("fe80::1", 40000, 7, 2)):
        peer = datagrams.Peer(sockaddr, interface)
        plain = UDP6EndpointAddress(sockaddr, interface)
        assert hash(peer) == hash(plain) and peer == plain and {plain: 1}[peer] == 1
        expected, hashed = hash(plain), []

        def counted(self, hashed=hashed):
            hashed.append(self)
            return 5

        monkeypatch.setattr(UDP6EndpointAddress, "__hash__", counted)
        assert {peer: 1}[peer] == 1 and hash(peer) == expected != 5 and not hashed
        monkeypatch.undo()
    other = datagrams.Peer(("::ffff:127.0.0.1", 5684, 0, 0), interface)
    assert other != datagrams.Peer(("::ffff:127.0.0.1", 5683, 0, 0), interface)


async def test_an_answer_with_the_servers_own_id_is_not_replayed_for_a_request_with_it(emulator):
    """aiocoap files every message it sends under (peer, message id). A Non-confirmable
    answer carries an id of the server's own; one equal to the id of a request the peer
    sent before took that request's place in the table, and the request's retransmission
    was answered with it: another request's answer, another token, again and again."""
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        Datagrams, remote_addr=("127.0.0.1", emulator.port)
    )

    used: set[int] = set()  # ids of ours, all still remembered by the server

    async def send(mtype: Type, mid: int, token: bytes) -> aiocoap.Message:
        m = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "sessions", "statistics"))
        m.mtype, m.mid, m.token = mtype, mid, token
        used.add(mid)
        transport.sendto(m.encode())
        return aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))

    def fresh(near: int) -> int:
        """An id of ours not used yet, far from `near`."""
        mid = (near + 0x8000) & 0xFFFF
        while mid in used:
            mid = (mid + 1) & 0xFFFF
        return mid

    try:
        server_mid = (await send(Type.NON, 1, b"n1")).mid
        while (server_mid + 1) & 0xFFFF in used:  # a request with it would be a duplicate
            server_mid = (await send(Type.NON, fresh(server_mid), b"n1")).mid
        ours = (server_mid + 1) & 0xFFFF
        first = await send(Type.CON, ours, b"c")  # the server's next id, piggybacked
        assert (first.mtype, first.mid, first.token) == (Type.ACK, ours, b"c")
        non = await send(Type.NON, fresh(ours), b"n2")  # its answer takes the server's next id
        assert (non.mtype, non.mid, non.token) == (Type.NON, ours, b"n2")
        again = await send(Type.CON, ours, b"c")  # the ACK was lost: the request again
    finally:
        transport.close()
    assert (again.mtype, again.mid, again.token) == (Type.ACK, ours, b"c")
    assert (again.code, again.payload) == (first.code, first.payload)
