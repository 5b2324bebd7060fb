"""Benchmark of /v1/notify fan-out: how long after a change do all observers know about it?

Run by hand from the repository root:

    .venv/bin/python scripts/bench_notify.py [--observers 100] [--changes 200] [--quick]

What it does
------------
1. Starts the emulator as users run it, ``python -m pager serve --host 127.0.0.1 --port 0
   --db <tmp>``, in its own process (so server and observers share neither a CPU nor an event
   loop) and reads the port from its first stdout line. Its log goes to a temporary file that
   is scanned at the end for observers the server ended.
2. Baseline: a few warm-up requests, then ``--changes`` sequential ``POST /v1/sessions``
   with no observer registered, timing each request (send -> 2.01 received).
3. Registers ``--observers`` observers on ``/v1/notify`` (GET, Observe=0), each its own UDP
   endpoint: a bare asyncio ``DatagramProtocol`` that builds its messages with
   ``aiocoap.Message(...).encode()``, parses datagrams with ``aiocoap.Message.decode`` and
   answers every Confirmable notification with an empty ACK (full aiocoap client contexts are
   too heavy to run a hundred of).
4. Measured phase: ``--changes`` more sequential POSTs. After each 2.01 the benchmark waits
   (bounded) until every observer has the notification for that change before making the
   next one, so each change's fan-out is measured on its own rather than queued behind the
   previous one.

Every POST creates a session on the next number (rotating through 0..4095; each body also
carries a unique label, so that should the numbers wrap the POST is still a change). Each
change is identified by the ``globalSessionSequence`` of its response, which is the
sequence its one session notification carries.

The server's commit time is not visible from outside; the moment the client receives the
2.01 is used as its proxy (the emulator answers only after the commit and publishes to the
hub at the commit, so notifications can legitimately arrive *before* the response: such
latencies are negative). The time from sending the request is reported too. All
timestamps are ``time.perf_counter()`` readings taken first thing in the receiving
``datagram_received`` callback of this one process; when several datagrams are ready at
once the later ones include the cost of handling the earlier ones (decoding, ACKing and
parsing one notification takes some 15 us here, well below what the server spends sending
it, so the client keeps up).

Checks: each observer must receive exactly one notification per change, in order
(``globalSessionSequence`` +1 per session notification; pings, which the server sends every
``ping_interval``, are ignored but counted), with Observe values increasing. Received vs
expected (observers x changes), missing, out-of-order, duplicate and unexpected
notifications and observers ended by the server are all reported.

Also reported: duplicates (the server's retransmissions, i.e. an ACK it did not get or did
not process in time), Message IDs the server reused for a different message to the same
observer within EXCHANGE_LIFETIME, how often the first notification beat the response, and
(Linux) how many datagrams the kernel dropped for full UDP receive buffers during the run.

Other options: ``--gap MS`` pauses after each change's fan-out, so that a request does not
queue behind the server's processing of the previous fan-out's ACKs; ``--fanout-timeout 0``
does not wait for the fan-out at all (changes pipelined, notifications queue up per
observer: a load test rather than a latency measurement); ``--ping-interval S`` runs the
server with that ping_interval (its notification retransmission timeout derives from it);
``--server-log PATH`` and ``--dump PATH`` keep the server's log and every receipt as JSON.

Everything is bounded: requests are retransmitted at most 3 times (2 s apart), each change
waits at most ``--fanout-timeout`` seconds for its notifications, no change is started after
``--deadline`` seconds (what was measured is still reported) and the run is cancelled
HARD_LIMIT seconds after that; the server process is terminated (then killed) in a
``finally``. Only 127.0.0.1 is used. The table names the emulator's git revision ('+' when
pager/ has uncommitted changes), since the numbers belong to that code.

Exit status: 0 when every expected notification arrived in order, 1 otherwise, 2 on error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import bench  # scripts/ is on sys.path when this runs as a script
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
NUMBERS = 4096  # the emulator's default number range 0..4095
OBSERVE_MODULO = 1 << 24
REQUEST_TIMEOUT = 2.0  # seconds before a request is retransmitted
REQUEST_ATTEMPTS = 4  # first transmission + 3 retransmissions
WARMUP = 5
EXCHANGE_LIFETIME = 247.0  # RFC 7252's default, seconds
HARD_LIMIT = 30.0  # seconds after --deadline at which the whole run is cancelled
REGISTER_CONCURRENCY = 25  # registrations in flight at once (avoid overflowing UDP buffers)


def empty_ack(mid: int) -> bytes:
    """An empty ACK for the Confirmable message `mid` (aiocoap 0.4.17: mtype/mid are set as
    attributes, their constructor arguments are deprecated)."""
    ack = Message(code=Code.EMPTY)
    ack.mtype = Type.ACK
    ack.mid = mid
    return ack.encode()


class Endpoint(asyncio.DatagramProtocol):
    """One UDP endpoint connected to the server: ACKs Confirmables, drops duplicates.

    A duplicate is a retransmission: the same Message ID *and* the same bytes. The same
    Message ID on a different message within EXCHANGE_LIFETIME is counted as a reuse (RFC
    7252 section 4.4 forbids it) and processed as the new message it is.
    """

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.next_mid = random.randrange(0x10000)
        self.seen: dict[int, tuple[int, float]] = {}  # CON/NON mid -> (hash of datagram, arrival)
        self.duplicates = 0
        self.mid_reuses = 0
        self.undecodable = 0

    def connection_made(self, transport) -> None:
        self.transport = transport

    def mid(self) -> int:
        self.next_mid = (self.next_mid + 1) & 0xFFFF
        return self.next_mid

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data)

    def datagram_received(self, data: bytes, addr) -> None:
        t = time.perf_counter()
        try:
            msg = Message.decode(data)
        except Exception:
            self.undecodable += 1
            return
        if msg.mtype == Type.CON:
            self.send(empty_ack(msg.mid))
        if msg.mtype in (Type.CON, Type.NON):
            previous = self.seen.get(msg.mid)
            if previous is not None and t - previous[1] < EXCHANGE_LIFETIME:
                if previous[0] == hash(data):
                    self.duplicates += 1
                    return
                self.mid_reuses += 1
            self.seen[msg.mid] = (hash(data), t)
        self.handle(t, msg)

    def handle(self, t: float, msg: Message) -> None:
        raise NotImplementedError

    def error_received(self, exc) -> None:  # e.g. ICMP port unreachable: the server is gone
        pass

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@dataclass
class Receipt:
    t: float
    gseq: int
    kind: str  # "session", "ping" or "other"
    observe: int | None


class Observer(Endpoint):
    """Registers on /v1/notify and records every notification with its arrival time."""

    def __init__(self, index: int, port: int, bench: Bench) -> None:
        super().__init__()
        self.index = index
        self.port = port
        self.bench = bench
        self.token = index.to_bytes(2, "big") + os.urandom(2)
        self.registered = asyncio.get_running_loop().create_future()
        self.receipts: list[Receipt] = []
        self.ended: str | None = None  # why the server ended the observation, if it did
        self.stray = 0

    def register_message(self) -> bytes:
        msg = Message(code=Code.GET, uri=f"coap://{HOST}:{self.port}/v1/notify", observe=0)
        msg.mtype = Type.CON
        msg.mid = self.mid()
        msg.token = self.token
        return msg.encode()

    async def register(self, timeout: float) -> None:
        data = self.register_message()
        for _ in range(REQUEST_ATTEMPTS):
            self.send(data)
            try:
                await asyncio.wait_for(asyncio.shield(self.registered), timeout)
                return
            except TimeoutError:
                continue
        raise RuntimeError(f"observer {self.index}: no answer to the registration")

    def handle(self, t: float, msg: Message) -> None:
        if msg.mtype == Type.RST:
            self.ended = self.ended or "reset by the server"
            return
        if msg.code == Code.EMPTY:
            return  # the empty ACK of the registration, if the answer came separately
        if msg.token != self.token:
            self.stray += 1
            return
        if msg.code != Code.CONTENT or msg.opt.observe is None:
            self.ended = self.ended or f"final response {msg.code.dotted} {msg.payload[:100]!r}"
            if not self.registered.done():
                self.registered.set_exception(RuntimeError(f"observer {self.index}: {self.ended}"))
            return
        try:
            body = json.loads(msg.payload)
            gseq = body["globalSessionSequence"]
            types = body.get("responseTypes", [])
        except Exception:
            gseq, types = -1, []
        kind = "session" if "sessions" in types else "ping" if "ping" in types else "other"
        self.receipts.append(Receipt(t, gseq, kind, msg.opt.observe))
        if not self.registered.done():
            self.registered.set_result(None)
        if kind == "session":
            self.bench.count(gseq)


class Requester(Endpoint):
    """A minimal CoAP client for sequential POSTs (one request in flight at a time)."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port
        self.token = b""
        self.mid_sent = -1
        self.answer: asyncio.Future | None = None

    def handle(self, t: float, msg: Message) -> None:
        if self.answer is None or self.answer.done():
            return
        if msg.mtype == Type.ACK and msg.mid == self.mid_sent and msg.code == Code.EMPTY:
            return  # separate response follows
        if msg.token == self.token and msg.code != Code.EMPTY:
            self.answer.set_result((t, msg))

    async def post(self, path: str, body: dict) -> tuple[float, float, Message]:
        """Returns (time sent, time the response arrived, response)."""
        msg = Message(
            code=Code.POST,
            uri=f"coap://{HOST}:{self.port}{path}",
            payload=json.dumps(body, separators=(",", ":")).encode(),
            content_format=50,
        )
        msg.mtype = Type.CON
        msg.mid = self.mid_sent = self.mid()
        msg.token = self.token = os.urandom(4)
        data = msg.encode()
        self.answer = asyncio.get_running_loop().create_future()
        sent = time.perf_counter()
        for _ in range(REQUEST_ATTEMPTS):
            self.send(data)
            try:
                t, response = await asyncio.wait_for(asyncio.shield(self.answer), REQUEST_TIMEOUT)
                return sent, t, response
            except TimeoutError:
                continue
        raise RuntimeError(f"no response to POST {path} {body}")


