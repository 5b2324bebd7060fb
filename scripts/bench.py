"""Throughput and latency benchmark of the emulator, measured against an aiocoap reference.

Run by hand from the repository root:

    .venv/bin/python scripts/bench.py [--quick] [--duration S] [--soak SECONDS]
                                      [--skip-scaling] [--journal {on,off,both}]
                                      [--pairs N]

It takes about 4 minutes plus the soak (default 300 s; ``--soak 0`` skips it); ``--quick``
takes about 20-30 seconds and is only a smoke test: its figures are too short to trust.

What is measured
----------------
Three servers run in their own processes, on 127.0.0.1 only, while this process generates
the load:

* **the generator's ceiling** -- ``coap-server-notls`` (libcoap's C server) answering 4.04
  to ``GET /bench-ceiling``. It costs the server next to nothing, so the rate reached is what
  this load generator can do at most on this machine. Every other figure must stay well
  below it; when one comes close, it measures the generator, not the server.
* **the reference** -- ``bench.py --serve-reference PORT``: a bare aiocoap 0.4.17 resource
  (``transports=["udp6"]``) in a stock ``resource.Site``, answering ``GET /v1/ref`` with a
  fixed 60-byte JSON body, Content-Format 50, with aiocoap's defaults throughout. It is what
  a minimal Python/aiocoap server does on this machine in this run with no application work
  at all. A server that also trims aiocoap's own costs (``Site`` routing deep-copies every
  request; the deduplication table keeps every message for 247 s) can beat it: a ratio above
  1 in req/s is possible and means exactly that.
* **the emulator** -- ``python -m pager serve --host 127.0.0.1 --port 0 --db <tmp>/pager.db
  --no-control --config <tmp>/bench.toml --log-level WARNING`` (``history_limit =
  2000000``), with 50 active sessions created first, under four workloads:

  (a) ``GET /v1/sessions?number=N``, N rotating over the 50 active sessions;
  (b) a write cycle on rotating numbers, each virtual user in its own range of 200 numbers
      (100 + 200 i ...): ``POST /v1/sessions {"number":n}`` (2.01, or 2.00 if a timed-out
      cycle left it active), ``PUT ?number=n {"action":"page"}`` (2.04),
      ``PUT ?number=n {"action":"clear"}`` (2.04). Each of the 3 is counted as a request
      (req/s, latency per request); cycles/s and the latency of a whole cycle are shown too.
      Every request is a committed SQLite transaction;
  (c) ``GET /v1/sessions`` with the 50 active sessions: about 11 kB, so the answer comes in
      1024-byte Block2 blocks (12 of them; the run prints the size it found). 1024 bytes
      (SZX 6) is the largest block CoAP over UDP allows (SZX 7/BERT exists only for CoAP over TCP) and is aiocoap's default, so asking for a
      larger block is not possible: the first GET carries no Block2 option and the server
      picks 1024; then GET with Block2 num=1, 2, ... until more=0 (from the same socket, as
      aiocoap keys its cache of the rendered answer by the client's address). The whole
      transfer counts as ONE request for req/s and latency (first send to last block
      received); the number of blocks, and the rate and p50/p99 latency of the single
      exchanges (each a request and its answer, the unit the reference is measured in),
      are shown too;
  (d) ``GET /v1/sessions/statistics``.

Each workload runs with 1 and with 16 requests in flight (closed loop: N virtual users, each
sending its next request only when its previous one is answered), for ``--duration``
seconds after a warm-up. Every emulator figure is printed next to the reference's, measured
at the same concurrency in the same run, as a ratio emulator / reference: for req/s below 1
means slower, for latency above 1 means slower.

Every reference and emulator run gets a server process of its own, started just before it
and stopped after it (the emulator always on the same store, so the 50 sessions stay).
With its defaults aiocoap keeps every message it answered for EXCHANGE_LIFETIME (247 s) to
answer duplicates (the emulator bounds that table, see ``pager/coap/seam/dedup.py``), and Python's
full garbage collections grow with all those objects: a long-lived server would make each
run pay for the traffic of the runs before it. Within one 10-second run that
growth can still show, in a server that keeps all of it, as pauses of tens to hundreds of
milliseconds that stall every request in flight and then dominate p99 at 16 in flight.

The **request journal** (``journal``, on by default) records every exchange on the request
path. ``--journal off`` runs every emulator without it; ``--journal both`` runs each
workload of the comparison twice in a row, on a fresh process each, with the journal on and
then off, and the summary shows their ratio (on / off) beside each other: its cost.
``--pairs N`` makes that N such pairs, in alternating order (on off, off on, ...), and the
summary shows the median of their ratios with the lowest and the highest: one pair of 10 s
runs differs by 2-3 % from the next with nothing changed, as much as the cost it is to
show. Beside req/s it shows the server's CPU time per exchange, on / off. The history-size
runs and the soak run with the journal on, as ``--journal on`` does; the summary's main
table shows the first pair.

Then **scaling**: a fresh store is pre-filled with 0, 100,000 and 1,000,000 archived
sessions (``--quick``: 0 and 20,000) through ``Engine.archive_in_bulk`` in this process, the
emulator is started on it, and the p50 of (b) (per request) and (d) is measured with 1
request in flight (no queueing, so p50 is the service time), each as a ratio to the empty
store. Startup time is from spawning the process to the first successful answer to
``GET /v1/sessions/statistics`` (polled every 10 ms as soon as the port is printed); the
median of 3 starts is shown (1 with ``--quick``).

Then the **soak** (``--soak SECONDS``): workload (b) with 16 in flight on a fresh store for
SECONDS, sampling the emulator's VmRSS and VmHWM (peak RSS) from /proc/PID/status every
10 s; the table shows every sample and the summary the peak at 1, 3 and 5 minutes (those
the soak reached). With aiocoap's defaults memory would grow with the request rate for the
first 247 s (every answered message is kept that long); the emulator caps that table
(``dedup_max_entries``), so its RSS should level off once the table is full, and any later
growth is worth a look. The soak's summary also counts the message ids the server sent a
virtual user's port again, on another message, within EXCHANGE_LIFETIME (its separate
responses; RFC 7252 §4.4 and spec §1 forbid it): it must be 0.

The load generator
------------------
It speaks raw CoAP over UDP from this one asyncio process, with no aiocoap client in the
loop: every request datagram is encoded once by ``aiocoap.Message(...).encode()`` with a
zero message id and a zero 4-byte token; each send only splices the 2-byte message id and
the token into it. Each virtual user owns a non-blocking connected UDP socket (its own
source port) read with ``loop.add_reader``; it moves to a fresh socket (a new port) after
50,000 messages, so message ids are never reused on one port and never wrap within the
247 s deduplication window. Responses are parsed minimally: type, code, message id and
token from the header; the options are walked only to find Block2 in workload (c).
Separate responses are handled (an empty ACK stops retransmission; a CON response gets an
empty ACK back).

Confirmable requests are retransmitted after ``--rto`` seconds (default 1.0, doubling) at
most ``--retransmit`` times (default 2); then, or ``--rto`` x 7 after an empty ACK without
the response, the request counts as a timeout and the virtual user moves on. Latency
always runs from the FIRST transmission, so a retransmitted request shows its full cost.
Columns: ``err`` non-success answers (a 4.xx/5.xx where 2.xx was expected), ``tmo``
timeouts and ``rtx`` retransmissions, all counted over the whole run (warm-up and drain
too); req/s and latencies only over the measured window. ``srv CPU`` and ``gen CPU`` are the
CPU time of the server process (all its threads) and of this process over the window, as
percent of one core: a server near 100 % is the bottleneck; the machine has few cores and
is shared, so compare figures within one run, not across runs.

Everything is bounded: per-request timeouts, a drain limit after each run, a deadline on
the whole run (``--deadline``); every subprocess is terminated (then killed) in a
``finally`` and the temporary directory removed.

Exit status: 0 when every step ran and no workload failed (no answer at all, or more than
1 % non-success answers), 1 otherwise, 2 on a setup error or the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python scripts/bench.py` puts scripts/, not the repo, first
    sys.path.insert(0, str(REPO))

HOST = "127.0.0.1"
SUMMARY_HEADER = "==== bench.py summary ===="
HISTORY_LIMIT = 2_000_000
ROTATE_AFTER = 50_000  # messages per source port
ACTIVE_SESSIONS = 50
CYCLE_BASE, CYCLE_RANGE = 100, 200  # virtual user i cycles numbers 100 + 200 i .. + 199
REFERENCE_PATH = ("v1", "ref")
REFERENCE_BODY = b'{"responseTypes":["ping"],"ping":{"reference":"aiocoap 60"}}'
CEILING_PATH = ("bench-ceiling",)
SAMPLE_EVERY = 10.0  # soak: seconds between RSS samples
EXCHANGE_LIFETIME = 247.0  # RFC 7252: a message id the server sent is not to come again sooner

CON, NON, ACK, RST = 0, 1, 2, 3
C_CREATED, C_DELETED, C_VALID, C_CHANGED, C_CONTENT = 0x41, 0x42, 0x43, 0x44, 0x45
C_2_00 = 0x40
C_NOT_FOUND = 0x84
BLOCK2_OPTION = 23
MIDTOK = struct.Struct(">HI")  # message id + 4-byte token, spliced into bytes 2..7
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

assert len(REFERENCE_BODY) == 60, len(REFERENCE_BODY)


def dotted(code: int | None) -> str:
    return "timeout" if code is None else f"{code >> 5}.{code & 31:02d}"


# ---- request templates -------------------------------------------------------------------


class Template:
    """One request, encoded once; the generator splices in its message id and token."""

    __slots__ = ("name", "head", "tail", "continuation")

    def __init__(
        self,
        name: str,
        code: Code,
        path: tuple[str, ...],
        query: tuple[str, ...] = (),
        body: dict | None = None,
        block2: tuple[int, int] | None = None,
    ) -> None:
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        kwargs = {"content_format": 50} if body is not None else {}
        msg = Message(code=code, uri_path=path, uri_query=query, payload=payload, **kwargs)
        if block2 is not None:
            msg.opt.block2 = BlockOption.BlockwiseTuple(block2[0], False, block2[1])
        self._encode(name, msg)
        # Block2 follow-ups must come from the same source address as the first request.
        self.continuation = block2 is not None and block2[0] > 0

    @classmethod
    def of_message(cls, name: str, msg: Message) -> Template:
        """From a prepared Message: for options the constructor does not set, such as a bad
        Content-Format or Accept."""
        tpl = cls.__new__(cls)
        tpl._encode(name, msg)
        tpl.continuation = False
        return tpl

    def _encode(self, name: str, msg: Message) -> None:
        msg.mtype = Type.CON
        msg.mid = 0
        msg.token = b"\0\0\0\0"
        raw = msg.encode()
        assert raw[0] & 0x0F == 4 and raw[2:8] == bytes(6)
        self.name = name
        self.head, self.tail = raw[:2], raw[8:]


def block2_of(data: bytes, tkl: int) -> tuple[tuple[int, bool, int] | None, int]:
    """(Block2 (num, more, szx) or None, offset of the payload) of a response datagram."""
    i, n, number, block2 = 4 + tkl, len(data), 0, None
    while i < n:
        b = data[i]
        if b == 0xFF:
            return block2, i + 1
        delta, length = b >> 4, b & 15
        i += 1
        if delta == 13:
            delta, i = data[i] + 13, i + 1
        elif delta == 14:
            delta, i = int.from_bytes(data[i : i + 2], "big") + 269, i + 2
        if length == 13:
            length, i = data[i] + 13, i + 1
        elif length == 14:
            length, i = int.from_bytes(data[i : i + 2], "big") + 269, i + 2
        number += delta
        if number == BLOCK2_OPTION:
            v = int.from_bytes(data[i : i + length], "big")
            block2 = (v >> 4, bool(v & 8), v & 7)
        i += length
    return block2, n


# ---- one measured run --------------------------------------------------------------------

Response = tuple  # (code, datagram, token length, first send time, receive time) or None
Script = Callable[["VirtualUser", "Run"], Iterator[Template]]


class Run:
    """Counters of one run; scripts report each exchange and logical request here."""

    def __init__(self) -> None:
        self.recording = False
        self.stopping = False
        self.ex_lat = array("d")  # per exchange (one request datagram and its answer)
        self.op_lat = array("d")  # per logical request made of several exchanges (c)
        self.cycle_lat = array("d")  # per write cycle (b)
        self.errors: dict[int, int] = {}
        self.timeouts = 0
        self.retransmits = 0
        self.rotations = 0
        self.socket_errors = 0
        self.mid_reuses = 0  # a server message id seen again on another message within 247 s

    def exchange(self, r: Response | None, ok: frozenset[int]) -> bool:
        if r is None:
            self.timeouts += 1
            return False
        code = r[0]
        if code in ok:
            if self.recording:
                self.ex_lat.append(r[4] - r[3])
            return True
        self.errors[code] = self.errors.get(code, 0) + 1
        return False

    def operation(self, start: float, end: float) -> None:
        if self.recording:
            self.op_lat.append(end - start)

    def cycle(self, start: float, end: float) -> None:
        if self.recording:
            self.cycle_lat.append(end - start)


class VirtualUser:
    """One closed-loop client: a socket, a script, at most one request in flight."""

    def __init__(self, index: int, port: int, run: Run, script: Script) -> None:
        self.index = index
        self.port = port
        self.run = run
        self.loop = asyncio.get_running_loop()
        self.sock: socket.socket | None = None
        self.mid = random.randrange(0x10000)
        self.token = random.randrange(1 << 32)
        self.sent_on_socket = 0
        self.waiting = False  # a request is in flight
        self.acked = False  # its empty ACK came: the response will follow separately
        self.data = b""
        self.midb = self.tokb = b""
        self.first_sent = self.last_sent = 0.0
        self.tries = 0
        self.idle = False
        self.script = script(self, run)
        self._open()

    def _open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((HOST, 0))
        sock.connect((HOST, self.port))
        self.sock = sock
        self.sent_on_socket = 0
        self.mid = random.randrange(0x10000)
        self.server_mids: dict[bytes, tuple[float, bytes]] = {}  # this port's: first seen, data
        self.loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if self.sock is not None:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def start(self) -> None:
        self._next(None, first=True)

    def _readable(self) -> None:
        sock = self.sock
        while sock is self.sock and sock is not None:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable: the server is gone
                self.run.socket_errors += 1
                return
            self._datagram(data)

    def _datagram(self, data: bytes) -> None:
        t = time.perf_counter()
        if len(data) < 4:
            return
        b0 = data[0]
        mtype, tkl = (b0 >> 4) & 3, b0 & 15
        if mtype == ACK:
            if not self.waiting or data[2:4] != self.midb:
                return  # an answer to an earlier (retransmitted) request
            if data[1] == 0:
                self.acked = True  # empty ACK: stop retransmitting, wait for the response
                return
            if data[4 : 4 + tkl] != self.tokb:
                return
        elif mtype == RST:
            if self.waiting and data[2:4] == self.midb:
                self.waiting = False
                self.run.errors[-1] = self.run.errors.get(-1, 0) + 1
                self._next(None)
            return
        else:  # a separate response (CON or NON), numbered by the server
            if mtype == CON:
                self._send_raw(bytes((0x60, 0)) + data[2:4])
            seen = self.server_mids.get(data[2:4])
            if seen is None or t - seen[0] >= EXCHANGE_LIFETIME:
                self.server_mids[data[2:4]] = (t, data)
            elif seen[1] != data:  # not a retransmission: an id reused (RFC 7252 §4.4)
                self.run.mid_reuses += 1
            if not self.waiting or data[4 : 4 + tkl] != self.tokb:
                return
        self.waiting = False
        self._next((data[1], data, tkl, self.first_sent, t))

    def _next(self, r: Response | None, first: bool = False) -> None:
        try:
            tpl = next(self.script) if first else self.script.send(r)
        except StopIteration:
            self.idle = True
            return
        if self.sent_on_socket >= ROTATE_AFTER and not tpl.continuation:
            self.close()
            self._open()
            self.run.rotations += 1
        self.mid = (self.mid + 1) & 0xFFFF
        self.token = (self.token + 1) & 0xFFFFFFFF
        key = MIDTOK.pack(self.mid, self.token)
        self.midb, self.tokb = key[:2], key[2:]
        self.data = tpl.head + key + tpl.tail
        self.tries = 0
        self.acked = False
        self.waiting = True
        self.sent_on_socket += 1
        self.first_sent = self.last_sent = time.perf_counter()
        self._send_raw(self.data)

    def _send_raw(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except OSError:  # full buffer or ICMP error: the retransmission timer covers it
            self.run.socket_errors += 1

    def check_timer(self, now: float, rto: float, retransmit: int) -> None:
        if not self.waiting:
            return
        if self.acked:
            if now - self.first_sent > rto * 7:
                self.waiting = False
                self._next(None)
            return
        if now - self.last_sent >= rto * (1 << self.tries):
            if self.tries < retransmit:
                self.tries += 1
                self.last_sent = now
                self.run.retransmits += 1
                self._send_raw(self.data)
            else:
                self.waiting = False
                self._next(None)


@dataclass
class Result:
    label: str
    conc: int
    elapsed: float
    ops: int  # successful logical requests in the window
    lat: list[float]  # their latencies, seconds, sorted
    exchanges: int
    cycles: int = 0
    cycle_lat: list[float] = field(default_factory=list)
    errors: dict[int, int] = field(default_factory=dict)
    timeouts: int = 0
    retransmits: int = 0
    rotations: int = 0
    socket_errors: int = 0
    mid_reuses: int = 0
    srv_cpu: float = math.nan  # percent of one core
    gen_cpu: float = math.nan
    blocks: int = 0
    ex_lat: list[float] = field(default_factory=list)  # per exchange, sorted (multi-exchange)

    @property
    def rate(self) -> float:
        return self.ops / self.elapsed if self.elapsed > 0 else math.nan

    @property
    def ex_rate(self) -> float:
        return self.exchanges / self.elapsed if self.elapsed > 0 else math.nan

    def q(self, p: float) -> float:
        return quantile(self.lat, p)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def failed(self) -> bool:
        return self.ops == 0 or self.error_count > 0.01 * max(1, self.exchanges)


def quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) of a process so far; nan when unknown."""
    if pid is None:
        return math.nan
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    except (OSError, IndexError, ValueError):
        return math.nan


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


