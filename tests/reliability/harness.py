"""What the reliability proofs (issue 6) share: the server process, a load of session changes,
and the ledger that checks the store against every change the clients saw acknowledged.

The load: each worker owns a disjoint range of pager numbers and runs one request at a time
(CON, through a real aiocoap client context): create a session (sometimes created and paged in
one request), page it, page it again, change its label, clear it or remove it. A number is
reused by the next create once its session is acknowledged as ended, so that a stale
duplicate of an old request would hit a newer session. The choice of the next request is
drawn from a seeded generator.

The ledger records every request and what came of it:

- *acknowledged*: the expected 2.xx arrived. The change is committed (spec §10), so it must
  be in the store, as a session (active or in history) with the answered id, uuid and
  sequence number, and its effect visible (paged → `notified`, cleared → history `STOP`,
  removed → history `REMOVED`).
- *unknown*: no answer (the server was killed, or every retransmission was lost). The change
  may or may not be committed; its number is never used again, so the session's fate is
  judged on its own: either outcome is accepted, nothing else is.
- *unexpected*: an answer other than the expected one (a 2.00 to a create, a 4.04 to a
  clear: signs of a request processed twice or of lost state). Always a violation; the
  session is then treated like an unknown one so that one fault is reported once.

`Ledger.verify(snapshot)` compares a snapshot of the whole store (read through the API)
against that: every acknowledged change present, nothing duplicated or invented, counters
equal to what the store holds and within [acknowledged, acknowledged + unknown].
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiocoap
from aiocoap import resource

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
NUMBER_MAX = 4095  # the emulator's default number range is 0..4095


# ---- the server ------------------------------------------------------------------------


class Server:
    """`python -m pager serve` on 127.0.0.1 in its own process, its log in a file."""

    @staticmethod
    def config_file(directory: Path) -> Path:
        """A configuration that keeps the whole history (the default keeps 100,000), so that
        an archived session missing from it can only mean a lost change."""
        path = directory / "reliability.toml"
        path.write_text("history_limit = 1000000000\n")
        return path

    def __init__(
        self,
        db_path: Path,
        log_path: Path,
        port: int = 0,
        *extra: str,
        module: str = "pager",
        control_port: int | None = None,
    ):
        self.db_path = db_path
        self.log_path = log_path
        self.requested_port = port
        self.extra = extra
        self.module = module  # tests.reliability.broken_server for the negative control
        self.control_port = control_port  # None: --no-control
        self.process: asyncio.subprocess.Process | None = None
        self.port: int | None = None

    async def start(self, timeout: float = 20) -> Server:
        with open(self.log_path, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                "serve",
                "--lrsn-port",
                "0",
                "--host",
                HOST,
                "--port",
                str(self.requested_port),
                "--db",
                str(self.db_path),
                *(
                    ("--no-control",)
                    if self.control_port is None
                    else ("--control-port", str(self.control_port))
                ),
                "--log-level",
                "WARNING",
                *self.extra,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            line = (await asyncio.wait_for(self.process.stdout.readline(), timeout)).decode()
        except TimeoutError:
            await self.kill()
            raise RuntimeError(f"server did not start within {timeout} s") from None
        match = re.search(r":(\d+), store ", line)
        if not match:
            await self.kill()
            raise RuntimeError(f"server did not start: {line!r}\n{self.log_path.read_text()}")
        self.port = int(match.group(1))
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> None:
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        if self.process is not None:
            await asyncio.wait_for(self.process.wait(), 20)

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within 10 s; returns the exit status."""
        if self.process is None:
            return None
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                await self.kill()
        return self.process.returncode


def integrity(db_path: Path, scratch: Path) -> str:
    """SQLite's integrity check of the store as a crash left it, run on a copy (with its
    write-ahead log) so that the original is recovered by the server itself on restart."""
    scratch.mkdir(exist_ok=True)
    copy = scratch / db_path.name
    for suffix in ("", "-wal"):
        source = Path(f"{db_path}{suffix}")
        target = Path(f"{copy}{suffix}")
        if source.exists():
            shutil.copyfile(source, target)
        elif target.exists():
            target.unlink()
    Path(f"{copy}-shm").unlink(missing_ok=True)
    conn = sqlite3.connect(copy)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def logged_errors(log_path: Path) -> list[str]:
    """Lines of a server log that show an error or an unhandled exception."""
    if not log_path.exists():
        return []
    return [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
    ]


