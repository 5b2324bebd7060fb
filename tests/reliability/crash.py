"""Crash consistency (issue 6): SIGKILL at random moments under a load of session changes.

`run()` starts `python -m pager serve` on a fresh store, runs `clients` workers (each its own
aiocoap client context, so its own UDP port; CON requests, one at a time, on its own pager
numbers; see `harness.Workload`) and, `cycles` times: lets the load run for a random
0.3-1.0 x `seconds`, kills the server with SIGKILL, runs SQLite's integrity check on a copy
of the store as the kill left it (file and write-ahead log), restarts the server on the same
store and, with the load paused, reads the whole store through the API and checks it against
the ledger of acknowledged changes (`harness.Ledger.verify`) and that sequence numbers and ids
did not go back (`Ledger.check_restart`). A request still unanswered when the server dies is
*in flight at the kill*: it may or may not be committed, and either is accepted. After the
last cycle the server is stopped with SIGTERM and must exit 0; its logs must show no error.

The restarted server listens on a new ephemeral port, so that no retransmission of a request
sent to the killed process can reach the new one: the emulator forgets its deduplication
state in a restart, so such a retransmission would be processed a second time (see
`test_a_retransmission_reaching_the_restarted_server_is_not_processed_again`); this test is
about what the store keeps.

Each server process gets its own client contexts (UDP sockets): a socket that sent to the
killed process receives ICMP "port unreachable", Linux keeps it as a pending error on the
socket, and aiocoap blames it on whatever request that socket sends next (its
`error_received` takes the remote of the current send), so a request to the new live server
would fail with "Connection refused". That is the client library's doing, not the
emulator's.

With `rig_actions`, the server also serves its control API and each cycle may race a rig
action with the load and the kill (issue 11): `POST /power-cycle` (0.3 s unreachable; the
clients' retransmissions get through afterwards; nothing may be lost), or `POST /reset` with
the kill following it within 0-30 ms, so that it lands during the reset or just after it.
After a reset the check is what a reset promises: if it was acknowledged, no session whose
create was acknowledged before the reset was sent may be in the store (the old state must not
come back), and every create acknowledged after the reset's answer must be; if the kill came
first, the store must be either the old one (the ledger's checks) or such a reset one. Then,
with the load paused, one more reset must leave an empty store and the next cycles start a
new ledger on it.

Everything is bounded: each request by `REQUEST_TIMEOUT`, each pause by `PARK_TIMEOUT`, each
start by the server's own start timeout; the server and the client contexts are closed in
`finally`.
"""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiocoap
import aiohttp

from tests.reliability.harness import (
    HOST,
    Answer,
    Ledger,
    Server,
    Snapshot,
    Workload,
    client_context,
    coap_request,
    integrity,
    logged_errors,
    number_ranges,
    snapshot,
)

REQUEST_TIMEOUT = 20.0  # no answer from a live server within this is a violation
PARK_TIMEOUT = 30.0  # workers must stop within this after a kill


@dataclass
class Instance:
    index: int
    server: Server
    dead: asyncio.Event = field(default_factory=asyncio.Event)  # set once it is reaped
    killing: bool = False  # set just before SIGKILL: failures from then on are expected
    contexts: list[aiocoap.Context] = field(default_factory=list)  # one per worker


