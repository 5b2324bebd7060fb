"""Fuzzing machinery shared by `tests/fuzz/test_fuzz.py` (the short proof in the suite) and
`scripts/fuzz.py` (long runs with figures).

Two fuzzers, both aimed at a live emulator over real UDP:

- `blast_datagrams`: mutated and malformed CoAP datagrams built from the seed corpus by a
  seeded `random.Random` (deterministic for a seed): byte-level mutations (bit flips,
  truncation, insertion, deletion, interesting bytes, stray payload markers) and structural
  ones (wrong versions, reserved token lengths, reserved and response codes, message types
  that do not fit, random option numbers and lengths, malformed option headers, huge option
  deltas, odd values for every option the server reads, splices of several seeds, junk).
  They go out from several source sockets, at a bounded rate, never waiting for answers to
  garbage (many get none); every `window` datagrams a valid probe request on its own socket
  must be answered 2.05 before more are sent, which bounds the datagrams in flight and shows
  the server still serving while it is being fuzzed. Every datagram the server sends back is
  decoded and counted by code; observations that fuzzed datagrams start are ended at once.
- `generate_payload_cases` + `fuzz_payloads`: request bodies from Hypothesis strategies
  (`st.recursive` JSON values, near-valid objects with every field of the target, CBOR with
  tags and other exotica, nesting bombs, byte mutations of the corpus bodies, raw bytes), sent
  as Content-Format 50 or 60 (or none) to POST/PUT /v1/sessions, POST /v1/page and POST
  /v1/settings. Every answer is checked: never 5.xx, a success code the target can give or a
  4.xx the spec names, with a JSON error envelope; the creates answered 2.01 are counted.

Both collect `problems` (what must not happen, with the datagram or body that did it) and
figures; `check_service` then checks the server answers a valid sequence correctly, and
`triage_logs` / `TriageHandler` pick out the troubling log records: any error or traceback
is a failure, as is any 5.xx answer (`DatagramReport.server_errors`) but the 5.05 (Proxying
Not Supported) RFC 7252 requires for a request carrying Proxy-Uri or Proxy-Scheme. The
callers assert or print all of it.
"""

import asyncio
import concurrent.futures
import itertools
import json
import logging
import math
import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiocoap
import cbor2
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

from pager.coap.seam import datagrams
from tests.fuzz import corpus

MAX_PROBLEMS = 50  # problems kept with their details; all are counted

# ---- CoAP framing, including what a well-behaved encoder would refuse to write --------------

OPTION_NUMBERS = {
    "if_match": 1,
    "uri_host": 3,
    "etag": 4,
    "if_none_match": 5,
    "observe": 6,
    "uri_port": 7,
    "location_path": 8,
    "oscore": 9,
    "uri_path": 11,
    "content_format": 12,
    "uri_path_abbrev": 13,
    "max_age": 14,
    "uri_query": 15,
    "hop_limit": 16,
    "accept": 17,
    "q_block1": 19,
    "location_query": 20,
    "edhoc": 21,
    "block2": 23,
    "block1": 27,
    "size2": 28,
    "q_block2": 31,
    "proxy_uri": 35,
    "proxy_scheme": 39,
    "size1": 60,
    "echo": 252,
    "no_response": 258,
    "request_tag": 292,
    "request_hash": 548,
}
UINT_OPTIONS = {6, 7, 12, 13, 14, 16, 17, 28, 60, 258}
BLOCK_OPTIONS = {19, 23, 27, 31}
STRING_OPTIONS = {3, 8, 11, 15, 20, 35, 39}
INTERESTING_OPTIONS = sorted(
    set(OPTION_NUMBERS.values())
    | {
        0,
        2,
        10,
        18,
        22,
        24,
        25,
        26,
        29,
        30,
        128,
        132,
        136,
        140,
        2048,
        2049,
        3000,
        65000,
        65001,
        65534,
        65535,
    }
)
INTERESTING_BYTES = (
    b"\x00\x01\x0c\x0d\x0e\x0f\x10\x1f\x20\x3f\x40\x7f\x80\x81\xc0\xd0\xe0\xef\xf0\xfe\xff"
)
QUERY_SAMPLES = [
    b"number=5",
    b"number=",
    b"number",
    b"=5",
    b"number=-1",
    b"number=4096",
    b"number=1e3",
    b"number=0x10",
    b"number=\xd9\xa3",
    b"number=99999999999999999999999999",
    b"limit=0",
    b"limit=1001",
    b"after=-1",
    b"after=",
    b"action=get_sessions",
    b"action=x",
    b"number=5",
    b"\xff\xfe",
    b"a=b=c",
    b"",
]
PATH_SAMPLES = [
    b"v1",
    b"sessions",
    b"history",
    b"statistics",
    b"settings",
    b"page",
    b"notify",
    b".well-known",
    b"core",
    b"",
    b".",
    b"..",
    b"%2e",
    b"v1/sessions",
    b"\x00",
    b"\xc3\x28",
    b"\xed\xa0\x80",
    b"x" * 255,
    b"V1",
]


def _ext(v: int) -> tuple[int, bytes]:
    """The nibble and extension bytes that encode a delta or length `v` (at most 65804)."""
    if v < 13:
        return v, b""
    if v < 269:
        return 13, bytes([v - 13])
    return 14, (v - 269).to_bytes(2, "big")


def option_header(delta: int, length: int) -> bytes:
    dn, dx = _ext(delta)
    ln, lx = _ext(length)
    return bytes([dn << 4 | ln]) + dx + lx


def encode_options(options: list[tuple[int, bytes]]) -> bytes:
    """Options in order of number (a stable sort keeps repeated options in their order).
    Numbers above 65804 (impossible in one delta) are reached with several deltas."""
    out, last = bytearray(), 0
    for number, value in sorted(options, key=lambda o: o[0]):
        delta = number - last
        while delta > 65804:  # a chain of elective options that only carry the number up
            out += option_header(65804, 0)
            last += 65804
            delta -= 65804
        out += option_header(delta, len(value)) + value
        last = number
    return bytes(out)


def header(version: int, mtype: int, tkl: int, code: int, mid: int) -> bytes:
    return bytes(
        [
            (version & 3) << 6 | (mtype & 3) << 4 | (tkl & 15),
            code & 0xFF,
            (mid >> 8) & 0xFF,
            mid & 0xFF,
        ]
    )


@dataclass
class Parts:
    """A datagram taken apart (only ever done to corpus seeds, which are valid)."""

    version: int
    mtype: int
    code: int
    mid: int
    token: bytes
    options: list[tuple[int, bytes]]
    payload: bytes

    def encode(self, tkl: int | None = None, marker: bool | None = None) -> bytes:
        tkl = len(self.token) if tkl is None else tkl
        body = b""
        if marker if marker is not None else bool(self.payload):
            body = b"\xff" + self.payload
        return (
            header(self.version, self.mtype, tkl, self.code, self.mid)
            + self.token
            + encode_options(self.options)
            + body
        )

    def copy(self) -> "Parts":
        return Parts(
            self.version,
            self.mtype,
            self.code,
            self.mid,
            self.token,
            list(self.options),
            self.payload,
        )