# ---- CoAP requests ---------------------------------------------------------------------


async def client_context() -> aiocoap.Context:
    """An aiocoap context for requests, its UDP socket bound to 127.0.0.1 only (a client
    context binds to every address); the empty site answers 4.04 to any stray request."""
    return await aiocoap.Context.create_server_context(
        resource.Site(), bind=(HOST, 0), transports=["udp6"]
    )


@dataclass
class Answer:
    code: str
    body: Any


async def coap_request(
    context: aiocoap.Context,
    port: int,
    method: str,
    path: str,
    body: Any = None,
    query: str | None = None,
    tuning: aiocoap.numbers.TransportTuning | None = None,
) -> Answer:
    """One CON request to 127.0.0.1:port; the answer with its JSON body (None if empty)."""
    uri = f"coap://{HOST}:{port}{path}" + (f"?{query}" if query else "")
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    msg = aiocoap.Message(
        code=getattr(aiocoap.Code, method),
        uri=uri,
        payload=payload,
        transport_tuning=tuning or aiocoap.Reliable(),
    )
    if payload:
        msg.opt.content_format = 50
    response = await context.request(msg).response
    return Answer(response.code.dotted, json.loads(response.payload) if response.payload else None)


@dataclass
class Snapshot:
    """The whole store as the API shows it."""

    active: list[dict]
    history: list[dict]
    statistics: dict  # from GET /v1/sessions/statistics
    listed_statistics: dict  # the statistics section of GET /v1/sessions
    global_sequence: int

    @property
    def sessions(self) -> list[dict]:
        return self.active + self.history


async def snapshot(context: aiocoap.Context, port: int, timeout: float = 120) -> Snapshot:
    async def get(path: str, query: str | None = None) -> dict:
        answer = await asyncio.wait_for(
            coap_request(context, port, "GET", path, query=query), timeout
        )
        if answer.code != "2.05":
            raise AssertionError(f"GET {path}?{query} answered {answer.code}: {answer.body}")
        return answer.body

    listing = await get("/v1/sessions")
    history: list[dict] = []
    after = 0
    while True:  # paged by id; bounded by the history limit of the store
        page = (await get("/v1/sessions/history", f"limit=1000&after={after}"))["session_history"]
        history += page
        if len(page) < 1000:
            break
        after = page[-1]["id"]
    statistics = (await get("/v1/sessions/statistics"))["statistics"]
    return Snapshot(
        listing["sessions"],
        history,
        statistics,
        listing["statistics"],
        listing["globalSessionSequence"],
    )


# ---- the load --------------------------------------------------------------------------

EXPECTED_CODE = {
    "create": "2.01",
    "page": "2.04",
    "label": "2.04",
    "clear": "2.04",
    "remove": "2.02",
}


@dataclass(eq=False)
class Expect:
    """One session as its worker knows it from the answers it received."""

    worker: int
    number: int
    party_size: int
    label: str | None
    goal: int | None  # None: the default goal
    create_page: bool  # created with action "page" (one change)
    id: int | None = None
    uuid: str | None = None
    created: bool = False  # the create was acknowledged
    paged: bool = False  # some page was acknowledged
    end: str | None = None  # "STOP" / "REMOVED" once acknowledged
    last_sequence: int = 0  # sessionSequence of its latest acknowledged change
    uncertain: Op | None = None  # the last request, whose effect is unknown

    def describe(self) -> str:
        return f"session id={self.id} number={self.number} (worker {self.worker})"


@dataclass(eq=False)
class Op:
    serial: int
    worker: int
    kind: str  # create, page, label, clear, remove
    session: Expect
    method: str
    path: str
    query: str | None
    body: dict | None
    instance: int = 0  # which server process it was sent to
    sent_at: float = 0.0  # time.monotonic() when sent and when its answer came
    answered_at: float | None = None
    outcome: str = "pending"  # acked, unknown, unexpected
    code: str | None = None
    sequence: int | None = None  # sessionSequence in the answer
    global_sequence: int | None = None

    @property
    def expected_code(self) -> str:
        return EXPECTED_CODE[self.kind]

    def describe(self) -> str:
        q = f"?{self.query}" if self.query else ""
        return f"#{self.serial} {self.method} {self.path}{q} {self.body or ''} ({self.kind})"