async def retransmit_timer(users: list, rto: float, retransmit: int, stop: asyncio.Event) -> None:
    """Every 20 ms until `stop`: let each virtual user retransmit or time out what is due."""
    while not stop.is_set():
        await asyncio.sleep(0.02)
        now = time.perf_counter()
        for u in users:
            u.check_timer(now, rto, retransmit)


async def sample_until(
    t0: float, duration: float, sampler: Callable[[float, Run], None], run: Run
) -> None:
    """Sleep until `t0 + duration`, calling `sampler(elapsed, run)` every SAMPLE_EVERY s."""
    next_sample = SAMPLE_EVERY
    while True:
        now = time.perf_counter()
        if now >= t0 + duration:
            return
        await asyncio.sleep(max(0.0, min(t0 + duration, t0 + next_sample) - now))
        elapsed = time.perf_counter() - t0
        if elapsed >= next_sample - 0.01:
            sampler(elapsed, run)
            next_sample += SAMPLE_EVERY


class Bench:
    def __init__(self, args) -> None:
        self.args = args

    async def measure(
        self,
        label: str,
        port: int,
        script: Script,
        conc: int,
        *,
        duration: float | None = None,
        server_pid: int | None = None,
        sampler: Callable[[float, Run], None] | None = None,
        quiet: bool = False,
    ) -> Result:
        args = self.args
        duration = args.duration if duration is None else duration
        run = Run()
        users = [VirtualUser(i, port, run, script) for i in range(conc)]
        stop_timer = asyncio.Event()
        timer_task = asyncio.create_task(
            retransmit_timer(users, args.rto, args.retransmit, stop_timer)
        )
        try:
            for u in users:
                u.start()
            await asyncio.sleep(args.warmup)
            run.ex_lat, run.op_lat, run.cycle_lat = array("d"), array("d"), array("d")
            run.recording = True
            cpu0, srv0, t0 = time.process_time(), proc_cpu(server_pid), time.perf_counter()
            if sampler is None:
                await asyncio.sleep(duration)
            else:
                await sample_until(t0, duration, sampler, run)
            run.recording = False
            t1, cpu1, srv1 = time.perf_counter(), time.process_time(), proc_cpu(server_pid)
            run.stopping = True
            # Drain: let every virtual user finish its logical request (bounded).
            drain_until = time.perf_counter() + args.rto * 8 + 1
            while not all(u.idle for u in users) and time.perf_counter() < drain_until:
                await asyncio.sleep(0.01)
        finally:
            stop_timer.set()
            await timer_task
            for u in users:
                u.close()
        elapsed = t1 - t0
        multi = getattr(script, "multi_exchange", False)
        lat = sorted(run.op_lat) if multi else sorted(run.ex_lat)
        result = Result(
            label=label,
            conc=conc,
            elapsed=elapsed,
            ops=len(lat),
            lat=lat,
            exchanges=len(run.ex_lat),
            cycles=len(run.cycle_lat),
            cycle_lat=sorted(run.cycle_lat),
            errors=dict(run.errors),
            timeouts=run.timeouts,
            retransmits=run.retransmits,
            rotations=run.rotations,
            socket_errors=run.socket_errors,
            mid_reuses=run.mid_reuses,
            ex_lat=sorted(run.ex_lat) if multi else [],
            srv_cpu=100 * (srv1 - srv0) / elapsed,
            gen_cpu=100 * (cpu1 - cpu0) / elapsed,
        )
        if not quiet:
            print(
                f"  {label:<44} c={conc:<3} {result.rate:9.0f} req/s  p50 "
                f"{result.q(0.5) * 1e3:7.3f} ms  p99 {result.q(0.99) * 1e3:7.3f} ms  "
                f"err {result.error_count} tmo {result.timeouts} rtx {result.retransmits}"
                f"  srv {result.srv_cpu:3.0f}% gen {result.gen_cpu:3.0f}%"
                + (f"  {result.cycles / elapsed:.0f} cycles/s" if result.cycles else "")
                + (f"  {result.ex_rate:.0f} exchanges/s" if multi else "")
                + (f"  port rotations {result.rotations}" if result.rotations else "")
                + (f"  socket errors {result.socket_errors}" if result.socket_errors else ""),
                flush=True,
            )
            if result.errors:
                print(
                    "      non-success answers: "
                    + ", ".join(
                        f"{dotted(c) if c >= 0 else 'RST'} x{n}" for c, n in result.errors.items()
                    )
                )
        return result