def take_apart(datagram: bytes) -> Parts:
    msg = aiocoap.Message.decode(datagram)
    options = [(int(o.number), o.encode()) for o in msg.opt.option_list()]
    return Parts(
        1, int(msg.mtype), int(msg.code), msg.mid, bytes(msg.token), options, bytes(msg.payload)
    )


def code_name(code: int) -> str:
    return f"{code >> 5}.{code & 31:02d}"


# ---- the datagram mutator ----------------------------------------------------------------


class Mutator:
    """Deterministic (for a seed) malformed and mutated datagrams from the corpus seeds."""

    def __init__(self, seeds: list[bytes], rng: random.Random):
        if not seeds:
            raise ValueError("no seed datagrams")
        self.rng = rng
        self.seeds = [take_apart(s) for s in seeds]
        self.structural: list[tuple[str, Callable[[Parts], bytes], int]] = [
            ("as-is", self.s_as_is, 4),
            ("version", self.s_version, 3),
            ("type", self.s_type, 4),
            ("token-length", self.s_token_length, 5),
            ("code", self.s_code, 6),
            ("add-options", self.s_add_options, 12),
            ("option-values", self.s_option_values, 12),
            ("drop-options", self.s_drop_options, 3),
            ("repeat-option", self.s_repeat_option, 4),
            ("bad-option-header", self.s_bad_option_header, 6),
            ("huge-option-delta", self.s_huge_delta, 3),
            ("payload-marker", self.s_payload_marker, 5),
            ("big-payload", self.s_big_payload, 2),
            ("splice", self.s_splice, 4),
            ("junk", self.s_junk, 3),
        ]
        self.bytewise: list[tuple[str, Callable[[bytearray], None], int]] = [
            ("bit-flip", self.b_bit_flip, 6),
            ("truncate", self.b_truncate, 4),
            ("insert", self.b_insert, 4),
            ("delete", self.b_delete, 4),
            ("interesting-byte", self.b_interesting, 4),
            ("duplicate-chunk", self.b_duplicate, 2),
            ("stray-marker", self.b_marker, 2),
        ]
        self._s_weights = [w for _, _, w in self.structural]
        self._b_weights = [w for _, _, w in self.bytewise]

    def datagram(self, mid: int) -> tuple[str, bytes]:
        """One datagram with message id `mid` (before mutation) and a fresh token."""
        r = self.rng
        parts = r.choice(self.seeds).copy()
        parts.mid = mid
        parts.token = r.randbytes(len(parts.token) if r.random() < 0.8 else r.randint(0, 8))
        mode = r.random()
        labels = []
        if mode < 0.65:
            name, fn, _ = r.choices(self.structural, self._s_weights)[0]
            data = fn(parts)
            labels.append(name)
        else:
            data = parts.encode()
        if mode >= 0.45:  # byte-level mutations, alone or on top of a structural one
            buf = bytearray(data)
            for _ in range(r.choice((1, 1, 1, 2, 2, 3, 4))):
                name, fn, _ = r.choices(self.bytewise, self._b_weights)[0]
                fn(buf)
                labels.append(name)
            data = bytes(buf)
        return "+".join(labels), data

    # -- structural mutations (on a seed taken apart) --

    def s_as_is(self, p: Parts) -> bytes:
        return p.encode()

    def s_version(self, p: Parts) -> bytes:
        p.version = self.rng.choice((0, 2, 3))
        return p.encode()

    def s_type(self, p: Parts) -> bytes:
        p.mtype = self.rng.choice((2, 3, 2, 3, 0, 1))  # ACK and RST carrying a request
        return p.encode()

    def s_token_length(self, p: Parts) -> bytes:
        r = self.rng
        tkl = r.randint(9, 15)
        choice = r.random()
        if choice < 0.4:
            p.token = r.randbytes(tkl)  # as long as the reserved length says
        elif choice < 0.7:
            p.token = r.randbytes(r.randint(0, 8))  # the header lies about the length
        else:
            return p.encode(tkl=tkl)[: 4 + r.randint(0, tkl)]  # ends inside the token
        return p.encode(tkl=tkl)

    def s_code(self, p: Parts) -> bytes:
        r = self.rng
        pick = r.random()
        if pick < 0.3:
            p.code = r.randint(5, 31)  # unassigned and extended methods (FETCH, PATCH, iPATCH)
        elif pick < 0.5:
            p.code = (r.choice((1, 6, 7)) << 5) | r.randint(0, 31)  # reserved classes
        elif pick < 0.8:
            p.code = (r.choice((2, 4, 5)) << 5) | r.randint(0, 31)  # a response to the server
        elif pick < 0.9:
            p.code = 0  # empty, but with token, options, payload
        else:
            p.code = r.randint(0, 255)
        return p.encode()

    def _random_option(self) -> tuple[int, bytes]:
        r = self.rng
        number = r.choice(INTERESTING_OPTIONS) if r.random() < 0.75 else r.randint(0, 65535)
        return number, self._value_for(number)

    def _text(self, n: int) -> bytes:
        """`n` random characters as UTF-8, from ASCII to astral planes, controls included."""
        r = self.rng
        top = r.choice((0x7F, 0x7FF, 0xFFFF, 0x10FFFF))
        chars = (r.randint(0, top) for _ in range(n))
        return "".join(chr(c) for c in chars if not 0xD800 <= c <= 0xDFFF).encode()

    def _value_for(self, number: int) -> bytes:
        r = self.rng
        pick = r.random()
        if number in STRING_OPTIONS and pick < 0.9:
            # Valid UTF-8 mostly, so that the request gets past decoding to the resources;
            # bytes that are not UTF-8 (to be dropped quietly) are tried now and then.
            if number == 15 and pick < 0.5:
                return r.choice(QUERY_SAMPLES)
            if pick < 0.3:
                return r.choice(PATH_SAMPLES)
            return self._text(r.choice((0, 1, 2, 5, 12, 13, 40, 100, 270)))
        if pick < 0.15:  # any bytes of any length, extended lengths included
            return r.randbytes(r.choice((0, 1, 4, 12, 13, 14, 100, 268, 269, 270, 400)))
        if number in UINT_OPTIONS:
            return r.choice(
                (
                    b"",
                    b"\x00",
                    bytes([r.randint(0, 255)]),
                    b"\x00\x32",
                    b"\x00\x3c",
                    r.randbytes(2),
                    r.randbytes(3),
                    r.randbytes(4),
                    b"\xff" * 4,
                    r.randbytes(r.randint(5, 9)),
                )
            )
        if number in BLOCK_OPTIONS:
            num = r.choice((0, 1, 2, 15, 16, 4095, 1 << 19))
            more, szx = r.randint(0, 1), r.randint(0, 7)
            value = num << 4 | more << 3 | szx
            raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
            return r.choice((raw, raw, b"", r.randbytes(4), b"\xff\xff\xff", raw.rjust(3, b"\x00")))
        if number in STRING_OPTIONS:
            return r.randbytes(r.randint(1, 40))
        return r.randbytes(r.choice((0, 1, 2, 4, 8, 9, 32, 41)))

    def s_add_options(self, p: Parts) -> bytes:
        for _ in range(self.rng.randint(1, 4)):
            p.options.append(self._random_option())
        return p.encode()

    def s_option_values(self, p: Parts) -> bytes:
        r = self.rng
        if not p.options:
            p.options.append(self._random_option())
        for _ in range(r.randint(1, 2)):
            i = r.randrange(len(p.options))
            number = p.options[i][0]
            p.options[i] = (number, self._value_for(number))
        return p.encode()

    def s_drop_options(self, p: Parts) -> bytes:
        r = self.rng
        if p.options:
            for _ in range(r.randint(1, len(p.options))):
                p.options.pop(r.randrange(len(p.options)))
                if not p.options:
                    break
        return p.encode()

    def s_repeat_option(self, p: Parts) -> bytes:
        r = self.rng
        number = r.choice([o[0] for o in p.options] + [6, 12, 17, 23, 27, 60])
        for _ in range(r.randint(1, 3)):
            p.options.append((number, self._value_for(number)))
        return p.encode()

    def s_bad_option_header(self, p: Parts) -> bytes:
        """An option header RFC 7252 §3.1 calls a message format error, among good ones."""
        r = self.rng
        good = encode_options(p.options)
        cut = r.randint(0, len(good))
        pick = r.randrange(6)
        if pick == 0:
            bad = bytes([0xF0 | r.randint(0, 14)])  # delta nibble 15 without the marker
        elif pick == 1:
            bad = bytes([r.randint(0, 14) << 4 | 0x0F])  # length nibble 15
        elif pick == 2:
            bad = bytes([0xD0 | r.randint(0, 12)])  # 1-byte extended delta missing
        elif pick == 3:
            bad = bytes([0xE0 | r.randint(0, 12), 0xFF])  # 2-byte extended delta cut short
        elif pick == 4:
            bad = option_header(r.randint(0, 30), r.randint(20, 65804))  # longer than the rest
        else:
            bad = bytes([0xEE, 0xFF, 0xFF, 0xFF, 0xFF])  # largest delta, largest length
        rest = good[cut:] + (b"\xff" + p.payload if p.payload and r.random() < 0.7 else b"")
        return (
            header(p.version, p.mtype, len(p.token), p.code, p.mid)
            + p.token
            + good[:cut]
            + bad
            + rest
        )

    def s_huge_delta(self, p: Parts) -> bytes:
        r = self.rng
        base = max((o[0] for o in p.options), default=0)
        number = base + r.choice((65535, 65804, 65805, 100000, 131070, 200000, 1 << 20))
        p.options.append((number, r.randbytes(r.randint(0, 4))))
        if r.random() < 0.5:
            p.options.append((65535, b""))
        return p.encode()

    def s_payload_marker(self, p: Parts) -> bytes:
        r = self.rng
        pick = r.randrange(4)
        if pick == 0:
            p.payload = b""
            return p.encode(marker=True)  # a marker with nothing after it
        if pick == 1:
            p.payload = b"\xff" * r.randint(1, 8) + p.payload
            return p.encode()
        if pick == 2:
            return p.encode(marker=False) + b"\xff" + r.randbytes(r.randint(0, 30))
        p.options.insert(0, (0, b""))  # then a marker instead of the options
        return (
            header(p.version, p.mtype, len(p.token), p.code, p.mid)
            + p.token
            + b"\xff"
            + encode_options(p.options)
            + p.payload
        )

    def s_big_payload(self, p: Parts) -> bytes:
        r = self.rng
        size = r.choice((1023, 1024, 1025, 1100, 1180))
        p.payload = (p.payload + r.randbytes(size))[:size]
        return p.encode()

    def s_splice(self, p: Parts) -> bytes:
        r = self.rng
        a, b = r.choice(self.seeds), r.choice(self.seeds)
        p.options = [o for o in p.options if r.random() < 0.5] + [
            o for o in a.options if r.random() < 0.5
        ]
        p.payload = b.payload if r.random() < 0.7 else p.payload + b.payload
        return p.encode()

    def s_junk(self, p: Parts) -> bytes:
        r = self.rng
        n = r.choice((0, 1, 2, 3, 4, 5, 8, 16, 40, 200))
        data = bytearray(r.randbytes(n))
        if n >= 1 and r.random() < 0.6:
            data[0] = 0x40 | (data[0] & 0x3F)  # version 1, so it gets past the first check
        return bytes(data)

    # -- byte-level mutations (in place) --

    def b_bit_flip(self, buf: bytearray) -> None:
        if buf:
            for _ in range(self.rng.choice((1, 1, 2, 3, 8))):
                i = self.rng.randrange(len(buf) * 8)
                buf[i // 8] ^= 1 << (i % 8)

    def b_truncate(self, buf: bytearray) -> None:
        if buf:
            del buf[self.rng.randrange(len(buf)) :]

    def b_insert(self, buf: bytearray) -> None:
        r = self.rng
        i = r.randint(0, len(buf))
        buf[i:i] = r.randbytes(r.choice((1, 1, 2, 4, 16)))

    def b_delete(self, buf: bytearray) -> None:
        if buf:
            i = self.rng.randrange(len(buf))
            del buf[i : i + self.rng.choice((1, 1, 2, 4, 8))]

    def b_interesting(self, buf: bytearray) -> None:
        if buf:
            buf[self.rng.randrange(len(buf))] = self.rng.choice(INTERESTING_BYTES)

    def b_duplicate(self, buf: bytearray) -> None:
        if buf:
            i = self.rng.randrange(len(buf))
            j = min(len(buf), i + self.rng.randint(1, 16))
            buf[j:j] = buf[i:j]

    def b_marker(self, buf: bytearray) -> None:
        buf.insert(self.rng.randint(0, len(buf)), 0xFF)


# ---- log triage: any error or traceback is a failure ------------------------------------


def is_trouble(record: logging.LogRecord) -> bool:
    """An error, or an exception or traceback at any level."""
    return (
        record.levelno >= logging.ERROR
        or bool(record.exc_info)
        or "Traceback" in record.getMessage()
    )


def triage_logs(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The troubling records among `records`."""
    return [r for r in records if is_trouble(r)]


class TriageHandler(logging.Handler):
    """For scripts: counts records at WARNING and above by logger and level, and the
    troubling ones as they come (the first 20 kept), so that long runs do not hold every
    record."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter = Counter()
        self.troubles: list[logging.LogRecord] = []
        self.trouble_count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name} {record.levelname}"] += 1
        if is_trouble(record):
            self.trouble_count += 1
            if len(self.troubles) < 20:
                self.troubles.append(record)


# ---- receiving: every datagram the server sends is decoded and counted ------------------


def describe(data: bytes) -> str:
    """A label for an answer: its code, or RST/ACK/CON for empty messages."""
    if len(data) < 4:
        return "undecodable"
    mtype, code = (data[0] >> 4) & 3, data[1]
    if code == 0:
        return ("CON", "NON", "ACK", "RST")[mtype] + " (empty)"
    return code_name(code)


@dataclass
class Problem:
    what: str
    detail: str
    datagram: bytes | None = None

    def __str__(self) -> str:
        dg = f"\n    datagram: {self.datagram.hex()}" if self.datagram is not None else ""
        return f"{self.what}: {self.detail}{dg}"


@dataclass
class Problems:
    items: list[Problem] = field(default_factory=list)
    count: int = 0

    def add(self, what: str, detail: str, datagram: bytes | None = None) -> None:
        self.count += 1
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(Problem(what, detail, datagram))

    def __bool__(self) -> bool:
        return self.count > 0

    def report(self) -> str:
        left = self.count - len(self.items)
        more = f"\n... and {left} more" if left else ""
        return "\n".join(f"- {p}" for p in self.items) + more


class Sink(asyncio.DatagramProtocol):
    """One fuzzing source socket: remembers what it sent (to name the culprit of a bad answer)
    and decodes and counts what comes back. Confirmable messages from the server are
    acknowledged, and notifications are answered with RST, which ends the observation."""

    SENT_MEMORY = 5_000  # per socket; answers come within a probe window, far fewer datagrams

    def __init__(self, report: "DatagramReport"):
        self.report = report
        self.answers = report.answers
        self.problems = report.problems
        self.transport: asyncio.DatagramTransport | None = None
        self.by_mid: dict[int, bytes] = {}
        self.by_token: dict[bytes, bytes] = {}
        self.seen_5xx: set = set()
        self.send_errors = 0
        self.mid = 0  # for its own requests; blast_datagrams sets it apart from the fuzzed ids

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, data: bytes) -> None:
        if len(data) >= 4:
            self._remember(self.by_mid, int.from_bytes(data[2:4], "big"), data)
            tkl = data[0] & 15
            if tkl <= 8 and len(data) >= 4 + tkl:
                self._remember(self.by_token, data[4 : 4 + tkl], data)
        self.transport.sendto(data)

    def _remember(self, table: dict, key, data: bytes) -> None:
        table.pop(key, None)  # to the end: the table is kept in order of sending
        table[key] = data
        if len(table) > self.SENT_MEMORY:
            del table[next(iter(table))]

    def _proxy_refusal(self, msg: aiocoap.Message) -> bool:
        """5.05 to a request that asked this server to be a proxy is what RFC 7252 §5.7.1
        requires: the one 5.xx a request may get."""
        if msg.code != aiocoap.numbers.codes.Code.PROXYING_NOT_SUPPORTED:
            return False
        culprit = self.culprit(msg)
        if culprit is None:
            return False
        try:  # read as the server reads it: options out of their length range left out
            request = aiocoap.Message.decode(datagrams.admit(culprit)[0])
        except Exception:
            return False
        return request.opt.proxy_uri is not None or request.opt.proxy_scheme is not None

    def culprit(self, msg: aiocoap.Message) -> bytes | None:
        """The datagram an answer answers: by token (random, so nearly unique), checked
        against the message id for a piggybacked answer; else by message id."""
        sent = self.by_token.get(bytes(msg.token))
        if msg.mtype in (Type.ACK, Type.RST):
            if sent is not None and int.from_bytes(sent[2:4], "big") == msg.mid:
                return sent
            return self.by_mid.get(msg.mid)
        return sent

    def datagram_received(self, data: bytes, addr) -> None:
        label = describe(data)
        self.answers[label] += 1
        try:
            msg = aiocoap.Message.decode(data)
        except Exception as e:  # the server must only ever send well-formed CoAP
            self.problems.add("server sent an undecodable datagram", f"{e!r}: {data.hex()}")
            return
        if msg.code.is_response() and msg.code.class_ == 5 and not self._proxy_refusal(msg):
            # The same answer again is the server's deduplication cache answering a datagram
            # that reused the message id (or a retransmission): one error, counted once.
            key = (int(msg.mtype), msg.mid, bytes(msg.token))
            if key not in self.seen_5xx:
                self.seen_5xx.add(key)
                self.report.server_errors.append(
                    ServerError(label, bytes(msg.payload), self.culprit(msg))
                )
        if msg.mtype == Type.CON:
            kind = Type.RST if msg.opt.observe is not None else Type.ACK
            self.transport.sendto(header(1, kind, 0, 0, msg.mid))
        elif msg.opt.observe is not None and msg.code.is_response():
            self.deregister(bytes(msg.token))

    def deregister(self, token: bytes) -> None:
        """End an observation a fuzzed datagram started, at once: a request with its token
        replaces it (RFC 7641 §3.6: GET with Observe 1). Left alone, each would get a
        notification for every change; the server sends one Confirmable message at a time
        per peer, so with a hundred of them on one socket the queue grows faster than it
        drains and the run measures that queue, not the fuzzing."""
        self.report.deregistrations += 1
        self.mid = (self.mid + 1) & 0xFFFF
        self.transport.sendto(
            header(1, Type.CON, len(token), 1, self.mid)
            + token
            + encode_options([(6, b"\x01"), (11, b"v1"), (11, b"notify")])
        )

    def error_received(self, exc) -> None:
        self.send_errors += 1