class Workload:
    """The requests of one worker, on its own numbers, drawn from its own seeded generator."""

    def __init__(self, worker: int, numbers: range, rng: random.Random, max_active: int = 6):
        self.worker = worker
        self.rng = rng
        self.free: deque[int] = deque(numbers)
        self.active: list[Expect] = []
        self.max_active = max_active
        self._labels = 0

    def _label(self) -> str:
        self._labels += 1
        return f"w{self.worker}-{self._labels}"

    def next_op(self, serial: int) -> Op:
        rng = self.rng
        if not self.free and not self.active:
            raise RuntimeError(f"worker {self.worker} has no pager number left to use")
        if self.free and (
            not self.active or (len(self.active) < self.max_active and rng.random() < 0.35)
        ):
            return self._create(serial)
        s = rng.choice(self.active)
        r = rng.random()
        if not s.paged:
            kind = "page" if r < 0.6 else "label" if r < 0.7 else "clear" if r < 0.9 else "remove"
        else:
            kind = "page" if r < 0.15 else "label" if r < 0.25 else "clear" if r < 0.7 else "remove"
        query = f"number={s.number}"
        if kind == "remove":
            return Op(serial, self.worker, kind, s, "DELETE", "/v1/sessions", query, None)
        body = {"label": self._label()} if kind == "label" else {"action": kind}
        return Op(serial, self.worker, kind, s, "PUT", "/v1/sessions", query, body)

    def _create(self, serial: int) -> Op:
        rng = self.rng
        number = self.free.popleft()
        body: dict[str, Any] = {"number": number, "partySize": rng.randint(1, 12)}
        if rng.random() < 0.7:
            body["label"] = self._label()
        goal = rng.choice((None, None, 0, 1))  # 0 and 1 s: some pages are late
        if goal is not None:
            body["goal"] = goal
        if rng.random() < 0.25:
            body["action"] = "page"
        s = Expect(
            self.worker, number, body["partySize"], body.get("label"), goal, "action" in body
        )
        return Op(serial, self.worker, "create", s, "POST", "/v1/sessions", None, body)

    def settle(self, op: Op) -> None:
        """Update what is active and which numbers are free after `op` ended either way."""
        s = op.session
        if op.outcome != "acked":  # uncertain: the number is never used again
            if s in self.active:
                self.active.remove(s)
            return
        if op.kind == "create":
            self.active.append(s)
        elif op.kind in ("clear", "remove"):
            self.active.remove(s)
            self.free.appendleft(s.number)  # reused by the next create


def number_ranges(workers: int, span: int | None = None) -> list[range]:
    span = span or (NUMBER_MAX + 1) // workers
    if workers * span > NUMBER_MAX + 1:
        raise ValueError("too many workers for the number range")
    return [range(i * span, (i + 1) * span) for i in range(workers)]


# ---- the ledger ------------------------------------------------------------------------


