"""The request journal: every CoAP exchange a client started, as `Entry`s (docs/control-api.md).

The seam tells the journal of each exchange as it happens (`pager.coap.exchanges`), on the
request path of every request, so recording keeps only what it is handed: the request's and
the answer's datagrams (bytes, which the garbage collector never walks), the peer's address,
two clock readings and the transmitter's clock. Decoding the datagrams, their bodies and the
pager number, and formatting times, wait until someone reads the journal; what is read is
built again on every read, so nothing decoded stays behind.

The journal keeps at most `limit` exchanges, and their datagrams at most `max_bytes`
together; beyond either the oldest go first. Ids go on from 1, never reused, a clear
included, so `after` keeps paging through a journal that is being cleared or trimmed.

The fault that acted on an exchange is learnt from `FaultInjector.acted`, which is called
while the fault acts, before the message it acted on goes on: the next thing the seam tells
(the request lost, the request arriving, its answer leaving, or a message that is no
exchange's passing) is that message, and takes the mark.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import math
import mmap
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiocoap
import cbor2
from aiocoap.numbers.types import CON

from pager import wire
from pager.clock import Clock
from pager.coap.site import ABBREVIATED
from pager.control.faults import Fault
from pager.control.journal_entry import Entry, FaultMark
from pager.domain import digits
from pager.domain.timefmt import fmt
from pager.lrsn import protocol as lrsn

METHODS = {1: "GET", 2: "POST", 3: "PUT", 4: "DELETE", 5: "FETCH", 6: "PATCH", 7: "iPATCH"}
CODE = re.compile(r"[2-5]\.[0-9]{2}")
LIMIT_DEFAULT = 10_000
BYTES_DEFAULT = 16 * 2**20
SLICE_SECONDS = 0.001  # how long a read of the journal holds the loop at a time (`sliced`)
_PAUSE = 50e-6  # the GIL let go between slices, for the store's thread (`sliced`)
_TEXT_FORMATS = frozenset((0, 40))  # text/plain, application/link-format
DEPTH_MAX = 64  # nesting of a decoded body kept as JSON; a deeper one is kept as base64
FILE_EVERY = 64  # records made between two filings (`Journal._file`)
PEERS_MAX = 4096  # distinct peer addresses shared by records before the table starts again
_INT_BITS_MAX = 14_000  # an integer of fewer than Python's 4,300 digits for text


# A record is a list, the cheapest object to make on the request path, read by these indices.
ID = 0  # None until the record is filed (`Journal._file`)
_WALL, _ARRIVED, _DEVICE, _PEER, _DUPLICATE, _FAULT, _LEAVES = 1, 2, 3, 4, 5, 6, 7
# Until filed: the request's datagram, and its answer's (None: none yet). Then: where they
# lie in the journal's buffer (an answer at -1: none) and their sizes.
_AT, _SIZE, _ANSWER_AT, _ANSWER_SIZE = 8, 9, 10, 11
_LRSN = 12  # a request over LRSN: its message and answer are XML, no datagrams
Record = list[Any]
"""One exchange as recorded (the seam's exchange until its answer leaves): its datagrams,
the peer, clock readings; nothing decoded."""
Filed = Sequence[Any]
"""A record as the journal keeps it: the list, or a tuple of it once it is complete
(`Journal._file`)."""


def _entry(datagrams: _Datagrams, record: Filed) -> Entry | None:
    """The entry of a filed record, or None if its datagrams have been written over since."""
    size, n = record[_SIZE], record[_ANSWER_SIZE]
    data = datagrams.get(record[_AT], size) if size else b""
    sent = datagrams.get(record[_ANSWER_AT], n) if n else b""
    if data is None or sent is None:
        return None
    if record[_LRSN]:
        return _lrsn_entry(record, data, sent)
    request = aiocoap.Message.decode(data)
    answer = aiocoap.Message.decode(sent) if sent else None
    opt = request.opt
    content_format = _format(opt.content_format)
    body, body_base64 = decode_payload(request.payload, content_format, opt.block1)
    path = opt.uri_path
    if not path and opt.uri_path_abbrev in ABBREVIATED:
        path = ABBREVIATED[opt.uri_path_abbrev]
    block2 = opt.block2 or (answer.opt.block2 if answer is not None else None)
    code = int(request.code)
    answered: dict[str, Any] = {}
    if answer is not None:
        answer_format = _format(answer.opt.content_format)
        decoded, undecoded = decode_payload(answer.payload, answer_format, answer.opt.block2)
        answered = {
            "code": answer.code.dotted,
            "answer_content_format": answer_format,
            "answer": decoded,
            "answer_base64": undecoded,
        }
    return Entry(
        id=record[ID],
        time=_time(record),
        device_time=_device_time(record),
        peer=_peer(record[_PEER]),
        type="CON" if request.mtype == CON else "NON",
        mid=request.mid,
        token=request.token.hex(),
        method=METHODS.get(code, request.code.dotted),
        path="/" + "/".join(path),
        query=tuple(opt.uri_query),
        content_format=content_format,
        body=body,
        body_base64=body_base64,
        observe=opt.observe,
        block1=None if opt.block1 is None else opt.block1.block_number,
        block2=None if block2 is None else block2.block_number,
        number=_number(opt.uri_query, body),
        latency_ms=_latency(record),
        duplicate=record[_DUPLICATE],
        fault=record[_FAULT],
        **answered,
    )


def _lrsn_entry(record: Filed, data: bytes, sent: bytes) -> Entry:
    request = lrsn.parse(data)
    element = _LRSN_ELEMENT.match(data)
    path = "/lrsn/" + (element.group(1).decode() if element else "")
    ret = _LRSN_RET.search(sent)
    try:
        body, body_base64 = data.decode("utf-8"), None
    except UnicodeDecodeError:
        body, body_base64 = None, base64.b64encode(data).decode()
    return Entry(
        id=record[ID],
        time=_time(record),
        device_time=_device_time(record),
        peer=_peer(record[_PEER]),
        type=None,
        mid=None,
        token=None,
        method="LRSN",
        path=path,
        body=body,
        body_base64=body_base64,
        number=request.number if isinstance(request, lrsn.Page) else None,
        code=None if ret is None else ret.group(1).decode(),
        answer=sent.decode() if sent else None,
        latency_ms=_latency(record),
        fault=record[_FAULT],
        transport="lrsn",
    )


def _device_time(record: Filed) -> str:
    device = record[_DEVICE]  # what the clock read, or added to the wall time (`wall_offset`)
    if isinstance(device, timedelta):
        device = datetime.fromtimestamp(record[_WALL]) + device
    return fmt(device)


def _time(record: Filed) -> str:
    return datetime.fromtimestamp(record[_WALL], UTC).isoformat(timespec="microseconds")


def _latency(record: Filed) -> float | None:
    leaves = record[_LEAVES]
    return None if leaves is None else round((leaves - record[_ARRIVED]) * 1e3, 3)


_LRSN_ELEMENT = re.compile(rb"\s*<([A-Za-z_][\w.-]{0,63})")
_LRSN_RET = re.compile(rb' ret="([0-9]+)"')


@dataclass(frozen=True)
class Filters:
    """Which entries to read; every one given must hold. Checked when made, so that a bad
    value is refused whether it came over HTTP or from Python."""

    method: str | None = None
    path: str | None = None
    number: int | None = None
    code: str | None = None
    since: datetime | None = None  # wall time, with its UTC offset
    after: int | None = None  # entry id
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in METHODS.values():
            names = ", ".join(METHODS.values())
            raise ValueError(f"method must be one of {names}, not {self.method!r}")
        if self.path is not None and not (isinstance(self.path, str) and self.path[:1] == "/"):
            raise ValueError(f"path must start with /, not {self.path!r}")
        for name in ("number", "after"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"{name} must be an integer of 0 or more, not {value!r}")
        if self.limit is not None and (type(self.limit) is not int or self.limit < 1):
            raise ValueError(f"limit must be an integer of 1 or more, not {self.limit!r}")
        if self.code is not None and not (isinstance(self.code, str) and CODE.fullmatch(self.code)):
            raise ValueError(f"code must be a response code such as 2.05, not {self.code!r}")
        if self.since is not None and (
            not isinstance(self.since, datetime) or self.since.utcoffset() is None
        ):
            raise ValueError("since must be a date and time with its UTC offset")

    def matches(self, entry: Entry) -> bool:
        return (
            (self.method is None or entry.method == self.method)
            and (self.path is None or entry.path == self.path)
            and (self.number is None or entry.number == self.number)
            and (self.code is None or entry.code == self.code)
        )


class Journal:
    """The recorded exchanges, oldest first; the seam's `pager.coap.exchanges.Exchanges`."""

    def __init__(
        self, clock: Clock, limit: int = LIMIT_DEFAULT, max_bytes: int = BYTES_DEFAULT
    ) -> None:
        self.clock = clock
        self.limit = limit
        self.max_bytes = max_bytes
        self._datagrams = _Datagrams(max_bytes)
        self._peers: dict[Any, Any] = {}  # each peer's address once, not once per record
        self._records: deque[Filed] = deque(maxlen=limit)  # filed, oldest first
        self._unfiled: list[Record] = []  # made since, in order (`_file`)
        self._ids = itertools.count(1)
        self._fault: FaultMark | None = None
        # Told of each record made (and whether it is complete: a request lost) and of each
        # answer leaving, while someone follows the journal live (the pager wall); else None.
        self.watch: Callable[[Record, bool], None] | None = None

    def __len__(self) -> int:
        self._file()
        return len(self._records)

    @property
    def held_bytes(self) -> int:
        """The bytes of the datagrams kept, requests and answers."""
        self._file()
        return sum(r[_SIZE] + r[_ANSWER_SIZE] for r in self._records)

    # -- told by the seam (pager.coap.exchanges.Exchanges) and by the faults ---------------

    def arrived(self, datagram: bytes, peer: Any, duplicate: bool, mark: object) -> Record:
        fault = self._fault
        if mark is not None and isinstance(mark, FaultMark):  # what held it (undelivered)
            fault = mark
        elif fault is not None:
            self._fault = None
        clock = self.clock
        offset = clock.wall_offset  # the device's time, made from the wall time when read
        record = [
            None, time.time(), time.monotonic(), clock.exact() if offset is None else offset,
            peer, duplicate, fault, None, datagram, 0, None, 0, False,
        ]  # fmt: skip
        unfiled = self._unfiled
        unfiled.append(record)
        if self.watch is not None:
            self._tell(record, False)
        elif len(unfiled) >= FILE_EVERY:
            self._file()
        return record

    def answered(self, record: Record, datagram: bytes, leaving: bool) -> None:
        if self._fault is not None:
            record[_FAULT], self._fault = self._fault, None
        if record[ID] is None:
            record[_ANSWER_AT] = datagram  # filed with its request
        elif self._kept(record):
            record[_ANSWER_AT] = self._datagrams.put(datagram)
            record[_ANSWER_SIZE] = len(datagram)
            self._trim()
        if leaving:  # told once, before any `left`
            record[_LEAVES] = time.monotonic()
            if self.watch is not None:
                self._tell(record, True)

    def left(self, record: Record) -> None:
        if record[_LEAVES] is None:
            record[_LEAVES] = time.monotonic()
            if self.watch is not None:
                self._tell(record, True)

    def marked(self, record: Record) -> None:
        if self._fault is not None:
            record[_FAULT], self._fault = self._fault, None

    def undelivered(self, datagram: bytes, peer: Any) -> FaultMark | None:
        """Lost, unless a fault other than a drop holds it (reorder): then its mark goes
        with it to its delivery."""
        mark, self._fault = self._fault, None
        if mark is not None and mark.kind != "drop":
            return mark
        record = [
            None, time.time(), time.monotonic(), self.clock.exact(), peer, False, mark, None,
            datagram, 0, None, 0, False,
        ]  # fmt: skip
        self._keep(record)
        return None

    def passed(self) -> None:
        self._fault = None

    def acted(self, fault: Fault) -> None:
        self._fault = FaultMark(fault.id, fault.kind)

    # -- told by the LRSN server (pager.lrsn.server.Requests) -------------------------------

    def lrsn_request(
        self,
        peer: tuple[str, int],
        message: bytes,
        answer: bytes | None,
        sent: bool,
        fault: tuple[int, str] | None,
        arrived: float,
    ) -> None:
        now = time.monotonic()
        record = [
            None, time.time() - (now - arrived), arrived, self.clock.exact(), peer, False,
            None if fault is None else FaultMark(*fault), now if sent else None, message, 0,
            answer or None, 0, True,
        ]  # fmt: skip
        self._keep(record)

    def _keep(self, record: Record) -> None:
        """A complete record (a request lost, or over LRSN) among those to file, filed with
        them once there are `FILE_EVERY` (as `arrived` does), or at once for the watch."""
        unfiled = self._unfiled
        unfiled.append(record)
        if self.watch is not None:
            self._tell(record, True)
        elif len(unfiled) >= FILE_EVERY:
            self._file()

    def _tell(self, record: Record, done: bool) -> None:
        assert self.watch is not None
        if record[ID] is None:
            self._file(freeze=False)  # the watch reads the record by its id
        self.watch(record, done)

    def _file(self, freeze: bool = True) -> None:
        """Give the records made since the last time their ids, their datagrams their place
        in the buffer, and keep them. Done in batches, off the request path of all but one
        request in `FILE_EVERY`, and before anything reads the journal: on the request
        path a record costs only its making (recording is held to 5 % of the throughput
        of the cheapest request: docs/control-api.md, the README's benchmarks).

        The batch's datagrams go into the buffer in one write, each answer after its
        request. A record that is complete (its answer has left, or it came over LRSN) is
        kept as a tuple (`freeze`): nothing changes it any more, and a tuple of numbers and
        addresses is one the garbage collector stops walking, where ten thousand lists
        would be walked by each of its full passes. Not when filed for the watch: that can
        be as the answer leaves, inside the seam's sending of it, and the fault that acted
        on it marks it after (`marked`)."""
        unfiled = self._unfiled
        if not unfiled:
            return
        datagrams = self._datagrams
        peers = self._peers
        ids = self._ids
        pieces: list[bytes] = []
        add = pieces.append
        at = start = datagrams.end
        for record in unfiled:
            record[ID] = next(ids)
            data = record[_AT]
            add(data)
            record[_AT] = at
            record[_SIZE] = n = len(data)
            at += n
            answer = record[_ANSWER_AT]
            if answer is None:
                record[_ANSWER_AT] = -1
            else:
                add(answer)
                record[_ANSWER_AT] = at
                record[_ANSWER_SIZE] = n = len(answer)
                at += n
            peer = record[_PEER]
            record[_PEER] = peers.setdefault(peer, peer)
        if at - start <= datagrams.size:
            moved = datagrams.put_run(pieces, at - start) - start
            if moved:  # to the buffer's start
                for record in unfiled:
                    record[_AT] += moved
                    if record[_ANSWER_AT] >= 0:
                        record[_ANSWER_AT] += moved
        else:  # more than the buffer holds: each record's put on its own, the last ones kept
            whole = iter(pieces)
            for record in unfiled:
                data = next(whole)
                if record[_ANSWER_AT] < 0:
                    record[_AT] = datagrams.put(data)
                else:
                    record[_AT] = at = datagrams.put(data + next(whole))
                    record[_ANSWER_AT] = at + record[_SIZE]
        if freeze:
            self._records.extend(
                [tuple(r) if r[_LEAVES] is not None or r[_LRSN] else r for r in unfiled]
            )  # the oldest beyond `limit` go
        else:
            self._records.extend(unfiled)
        unfiled.clear()
        self._trim()
        if len(peers) > PEERS_MAX:
            peers.clear()

    def _trim(self) -> None:
        """The oldest go while their datagrams have been written over (records are written
        over oldest first: each one's answer comes after its request in the buffer, and the
        requests come in the records' order)."""
        records = self._records
        oldest = self._datagrams.end - self._datagrams.size
        while records and records[0][_AT] < oldest:
            records.popleft()

    def _kept(self, record: Record) -> bool:
        """Whether a filed record is still kept: not gone as the oldest, nor with a clear."""
        records = self._records
        return bool(records) and record[ID] >= records[0][ID]

    # -- read and cleared by the rig --------------------------------------------------------

    def clear(self) -> None:
        self._file()
        self._records.clear()

    def entry(self, record: Record) -> Entry | None:
        """The entry of a record the watch was told of, or None if its datagrams have been
        written over since."""
        return _entry(self._datagrams, record)

    def entries(self, filters: Filters | None = None) -> Iterator[Entry]:
        """The entries that match, oldest first, from a snapshot of the records: what is
        recorded while the caller iterates is not in it."""
        filters = filters or Filters()
        after = filters.after or 0
        since = None if filters.since is None else filters.since.timestamp()
        left = filters.limit
        self._file()
        datagrams = self._datagrams
        for record in list(self._records):
            if record[ID] <= after or (since is not None and record[_WALL] < since):
                continue
            entry = _entry(datagrams, record)
            if entry is not None and filters.matches(entry):
                yield entry
                if left is not None:
                    left -= 1
                    if not left:
                        return

    def tail(self, count: int) -> Iterator[Entry]:
        """The last `count` entries, oldest first (fewer if some were written over)."""
        self._file()
        datagrams = self._datagrams
        for record in list(self._records)[-count:]:
            entry = _entry(datagrams, record)
            if entry is not None:
                yield entry


async def sliced(entries: Iterator[Entry]) -> AsyncIterator[Entry]:
    """`entries`, handing the loop back every millisecond: a control API read decodes (and
    its caller dumps) thousands of entries on the loop that serves CoAP, and a full journal
    read at once would hold device traffic for a good part of a second. The time spent by
    the caller on each entry counts too. Between slices the GIL is let go for a moment as
    well: the store's thread (aiosqlite), which a CoAP request waits for, asks for the GIL
    only after a switch interval without it changing hands, and a loop that takes it back at
    once after each turn would keep that thread, and the request, waiting for the whole
    read."""
    until = time.monotonic() + SLICE_SECONDS
    for entry in entries:
        yield entry
        if time.monotonic() >= until:
            time.sleep(_PAUSE)  # noqa: ASYNC251 -- the GIL let go, not the loop held
            await asyncio.sleep(0)
            until = time.monotonic() + SLICE_SECONDS


class _Datagrams:
    """The journal's datagrams one after another in one buffer of `size` bytes, the oldest
    written over first. A datagram kept as an object of its own would stay among the
    short-lived objects of thousands of requests that came after it, and the heap they
    share could not give its memory back; the buffer is one mapping, which takes memory
    as it is first written and no more after. Positions count every byte ever written; one
    `size` or more behind the end has been written over."""

    __slots__ = ("size", "end", "_buffer")

    def __init__(self, size: int) -> None:
        self.size = size
        self.end = 0
        self._buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)

    def put(self, data: bytes) -> int:
        """Where `data` now lies (`put_run`)."""
        return self.put_run((data,), len(data))

    def put_run(self, pieces: Sequence[bytes], n: int) -> int:
        """Where `pieces`, `n` bytes together, now lie one after another: after the last
        datagram, or at the buffer's start if they would not fit before its end (a run lies
        in one piece). A run longer than the buffer is kept by none: it reads as written
        over at once."""
        at = self.end
        if n > self.size:
            return at - self.size - 1
        offset = at % self.size
        if offset + n > self.size:
            at += self.size - offset
            offset = 0
        self._buffer[offset : offset + n] = b"".join(pieces)
        self.end = at + n
        return at

    def get(self, at: int, n: int) -> bytes | None:
        if at < self.end - self.size:
            return None
        offset = at % self.size
        return self._buffer[offset : offset + n]