# ---- a small CoAP client over a raw socket -----------------------------------------------


@dataclass
class Answer:
    code: str
    payload: bytes
    message: aiocoap.Message

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class RawClient(asyncio.DatagramProtocol):
    """Confirmable requests over one UDP socket, matched by token, retransmitted on loss."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[bytes, asyncio.Future] = {}
        self.mid = random.Random(0).randrange(1 << 16)
        self.token = 0
        self.retransmissions = 0

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> "RawClient":
        _, client = await asyncio.get_running_loop().create_datagram_endpoint(
            cls, remote_addr=(host, port)
        )
        return client

    def close(self) -> None:
        self.transport.close()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            msg = aiocoap.Message.decode(data)
        except Exception:
            return
        if msg.mtype == Type.CON:
            self.transport.sendto(header(1, Type.ACK, 0, 0, msg.mid))
        if msg.code.is_response():
            fut = self.pending.pop(bytes(msg.token), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    async def request(
        self,
        method: str,
        path: str,
        query: tuple[str, ...] = (),
        payload: bytes = b"",
        content_format: int | None = None,
        accept: int | None = None,
        timeout: float = 30.0,
    ) -> Answer:
        """One request; a GET answered block-wise (Block2) is fetched whole."""
        reply = await self._exchange(
            method, path, query, payload, content_format, accept, None, timeout
        )
        body = bytes(reply.payload)
        while method == "GET" and reply.opt.block2 is not None and reply.opt.block2.more:
            b2 = reply.opt.block2
            reply = await self._exchange(
                method,
                path,
                query,
                payload,
                content_format,
                accept,
                (b2.block_number + 1, False, b2.size_exponent),
                timeout,
            )
            body += bytes(reply.payload)
        return Answer(reply.code.dotted, body, reply)

    async def _exchange(
        self, method, path, query, payload, content_format, accept, block2, timeout
    ) -> aiocoap.Message:
        self.mid = (self.mid + 1) & 0xFFFF
        self.token += 1
        token = self.token.to_bytes(4, "big")
        msg = aiocoap.Message(
            code=getattr(aiocoap, method),
            payload=payload,
            uri_path=tuple(path.strip("/").split("/")),
            uri_query=query,
        )
        msg.mtype, msg.mid, msg.token = Type.CON, self.mid, token
        if content_format is not None:
            msg.opt.content_format = content_format
        if accept is not None:
            msg.opt.accept = accept
        if block2 is not None:
            msg.opt.block2 = BlockOption.BlockwiseTuple(*block2)
        datagram = msg.encode()
        fut = asyncio.get_running_loop().create_future()
        self.pending[token] = fut
        deadline = time.monotonic() + timeout
        wait = 2.0
        try:
            while True:
                self.transport.sendto(datagram)
                try:
                    return await asyncio.wait_for(
                        asyncio.shield(fut), min(wait, max(0.01, deadline - time.monotonic()))
                    )
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(
                            f"no answer to {method} {path} in {timeout} s; request {datagram.hex()}"
                        ) from None
                    self.retransmissions += 1
                    wait *= 2
        finally:
            self.pending.pop(token, None)


# ---- the datagram fuzzer -----------------------------------------------------------------


def udp_drops(ports: set[int]) -> int:
    """Datagrams the kernel dropped on our sockets (full receive buffers), /proc/net/udp*."""
    total = 0
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) in ports:
                total += int(cols[-1])
    return total


@dataclass
class ServerError:
    """A 5.xx answer to a fuzzed datagram and the datagram that (most likely) caused it."""

    code: str
    payload: bytes
    culprit: bytes | None

    def __str__(self) -> str:
        dg = self.culprit.hex() if self.culprit is not None else "(not identified)"
        return f"{self.code} {self.payload[:100]!r} to {dg}"


@dataclass
class DatagramReport:
    sent: int = 0
    bytes_sent: int = 0
    answers: Counter = field(default_factory=Counter)
    mutations: Counter = field(default_factory=Counter)
    problems: Problems = field(default_factory=Problems)
    server_errors: list[ServerError] = field(default_factory=list)
    probes: int = 0
    deregistrations: int = 0  # observations the fuzzing started, ended by the sockets
    probe_max_latency: float = 0.0
    kernel_drops: int = 0
    send_errors: int = 0
    duration: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.answers.values())


async def probe(client: RawClient, report: DatagramReport, timeout: float) -> None:
    """A valid request the server must answer correctly between bursts of garbage."""
    t0 = time.monotonic()
    try:
        answer = await client.request("GET", "/v1/sessions/statistics", timeout=timeout)
    except TimeoutError as e:
        report.problems.add("the server stopped answering a valid request", str(e))
        raise
    report.probes += 1
    report.probe_max_latency = max(report.probe_max_latency, time.monotonic() - t0)
    try:
        ok = answer.code == "2.05" and answer.json["responseTypes"] == ["statistics"]
    except ValueError:
        ok = False
    if not ok:
        report.problems.add(
            "wrong answer to a valid probe", f"{answer.code} {answer.payload[:200]!r}"
        )


async def blast_datagrams(
    port: int,
    count: int,
    seed: int,
    *,
    rate: float = 5000.0,
    window: int = 100,
    sockets: int = 8,
    host: str = "127.0.0.1",
    progress: Callable[[DatagramReport], None] | None = None,
    seeds: list[bytes] | None = None,
) -> DatagramReport:
    """Send `count` mutated datagrams to the server; see the module docstring."""
    loop = asyncio.get_running_loop()
    report = DatagramReport()
    rng = random.Random(seed)
    mutator = Mutator(list(corpus.load_datagrams().values()) if seeds is None else seeds, rng)
    sinks: list[Sink] = []
    for _ in range(sockets):
        _, sink = await loop.create_datagram_endpoint(
            lambda: Sink(report), remote_addr=(host, port)
        )
        sinks.append(sink)
    prober = await RawClient.open(port, host)
    ports = {port, prober.transport.get_extra_info("sockname")[1]}
    ports |= {s.transport.get_extra_info("sockname")[1] for s in sinks}
    drops_before = udp_drops(ports)
    mids = [rng.randrange(1 << 16) for _ in sinks]
    for sink, mid in zip(sinks, mids):
        sink.mid = (mid + 0x8000) & 0xFFFF  # its own requests, far from the fuzzed ids
    t0 = time.monotonic()
    try:
        for i in range(count):
            k = i % sockets
            mids[k] = (mids[k] + 1) & 0xFFFF
            label, data = mutator.datagram(mids[k])
            sinks[k].send(data)
            report.sent += 1
            report.bytes_sent += len(data)
            report.mutations[label.split("+", 1)[0]] += 1
            if (i + 1) % 20 == 0:  # the rate bound (and a turn for the server)
                await asyncio.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
            if (i + 1) % window == 0:  # the in-flight bound: the server has caught up
                await probe(prober, report, timeout=30.0)
                if progress is not None and (i + 1) % (window * 100) == 0:
                    progress(report)
        await probe(prober, report, timeout=30.0)
        await asyncio.sleep(0.5)  # late answers (separate responses, notifications)
    finally:
        report.duration = time.monotonic() - t0
        report.kernel_drops = udp_drops(ports) - drops_before
        report.send_errors = sum(s.send_errors for s in sinks)
        for s in sinks:
            s.transport.close()
        prober.close()
    return report


# ---- the payload fuzzer ------------------------------------------------------------------


@dataclass
class PayloadCase:
    target: str  # a corpus.TARGETS name
    kind: str  # which generator made the body
    payload: bytes
    content_format: int | None
    query: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return "PUT" if self.target == "sessions-put" else "POST"

    @property
    def path(self) -> str:
        return {
            "sessions-post": "/v1/sessions",
            "sessions-put": "/v1/sessions",
            "page": "/v1/page",
            "settings": "/v1/settings",
        }[self.target]

    def __str__(self) -> str:
        q = "?" + "&".join(self.query) if self.query else ""
        return (
            f"{self.method} {self.path}{q} Content-Format {self.content_format} "
            f"[{self.kind}] payload {self.payload!r}"
        )


SUCCESS = {
    "sessions-post": {"2.01", "2.00"},
    "sessions-put": {"2.04"},
    "page": {"2.04"},
    "settings": {"2.04"},
}
REFUSALS = {
    "sessions-post": {"4.00", "4.04", "4.13"},
    "sessions-put": {"4.00", "4.04", "4.13"},
    "page": {"4.00", "4.13"},
    "settings": {"4.00", "4.13"},
}


def _strategies(bodies: dict[str, list[tuple[int, bytes]]]):
    """The Hypothesis strategy of `PayloadCase`s, one per target, built lazily."""
    from hypothesis import strategies as st

    from pager.domain.pagemodes import ALERT_SECONDS

    edge_ints = st.sampled_from(
        [
            -1,
            0,
            1,
            5,
            12,
            64,
            65,
            240,
            241,
            255,
            256,
            999,
            1000,
            4095,
            4096,
            86400,
            86401,
            2**31 - 1,
            2**31,
            2**53 + 1,
            2**63 - 1,
            2**63,
            2**64,
            -(2**63) - 1,
            10**30,
            -(10**30),
        ]
    )
    floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
        [0.0, -0.0, 1.0, 5.0, 1e308, 5e-324, 66.5]
    )
    scalars = st.none() | st.booleans() | st.integers() | edge_ints | floats | st.text(max_size=30)
    json_values = st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=12,
    )
    texts = (
        st.text(max_size=70)
        | st.text(st.characters(codec="utf-8"), max_size=70)
        | st.sampled_from(
            [
                "",
                " ",
                "\x00",
                "\f",
                "\fF30Vv5",
                "\f#",
                "\f\f",
                "\fF" + "9" * 200,
                "x" * 64,
                "x" * 65,
                "m" * 240,
                "m" * 241,
                "\u202e",
                "\U0001f600" * 64,
                "null",
            ]
        )
    )
    number = st.one_of(st.integers(0, 40), st.integers(0, 40), st.integers(0, 4095), edge_ints)
    modes = st.sampled_from(sorted(ALERT_SECONDS)) | st.sampled_from(
        ["flash30sec", "Flash30Sec ", "", "Vibe4"]
    )
    dt_text = st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat()) | st.sampled_from(
        [
            "9999-12-31T23:59:59",
            "9999-12-31T00:00:00",
            "0001-01-01T00:00:00",
            "2099-12-31T23:59:59",
            "2100-01-01T00:00:00",
            "1999-12-31T23:59:59",
            "2000-01-01T00:00:00",
            "2026-03-15T11:55:20",
            "2026-02-30T12:00:00",
            "2026-03-15 12:00:00",
            "2026-03-15T12:00:00Z",
            "2026-03-15T24:00:00",
            "2026-03-15T12:00:00.5",
            "0000-01-01T00:00:00",
            "2026-03-15T12:00",
            "",
            "１２３４-01-01T00:00:00",
            "2026-03-15T12:00:00+01:00",
        ]
    )

    def field_of(valid):
        return st.one_of(valid, valid, valid, valid, valid, json_values)

    fields = {
        "number": field_of(number),
        "goal": field_of(st.integers(0, 86400) | edge_ints),
        "label": field_of(st.none() | texts),
        "partySize": field_of(st.integers(1, 999) | edge_ints),
        "action": field_of(st.sampled_from(["page", "clear", "remove"] * 3 + ["Page", ""])),
        "pageMode": field_of(modes),
        "message": field_of(texts),
        "systemId": field_of(st.integers(0, 255) | edge_ints),
        "datetime": field_of(dt_text),
        "defaultTargetGoal": field_of(st.integers(0, 86400) | edge_ints),
        "statisticsClearMark": field_of(st.integers(0, 24) | edge_ints),
    }
    names = {
        "sessions-post": ("number", "goal", "label", "partySize", "action", "pageMode", "message"),
        "sessions-put": ("number", "goal", "label", "partySize", "action", "pageMode", "message"),
        "page": ("number", "pageMode", "message", "systemId"),
        "settings": ("datetime", "systemId", "defaultTargetGoal", "statisticsClearMark"),
    }

    def objects(target: str):
        required = {"number": fields["number"]} if target in ("sessions-post", "page") else {}
        optional = {n: fields[n] for n in names[target] if n not in required}
        valid_shape = st.fixed_dictionaries(required, optional=optional)
        sloppy = st.fixed_dictionaries({}, optional={n: fields[n] for n in names[target]})
        extra = st.dictionaries(st.text(max_size=12), json_values, max_size=3)
        return st.one_of(
            valid_shape,
            valid_shape,
            sloppy,
            st.tuples(valid_shape, extra).map(lambda t: {**t[1], **t[0]}),
        )

    cbor_exotic = st.recursive(
        scalars
        | st.binary(max_size=20)
        | st.just(cbor2.undefined)
        | st.builds(cbor2.CBORSimpleValue, st.integers(0, 19) | st.integers(32, 255))
        | st.builds(
            cbor2.CBORTag,
            st.sampled_from(
                [
                    0,
                    1,
                    2,
                    3,
                    4,
                    5,
                    24,
                    25,
                    28,
                    29,
                    30,
                    35,
                    36,
                    37,
                    256,
                    258,
                    260,
                    261,
                    55799,
                    2**64 - 1,
                ]
            ),
            scalars | st.binary(max_size=16) | st.lists(st.integers(), max_size=3),
        ),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.text(max_size=8) | st.integers() | st.binary(max_size=4), c, max_size=4
            )
        ),
        max_leaves=10,
    )

    def dumps_json(value, spaced=False) -> bytes:
        if spaced:
            return json.dumps(value, indent="\t", ensure_ascii=False).encode("utf-8", "replace")
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "replace"
        )

    def safe_cbor(value) -> bytes:
        try:
            return cbor2.dumps(value)
        except Exception:
            return cbor2.dumps(repr(value))

    def mutate(args) -> bytes:
        data, edits = args
        buf = bytearray(data)
        for pos, op, chunk in edits:
            i = pos % (len(buf) + 1)
            if op == 0:
                buf[i : i + len(chunk)] = chunk
            elif op == 1:
                buf[i:i] = chunk
            else:
                del buf[i : i + 1 + len(chunk)]
        return bytes(buf)

    def bomb(args) -> tuple[bytes, int]:
        kind, depth = args
        if kind == 0:
            return b"[" * depth + b"]" * depth, 50
        if kind == 1:
            return b'{"number":' * depth + b"1" + b"}" * depth, 50
        if kind == 2:
            return b"\x81" * depth + b"\x00", 60
        if kind == 3:
            return b"\xa1\x66number" * depth + b"\x01", 60
        if kind == 4:
            return b"\x9f" * depth + b"\xff" * depth, 60  # indefinite-length arrays
        return b'{"label":"' + b"\\u0000" * depth + b'"}', 50

    raw_json = st.sampled_from(
        [
            b'{"number":1e400}',
            b'{"number":-0}',
            b'{"number":1.0}',
            b'{"number":NaN}',
            b'{"number":Infinity}',
            b'{"number":0x10}',
            b'{"number":01}',
            b'{"number":+1}',
            b'{"label":"\\ud800"}',
            b'{"label":"\\udc00\\ud800"}',
            b'{"message":"\\u000c\\u0000"}',
            b'{"number":5,"number":6}',
            b'{"number":5}\x00',
            b'\xef\xbb\xbf{"number":5}',
            b'{"number":5,}',
            b"{'number':5}",
            b'{"number":5',
            b"",
            b" ",
            b"null",
            b"[]",
            b"{}",
            b'{"\\u0000":1}',
            b'{"number":' + b"9" * 1000 + b"}",
            b'{"number":5}' + b" " * 1100,
            b'{"datetime":"9999-99-99T99:99:99"}',
            b'{"systemId":256}',
            b'{"number":4096}',
        ]
    )

    def cases(target: str):
        """(kind, payload, Content-Format); repeated branches weigh more: valid-looking
        objects most, so that many requests get through to the engine and change state."""
        corpus_bodies = bodies.get(target) or [(50, b"{}")]
        obj = objects(target)
        json_obj = st.tuples(
            st.just("object-json"), obj.map(dumps_json), st.sampled_from([50, 50, 50, None])
        )
        cbor_obj = st.tuples(st.just("object-cbor"), obj.map(safe_cbor), st.just(60))
        swapped = st.one_of(
            st.tuples(st.just("format-swapped"), obj.map(dumps_json), st.just(60)),
            st.tuples(st.just("format-swapped"), obj.map(safe_cbor), st.sampled_from([50, None])),
        )
        mutated = st.tuples(
            st.just("corpus-mutated"),
            st.sampled_from(corpus_bodies).flatmap(
                lambda b: st.tuples(
                    st.just(b[0]),
                    st.tuples(
                        st.just(b[1]),
                        st.lists(
                            st.tuples(
                                st.integers(0, 200),
                                st.integers(0, 2),
                                st.binary(min_size=1, max_size=4),
                            ),
                            min_size=1,
                            max_size=4,
                        ),
                    ).map(mutate),
                )
            ),
        ).map(lambda t: (t[0], t[1][1], t[1][0]))
        weighted = [
            (json_obj, 30),
            (cbor_obj, 12),
            (mutated, 10),
            (swapped, 6),
            (
                st.tuples(
                    st.just("object-json-whitespace"),
                    obj.map(lambda v: dumps_json(v, spaced=True)),
                    st.just(50),
                ),
                5,
            ),
            (st.tuples(st.just("value-json"), json_values.map(dumps_json), st.just(50)), 6),
            (st.tuples(st.just("value-cbor"), json_values.map(safe_cbor), st.just(60)), 5),
            (st.tuples(st.just("cbor-exotic"), cbor_exotic.map(safe_cbor), st.just(60)), 8),
            (
                st.tuples(
                    st.just("raw-bytes"), st.binary(max_size=1100), st.sampled_from([50, 60, None])
                ),
                6,
            ),
            (st.tuples(st.just("raw-json"), raw_json, st.sampled_from([50, None])), 6),
            (
                st.tuples(
                    st.just("nesting-bomb"),
                    st.tuples(st.integers(0, 5), st.integers(1, 150)).map(bomb),
                ).map(lambda t: (t[0], t[1][0], t[1][1])),
                6,
            ),
        ]
        table = [strategy for strategy, weight in weighted for _ in range(weight)]
        return st.integers(0, len(table) - 1).flatmap(table.__getitem__)

    def queries():
        return st.one_of(
            st.integers(0, 40).map(lambda n: (f"number={n}",)),
            st.integers(0, 40).map(lambda n: (f"number={n}",)),
            st.sampled_from(
                [
                    (),
                    ("number=",),
                    ("number=-1",),
                    ("number=4096",),
                    ("number=5", "number=5"),
                    ("number=5", "x=1"),
                    ("number=1e3",),
                    ("number",),
                ]
            ),
        )

    out = {}
    for target in corpus.TARGETS:
        base = cases(target)
        if target == "sessions-put":
            out[target] = st.tuples(base, queries()).map(
                lambda t, target=target: PayloadCase(target, t[0][0], t[0][1], t[0][2], t[1])
            )
        else:
            out[target] = base.map(lambda t, target=target: PayloadCase(target, t[0], t[1], t[2]))
    return out


def payload_cases(
    target: str, count: int, seed: int | None = None, batch: int = 10
) -> list[PayloadCase]:
    """`count` cases for `target`, drawn by Hypothesis: with `derandomize` (the same cases on
    every run) when `seed` is None, else from that seed. Each example is a list of `batch`
    cases, which halves Hypothesis's cost per case."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    strategy = _strategies(corpus.load_bodies())[target]
    drawn: list[PayloadCase] = []

    @settings(
        max_examples=max(1, -(-count // batch)),
        derandomize=seed is None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.lists(strategy, min_size=batch, max_size=batch))
    def collect(cases: list[PayloadCase]) -> None:
        drawn.extend(cases)

    if seed is not None:
        collect = hypothesis_seed(seed)(collect)
    collect()
    if len(drawn) < count:
        raise RuntimeError(f"Hypothesis drew {len(drawn)} cases for {target}, not {count}")
    return drawn[:count]


@dataclass
class PayloadReport:
    sent: int = 0
    answers: Counter = field(default_factory=Counter)  # "target code"
    kinds: Counter = field(default_factory=Counter)
    created: int = 0  # 2.01 answers: sessions the fuzzing created
    problems: Problems = field(default_factory=Problems)
    duration: float = 0.0


def check_answer(case: PayloadCase, answer: Answer, report: PayloadReport) -> None:
    report.answers[f"{case.method} {case.path} {answer.code}"] += 1
    if answer.code not in SUCCESS[case.target] | REFUSALS[case.target]:
        report.problems.add(
            f"answered {answer.code}", f"{case}\n    answer {answer.payload[:300]!r}"
        )
        return
    if answer.code == "2.01":
        report.created += 1
    if answer.message.opt.block2 is not None and answer.message.opt.block2.more:
        return  # a long answer (control characters escaped six-fold); its first block only
    try:
        body = json.loads(answer.payload)
        types, error = body["responseTypes"], body.get("error")
        if answer.code.startswith("4."):
            ok = (
                types == ["error"]
                and error["code"] == answer.code
                and isinstance(error["message"], str)
                and error["message"] != ""
            )
        else:
            ok = bool(types) and "error" not in types and error is None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        ok = False
    if not ok:
        report.problems.add(
            f"malformed {answer.code} answer", f"{case}\n    answer {answer.payload[:300]!r}"
        )


async def send_payloads(
    clients: list[RawClient], cases: list[PayloadCase], report: PayloadReport, concurrency: int = 8
) -> None:
    """Send the cases with at most `concurrency` in flight; check every answer."""
    queue = iter(cases)
    t0 = time.monotonic()

    async def worker(client: RawClient) -> None:
        for case in queue:
            report.sent += 1
            report.kinds[case.kind] += 1
            try:
                answer = await client.request(
                    case.method, case.path, case.query, case.payload, case.content_format
                )
            except TimeoutError as e:
                report.problems.add("no answer", f"{case}: {e}")
                continue
            check_answer(case, answer, report)

    await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency)))
    report.duration += time.monotonic() - t0


