"""Lossy network (issue 6): session changes through a UDP relay that drops and reorders.

`run()` starts `python -m pager serve` and, in this process, a `Relay` between the clients
and the server. The relay drops each datagram with probability `loss` in each direction and
delays a fraction `reorder` of the rest by 5-100 ms, so that later datagrams overtake them;
its decisions come from one generator seeded with `seed`. On top of that, two fixed cases
make every run exercise the deduplication whatever the random draws:

- the first answer the server sends to each client is dropped, so that the client's first
  request (a create) is retransmitted after it certainly reached the server;
- the first transmission of each client's second request is held back for 0.3 s, while its
  retransmissions, their answers and the client's next request pass untouched: the
  retransmission gets through and is answered, the client sends its next request, and only
  then does the held copy reach the server, a *stale duplicate* of a request already
  answered, arriving after a newer one from the same peer (if that request was a clear, the
  newer one may be a create on the same number: processing the stale copy would clear the
  new session).

The relay keeps one upstream socket per client address, so the server sees each client as a
peer of its own, as without the relay.

`clients` workers (aiocoap client contexts, CON requests, one at a time each, at most
`max_active` sessions each, on pager numbers of their own that are reused as soon as a
session ends; see `harness.Workload`) send
`requests` requests in all, with aiocoap's own retransmission of the same message (same
message id) under a shortened `LossyTuning`. A request whose every transmission or answer was
lost fails after MAX_RETRANSMIT retransmissions; it is then unknown (it may or may not have
reached the server) and its number is not used again.

Checks, besides the ledger's (`Ledger.verify`: nothing acknowledged lost, the final state
exactly what the acknowledged history implies, bounds for the failed ones):

- *processed once*: the relay sees every request datagram the server receives and every
  answer the server sends. A request that reached the server more than once must have been
  answered with byte-identical datagrams every time (aiocoap's deduplication re-sends the
  stored answer; a request processed again would get a fresh answer: another code, sequence
  number or timestamp);
- *every create exactly once*: numSessions equals the number of distinct create requests that
  reached the server (each is on a number with no active session, so each creates one);
- *every change exactly once*: globalSessionSequence equals the number of distinct requests
  that reached the server (every request of the load is one session change).
"""

from __future__ import annotations

import asyncio
import random
import socket
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiocoap

from tests.reliability.harness import (
    HOST,
    Ledger,
    Server,
    Snapshot,
    Workload,
    client_context,
    coap_request,
    logged_errors,
    number_ranges,
    snapshot,
)

CON, ACK = 0, 2  # CoAP message types


class LossyTuning(aiocoap.Reliable):
    """aiocoap's retransmission, shortened for a test: first timeout 0.06-0.09 s, doubling, 6
    retransmissions (gives up after 7.6-11.4 s, when all 7 transmissions or their answers were
    lost: 0.36**7 = 0.08 % of requests at 20 % loss each way); RFC 7252's are 2-3 s and 4
    retransmissions. The first timeout is shorter than the relay's longest delay, so that a
    delayed datagram is often overtaken by its own retransmission, and the retransmission's
    answer lets the client send its next request before the delayed copy arrives: a stale
    duplicate reaching the server after a newer request from the same peer."""

    ACK_TIMEOUT = 0.06
    ACK_RANDOM_FACTOR = 1.5
    MAX_RETRANSMIT = 6


@dataclass
class Flow:
    """One direction of one client's traffic, to count overtaken datagrams."""

    received: int = 0
    highest_sent: int = -1