# ---- workloads (scripts of one virtual user) ---------------------------------------------


def single(templates: list[Template], ok: frozenset[int]) -> Script:
    """One exchange per logical request, rotating over `templates`."""

    def script(user: VirtualUser, run: Run) -> Iterator[Template]:
        i, n, exchange = user.index, len(templates), run.exchange
        while not run.stopping:
            r = yield templates[i % n]
            i += 1
            exchange(r, ok)

    return script


class Workloads:
    """Templates of the emulator's workloads, built once and shared by all runs."""

    OK_CREATE = frozenset((C_CREATED, C_2_00))
    OK_CHANGED = frozenset((C_CHANGED,))
    OK_CONTENT = frozenset((C_CONTENT,))

    def __init__(self) -> None:
        sessions = ("v1", "sessions")
        self.by_number = [
            Template(f"GET number={n}", Code.GET, sessions, (f"number={n}",))
            for n in range(ACTIVE_SESSIONS)
        ]
        self.statistics = [Template("GET statistics", Code.GET, ("v1", "sessions", "statistics"))]
        self.all_sessions = Template("GET sessions", Code.GET, sessions)
        self._blocks: dict[tuple[int, int], Template] = {}
        self._cycle: dict[int, tuple[Template, Template, Template]] = {}

    def block(self, num: int, szx: int) -> Template:
        tpl = self._blocks.get((num, szx))
        if tpl is None:
            tpl = self._blocks[num, szx] = Template(
                f"GET sessions block {num}", Code.GET, ("v1", "sessions"), block2=(num, szx)
            )
        return tpl

    def cycle_templates(self, n: int) -> tuple[Template, Template, Template]:
        t = self._cycle.get(n)
        if t is None:
            q = (f"number={n}",)
            t = self._cycle[n] = (
                Template("POST", Code.POST, ("v1", "sessions"), body={"number": n}),
                Template("PUT page", Code.PUT, ("v1", "sessions"), q, body={"action": "page"}),
                Template("PUT clear", Code.PUT, ("v1", "sessions"), q, body={"action": "clear"}),
            )
        return t

    def a(self) -> Script:
        return single(self.by_number, self.OK_CONTENT)

    def d(self) -> Script:
        return single(self.statistics, self.OK_CONTENT)

    def b(self) -> Script:
        def script(user: VirtualUser, run: Run) -> Iterator[Template]:
            base = CYCLE_BASE + CYCLE_RANGE * user.index
            templates = [self.cycle_templates(n) for n in range(base, base + CYCLE_RANGE)]
            k, exchange = 0, run.exchange
            while not run.stopping:
                post, page, clear = templates[k % CYCLE_RANGE]
                k += 1
                r = yield post
                if not exchange(r, self.OK_CREATE):
                    continue
                start = r[3]
                r = yield page
                if not exchange(r, self.OK_CHANGED):
                    continue
                r = yield clear
                if exchange(r, self.OK_CHANGED):
                    run.cycle(start, r[4])

        return script

    def c(self) -> Script:
        def script(user: VirtualUser, run: Run) -> Iterator[Template]:
            exchange = run.exchange
            while not run.stopping:
                r = yield self.all_sessions
                if r is None:
                    exchange(r, self.OK_CONTENT)
                    continue
                start = r[3]
                while exchange(r, self.OK_CONTENT):
                    block2, _ = block2_of(r[1], r[2])
                    if block2 is None or not block2[1]:
                        run.operation(start, r[4])
                        break
                    r = yield self.block(block2[0] + 1, block2[2])

        script.multi_exchange = True  # latency and req/s per whole transfer
        return script