class Ledger:
    """Every request and its outcome; checks answers as they come and snapshots on demand."""

    def __init__(self):
        self.ops: list[Op] = []
        self.sessions: list[Expect] = []
        self.violations: list[str] = []
        self._sequences: dict[int, Op] = {}  # acknowledged sessionSequence -> its request
        self._last_global: dict[int, int] = {}  # per worker
        self._last_id: dict[int, int] = {}  # per worker
        self.max_global_seen = 0
        self.id_floor = 0  # every id in the store at the latest (re)start
        self._serial = 0

    def violation(self, text: str) -> None:
        self.violations.append(text)

    def new_serial(self) -> int:
        self._serial += 1
        return self._serial

    def sent(self, op: Op) -> None:
        self.ops.append(op)
        if op.kind == "create":
            self.sessions.append(op.session)

    # -- outcomes

    def unknown(self, op: Op) -> None:
        op.outcome = "unknown"
        op.session.uncertain = op

    def answered(self, op: Op, answer: Answer) -> None:
        op.code = answer.code
        s = op.session
        if answer.code != op.expected_code:
            op.outcome = "unexpected"
            s.uncertain = op
            self.violation(
                f"{op.describe()} on {s.describe()} answered {answer.code} "
                f"instead of {op.expected_code}: {answer.body}"
            )
            return
        op.outcome = "acked"
        if op.kind == "remove":  # 2.02 carries no body
            s.end = "REMOVED"
            return
        body = answer.body
        try:
            got = body["sessions"][0]
            op.sequence, op.global_sequence = got["sessionSequence"], body["globalSessionSequence"]
        except (TypeError, KeyError, IndexError):
            self.violation(f"{op.describe()}: malformed answer {body}")
            s.uncertain = op
            return
        self._check_answer(op, got)
        if op.kind == "create":
            s.id, s.uuid, s.created = got["id"], got["uuid"], True
            if s.create_page:
                s.paged = True
        elif op.kind == "page":
            s.paged = True
        elif op.kind == "label":
            s.label = op.body["label"]
        elif op.kind == "clear":
            s.end = "STOP"
        s.last_sequence = op.sequence

    def _check_answer(self, op: Op, got: dict) -> None:
        s, w = op.session, op.worker
        where = f"{op.describe()} on {s.describe()}"
        if got.get("number") != s.number:
            self.violation(f"{where}: answer is about number {got.get('number')}")
        if op.kind != "create" and got.get("id") != s.id:
            self.violation(f"{where}: answer is about id {got.get('id')}")
        want_state = {
            "create": "paged" if s.create_page else "started",
            "page": "paged",
            "clear": "cleared",
            "label": "paged" if s.paged else "started",
        }[op.kind]
        if got.get("state") != want_state:
            self.violation(f"{where}: answer state {got.get('state')}, expected {want_state}")
        if op.kind == "create":
            if got.get("partySize") != s.party_size or got.get("label") != s.label:
                self.violation(f"{where}: created with other fields: {got}")
            if got["id"] <= self.id_floor:
                self.violation(
                    f"{where}: new id {got['id']} not above {self.id_floor}, the "
                    "largest id in the store when this server started"
                )
            if got["id"] <= self._last_id.get(w, 0):
                self.violation(
                    f"{where}: id {got['id']} not above this worker's previous {self._last_id[w]}"
                )
            self._last_id[w] = got["id"]
        if op.kind == "label" and got.get("label") != op.body["label"]:
            self.violation(f"{where}: label answered {got.get('label')!r}")
        if op.sequence in self._sequences:
            self.violation(
                f"{where}: sessionSequence {op.sequence} was already acknowledged "
                f"for {self._sequences[op.sequence].describe()}"
            )
        self._sequences[op.sequence] = op
        if op.global_sequence < op.sequence:
            self.violation(
                f"{where}: globalSessionSequence {op.global_sequence} below the "
                f"change's own sessionSequence {op.sequence}"
            )
        if op.global_sequence < self._last_global.get(w, 0):
            self.violation(
                f"{where}: globalSessionSequence went back from "
                f"{self._last_global[w]} to {op.global_sequence}"
            )
        self._last_global[w] = op.global_sequence
        self.max_global_seen = max(self.max_global_seen, op.global_sequence)

    # -- figures

    def count(self, outcome: str, kinds: tuple[str, ...] | None = None) -> int:
        return sum(
            1 for op in self.ops if op.outcome == outcome and (kinds is None or op.kind in kinds)
        )

    # -- checks against the store

    def check_restart(self, snap: Snapshot, label: str) -> None:
        """A (re)started server: nothing went back; new ids must come after all stored ones."""
        if snap.global_sequence < self.max_global_seen:
            self.violation(
                f"{label}: globalSessionSequence {snap.global_sequence} is below "
                f"{self.max_global_seen}, already seen in an answer"
            )
        self.max_global_seen = max(self.max_global_seen, snap.global_sequence)
        ids = [s["id"] for s in snap.sessions]
        if ids and max(ids) < self.id_floor:
            self.violation(f"{label}: largest id {max(ids)} went back from {self.id_floor}")
        self.id_floor = max([self.id_floor, *ids])

    def verify(self, snap: Snapshot, label: str) -> list[str]:
        """Compare a snapshot of a quiescent store with the ledger; returns the violations
        found (also added to `violations`)."""
        found: list[str] = []

        def bad(text: str) -> None:
            found.append(f"{label}: {text}")

        # -- nothing duplicated, well-formed
        active = {}
        for s in snap.active:
            if s["id"] in active:
                bad(f"id {s['id']} listed twice among active sessions")
            active[s["id"]] = s
            if s.get("state") != ("paged" if "notified" in s else "started"):
                bad(f"active session {s['id']} in state {s.get('state')}")
        numbers = Counter(s["number"] for s in snap.active)
        for number, n in numbers.items():
            if n > 1:
                bad(f"{n} active sessions for number {number}")
        history = {}
        for s in snap.history:
            if s["id"] in history:
                bad(f"id {s['id']} twice in history")
            history[s["id"]] = s
            if (
                s.get("state") != "cleared"
                or "cleared" not in s
                or s.get("clearType") not in ("STOP", "REMOVED")
            ):
                bad(f"malformed history entry {s}")
        for sid in active.keys() & history.keys():
            bad(f"session {sid} is both active and in history")
        uuids = Counter(s["uuid"] for s in snap.sessions)
        for uuid, n in uuids.items():
            if n > 1:
                bad(f"uuid {uuid} appears {n} times")
        store = {**history, **active}

        # -- every acknowledged change present, nothing else changed
        known_ids = set()
        pending_creates: dict[int, Expect] = {}
        for e in self.sessions:
            if e.id is None:
                pending_creates[e.number] = e  # the number is never reused after this
                continue
            known_ids.add(e.id)
            s = store.get(e.id)
            if s is None:
                bad(f"acknowledged {e.describe()} is missing")
                continue
            self._compare(e, s, e.id in active, bad)
        for sid, s in store.items():
            if sid in known_ids:
                continue
            e = pending_creates.pop(s["number"], None)
            if e is None:
                bad(f"session {s} matches no create request")
                continue
            self._compare(e, s, sid in active, bad)  # an unacknowledged create, committed

        # -- counters: equal to what the store holds, within what the clients saw
        st, listed = snap.statistics, snap.listed_statistics
        if st != listed:
            bad(f"statistics {st} differ from those of GET /v1/sessions {listed}")
        expect = _figures(list(store.values()))
        if {k: st.get(k) for k in expect} != expect:
            bad(f"statistics {st} are not those of the sessions in the store {expect}")
        lo, hi = self._bounds()
        for name, value in (
            ("numSessions", st["numSessions"]),
            ("guestsServed", st["guestsServed"]),
            ("globalSessionSequence", snap.global_sequence),
        ):
            if not lo[name] <= value <= hi[name]:
                bad(
                    f"{name} {value} outside [{lo[name]}, {hi[name]}] (acknowledged, "
                    "acknowledged + unanswered)"
                )
        if self._sequences and snap.global_sequence < max(self._sequences):
            bad(
                f"globalSessionSequence {snap.global_sequence} below an acknowledged "
                f"sessionSequence {max(self._sequences)}"
            )
        self.violations += found
        return found

    def _compare(self, e: Expect, s: dict, is_active: bool, bad) -> None:
        where = f"{e.describe()}: store has {s}"
        op = e.uncertain
        kind = op.kind if op is not None else None
        if e.uuid is not None and s["uuid"] != e.uuid:
            bad(f"{where}; uuid {e.uuid} was acknowledged")
        if s["number"] != e.number or s["partySize"] != e.party_size:
            bad(f"{where}; number/partySize differ")
        labels = {e.label} | ({op.body["label"]} if kind == "label" else set())
        if s["label"] not in labels:
            bad(f"{where}; label should be one of {labels}")
        if e.goal is not None and s["goalInSeconds"] != e.goal:
            bad(f"{where}; goal {e.goal} was asked for")
        # how it ended
        if e.end is not None:
            if is_active or s.get("clearType") != e.end:
                bad(f"{where}; acknowledged as ended with {e.end}")
        elif kind in ("clear", "remove"):
            if not is_active and s.get("clearType") != ("STOP" if kind == "clear" else "REMOVED"):
                bad(f"{where}; only a {kind} was ever sent")
        elif not is_active:
            bad(f"{where}; never asked to end, yet in history")
        # paged or not
        may_page = kind == "page" or (kind == "create" and e.create_page)
        if e.paged and "notified" not in s:
            bad(f"{where}; a page was acknowledged")
        if e.create_page and not e.created and "notified" not in s:
            bad(f"{where}; created with action page in one change, yet not paged")
        if not e.paged and not may_page and "notified" in s:
            bad(f"{where}; never paged, yet notified")
        if is_active:
            if op is None and s["sessionSequence"] != e.last_sequence:
                bad(f"{where}; sessionSequence {e.last_sequence} was acknowledged last")
            if s["sessionSequence"] < e.last_sequence:
                bad(f"{where}; sessionSequence went back from {e.last_sequence}")

    def _bounds(self) -> tuple[dict[str, int], dict[str, int]]:
        """(lowest, highest) numSessions, guestsServed and globalSessionSequence the
        outcomes allow: acknowledged changes must be there, unanswered ones may be."""
        lo = {"numSessions": 0, "guestsServed": 0, "globalSessionSequence": 0}
        hi = dict(lo)
        for e in self.sessions:
            if e.created:
                lo["numSessions"] += 1
            hi["numSessions"] += 1
            if e.paged:
                lo["guestsServed"] += 1
                hi["guestsServed"] += 1
            elif e.uncertain is not None and (
                e.uncertain.kind == "page" or (e.uncertain.kind == "create" and e.create_page)
            ):
                hi["guestsServed"] += 1
        for op in self.ops:
            if op.outcome == "acked":  # every request of the load is one session change
                lo["globalSessionSequence"] += 1
            if op.outcome != "pending":
                hi["globalSessionSequence"] += 1
        return lo, hi

    def resolve_uncertain(self, snap: Snapshot) -> Counter:
        """For the figures: of the unanswered requests, how many turned out committed.
        Valid while no two unanswered requests touch one session (the load's rule)."""
        store = {s["id"]: s for s in snap.sessions}
        by_number_unmatched = {}
        known = {e.id for e in self.sessions if e.id is not None}
        for s in snap.sessions:
            if s["id"] not in known:
                by_number_unmatched[s["number"]] = s
        tally: Counter = Counter()
        for op in self.ops:
            if op.outcome != "unknown":
                continue
            e = op.session
            s = store.get(e.id) if e.id is not None else by_number_unmatched.get(e.number)
            if op.kind == "create":
                verdict = "committed" if s is not None else "not committed"
            elif s is None:
                verdict = "indeterminate"
            elif op.kind in ("clear", "remove"):
                verdict = "committed" if "clearType" in s else "not committed"
            elif op.kind == "label":
                verdict = "committed" if s["label"] == op.body["label"] else "not committed"
            elif op.kind == "page" and not e.paged:
                verdict = "committed" if "notified" in s else "not committed"
            else:  # a re-page leaves no trace but the sequence number
                verdict = "indeterminate"
            tally[verdict] += 1
        return tally