class Relay:
    """UDP between the clients and the server that loses, delays and reorders datagrams."""

    def __init__(
        self,
        server_port: int,
        loss: float,
        reorder: float,
        rng: random.Random,
        delay: tuple[float, float] = (0.005, 0.1),
        drop_first_response: bool = True,
        hold_second_request: float = 0.3,
        disguise_duplicates: bool = False,
    ):
        self.server = (HOST, server_port)
        self.loss, self.reorder, self.delay, self.rng = loss, reorder, delay, rng
        self.drop_first_response = drop_first_response
        self.hold_second_request = hold_second_request
        # Negative control of the checks: give every repeated request a message id of its own,
        # so that the server cannot recognise it (and map the answers back for the client).
        self.disguise_duplicates = disguise_duplicates
        self._renamed: dict[tuple, int] = {}  # (client, alias) -> the client's message id
        self._next_alias = rng.randrange(65536)
        self._first_sent: set[tuple] = set()  # request keys seen from the clients
        self._requests_of: Counter = Counter()  # client -> distinct requests sent
        self._shielded: set[tuple] = set()  # held requests' keys: no loss, no delay
        self._pass_next: set[tuple] = set()  # clients whose next request passes untouched
        self.port: int | None = None
        self.stats: Counter = Counter()
        self.arrivals: Counter = Counter()  # (client, mid) -> request datagrams delivered
        self.requests: dict[tuple, str] = {}  # (client, mid) -> "POST /v1/sessions" ...
        self.answers: dict[tuple, set[bytes]] = defaultdict(set)  # (client, mid) -> ACKs sent
        self._upstreams: dict[tuple, socket.socket] = {}
        self._flows: dict[tuple, Flow] = defaultdict(Flow)
        self._first_answered: set[tuple] = set()
        self._newest_request: dict[tuple, int] = {}
        self._timers: set[asyncio.TimerHandle] = set()
        self._down: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> Relay:
        self._loop = asyncio.get_running_loop()
        self._down = self._socket()
        self._loop.add_reader(self._down, self._from_clients)
        self.port = self._down.getsockname()[1]
        return self

    @staticmethod
    def _socket() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        return s

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for s in [self._down, *self._upstreams.values()]:
            if s is not None:
                self._loop.remove_reader(s)
                s.close()

    @property
    def peers(self) -> int:
        return len(self._upstreams)

    def _from_clients(self) -> None:
        for _ in range(1000):  # bounded: the rest waits for the next readiness callback
            try:
                data, client = self._down.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.stats["socket errors"] += 1
                continue
            up = self._upstreams.get(client)
            if up is None:
                up = self._upstreams[client] = self._socket()
                up.connect(self.server)
                self._loop.add_reader(up, self._from_server, up, client)
            self._forward("up", client, data, up.send)

    def _from_server(self, up: socket.socket, client: tuple) -> None:
        for _ in range(1000):
            try:
                data = up.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.stats["socket errors"] += 1
                continue
            self._forward("down", client, data, lambda d, c=client: self._down.sendto(d, c))

    def _forward(self, direction: str, client: tuple, data: bytes, send) -> None:
        self.stats[f"{direction} datagrams"] += 1
        mtype = (data[0] >> 4) & 3 if data else None
        code = data[1] if len(data) > 1 else 0
        mid = int.from_bytes(data[2:4], "big") if len(data) >= 4 else None
        if direction == "down" and (client, mid) in self._renamed:  # see disguise_duplicates
            mid = self._renamed[(client, mid)]
            data = data[:2] + mid.to_bytes(2, "big") + data[4:]
        key = (client, mid)
        is_request = direction == "up" and mtype == CON and 1 <= code <= 31
        if direction == "down" and mtype == ACK:
            self.answers[key].add(data)  # what the server answered, lost or not
            if self.drop_first_response and client not in self._first_answered:
                self._first_answered.add(client)
                self.stats["down dropped (first answer to each client)"] += 1
                return
        flow = self._flows[(direction, client)]
        index = flow.received
        flow.received += 1

        def deliver(release: bool = False) -> None:
            if release:
                self._shielded.discard(key)
            if index < flow.highest_sent:
                self.stats[f"{direction} overtaken"] += 1
            flow.highest_sent = max(flow.highest_sent, index)
            out = data
            if is_request:
                if self.disguise_duplicates and self.arrivals[key]:
                    out = self._disguise(key, data)
                self._arrived(key, data)
            try:
                send(out)
            except OSError:
                self.stats["socket errors"] += 1

        if is_request and key not in self._first_sent:
            self._first_sent.add(key)
            self._requests_of[client] += 1
            if self._requests_of[client] == 2 and self.hold_second_request:
                # held back; meanwhile its retransmissions, their answers and the client's
                # next request pass untouched, so that they certainly arrive first
                self._shielded.add(key)
                self._pass_next.add(client)
                self.stats["up held (second request of each client)"] += 1
                self._later(self.hold_second_request, deliver, True)
                return
            if client in self._pass_next:
                self._pass_next.discard(client)
                deliver()
                return
        if key in self._shielded:
            deliver()
        elif self.rng.random() < self.loss:
            self.stats[f"{direction} dropped"] += 1
        elif self.rng.random() < self.reorder:
            self.stats[f"{direction} delayed"] += 1
            self._later(self.rng.uniform(*self.delay), deliver)
        else:
            deliver()

    def _later(self, delay: float, callback, *args) -> None:
        def fire() -> None:
            self._timers.discard(timer)
            callback(*args)

        timer = self._loop.call_later(delay, fire)
        self._timers.add(timer)

    def _disguise(self, key: tuple, data: bytes) -> bytes:
        """The datagram under a message id the server has not seen from this client."""
        client, mid = key
        while True:
            self._next_alias = (self._next_alias + 7919) % 65536
            alias = self._next_alias
            if (client, alias) not in self._renamed and (client, alias) not in self._first_sent:
                break
        self._renamed[(client, alias)] = mid
        return data[:2] + alias.to_bytes(2, "big") + data[4:]

    def _arrived(self, key: tuple, data: bytes) -> None:
        """A request datagram handed to the server."""
        client, mid = key
        self.arrivals[key] += 1
        if key not in self.requests:
            msg = aiocoap.Message.decode(data)
            self.requests[key] = f"{msg.code} /{'/'.join(msg.opt.uri_path)}"
        # aiocoap numbers a client's messages upwards (modulo 2**16) and sends a request only
        # when the previous one is answered: an older id arriving is a stale duplicate
        newest = self._newest_request.get(client)
        if newest is not None and 0 < (newest - mid) % 65536 < 32768:
            self.stats["up stale duplicates"] += 1
        else:
            self._newest_request[client] = mid