# ---- a one-off client for setup and polling ----------------------------------------------


class Probe:
    """One socket, one request at a time, awaited: for setup, checks and polling."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind((HOST, 0))
        self.sock.connect((HOST, port))
        self.mid = random.randrange(0x10000)
        self.token = random.randrange(1 << 32)
        self.waiter: asyncio.Future | None = None
        self.key = b""
        self.loop.add_reader(self.sock.fileno(), self._readable)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 4 or self.waiter is None or self.waiter.done():
                continue
            mtype, tkl = (data[0] >> 4) & 3, data[0] & 15
            if mtype == CON:
                self.sock.send(bytes((0x60, 0)) + data[2:4])
            if mtype == ACK and data[1] == 0:
                continue
            if data[4 : 4 + tkl] == self.key[2:]:
                self.waiter.set_result((data[1], data, tkl))

    async def request(
        self, tpl: Template, timeout: float = 1.0, attempts: int = 3
    ) -> tuple[int, bytes, int] | None:
        self.mid = (self.mid + 1) & 0xFFFF
        self.token = (self.token + 1) & 0xFFFFFFFF
        self.key = MIDTOK.pack(self.mid, self.token)
        data = tpl.head + self.key + tpl.tail
        self.waiter = self.loop.create_future()
        for _ in range(attempts):
            try:
                self.sock.send(data)
            except OSError:
                pass
            try:
                return await asyncio.wait_for(asyncio.shield(self.waiter), timeout)
            except TimeoutError:
                continue
        return None

    async def fetch(
        self, tpl: Template, workloads: Workloads | None = None
    ) -> tuple[int | None, bytes, int]:
        """GET following Block2: (code, whole payload, number of blocks)."""
        r = await self.request(tpl)
        payload, blocks = b"", 0
        while True:
            if r is None:
                return None, payload, blocks
            blocks += 1
            block2, at = block2_of(r[1], r[2])
            payload += r[1][at:]
            if r[0] != C_CONTENT or block2 is None or not block2[1] or workloads is None:
                return r[0], payload, blocks
            r = await self.request(workloads.block(block2[0] + 1, block2[2]))


# ---- servers in subprocesses -------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server in its own process; `start` returns once its port is known."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        port_line: str | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.port_line = port_line  # regex with one group: the port, on the first stdout line
        self.banner = ""  # the first stdout line, when port_line reads it
        self.port = port
        self.process: asyncio.subprocess.Process | None = None
        self.spawned = 0.0
        self._log = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def start(self, timeout: float = 30.0) -> ServerProcess:
        self._log = open(self.log_path, "ab")
        self.spawned = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if self.port_line else asyncio.subprocess.DEVNULL,
            stderr=self._log,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if self.port_line:
            try:
                line = (await asyncio.wait_for(self.process.stdout.readline(), timeout)).decode()
            except TimeoutError:
                raise SetupError(
                    f"{self.name} printed no port within {timeout:.0f} s\n{self.log_tail()}"
                ) from None
            match = re.search(self.port_line, line)
            if not match:
                raise SetupError(f"{self.name} did not start: {line!r}\n{self.log_tail()}")
            self.port = int(match.group(1))
            self.banner = line
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self) -> None:
        p = self.process
        if p is not None and p.returncode is None:
            try:
                p.send_signal(signal.SIGTERM)
                await asyncio.wait_for(p.wait(), 10)
            except (TimeoutError, ProcessLookupError):
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
                await asyncio.wait_for(p.wait(), 10)
        if self._log is not None:
            self._log.close()
            self._log = None


class SetupError(Exception):
    pass


def run_to_exit(
    script: str, work, deadline: float, errors: tuple[type[BaseException], ...] = (SetupError,)
) -> int:
    """asyncio.run(work) within `deadline` seconds, as a script's exit status.

    `work`'s own status is returned; the deadline, a setup error (`errors`) and Ctrl-C give 2
    with a line on stderr (the scripts run by hand and by tests share this).
    """

    async def bounded() -> int:
        return await asyncio.wait_for(work, deadline)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        print(f"{script}: aborted after the {deadline:.0f} s deadline", file=sys.stderr)
        return 2
    except errors as e:
        print(f"{script}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 2


async def wait_answer(
    port: int, tpl: Template, ok: frozenset[int], timeout: float, poll: float = 0.01
) -> float:
    """Poll every `poll` seconds until a request is answered with a code in `ok`;
    returns the perf_counter time of the first such answer."""
    probe = Probe(port)
    try:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            r = await probe.request(tpl, timeout=poll, attempts=1)
            if r is not None and r[0] in ok:
                return time.perf_counter()
        raise SetupError(f"no answer from port {port} within {timeout:.0f} s")
    finally:
        probe.close()


# ---- the reference server ----------------------------------------------------------------


def serve_reference(port: int) -> int:
    """A bare aiocoap resource answering GET /v1/ref with a fixed 60-byte JSON body."""
    import aiocoap
    from aiocoap import resource

    from pager.coap import seam

    class Fixed(resource.Resource):
        async def render_get(self, request):
            return Message(code=Code.CONTENT, payload=REFERENCE_BODY, content_format=50)

    async def main() -> None:
        site = resource.Site()
        site.add_resource(REFERENCE_PATH, Fixed())
        context = await aiocoap.Context.create_server_context(
            site, bind=(HOST, port), transports=["udp6"]
        )
        bound = seam.bound_port(context)
        print(f"reference listening on udp {HOST}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await context.shutdown()

    asyncio.run(main())
    return 0


# ---- the emulator, its store and its setup -----------------------------------------------


def write_config(path: Path, journal: bool = True) -> None:
    path.write_text(
        f'# written by scripts/bench.py\nhistory_limit = {HISTORY_LIMIT}\nlog_level = "WARNING"\n'
        f"journal = {'true' if journal else 'false'}\n"
    )


def emulator(workdir: Path, db: Path, tag: str, journal: bool = True) -> ServerProcess:
    return ServerProcess(
        f"emulator ({tag})",
        [
            sys.executable,
            "-m",
            "pager",
            "serve",
            "--lrsn-port",
            "0",
            "--host",
            HOST,
            "--port",
            "0",
            "--db",
            str(db),
            "--no-control",
            "--config",
            str(workdir / ("bench.toml" if journal else "bench-no-journal.toml")),
            "--log-level",
            "WARNING",
        ],
        workdir / f"emulator-{tag}{'' if journal else '-no-journal'}.log",
        port_line=r"pager-emulator listening on udp .*:(\d+), store ",
    )


async def prefill(db: Path, count: int, chunk: int = 50_000) -> float:
    """Create the store at `db` with `count` archived sessions; returns the seconds taken."""
    from pager.clock import Clock
    from pager.config import Config
    from pager.domain.model import STOP, Archived, Session
    from pager.domain.operations import DeviceRules
    from pager.domain.rules import Limits
    from pager.engine import Engine
    from pager.store import Store

    t0 = time.perf_counter()
    store = await Store.open(db, HISTORY_LIMIT)
    c = Config()
    device = DeviceRules(Limits(c.number_min, c.number_max), frozenset(), False)
    engine = await Engine.load(store, Clock(), device)
    try:
        created = datetime(2026, 1, 5, 18, 0, 0)
        notified, cleared = created + timedelta(seconds=290), created + timedelta(seconds=900)
        for start in range(1, count + 1, chunk):
            end = min(count + 1, start + chunk)
            await engine.archive_in_bulk(
                Archived(
                    Session(
                        i,
                        i,
                        f"00000000-0000-4000-8000-{i:012x}",
                        i % 4096,
                        1 + i % 6,
                        300,
                        created,
                        notified,
                        None,
                    ),
                    cleared,
                    STOP,
                )
                for i in range(start, end)
            )
    finally:
        await engine.close()
        await store.close()
    return time.perf_counter() - t0


async def create_sessions(port: int) -> None:
    probe = Probe(port)
    try:
        for n in range(ACTIVE_SESSIONS):
            tpl = Template(
                "POST",
                Code.POST,
                ("v1", "sessions"),
                body={"number": n, "partySize": 1 + n % 6, "label": f"guest {n}"},
            )
            r = await probe.request(tpl)
            if r is None or r[0] not in (C_CREATED, C_2_00):
                raise SetupError(f"creating session {n}: {dotted(r and r[0])}")
    finally:
        probe.close()


async def check_answers(emu_port: int, ref_port: int, w: Workloads) -> int:
    """Check that each workload gets what it should; returns the blocks of (c)."""
    probe = Probe(ref_port)
    try:
        tpl = Template("ref", Code.GET, REFERENCE_PATH)
        r = await probe.request(tpl)
        if r is None or r[0] != C_CONTENT:
            raise SetupError(f"reference answered {dotted(r and r[0])}")
        _, at = block2_of(r[1], r[2])
        if r[1][at:] != REFERENCE_BODY:
            raise SetupError(f"reference body {r[1][at:]!r}")
        m = Message.decode(r[1])
        if m.opt.content_format != 50:
            raise SetupError("reference answer is not Content-Format 50")
    finally:
        probe.close()
    probe = Probe(emu_port)
    try:
        code, payload, blocks = await probe.fetch(w.all_sessions, w)
        body = json.loads(payload)
        if code != C_CONTENT or len(body.get("sessions", [])) != ACTIVE_SESSIONS:
            raise SetupError(f"GET /v1/sessions: {dotted(code)}, {len(payload)} bytes")
        print(
            f"  (c) GET /v1/sessions answer: {len(payload)} bytes in {blocks} blocks of "
            "1024 bytes (Block2 SZX 6)",
            flush=True,
        )
        for tpl in (w.by_number[7], w.statistics[0]):
            code, payload, _ = await probe.fetch(tpl, w)
            if code != C_CONTENT:
                raise SetupError(f"{tpl.name}: {dotted(code)}")
            json.loads(payload)
        n = CYCLE_BASE
        for tpl, want in zip(w.cycle_templates(n), (w.OK_CREATE, w.OK_CHANGED, w.OK_CHANGED)):
            r = await probe.request(tpl)
            if r is None or r[0] not in want:
                raise SetupError(f"{tpl.name} number={n}: {dotted(r and r[0])}")
        return blocks
    finally:
        probe.close()


# ---- the run -----------------------------------------------------------------------------


def tree_state() -> str:
    """Which emulator code is measured: the commit, and whether pager/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            timeout=5,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pager"],
            cwd=REPO,
            timeout=5,
            capture_output=True,
            text=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "emulator code: unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return f"emulator code: commit {head or '?'}" + (
        f" + uncommitted changes in {len(changed)} file(s) under pager/ "
        f"({', '.join(changed[:6])}{', ...' if len(changed) > 6 else ''})"
        if changed
        else ", pager/ unmodified"
    )