def _format(content_format: Any) -> int | None:
    return None if content_format is None else int(content_format)


def decode_payload(
    payload: bytes, content_format: int | None, block: Any = None
) -> tuple[Any, str | None]:
    """(the payload as a JSON value, None), or (None, its base64) when it does not decode
    as its Content-Format says (JSON when it names none) into a value every reader can
    write back as JSON, or is a piece of a block-wise body (`block`, its Block1 or Block2
    option): a piece may happen to parse ("12" of "123"), but it is not the value sent."""
    if not payload:
        return None, None
    try:
        if block is not None and (block.block_number or block.more):
            raise ValueError("a piece of a block-wise body")
        if content_format in _TEXT_FORMATS:
            return payload.decode("utf-8"), None
        value: Any = _UNDECODED
        if content_format == wire.CBOR:
            stream = io.BytesIO(payload)
            value = cbor2.CBORDecoder(stream).decode()
            if stream.tell() != len(payload):  # data after the first item: not one value
                value = _UNDECODED
        elif content_format in (None, wire.JSON):
            value = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
        if _plain(value):
            return value, None
    except Exception:  # a decoder raises many types for hostile bytes: none may fail a read
        pass
    return None, base64.b64encode(payload).decode("ascii")


_UNDECODED = object()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _plain(value: Any) -> bool:
    """Whether a decoded value is one that JSON has and that the readers write back as
    JSON: no byte strings, tags or non-text keys (CBOR), no infinities (CBOR, and JSON's
    1e999), no integers past Python's digit limit for text, nesting at most `DEPTH_MAX`
    deep (pydantic refuses to dump much deeper ones)."""
    stack = [(value, 1)]
    while stack:
        value, depth = stack.pop()
        if value is None or isinstance(value, (bool, str)):
            continue
        if isinstance(value, int):
            if value.bit_length() > _INT_BITS_MAX:
                return False
        elif isinstance(value, float):
            if not math.isfinite(value):
                return False
        elif isinstance(value, (list, dict)) and depth <= DEPTH_MAX:
            if isinstance(value, dict):
                if not all(isinstance(k, str) for k in value):
                    return False
                value = value.values()
            stack.extend((v, depth + 1) for v in value)
        else:
            return False
    return True


def _number(query: tuple[str, ...], body: Any) -> int | None:
    """The pager number a request names: its `number=` query, else its body's `number`."""
    for item in query:
        name, _, text = item.partition("=")
        if name == "number":
            return digits.integer(text, 0, 10**18)
    if isinstance(body, dict):
        number = body.get("number")
        if type(number) is int:
            return number
    return None


def _peer(address: Any) -> str:
    """host:port of a socket address, an IPv4 peer as such ([host]:port for IPv6)."""
    host, port = address[0], address[1]
    if host.startswith("::ffff:") and "." in host:
        return f"{host[7:]}:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