@dataclass
class LossyReport:
    requests: int
    loss: float
    reorder: float
    clients: int
    seed: int
    ledger: Ledger
    relay: Relay | None = None
    final: Snapshot | None = None
    failures: list[str] = field(default_factory=list)  # requests that got no answer
    log_errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def violations(self) -> list[str]:
        return self.ledger.violations

    @property
    def duplicated(self) -> dict[tuple, int]:
        """Requests that reached the server more than once, with how many times."""
        return {k: n for k, n in self.relay.arrivals.items() if n > 1}

    @property
    def duplicated_creates(self) -> int:
        return sum(1 for k in self.duplicated if self.relay.requests[k] == "POST /v1/sessions")

    @property
    def creates_arrived(self) -> int:
        return sum(1 for v in self.relay.requests.values() if v == "POST /v1/sessions")

    def lines(self) -> list[str]:
        led, r = self.ledger, self.relay
        st = r.stats if r else Counter()
        kinds = ("create", "page", "label", "clear", "remove")
        acked = ", ".join(f"{k} {led.count('acked', (k,))}" for k in kinds)
        arrived = sum(r.arrivals.values()) if r else 0
        dup = self.duplicated if r else {}
        out = [
            f"requests                        {len(led.ops)} from {self.clients} clients "
            f"(CON, aiocoap retransmission: ACK_TIMEOUT {LossyTuning.ACK_TIMEOUT} s, "
            f"MAX_RETRANSMIT {LossyTuning.MAX_RETRANSMIT}); seed {self.seed}",
            f"acknowledged                    {led.count('acked')} ({acked})",
            f"failed (no answer at all)       {len(self.failures)}",
            f"unexpected answers              {led.count('unexpected')}",
            f"relay: loss {self.loss:.0%} each way, {self.reorder:.0%} delayed 5-100 ms; "
            f"{r.peers if r else 0} upstream peers; socket errors {st['socket errors']}",
            f"  client -> server datagrams    {st['up datagrams']}: dropped {st['up dropped']}, "
            f"delayed {st['up delayed']}, overtaken {st['up overtaken']}",
            f"  server -> client datagrams    {st['down datagrams']}: dropped "
            f"{st['down dropped']} + {st['down dropped (first answer to each client)']} "
            f"(first answer to each client), delayed {st['down delayed']}, "
            f"overtaken {st['down overtaken']}",
            f"  request datagrams at server   {arrived} for {len(r.arrivals) if r else 0} "
            f"distinct requests",
            f"  requests arriving twice+      {len(dup)} "
            f"(creates {self.duplicated_creates if r else 0}); "
            f"most arrivals of one request {max(dup.values(), default=1)}",
            f"  stale duplicates at server    {st['up stale duplicates']} (arriving after the "
            f"same client's next request; {st['up held (second request of each client)']} "
            "of them forced by holding back each client's second request)",
        ]
        if self.final is not None:
            f = self.final
            out += [
                f"sessions created (numSessions)  {f.statistics['numSessions']} for "
                f"{self.creates_arrived} distinct create requests at the server",
                f"globalSessionSequence           {f.global_sequence} for "
                f"{len(r.arrivals)} distinct requests at the server",
                f"final store                     {len(f.active)} active + {len(f.history)} in "
                f"history; guestsServed {f.statistics['guestsServed']}",
            ]
        out += [
            f"errors in server logs           {len(self.log_errors)}",
            f"violations                      {len(self.violations)}",
            f"elapsed                         {self.elapsed:.1f} s",
        ]
        out += [f"  FAILED {line}" for line in self.failures[:10]]
        out += [f"  VIOLATION {v}" for v in self.violations[:30]]
        out += [f"  LOG {line}" for line in self.log_errors[:10]]
        return out