@dataclass
class CrashReport:
    cycles: int
    seconds: float
    clients: int
    seed: int
    ledger: Ledger
    in_flight: list[int] = field(default_factory=list)  # unanswered at each kill
    load_seconds: list[float] = field(default_factory=list)  # time until each kill
    restart_seconds: list[float] = field(default_factory=list)
    verifications: int = 0
    verify_seconds: list[float] = field(default_factory=list)
    exit_status: int | None = None
    log_errors: list[str] = field(default_factory=list)
    final: Snapshot | None = None
    resolved: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    rig_actions: Counter = field(default_factory=Counter)
    ledgers: list[Ledger] = field(default_factory=list)  # earlier ones, ended by a reset

    @property
    def violations(self) -> list[str]:
        return self.ledger.violations

    @property
    def acknowledged(self) -> int:
        return sum(led.count("acked") for led in [*self.ledgers, self.ledger])

    def lines(self) -> list[str]:
        led = self.ledger
        kinds = ("create", "page", "label", "clear", "remove")
        acked = ", ".join(f"{k} {led.count('acked', (k,))}" for k in kinds)
        resolved = ", ".join(f"{k} {v}" for k, v in sorted(self.resolved.items())) or "-"
        out = [
            f"cycles (SIGKILL + restart)      {len(self.in_flight)} of {self.cycles}; "
            f"{self.clients} clients; seed {self.seed}",
            f"load per cycle before the kill  "
            f"{_spread(self.load_seconds)} s (random in 0.3-1.0 x {self.seconds} s)",
            f"requests sent                   {len(led.ops)}",
            f"acknowledged changes            {led.count('acked')} ({acked})"
            + (f"; {self.acknowledged} in all, before resets too" if self.ledgers else ""),
            f"in flight at a kill             {sum(self.in_flight)} "
            f"(per kill {_spread(self.in_flight)}); found in the store: {resolved}",
            f"unexpected answers              {led.count('unexpected')}",
            f"rig actions racing the kill     "
            f"{', '.join(f'{k} {v}' for k, v in sorted(self.rig_actions.items())) or '-'}"
            f" (figures above: since the last reset)",
            f"restart to first answer         {_spread(self.restart_seconds)} s",
            f"SQLite integrity after a kill   {len(self.in_flight)} checks (on a copy of the "
            "store and its write-ahead log, before the restart)",
            f"store verifications             {self.verifications} "
            f"(at start and after every restart, load paused; {_spread(self.verify_seconds)} s)",
        ]
        if self.final is not None:
            f = self.final
            st = f.statistics
            out.append(
                f"final store                     {len(f.active)} active + {len(f.history)} "
                f"in history; globalSessionSequence {f.global_sequence}; "
                f"max id {max((s['id'] for s in f.sessions), default=0)}"
            )
            out.append(
                f"final statistics                numSessions {st['numSessions']}, "
                f"guestsServed {st['guestsServed']}, percentOnTime {st['percentOnTime']}, "
                f"averageTimeServed {st['averageTimeServed']}"
            )
        out += [
            f"graceful stop exit status       {self.exit_status}",
            f"errors in server logs           {len(self.log_errors)}",
            f"violations                      {len(self.violations)}",
            f"elapsed                         {self.elapsed:.1f} s",
        ]
        out += [f"  VIOLATION {v}" for v in self.violations[:30]]
        if len(self.violations) > 30:
            out.append(f"  ... and {len(self.violations) - 30} more")
        out += [f"  LOG {line}" for line in self.log_errors[:10]]
        return out


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    fmt = (lambda v: f"{v:.2f}") if isinstance(values[0], float) else str
    return (
        f"min {fmt(min(values))} / median {fmt(statistics.median(values))} / max {fmt(max(values))}"
    )


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


async def _control(http, inst: Instance, path: str, body) -> dict | None:
    """POST to the control API; its JSON answer, or None if none came (killed)."""
    url = f"http://{HOST}:{inst.server.control_port}{path}"
    try:
        async with http.post(
            url, json=body, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        ) as r:
            return await r.json() if r.status == 200 else {"status": r.status}
    except (TimeoutError, aiohttp.ClientError):
        return None


class _RigCall:
    """A control-API call under way: when it was sent and when (if) it was answered."""

    def __init__(self, http, inst: Instance, path: str, body):
        self.sent_at = time.monotonic()
        self.answered_at: float | None = None
        self.answer = None
        self._task = asyncio.ensure_future(self._call(http, inst, path, body))

    async def _call(self, http, inst, path, body):
        self.answer = await _control(http, inst, path, body)
        if self.answer is not None:
            self.answered_at = time.monotonic()

    async def done(self) -> None:
        await self._task


def _check_reset(
    ledger: Ledger, snap: Snapshot, reset: _RigCall, label: str, deferred: list[str]
) -> None:
    """After a reset raced with the load and a kill: acknowledged, the old state must not come
    back and what was acknowledged after it must be there; cut by the kill, the store is the
    old one (the ledger's checks) or a reset one."""
    stored = {s["uuid"] for s in snap.sessions}
    old = [
        e
        for e in ledger.sessions
        if e.uuid is not None
        and any(
            op.session is e
            and op.kind == "create"
            and op.answered_at is not None
            and op.answered_at < reset.sent_at
            for op in ledger.ops
        )
    ]
    back = [e for e in old if e.uuid in stored]
    after = [
        op
        for op in ledger.ops
        if op.kind == "create"
        and op.outcome == "acked"
        and reset.answered_at is not None
        and op.sent_at > reset.answered_at
    ]
    lost = [op for op in after if op.session.uuid not in stored]
    reset_like = not back and not lost
    if reset.answered_at is not None:
        if reset.answer != {"reset": True}:
            ledger.violation(f"{label}: POST /reset answered {reset.answer}")
        for e in back:
            ledger.violation(
                f"{label}: {e.describe()}, acknowledged before the acknowledged "
                "reset, is in the store again"
            )
        for op in lost:
            ledger.violation(f"{label}: {op.describe()}, acknowledged after the reset, is lost")
        return
    before = len(ledger.violations)
    ledger.verify(snap, label)
    if reset_like:  # the reset committed before the kill: the old ledger does not apply
        del ledger.violations[before:]
    else:
        ledger.violations += deferred