def share_out(count: int) -> dict[str, int]:
    """How many of `count` payload cases go to each target: a fifth to settings, the rest
    two parts create/update (POST /v1/sessions), two parts PUT, one part page."""
    n_settings = count // 5
    rest = count - n_settings
    share = {"settings": n_settings, "sessions-post": rest * 2 // 5, "sessions-put": rest * 2 // 5}
    share["page"] = rest - share["sessions-post"] - share["sessions-put"]
    return share


def generate_payload_cases(count: int, seed: int | None = None) -> dict[str, list[PayloadCase]]:
    return {t: payload_cases(t, n, seed) for t, n in share_out(count).items()}


def generate_in_background(count: int, seed: int | None = None) -> concurrent.futures.Future:
    """`generate_payload_cases` in a fresh process (Hypothesis takes ~2.5 ms a case, time
    better spent on the machine's other core while the datagram fuzzer runs)."""
    pool = concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    )
    future = pool.submit(generate_payload_cases, count, seed)
    pool.shutdown(wait=False)
    return future


async def fuzz_payloads(
    port: int, cases: dict[str, list[PayloadCase]], *, host: str = "127.0.0.1", concurrency: int = 8
) -> PayloadReport:
    """The whole payload fuzz: the settings cases first, then the statistics cleared and the
    daily clear switched off (so that nothing but this run's creates counts), then the
    sessions (create/update and update/page) and page cases interleaved.
    `report.created` is then what `numSessions` must say."""
    report = PayloadReport()
    groups = [cases[t] for t in ("sessions-post", "sessions-put", "page")]
    rest = [case for group in itertools.zip_longest(*groups) for case in group if case is not None]
    clients = [await RawClient.open(port, host) for _ in range(4)]
    try:
        await send_payloads(clients, cases["settings"], report, concurrency)
        control = clients[0]
        answer = await control.request(
            "POST", "/v1/settings", payload=b'{"statisticsClearMark":24}', content_format=50
        )
        if answer.code != "2.04":
            report.problems.add(
                "could not switch the daily clear off", f"{answer.code} {answer.payload!r}"
            )
        answer = await control.request("DELETE", "/v1/sessions/statistics")
        if answer.code != "2.02":
            report.problems.add(
                "could not clear the statistics", f"{answer.code} {answer.payload!r}"
            )
        await send_payloads(clients, rest, report, concurrency)
    finally:
        for c in clients:
            c.close()
    return report