async def _worker(
    i: int,
    count: int,
    workload: Workload,
    context: aiocoap.Context,
    port: int,
    ledger: Ledger,
    report: LossyReport,
) -> None:
    tuning = LossyTuning()
    for _ in range(count):
        op = workload.next_op(ledger.new_serial())
        ledger.sent(op)
        try:
            answer = await asyncio.wait_for(
                coap_request(context, port, op.method, op.path, op.body, op.query, tuning), 60
            )
        except (TimeoutError, aiocoap.error.Error, OSError) as e:
            ledger.unknown(op)
            report.failures.append(f"{op.describe()}: {e!r}")
        else:
            ledger.answered(op, answer)
        workload.settle(op)


async def run(
    requests: int = 1000,
    loss: float = 0.2,
    clients: int = 4,
    seed: int = 7470,
    reorder: float = 0.15,
    max_active: int = 2,
    disguise_duplicates: bool = False,
    log: Callable[[str], None] | None = None,
) -> LossyReport:
    say = log or (lambda text: None)
    started = time.monotonic()
    ledger = Ledger()
    report = LossyReport(requests, loss, reorder, clients, seed, ledger)
    contexts: list[aiocoap.Context] = []
    server: Server | None = None
    relay: Relay | None = None
    with tempfile.TemporaryDirectory(prefix="pager-lossy-") as tmp:
        log_path = Path(tmp) / "server.log"
        try:
            server = await Server(
                Path(tmp) / "pager.db", log_path, 0, "--config", str(Server.config_file(Path(tmp)))
            ).start()
            relay = report.relay = Relay(
                server.port,
                loss,
                reorder,
                random.Random(seed),
                disguise_duplicates=disguise_duplicates,
            ).start()
            for _ in range(clients + 1):  # the last one reads the store directly
                contexts.append(await client_context())
            workloads = [
                Workload(i, numbers, random.Random(f"{seed}/{i}"), max_active)
                for i, numbers in enumerate(number_ranges(clients))
            ]
            counts = [requests // clients + (i < requests % clients) for i in range(clients)]
            say(
                f"{requests} requests from {clients} clients through the relay on port "
                f"{relay.port} to the server on port {server.port}"
            )
            await asyncio.gather(
                *(
                    _worker(i, counts[i], workloads[i], contexts[i], relay.port, ledger, report)
                    for i in range(clients)
                )
            )
            await asyncio.sleep(0.5)  # delayed and held datagrams still in the relay land
            snap = report.final = await snapshot(contexts[-1], server.port)
            ledger.check_restart(snap, "final state")
            ledger.verify(snap, "final state")
            _check_exactly_once(report, snap)
            if await server.stop() != 0:
                ledger.violation(f"graceful stop (SIGTERM) exited {server.process.returncode}")
        finally:
            if relay is not None:
                relay.close()
            if server is not None:
                await server.kill()
            for context in contexts:
                await context.shutdown()
            report.log_errors = logged_errors(log_path)
        if report.log_errors:
            ledger.violation(f"{len(report.log_errors)} error line(s) in the server log")
    report.elapsed = time.monotonic() - started
    return report


def _check_exactly_once(report: LossyReport, snap: Snapshot) -> None:
    relay, ledger = report.relay, report.ledger
    for key, n in report.duplicated.items():
        if len(relay.answers[key]) > 1:
            ledger.violation(
                f"{relay.requests[key]} (message id {key[1]} from {key[0]}) reached the server "
                f"{n} times and was answered {len(relay.answers[key])} different ways: "
                "processed more than once"
            )
    if snap.statistics["numSessions"] != report.creates_arrived:
        ledger.violation(
            f"numSessions {snap.statistics['numSessions']} != "
            f"{report.creates_arrived} distinct create requests at the server"
        )
    if snap.global_sequence != len(relay.arrivals):
        ledger.violation(
            f"globalSessionSequence {snap.global_sequence} != "
            f"{len(relay.arrivals)} distinct requests at the server, each one "
            "session change"
        )
    sent = len(ledger.ops)
    if len(relay.arrivals) > sent:
        ledger.violation(
            f"{len(relay.arrivals)} distinct requests at the server, but only {sent} were sent"
        )
