"""The journal's deferred filing (`Journal._file`) attacked: batch boundaries, answers that
come late, records dropped by the limit or the byte ring, the watch, and what the seam
records as an answer against what went on the wire."""

import time

import aiocoap
from aiocoap.numbers.types import Type

from pager.clock import Clock
from pager.control.faults import Fault
from pager.control.journal import FILE_EVERY, Journal

PEER = ("::ffff:127.0.0.1", 40000, 0, 0)


def _request(mid: int, size: int = 0, path: str = "p") -> bytes:
    m = aiocoap.Message(code=aiocoap.POST, payload=b"%05d" % mid * (size // 5))
    m.opt.uri_path = (path, str(mid))
    m.mtype, m.mid, m.token = Type.CON, mid & 0xFFFF, mid.to_bytes(4, "big")
    return m.encode()


def _answer(mid: int, payload: bytes = b"ok") -> bytes:
    m = aiocoap.Message(code=aiocoap.CONTENT, payload=payload)
    m.mtype, m.mid, m.token = Type.ACK, mid & 0xFFFF, mid.to_bytes(4, "big")
    return m.encode()


def _drop() -> Fault:
    return Fault(1, "drop", "/p")


def test_lost_requests_and_lrsn_requests_are_filed_in_batches_too():
    """Only `arrived` filed a batch once it was full: a journal told of nothing but requests
    a drop fault lost, or of nothing but LRSN requests, kept every one unfiled, datagram and
    all, past `limit` and `max_bytes`, until someone read it."""
    journal = Journal(Clock(), limit=5, max_bytes=2**17)
    for mid in range(1000):
        journal.acted(_drop())
        assert journal.undelivered(_request(mid, 1000), PEER) is None
        journal.lrsn_request(
            ("127.0.0.1", 4000), b"<Login/>" * 100, b'<LoginAck ret="0"/>', True, None,
            time.monotonic(),
        )  # fmt: skip
        assert len(journal._unfiled) < FILE_EVERY
    assert len(journal) == 5
    entries = list(journal.entries())
    assert [e.id for e in entries] == list(range(1996, 2001))
    assert [e.method for e in entries] == ["LRSN", "POST", "LRSN", "POST", "LRSN"]
    assert entries[1].fault.kind == "drop" and entries[1].path == "/p/998"