def _figures(sessions: list[dict]) -> dict[str, int]:
    """Spec §4.5 computed from the sessions themselves (statistics never cleared)."""
    from datetime import datetime

    def t(text: str) -> datetime:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")

    waits, on_time = [], 0
    for s in sessions:
        if "notified" in s:
            wait = max(0, int((t(s["notified"]) - t(s["started"])).total_seconds()))
            waits.append(wait)
            on_time += wait <= s["goalInSeconds"]
    served = len(waits)

    def half_up(n: int, d: int) -> int:
        return (2 * n + d) // (2 * d)

    pct = half_up(100 * on_time, served) if served else 0
    return {
        "numSessions": len(sessions),
        "guestsServed": served,
        "percentOnTime": pct,
        "percentLate": 100 - pct if served else 0,
        "averageTimeServed": half_up(sum(waits), served) if served else 0,
    }


# ---- the long versions' command line ---------------------------------------------------


class Report(Protocol):
    violations: list[str]

    def lines(self) -> list[str]: ...


def script_arguments(
    doc: str,
    argv: list[str] | None,
    options: dict[str, int | float],
    *,
    negative_control: str,
    flags: dict[str, str] | None = None,
) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The command line of a long version (scripts/crash_cycles.py, scripts/lossy_network.py),
    described by the first line of its docstring `doc`: its own `options` (each flag with its
    default, which gives its type), then what they all take, --seed and --negative-control
    (whose help says what it breaks), and any on/off `flags` (flag -> help). Returns the
    parser, for p.error(), and the arguments."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for flag, default in options.items():
        parser.add_argument(flag, type=type(default), default=default)
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--seed", type=int, default=7470)
    parser.add_argument("--negative-control", action="store_true", help=negative_control)
    return parser, parser.parse_args(argv)


def log_line(line: str) -> None:
    """A long version's progress log: one line on stdout, at once."""
    print(line, flush=True)


def summary(script: str, report: Report, negative_control: str | None) -> int:
    """Print a long version's summary (`negative_control`: what to expect of a negative
    control run, None for a real one); return its exit status, 0 when there was no
    violation, 1 otherwise."""
    print(f"==== {script} summary ====")
    if negative_control is not None:
        print(f"NEGATIVE CONTROL: {negative_control}")
    print("\n".join(report.lines()))
    return 0 if not report.violations else 1