@dataclass
class Scale:
    size: int
    prefill_s: float
    startups: list[float]
    b: Result
    d: Result

    @property
    def startup(self) -> float:
        return statistics.median(self.startups)


async def run(args) -> int:
    bench = Bench(args)
    w = Workloads()
    workdir = Path(tempfile.mkdtemp(prefix="pager-bench-"))
    write_config(workdir / "bench.toml")
    write_config(workdir / "bench-no-journal.toml", journal=False)
    journal = args.journal != "off"  # every run but the journal's own comparison
    servers: list[ServerProcess] = []
    results: dict[tuple[str, int], Result] = {}
    # --journal both: every (on, off) pair of each workload; the first on run is in `results`
    pairs: dict[tuple[str, int], list[tuple[Result, Result]]] = {}
    scales: list[Scale] = []
    soak: list[tuple[float, int, int, int, float]] = []
    soak_result: Result | None = None
    blocks = 0
    began = time.perf_counter()
    print(f"bench.py: {tree_state()}", flush=True)
    print(
        f"bench.py: {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, duration {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up) per run, journal {args.journal}, workdir {workdir}",
        flush=True,
    )

    async def start(server: ServerProcess) -> ServerProcess:
        servers.append(server)
        return await server.start()

    async def stop(server: ServerProcess) -> None:
        await server.stop()
        servers.remove(server)

    def alive(server: ServerProcess) -> None:
        if not server.alive():
            raise SetupError(
                f"{server.name} exited ({server.process.returncode})\n{server.log_tail()}"
            )

    try:
        # -- the generator's ceiling: one coap-server-notls for the whole run
        cserver = None
        ceiling_tpl = Template("ceiling", Code.GET, CEILING_PATH)
        binary = shutil.which("coap-server-notls")
        if binary:
            port = free_udp_port()
            cserver = await start(
                ServerProcess(
                    "coap-server-notls",
                    [binary, "-A", HOST, "-p", str(port)],
                    workdir / "coap-server.log",
                    port=port,
                )
            )
            await wait_answer(port, ceiling_tpl, frozenset((C_NOT_FOUND,)), 10)
        else:
            print("  coap-server-notls not found: the generator's ceiling is not measured")

        # -- the reference and the emulator: a fresh process for every run (see `measured`)
        ref_tpl = Template("ref", Code.GET, REFERENCE_PATH)
        main_db = workdir / "pager.db"

        def reference() -> ServerProcess:
            return ServerProcess(
                "reference",
                [sys.executable, str(Path(__file__).resolve()), "--serve-reference", "0"],
                workdir / "reference.log",
                port_line=r"reference listening on udp .*:(\d+)",
            )

        emu = await start(emulator(workdir, main_db, "main", journal))
        await wait_answer(emu.port, w.statistics[0], Workloads.OK_CONTENT, 20)
        ref = await start(reference())
        await wait_answer(ref.port, ref_tpl, Workloads.OK_CONTENT, 20)
        await create_sessions(emu.port)
        blocks = await check_answers(emu.port, ref.port, w)
        await stop(ref)
        await stop(emu)

        async def measured(
            make: Callable[[], ServerProcess],
            ready: Template,
            label: str,
            script: Script,
            conc: int,
        ) -> Result:
            """One run on a server process of its own, started for it and stopped after.

            aiocoap keeps every message for 247 s to answer duplicates, and the garbage
            collector's full passes grow with that; a fresh process per run keeps one run's
            traffic from slowing the next and treats the reference and the emulator alike.
            """
            server = await start(make())
            try:
                await wait_answer(server.port, ready, Workloads.OK_CONTENT, 20)
                result = await bench.measure(
                    label, server.port, script, conc, server_pid=server.pid
                )
                alive(server)
                return result
            finally:
                await stop(server)

        # -- the main comparison
        ref_script = single([ref_tpl], Workloads.OK_CONTENT)
        for conc in args.concurrency:
            print(f"\nconcurrency {conc}:", flush=True)
            if cserver is not None:
                alive(cserver)
                results["ceiling", conc] = await bench.measure(
                    "ceiling: coap-server-notls 4.04",
                    cserver.port,
                    single([ceiling_tpl], frozenset((C_NOT_FOUND,))),
                    conc,
                    server_pid=cserver.pid,
                )
            results["ref", conc] = await measured(
                reference, ref_tpl, "reference: aiocoap, fixed 60 B", ref_script, conc
            )
            for key, label, script in (
                ("a", "(a) GET /v1/sessions?number=N", w.a()),
                ("c", "(c) GET /v1/sessions (whole Block2 transfer)", w.c()),
                ("d", "(d) GET /v1/sessions/statistics", w.d()),
                ("b", "(b) write cycle, per request", w.b()),
            ):
                if key not in args.workloads:
                    continue
                if args.journal != "both":
                    results[key, conc] = await measured(
                        lambda: emulator(workdir, main_db, "main", journal),
                        w.statistics[0],
                        label,
                        script,
                        conc,
                    )
                    continue
                # the same workload with the journal on and off, in pairs whose order
                # alternates (on off, off on, ...): a drift of the machine over the pairs
                # then weighs on both sides alike
                runs: dict[bool, list[Result]] = {True: [], False: []}
                for i in range(args.pairs):
                    for on in (True, False) if i % 2 == 0 else (False, True):
                        runs[on].append(
                            await measured(
                                lambda on=on: emulator(workdir, main_db, "main", journal=on),
                                w.statistics[0],
                                f"{label}, journal {'on' if on else 'off'}"
                                + (f" (pair {i + 1})" if args.pairs > 1 else ""),
                                script,
                                conc,
                            )
                        )
                pairs[key, conc] = list(zip(runs[True], runs[False], strict=True))
                results[key, conc] = pairs[key, conc][0][0]
            if ("c", conc) in results:
                results["c", conc].blocks = blocks
        if cserver is not None:
            await stop(cserver)

        # -- scaling with the size of the history
        if not args.skip_scaling:
            print("\nscaling with the history size (1 in flight):", flush=True)
            for size in args.sizes:
                db = workdir / f"scale-{size}.db"
                took = await prefill(db, size)
                print(f"  {size:,} archived sessions: pre-filled in {took:.1f} s", flush=True)
                startups = []
                for i in range(args.startups):
                    emu = await start(emulator(workdir, db, f"scale-{size}", journal))
                    answered = await wait_answer(
                        emu.port, w.statistics[0], Workloads.OK_CONTENT, 60
                    )
                    startups.append(answered - emu.spawned)
                    if i < args.startups - 1:
                        await stop(emu)
                print(f"    startup {', '.join(f'{s:.3f}' for s in startups)} s", flush=True)
                d = await bench.measure(
                    f"(d) statistics, {size:,} archived",
                    emu.port,
                    w.d(),
                    1,
                    duration=args.scale_duration,
                    server_pid=emu.pid,
                )
                b = await bench.measure(
                    f"(b) write cycle, {size:,} archived",
                    emu.port,
                    w.b(),
                    1,
                    duration=args.scale_duration,
                    server_pid=emu.pid,
                )
                alive(emu)
                await stop(emu)
                scales.append(Scale(size, took, startups, b, d))
                db.unlink(missing_ok=True)

        # -- memory under a sustained write load
        if args.soak > 0:
            print(
                f"\nsoak: (b) with 16 in flight for {args.soak:g} s, RSS every {SAMPLE_EVERY:g} s:",
                flush=True,
            )
            emu = await start(emulator(workdir, workdir / "soak.db", "soak", journal))
            await wait_answer(emu.port, w.statistics[0], Workloads.OK_CONTENT, 20)
            m = proc_memory(emu.pid)
            soak.append((0.0, m["VmRSS"], m["VmHWM"], 0, math.nan))
            print(
                f"  {'t (s)':>7} {'VmRSS MiB':>10} {'VmHWM MiB':>10} {'requests':>10} {'req/s':>8}"
            )
            print(f"  {0:7.0f} {m['VmRSS'] / 1024:10.1f} {m['VmHWM'] / 1024:10.1f}", flush=True)

            def sample(elapsed: float, r: Run) -> None:
                mem = proc_memory(emu.pid)
                done = len(r.ex_lat)
                rate = (done - soak[-1][3]) / (elapsed - soak[-1][0])
                soak.append((elapsed, mem["VmRSS"], mem["VmHWM"], done, rate))
                print(
                    f"  {elapsed:7.0f} {mem['VmRSS'] / 1024:10.1f} "
                    f"{mem['VmHWM'] / 1024:10.1f} {done:10d} {rate:8.0f}",
                    flush=True,
                )

            soak_result = await bench.measure(
                "(b) soak",
                emu.port,
                w.b(),
                16,
                duration=args.soak,
                server_pid=emu.pid,
                sampler=sample,
            )
            alive(emu)
            await stop(emu)
    finally:
        for server in list(servers):
            try:
                await server.stop()
            except Exception as e:  # keep stopping the others
                print(f"bench.py: stopping {server.name}: {e}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)

    print_summary(
        args, results, pairs, scales, soak, soak_result, blocks, time.perf_counter() - began
    )
    failed = [
        r
        for r in [
            *results.values(),
            # every on/off run but the first pair's on run, which is in `results`
            *(r for runs in pairs.values() for i, pair in enumerate(runs) for r in pair[i == 0 :]),
            *(s.b for s in scales),
            *(s.d for s in scales),
            *([soak_result] if soak_result else []),
        ]
        if r.failed
    ]
    for r in failed:
        print(
            f"bench.py: FAILED {r.label} c={r.conc}: {r.ops} answered, {r.error_count} non-success",
            file=sys.stderr,
        )
    return 1 if failed else 0


def ratio(a: float, b: float) -> str:
    if not (a == a and b == b) or b == 0:
        return "-"
    return f"{a / b:.2f}"


def print_summary(args, results, pairs, scales, soak, soak_result, blocks, took) -> None:
    print()
    print(SUMMARY_HEADER)
    print(
        f"{os.cpu_count()} CPUs, {args.duration:g} s per run (+{args.warmup:g} s warm-up), "
        f"whole run {took:.0f} s; x ref = emulator / reference at the same concurrency "
        "(req/s: <1 is slower; latency: >1 is slower)"
    )
    head = (
        f"{'workload':<46} {'conc':>4} {'req/s':>8} {'x ref':>6} {'p50 ms':>8} "
        f"{'x ref':>6} {'p99 ms':>8} {'x ref':>6} {'err':>4} {'tmo':>4} {'rtx':>4} "
        f"{'srvCPU':>6} {'genCPU':>6}"
    )
    print(head)
    print("-" * len(head))
    labels = {
        "ceiling": "generator ceiling: coap-server-notls (4.04)",
        "ref": "reference: bare aiocoap, 60 B JSON",
        "a": "(a) GET /v1/sessions?number=N",
        "b": "(b) write cycle POST/page/clear, per request",
        "c": f"(c) GET /v1/sessions, whole {blocks}-block transfer",
        "d": "(d) GET /v1/sessions/statistics",
    }
    for conc in sorted({c for _, c in results}):
        ref = results.get(("ref", conc))
        for key in ("ceiling", "ref", "a", "b", "c", "d"):
            r = results.get((key, conc))
            if r is None:
                continue
            emu = key in ("a", "b", "c", "d")
            cmp = (lambda x, y: ratio(x, y)) if emu and ref else (lambda x, y: "")
            print(
                f"{labels[key]:<46} {conc:>4} {r.rate:8.0f} {cmp(r.rate, ref and ref.rate):>6} "
                f"{r.q(0.5) * 1e3:8.3f} {cmp(r.q(0.5), ref and ref.q(0.5)):>6} "
                f"{r.q(0.99) * 1e3:8.3f} {cmp(r.q(0.99), ref and ref.q(0.99)):>6} "
                f"{r.error_count:>4} {r.timeouts:>4} {r.retransmits:>4} "
                f"{r.srv_cpu:5.0f}% {r.gen_cpu:5.0f}%"
            )
            if key == "b" and r.cycles:
                cyc = r.cycle_lat
                print(
                    f"{'    (b) whole cycles (3 requests)':<46} {conc:>4} "
                    f"{r.cycles / r.elapsed:8.0f} {cmp(r.cycles / r.elapsed, ref and ref.rate):>6} "
                    f"{quantile(cyc, 0.5) * 1e3:8.3f} {cmp(quantile(cyc, 0.5), ref and ref.q(0.5)):>6} "
                    f"{quantile(cyc, 0.99) * 1e3:8.3f} {cmp(quantile(cyc, 0.99), ref and ref.q(0.99)):>6}"
                )
            if key == "c":
                ex = r.ex_lat
                print(
                    f"{'    (c) block exchanges, per exchange':<46} {conc:>4} {r.ex_rate:8.0f} "
                    f"{cmp(r.ex_rate, ref and ref.rate):>6} "
                    f"{quantile(ex, 0.5) * 1e3:8.3f} {cmp(quantile(ex, 0.5), ref and ref.q(0.5)):>6} "
                    f"{quantile(ex, 0.99) * 1e3:8.3f} {cmp(quantile(ex, 0.99), ref and ref.q(0.99)):>6}"
                )
    if args.journal == "both":
        print_journal_cost(pairs, labels)
    ceiling = [r for (k, _), r in results.items() if k == "ceiling"]
    emulator_rates = [
        (r.ex_rate, r.label, r.conc)
        for (k, _), r in results.items()
        if k in ("a", "b", "c", "d", "ref")
    ]
    if ceiling and emulator_rates:
        top = max(ceiling, key=lambda r: r.rate)
        fastest = max(emulator_rates)
        print(
            f"generator ceiling: {top.rate:.0f} req/s at {top.conc} in flight against "
            f"coap-server-notls (generator CPU {top.gen_cpu:.0f}% of a core); the busiest "
            f"Python server run, {fastest[1]} c={fastest[2]}, used {fastest[0]:.0f} "
            f"exchanges/s = {100 * fastest[0] / top.rate:.0f}% of it"
        )
    elif not ceiling:
        print("generator ceiling: not measured (coap-server-notls not found)")

    if scales:
        base = scales[0]
        print()
        print(
            f"{'history size':>14} {'prefill s':>9} {'startup s':>9} {'x 0':>6} "
            f"{'(b) p50 ms':>10} {'x 0':>6} {'(d) p50 ms':>10} {'x 0':>6} "
            f"{'(b) req/s':>9} {'(d) req/s':>9}   (1 in flight)"
        )
        for s in scales:
            print(
                f"{s.size:>14,} {s.prefill_s:9.1f} {s.startup:9.3f} "
                f"{ratio(s.startup, base.startup):>6} {s.b.q(0.5) * 1e3:10.3f} "
                f"{ratio(s.b.q(0.5), base.b.q(0.5)):>6} {s.d.q(0.5) * 1e3:10.3f} "
                f"{ratio(s.d.q(0.5), base.d.q(0.5)):>6} {s.b.rate:9.0f} {s.d.rate:9.0f}"
            )
    if soak:
        print()
        marks = [
            (m, next((x for x in soak if abs(x[0] - 60 * m) < SAMPLE_EVERY / 2), None))
            for m in (1, 3, 5)
        ]
        shown = [
            f"{m} min {x[2] / 1024:.1f} MiB (RSS {x[1] / 1024:.1f})"
            for m, x in marks
            if x is not None
        ]
        last = soak[-1]
        r = soak_result
        print(
            f"soak ({args.soak:g} s of (b) at 16 in flight): emulator peak RSS (VmHWM) at "
            f"start {soak[0][2] / 1024:.1f} MiB; "
            + ("; ".join(shown) if shown else "no 1/3/5-minute mark reached")
            + f"; last sample t={last[0]:.0f} s VmHWM {last[2] / 1024:.1f} MiB, VmRSS "
            f"{last[1] / 1024:.1f} MiB"
            + (
                f"; {r.rate:.0f} req/s, p50 {r.q(0.5) * 1e3:.2f} ms, p99 "
                f"{r.q(0.99) * 1e3:.2f} ms, err {r.error_count}, tmo {r.timeouts}, message ids "
                f"reused within EXCHANGE_LIFETIME {r.mid_reuses}"
                if r
                else ""
            )
        )


def print_journal_cost(pairs, labels) -> None:
    """Each workload with the request journal on beside the same workload with it off, run
    one after the other in this run: the journal's cost (on / off: req/s below 1 is
    slower, latency above 1 is slower). With several pairs, the median of their ratios and,
    in brackets, the lowest and the highest. Beside req/s, the server's CPU time per
    exchange, on / off (above 1 is dearer): the generator's share of the machine blurs it
    less."""
    print()
    n = max((len(p) for p in pairs.values()), default=0)
    print(
        "request journal: on beside off, each workload in this run (on / off"
        + (f"; the median of {n} pairs, their range in brackets)" if n > 1 else ")")
    )
    head = (
        f"{'workload':<46} {'conc':>4} {'on req/s':>9} {'off req/s':>9} {'req/s':>19} "
        f"{'CPU/exchange':>19} {'p50':>19} {'p99':>19}"
    )
    print(head)
    print("-" * len(head))

    def spread(values: list[float]) -> str:
        values = [v for v in values if v == v]
        if not values:
            return "-"
        median = f"{statistics.median(values):.3f}"
        return median if len(values) == 1 else f"{median} [{min(values):.3f}-{max(values):.3f}]"

    def cpu(r: Result) -> float:
        return r.srv_cpu / r.ex_rate if r.ex_rate else math.nan

    for conc in sorted({c for _, c in pairs}):
        for key in ("a", "b", "c", "d"):
            runs = pairs.get((key, conc))
            if not runs:
                continue
            print(
                f"{labels[key]:<46} {conc:>4} "
                f"{statistics.median(on.rate for on, _ in runs):9.0f} "
                f"{statistics.median(off.rate for _, off in runs):9.0f} "
                f"{spread([on.rate / off.rate for on, off in runs]):>19} "
                f"{spread([cpu(on) / cpu(off) for on, off in runs]):>19} "
                f"{spread([on.q(0.5) / off.q(0.5) for on, off in runs]):>19} "
                f"{spread([on.q(0.99) / off.q(0.99) for on, off in runs]):>19}"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of about 20 s: short runs, history sizes 0 and 20,000, no soak",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="measured seconds per run (default 10; quick 0.8)",
    )
    p.add_argument(
        "--soak",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds of the memory soak (default 300; quick 0; 0 skips it)",
    )
    p.add_argument("--skip-scaling", action="store_true", help="skip the history-size runs")
    p.add_argument(
        "--workloads",
        default="abcd",
        help="which of the workloads a, b, c, d to compare (default abcd; for "
        "profiling one of them)",
    )
    p.add_argument(
        "--concurrency",
        default="1,16",
        help="requests in flight for the comparison, comma-separated (default 1,16)",
    )
    p.add_argument(
        "--journal",
        choices=("on", "off", "both"),
        default="on",
        help="the request journal in every emulator run (default on, the configuration's "
        "default); both: each workload of the comparison with it on and then off, and their "
        "ratio (history-size runs and soak with it on)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=1,
        help="with --journal both: how many on/off pairs of each workload, in alternating "
        "order (default 1); the summary shows the median ratio and its range",
    )
    p.add_argument(
        "--rto",
        type=float,
        default=1.0,
        help="seconds before the first retransmission (default 1.0, doubling)",
    )
    p.add_argument(
        "--retransmit",
        type=int,
        default=2,
        help="retransmissions before a request times out (default 2)",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="abort the whole run after this many seconds (default: from the durations)",
    )
    p.add_argument(
        "--serve-reference", type=int, metavar="PORT", default=None, help=argparse.SUPPRESS
    )  # internal: run the reference server
    args = p.parse_args(argv)
    if args.serve_reference is not None:
        return serve_reference(args.serve_reference)

    args.duration = args.duration or (0.8 if args.quick else 10.0)
    try:
        args.concurrency = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        p.error("--concurrency takes numbers separated by commas")
    if not set(args.workloads) <= set("abcd") or min(args.concurrency) < 1:
        p.error("--workloads takes letters from abcd; --concurrency at least 1")
    args.soak = args.soak if args.soak is not None else (0.0 if args.quick else 300.0)
    args.warmup = 0.3 if args.quick else min(2.0, max(0.5, args.duration / 5))
    args.scale_duration = args.duration if args.quick else max(1.0, args.duration / 2)
    args.sizes = [0, 20_000] if args.quick else [0, 100_000, 1_000_000]
    args.startups = 1 if args.quick else 3
    if args.duration <= 0 or args.soak < 0 or args.rto <= 0 or args.retransmit < 0:
        p.error("--duration and --rto must be positive, --soak and --retransmit not negative")
    runs = 12 + (0 if args.skip_scaling else 2 * len(args.sizes))
    if args.pairs < 1:
        p.error("--pairs takes a number of 1 or more")
    if args.journal == "both":
        runs += len(args.concurrency) * len(args.workloads) * (2 * args.pairs - 1)
    drain = args.rto * 8 + 1
    args.deadline = args.deadline or (
        120
        + runs * (args.duration + args.warmup + drain)
        + args.soak * 1.2
        + (0 if args.skip_scaling else 40 * len(args.sizes) + 60 * (max(args.sizes) / 1e6))
    )

    return run_to_exit("bench.py", run(args), args.deadline)


if __name__ == "__main__":
    raise SystemExit(main())