class _Shared:
    def __init__(self, ledger: Ledger, workloads: list[Workload]):
        self.up = asyncio.Event()  # the load runs while set
        self.instance: Instance | None = None
        self.busy: set[int] = set()  # workers with a request out
        self.ledger = ledger  # replaced, with the workloads, after a reset
        self.workloads = workloads
        self.resetting = False  # a POST /reset is racing with the load
        self.deferred: list[str] = []  # what answers since then violate if it did not commit


async def _race(coro, dead: asyncio.Event, timeout: float) -> tuple[Answer | None, str | None]:
    """The request's answer, or (None, why) if the server died or it timed out first."""
    task = asyncio.ensure_future(coro)
    death = asyncio.ensure_future(dead.wait())
    try:
        await asyncio.wait({task, death}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        death.cancel()
    if task.done() and not task.cancelled() and task.exception() is None:
        return task.result(), None  # answered, even if the kill came right after
    if task.done() and not task.cancelled():
        return None, f"request failed: {task.exception()!r}"
    task.cancel()
    try:
        await task
    except BaseException:  # cancelled or failed on the way out: either way, no answer
        pass
    return None, "server killed" if dead.is_set() else f"no answer within {timeout} s"


async def _worker(i: int, shared: _Shared) -> None:
    ledger = shared.ledger
    try:
        while True:
            await shared.up.wait()
            inst = shared.instance
            if not shared.up.is_set() or inst is None or inst.dead.is_set():
                await asyncio.sleep(0.001)
                continue
            ledger, workload = shared.ledger, shared.workloads[i]
            op = workload.next_op(ledger.new_serial())
            op.instance = inst.index
            op.sent_at = time.monotonic()
            ledger.sent(op)
            shared.busy.add(i)
            try:
                answer, why = await _race(
                    coap_request(
                        inst.contexts[i], inst.server.port, op.method, op.path, op.body, op.query
                    ),
                    inst.dead,
                    REQUEST_TIMEOUT,
                )
                if answer is None:
                    ledger.unknown(op)
                    if not inst.killing:
                        ledger.violation(f"{op.describe()} to a live server: {why}")
                else:
                    op.answered_at = time.monotonic()
                    before = len(ledger.violations)
                    ledger.answered(op, answer)
                    if shared.resetting:  # judged once it is known whether the reset committed
                        shared.deferred += ledger.violations[before:]
                        del ledger.violations[before:]
                workload.settle(op)
            finally:
                shared.busy.discard(i)
    except Exception as e:  # a broken worker must not go unnoticed
        ledger.violation(f"worker {i} stopped: {e!r}")
        raise


async def run(
    cycles: int = 20,
    seconds: float = 2.0,
    clients: int = 8,
    seed: int = 7470,
    log: Callable[[str], None] | None = None,
    server_module: str = "pager",
    rig_actions: bool = False,
) -> CrashReport:
    say = log or (lambda text: None)
    started = time.monotonic()
    rng = random.Random(seed)
    ledger = Ledger()
    report = CrashReport(cycles, seconds, clients, seed, ledger)

    def new_workloads(epoch: int) -> list[Workload]:
        return [
            Workload(i, numbers, random.Random(f"{seed}/{epoch}/{i}" if epoch else f"{seed}/{i}"))
            for i, numbers in enumerate(number_ranges(clients))
        ]

    shared = _Shared(ledger, new_workloads(0))
    http = aiohttp.ClientSession() if rig_actions else None
    tasks: list[asyncio.Task] = []
    instance: Instance | None = None
    with tempfile.TemporaryDirectory(prefix="pager-crash-") as tmp:
        db = Path(tmp) / "pager.db"
        config = Server.config_file(Path(tmp))
        logs: list[Path] = []

        async def start(index: int) -> Instance:
            logs.append(Path(tmp) / f"server-{index}.log")
            t = time.monotonic()
            server = await Server(
                db,
                logs[-1],
                0,
                "--config",
                str(config),
                module=server_module,
                control_port=_free_tcp_port() if rig_actions else None,
            ).start()
            if index:
                report.restart_seconds.append(time.monotonic() - t)
            started = Instance(index, server)
            for _ in range(clients):
                started.contexts.append(await client_context())
            return started

        async def close(ending: Instance) -> None:
            await ending.server.kill()
            for context in ending.contexts:
                await context.shutdown()
            ending.contexts.clear()

        async def check(label: str) -> Snapshot:
            t = time.monotonic()
            snap = await snapshot(verifier, instance.server.port)
            ledger.check_restart(snap, label)
            ledger.verify(snap, label)
            report.verifications += 1
            report.verify_seconds.append(time.monotonic() - t)
            return snap

        verifier = await client_context()
        try:
            instance = shared.instance = await start(0)
            await check("at start")
            tasks = [asyncio.create_task(_worker(i, shared)) for i in range(clients)]
            for cycle in range(1, cycles + 1):
                load = rng.uniform(0.3, 1.0) * seconds
                action = rng.choice(("none", "power-cycle", "reset")) if rig_actions else "none"
                shared.up.set()
                reset = None
                if action == "none":
                    await asyncio.sleep(load)
                elif action == "power-cycle":
                    await asyncio.sleep(load / 2)
                    report.rig_actions["power-cycle"] += (
                        await _control(http, instance, "/power-cycle", {"seconds": 0.3}) is not None
                    )
                    await asyncio.sleep(load / 2)
                else:
                    await asyncio.sleep(load)
                    shared.resetting = True
                    reset = _RigCall(http, instance, "/reset", None)
                    await asyncio.sleep(rng.uniform(0, 0.03))  # the kill lands during or after
                shared.up.clear()
                instance.killing = True
                await instance.server.kill()
                instance.dead.set()
                if reset is not None:
                    await reset.done()
                deadline = time.monotonic() + PARK_TIMEOUT
                while shared.busy and time.monotonic() < deadline:
                    await asyncio.sleep(0.005)
                if shared.busy:
                    raise RuntimeError(f"workers {shared.busy} did not stop after the kill")
                in_flight = sum(
                    1
                    for op in ledger.ops
                    if op.instance == instance.index and op.outcome == "unknown"
                )
                report.in_flight.append(in_flight)
                report.load_seconds.append(load)
                await close(instance)
                checked = integrity(db, Path(tmp) / "copy")
                if checked != "ok":
                    ledger.violation(f"kill {cycle}: store integrity check: {checked}")
                instance = shared.instance = await start(cycle)
                if reset is None:
                    snap = await check(f"after restart {cycle}")
                else:
                    report.rig_actions[
                        "reset acknowledged"
                        if reset.answered_at is not None
                        else "reset cut by the kill"
                    ] += 1
                    snap = await snapshot(verifier, instance.server.port)
                    _check_reset(
                        ledger, snap, reset, f"after reset + kill {cycle}", shared.deferred
                    )
                    shared.resetting, shared.deferred = False, []
                    # a new ledger on an empty store, the load paused
                    if await _control(http, instance, "/reset", None) != {"reset": True}:
                        ledger.violation(f"cycle {cycle}: a reset with the load paused failed")
                    snap = await snapshot(verifier, instance.server.port)
                    if snap.sessions or snap.global_sequence or snap.statistics["numSessions"]:
                        ledger.violation(
                            f"cycle {cycle}: not empty after a reset: "
                            f"{len(snap.sessions)} sessions, globalSessionSequence"
                            f" {snap.global_sequence}, {snap.statistics}"
                        )
                    fresh = Ledger()
                    fresh.violations = ledger.violations
                    report.ledgers.append(ledger)
                    ledger = report.ledger = shared.ledger = fresh
                    shared.workloads = new_workloads(cycle)
                    report.verifications += 1
                say(
                    f"cycle {cycle:3}: killed after {load:.2f} s with {in_flight} request(s) "
                    f"in flight; restarted in {report.restart_seconds[-1]:.2f} s; verified "
                    f"{len(snap.active)} active + {len(snap.history)} archived sessions, "
                    f"globalSessionSequence {snap.global_sequence}; "
                    f"violations so far {len(ledger.violations)}"
                )
            report.final = snap if cycles else await check("final")
            report.resolved = ledger.resolve_uncertain(report.final)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks = []
            report.exit_status = await instance.server.stop()
            if report.exit_status != 0:
                ledger.violation(f"graceful stop (SIGTERM) exited {report.exit_status}")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if instance is not None:
                await close(instance)
            await verifier.shutdown()
            if http is not None:
                await http.close()
            for path in logs:
                report.log_errors += logged_errors(path)
        if report.log_errors:
            ledger.violation(f"{len(report.log_errors)} error line(s) in the server logs")
    report.elapsed = time.monotonic() - started
    return report