async def check_service(port: int, created: int | None, host: str = "127.0.0.1") -> list[str]:
    """After fuzzing: statistics agree with the creates counted (unless `created` is None),
    and create → get → page → clear answers as the spec says; so do a few GETs. Returns what
    went wrong (empty: all good)."""
    wrong: list[str] = []
    c = await RawClient.open(port, host)
    try:
        stats = (await c.request("GET", "/v1/sessions/statistics")).json["statistics"]
        if created is not None and stats["numSessions"] != created:
            wrong.append(
                f"numSessions is {stats['numSessions']}, but {created} creates were answered 2.01"
            )
        before = (await c.request("GET", "/v1/sessions")).json
        number = next(
            n for n in range(4095, 0, -1) if n not in {s["number"] for s in before["sessions"]}
        )
        seq = before["globalSessionSequence"]
        steps = [
            ("POST", (), {"number": number, "label": "after fuzz", "goal": 60}, "2.01"),
            ("GET", (f"number={number}",), None, "2.05"),
            ("PUT", (f"number={number}",), {"action": "page"}, "2.04"),
            ("PUT", (f"number={number}",), {"action": "clear"}, "2.04"),
            ("GET", (f"number={number}",), None, "4.04"),
        ]
        session_id = None
        for i, (method, query, body, expect) in enumerate(steps):
            payload = b"" if body is None else json.dumps(body).encode()
            a = await c.request(method, "/v1/sessions", query, payload, 50 if body else None)
            if a.code != expect:
                wrong.append(
                    f"{method} ?{query} {body}: {a.code} (expected {expect}) {a.payload!r}"
                )
                break
            doc = a.json
            if expect.startswith("2."):
                s = doc["sessions"][0]
                session_id = session_id or s["id"]
                want_state = {0: "started", 1: "started", 2: "paged", 3: "cleared"}[i]
                if (s["id"], s["number"], s["label"], s["state"]) != (
                    session_id,
                    number,
                    "after fuzz",
                    want_state,
                ):
                    wrong.append(f"step {i} ({method}) answered {s}")
                if method != "GET":
                    seq += 1
                if doc["globalSessionSequence"] != seq:
                    wrong.append(
                        f"step {i}: globalSessionSequence {doc['globalSessionSequence']}"
                        f", expected {seq}"
                    )
        for path in ("/v1/settings", "/v1/sessions/history?limit=1", "/.well-known/core"):
            p, _, q = path.partition("?")
            a = await c.request("GET", p, (q,) if q else ())
            if a.code != "2.05":
                wrong.append(f"GET {path}: {a.code} {a.payload[:200]!r}")
        after = (await c.request("GET", "/v1/sessions/statistics")).json["statistics"]
        if after["numSessions"] != stats["numSessions"] + 1:
            wrong.append(
                f"numSessions went from {stats['numSessions']} to {after['numSessions']}"
                f" over one create"
            )
        if after["guestsServed"] != stats["guestsServed"] + 1:
            wrong.append(
                f"guestsServed went from {stats['guestsServed']} to "
                f"{after['guestsServed']} over one first page"
            )
    finally:
        c.close()
    return wrong


def summary(d: DatagramReport | None, p: PayloadReport | None) -> str:
    lines = []
    if d is not None:
        rate = d.sent / d.duration if d.duration else math.nan
        lines += [
            f"datagrams: {d.sent} sent ({d.bytes_sent} bytes) in {d.duration:.1f} s "
            f"({rate:.0f}/s), {d.answered} answers; {d.probes} probes (slowest "
            f"{d.probe_max_latency * 1000:.0f} ms), {d.deregistrations} observations ended; "
            f"kernel drops {d.kernel_drops}, send errors {d.send_errors}",
            "  answers by code: " + ", ".join(f"{k} {v}" for k, v in sorted(d.answers.items())),
            "  first mutation: " + ", ".join(f"{k} {v}" for k, v in d.mutations.most_common()),
            f"  problems: {d.problems.count}",
        ]
    if p is not None:
        lines += [
            f"payloads: {p.sent} sent in {p.duration:.1f} s, {p.created} sessions created (2.01)",
            "  answers: " + ", ".join(f"{k} {v}" for k, v in sorted(p.answers.items())),
            "  bodies: " + ", ".join(f"{k} {v}" for k, v in p.kinds.most_common()),
            f"  problems: {p.problems.count}",
        ]
    return "\n".join(lines)