@dataclass
class Change:
    gseq: int
    sent: float
    answered: float
    code: str


@dataclass
class Bench:
    observers: list[Observer] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, gseq: int) -> None:
        self.counts[gseq] = self.counts.get(gseq, 0) + 1
        self.progress.set()

    async def wait_for_all(self, gseq: int, want: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while self.counts.get(gseq, 0) < want:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return False
            self.progress.clear()
            try:
                await asyncio.wait_for(self.progress.wait(), remaining)
            except TimeoutError:
                return False
        return True


class Server:
    """`python -m pager serve` in a subprocess, its log in a file."""

    def __init__(self, workdir: Path, ping_interval: float | None = None) -> None:
        self.workdir = workdir
        self.ping_interval = ping_interval
        self.log_path = workdir / "server.log"
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None
        self._log = None

    async def start(self) -> None:
        self._log = open(self.log_path, "wb")
        extra = []
        if self.ping_interval is not None:
            config = self.workdir / "bench.toml"
            config.write_text(f"ping_interval = {self.ping_interval!r}\n")
            extra = ["--config", str(config)]
        self.process = await asyncio.create_subprocess_exec(
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
            "--no-control",
            "--db",
            str(self.workdir / "bench.db"),
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = (await asyncio.wait_for(self.process.stdout.readline(), 20)).decode()
        match = re.search(r"listening on udp .*:(\d+), store ", line)
        if not match:
            raise RuntimeError(f"server did not start: {line!r}\n{self.log()}")
        self.port = int(match.group(1))

    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._log is not None:
            self._log.close()


def revision() -> str:
    """The emulator's git revision, '+' when the working tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pager"],
            cwd=REPO,
            text=True,
            capture_output=True,
            timeout=5,
        ).stdout.strip()
        return (head or "unknown") + ("+" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def udp_receive_drops() -> int | None:
    """Linux's system-wide count of datagrams dropped for a full receive buffer, if known."""
    try:
        lines = [
            line.split()
            for line in Path("/proc/net/snmp").read_text().splitlines()
            if line.startswith("Udp:")
        ]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


# ---- statistics -------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def row(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"  {name:<38} {quantile(ms, 0.50):9.2f} {quantile(ms, 0.99):9.2f} "
        f"{max(ms) if ms else math.nan:9.2f} {len(ms):6d}"
    )


# ---- the run ----------------------------------------------------------------------------


async def make_changes(
    req: Requester,
    server: Server,
    first_index: int,
    count: int,
    bench: Bench | None,
    want: int,
    fanout_timeout: float,
    gap: float,
    progress: str = "",
    stop_at: float = math.inf,
) -> list[Change]:
    changes = []
    for i in range(first_index, first_index + count):
        if time.perf_counter() > stop_at:
            print(
                f"  {progress}: deadline reached after {len(changes)}/{count} changes; "
                "reporting what was measured",
                flush=True,
            )
            break
        if not server.alive():
            raise RuntimeError(f"server exited ({server.process.returncode})\n{server.log()}")
        body = {"number": i % NUMBERS, "label": f"bench-{i}"}
        sent, answered, response = await req.post("/v1/sessions", body)
        code = response.code.dotted
        if code not in ("2.01", "2.00"):
            raise RuntimeError(f"POST {body} answered {code} {response.payload!r}")
        gseq = json.loads(response.payload)["globalSessionSequence"]
        changes.append(Change(gseq, sent, answered, code))
        if bench is not None and want:
            await bench.wait_for_all(gseq, want, fanout_timeout)
        if gap:
            await asyncio.sleep(gap)
        done = i - first_index + 1
        if progress and done in {count * k // 4 for k in (1, 2, 3, 4)}:
            print(f"  {progress}: {done}/{count} changes", flush=True)
    return changes


def analyse(observers: list[Observer], changes: list[Change]) -> dict:
    expected = {c.gseq for c in changes}
    first_seq, last_seq = min(expected), max(expected)
    per_change: dict[int, list[float]] = {g: [] for g in expected}
    received = missing = out_of_order = unexpected = observe_regressions = pings = 0
    problems: list[str] = []
    for ob in observers:
        seqs = []
        last_observe = None
        for r in ob.receipts:
            if last_observe is not None and r.observe is not None:
                if not 0 < (r.observe - last_observe) % OBSERVE_MODULO < OBSERVE_MODULO // 2:
                    observe_regressions += 1
            last_observe = r.observe if r.observe is not None else last_observe
            if r.kind == "ping":
                pings += 1
                continue
            if r.kind != "session" or r.gseq not in expected:
                unexpected += 1
                continue
            seqs.append(r.gseq)
            per_change[r.gseq].append(r.t)
        got = set(seqs)
        received += len(seqs)
        miss = expected - got
        missing += len(miss)
        bad = sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
        if seqs and seqs[0] != first_seq:
            bad += 1
        out_of_order += bad
        if miss or bad or ob.ended:
            problems.append(
                f"observer {ob.index}: {len(seqs)} session notifications, {len(miss)} missing"
                f" (first missing {min(miss) if miss else '-'}), {bad} out of order"
                + (f", ended: {ob.ended}" if ob.ended else "")
                + (f", last {seqs[-1]}" if seqs else "")
            )
    return dict(
        per_change=per_change,
        received=received,
        missing=missing,
        out_of_order=out_of_order,
        unexpected=unexpected,
        pings=pings,
        observe_regressions=observe_regressions,
        problems=problems,
        duplicates=sum(o.duplicates for o in observers),
        mid_reuses=sum(o.mid_reuses for o in observers),
        stray=sum(o.stray for o in observers),
        undecodable=sum(o.undecodable for o in observers),
        last_seq=last_seq,
    )


async def run(args) -> int:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        server = Server(Path(tmp), args.ping_interval)
        req: Requester | None = None
        bench = Bench()
        try:
            started = time.perf_counter()
            stop_at = started + args.deadline
            drops_before = udp_receive_drops()
            await server.start()
            port = server.port
            print(
                f"server pid {server.process.pid} on udp {HOST}:{port}; "
                f"{args.observers} observers, {args.changes} changes",
                flush=True,
            )
            _, req = await loop.create_datagram_endpoint(
                lambda: Requester(port), remote_addr=(HOST, port)
            )

            gap = args.gap / 1000
            await make_changes(req, server, 0, WARMUP, None, 0, 0, gap)
            baseline = await make_changes(
                req, server, WARMUP, args.changes, None, 0, 0, gap, "baseline, no observer", stop_at
            )

            t0 = time.perf_counter()
            for i in range(args.observers):
                _, ob = await loop.create_datagram_endpoint(
                    lambda i=i: Observer(i, port, bench), remote_addr=(HOST, port)
                )
                bench.observers.append(ob)
            limit = asyncio.Semaphore(REGISTER_CONCURRENCY)

            async def register(ob: Observer) -> None:
                async with limit:
                    await ob.register(REQUEST_TIMEOUT)

            await asyncio.gather(*(register(ob) for ob in bench.observers))
            print(
                f"  registered {len(bench.observers)} observers in "
                f"{time.perf_counter() - t0:.2f} s",
                flush=True,
            )

            measured = await make_changes(
                req,
                server,
                WARMUP + args.changes,
                args.changes,
                bench,
                len(bench.observers),
                args.fanout_timeout,
                gap,
                f"with {len(bench.observers)} observers",
                stop_at,
            )
            if not measured:
                raise RuntimeError("the deadline passed before any change was measured")
            # Late stragglers of the last change (only if its wait above timed out).
            await bench.wait_for_all(
                measured[-1].gseq,
                len(bench.observers),
                max(1.0, min(10.0, stop_at - time.perf_counter())),
            )
            elapsed = time.perf_counter() - started
            drops_after = udp_receive_drops()
        finally:
            # The server logs every observation as "ended" when it shuts down: only what it
            # logged before that counts.
            log = server.log()
            if args.server_log:
                Path(args.server_log).write_text(log)
            for ob in bench.observers:
                ob.close()
            if req is not None:
                req.close()
            await server.stop()

    if args.dump:
        Path(args.dump).write_text(
            json.dumps(
                {
                    "changes": [c.__dict__ for c in measured],
                    "observers": [
                        {
                            "index": o.index,
                            "port": o.transport.get_extra_info("sockname")[1]
                            if o.transport
                            else None,
                            "ended": o.ended,
                            "duplicates": o.duplicates,
                            "mid_reuses": o.mid_reuses,
                            "receipts": [r.__dict__ for r in o.receipts],
                        }
                        for o in bench.observers
                    ],
                }
            )
        )
    a = analyse(bench.observers, measured)
    n, m = len(bench.observers), len(measured)
    resp_first, resp_last, sent_first, sent_last, spread = [], [], [], [], []
    incomplete = 0
    for c in measured:
        times = a["per_change"][c.gseq]
        if len(times) < n:
            incomplete += 1
        if not times:
            continue
        first, last = min(times), max(times)
        resp_first.append(first - c.answered)
        resp_last.append(last - c.answered)
        sent_first.append(first - c.sent)
        sent_last.append(last - c.sent)
        spread.append(last - first)
    base_lat = [c.answered - c.sent for c in baseline]
    obs_lat = [c.answered - c.sent for c in measured]
    ratio = quantile(obs_lat, 0.5) / quantile(base_lat, 0.5)
    early = sum(1 for v in resp_first if v < 0)
    ended_lines = [line for line in log.splitlines() if " ended " in line]

    print()
    print(
        f"notification fan-out: {n} observers x {m} changes (server in its own process, "
        f"{os.cpu_count()} CPUs), run took {elapsed:.1f} s"
    )
    print(f"  emulator revision {revision()}")
    if len(measured) < args.changes or len(baseline) < args.changes:
        print(
            f"  DEADLINE: only {len(baseline)} baseline and {len(measured)} measured changes "
            f"of {args.changes} were made"
        )
    print(
        f"  settings: gap {args.gap:g} ms, fan-out wait {args.fanout_timeout:g} s, server "
        f"ping_interval {args.ping_interval or 'default'}"
    )
    print(f"  {'(milliseconds)':<38} {'p50':>9} {'p99':>9} {'max':>9} {'n':>6}")
    print(row("request latency, 0 observers", base_lat))
    print(row(f"request latency, {n} observers", obs_lat))
    print(row("response -> first observer receipt", resp_first))
    print(row("response -> last observer receipt", resp_last))
    print(row("request sent -> first observer receipt", sent_first))
    print(row("request sent -> last observer receipt", sent_last))
    print(row("first -> last observer receipt", spread))
    print(f"  request latency p50 ratio ({n} observers / 0): {ratio:.2f}x")
    print(
        f"  notifications received / expected: {a['received']} / {n * m}"
        f"  (missing {a['missing']}, out of order {a['out_of_order']}, "
        f"unexpected {a['unexpected']}, duplicates {a['duplicates']}, "
        f"Observe regressions {a['observe_regressions']})"
    )
    print(
        f"  Message IDs reused for a different message to the same observer within "
        f"EXCHANGE_LIFETIME: {a['mid_reuses']}"
    )
    print(
        f"  changes whose fan-out was incomplete: {incomplete}; changes where the first "
        f"notification beat the response: {early}/{len(resp_first)}; pings ignored: "
        f"{a['pings']}"
    )
    if drops_before is not None and drops_after is not None:
        print(
            f"  UDP datagrams dropped by the kernel for full receive buffers during the run "
            f"(system-wide): {drops_after - drops_before}"
        )
    ended = [o for o in bench.observers if o.ended]
    print(
        f"  observers ended by the server: {len(ended)} seen by clients, "
        f"{len(ended_lines)} in the server log"
    )
    for p in a["problems"][:10]:
        print(f"    {p}")
    for line in ended_lines[:5]:
        print(f"    server: {line}")
    ok = (
        m == args.changes
        and a["received"] == n * m
        and not a["missing"]
        and not a["out_of_order"]
        and not a["observe_regressions"]
        and not ended
        and not ended_lines
    )
    print("  result: " + ("OK, every observer got every change in order" if ok else "PROBLEMS"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--observers", type=int, default=None, help="observers (default 100)")
    p.add_argument("--changes", type=int, default=None, help="changes per phase (default 200)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="20 observers, 30 changes (unless given); takes a second or two",
    )
    p.add_argument(
        "--fanout-timeout",
        type=float,
        default=5.0,
        help="seconds each change waits for all its notifications (default 5; "
        "0 = do not wait: pipelined changes, notifications queue up)",
    )
    p.add_argument(
        "--gap",
        type=float,
        default=0.0,
        metavar="MS",
        help="pause after each change (after its fan-out) before the next request, "
        "in milliseconds (default 0: back to back)",
    )
    p.add_argument(
        "--ping-interval",
        type=float,
        default=None,
        metavar="S",
        help="the server's ping_interval (default: the emulator's, 30 s)",
    )
    p.add_argument(
        "--server-log",
        metavar="PATH",
        help="save the server's log (as of the end of the measurement) to PATH",
    )
    p.add_argument(
        "--dump",
        metavar="PATH",
        help="write every change and every observer's receipts to PATH as JSON",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="stop making changes after this many seconds and report what was "
        "measured (default 300, quick 10); the run is cut off "
        f"{HARD_LIMIT:.0f} s later",
    )
    args = p.parse_args(argv)
    args.observers = args.observers if args.observers is not None else (20 if args.quick else 100)
    args.changes = args.changes if args.changes is not None else (30 if args.quick else 200)
    args.deadline = args.deadline or (10.0 if args.quick else 300.0)
    if args.observers < 1 or args.changes < 1:
        p.error("--observers and --changes must be at least 1")

    return bench.run_to_exit("bench_notify", run(args), args.deadline + HARD_LIMIT, (RuntimeError,))


if __name__ == "__main__":
    raise SystemExit(main())
