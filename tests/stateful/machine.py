"""A model-based test of the whole emulator: random device-API requests from several
concurrent clients, interleaved with rig actions (reset, power cycle, clock, faults, SIGKILL
and restart), each step checked against `model.Model`.

The emulator serves concurrent requests in some serial order, and a kill leaves the requests
in flight committed or not. So the test keeps a set of candidate models: after each step,
every serial order of the step's requests (every subset of the unanswered ones, after a kill)
is applied to a copy of every candidate; a copy survives only if it gives exactly the answer
the server gave to every answered request, and then shows exactly what the server shows when
the whole observable state is read back (sessions, statistics, history, settings;
/transmissions, /pagers, /clock, /faults of the control API). No surviving candidate is a
failure, reported with what the server answered and what the first candidate expected;
Hypothesis then shrinks the steps to a minimal sequence.

Every action the brief names is a rule; `STATEFUL_SKIP=reset,kill,...` (rule names) turns
some off to explore past a known bug. The default runs them all.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import cbor2
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from tests.stateful.model import FMT, Expected, Fault, Model, Request, fmt
from tests.stateful.rig import Exchange, Rig

SKIP = frozenset(filter(None, os.environ.get("STATEFUL_SKIP", "").split(",")))
START = datetime(2026, 1, 15, 18, 0, 0)
HISTORY_LIMIT = 6
NUMBERS = (0, 1, 2, 3)
RETRANSMIT_WINDOW = 40.0  # seconds: well inside the 49 s the emulator remembers a request
MAX_CANDIDATES = 64


@dataclass
class Figures:
    """What a run executed, for scripts/stateful.py."""

    runs: int = 0
    steps: int = 0
    requests: int = 0
    interleavings: int = 0  # serial orders tried for steps with concurrent requests
    concurrent_steps: int = 0
    kills: int = 0
    resets: int = 0
    retransmissions: int = 0
    rules: dict = field(default_factory=dict)


FIGURES = Figures()


def skip(name: str):
    return precondition(lambda self: name not in SKIP)


# ---- requests --------------------------------------------------------------------------


def _json(data) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


labels = st.one_of(st.none(), st.sampled_from(["A", "Sarah", "Table 4", "é✓"]))
modes = st.sampled_from(["Flash30Sec", "Vibe1", "Beep3Times", "Glow5Min"])
messages = st.sampled_from(["Ready", "", "Table ready\fF30Vv5", "x\fA999b"])
numbers = st.sampled_from(NUMBERS)


@st.composite
def session_fields(draw, action=True):
    body = {}
    if draw(st.booleans()):
        body["goal"] = draw(st.sampled_from([0, 1, 60, 300, 86400]))
    if draw(st.booleans()):
        body["label"] = draw(labels)
    if draw(st.booleans()):
        body["partySize"] = draw(st.sampled_from([1, 4, 999]))
    if action and draw(st.booleans()):
        body["action"] = draw(st.sampled_from(["page", "page", "clear", "remove"]))
        if body["action"] == "page" and draw(st.booleans()):
            body["pageMode"] = draw(modes)
            if draw(st.booleans()):
                body["message"] = draw(messages)
    if draw(st.integers(0, 9)) == 0:
        body["unknownField"] = 1  # ignored with a warning
    return body


def _with_format(draw, req: Request, data) -> Request:
    if draw(st.integers(0, 5)) == 0:
        req.payload, req.content_format = cbor2.dumps(data), 60
    else:
        req.payload = _json(data)
        req.content_format = draw(st.sampled_from([None, 50]))
    if draw(st.integers(0, 5)) == 0:
        req.accept = 60
    return req


@st.composite
def create(draw):
    body = {"number": draw(numbers), **draw(session_fields())}
    return _with_format(draw, Request("POST", "/v1/sessions", kind="create"), body)


@st.composite
def update(draw):
    body = draw(session_fields())
    if draw(st.integers(0, 5)) == 0:
        body["number"] = draw(numbers)  # must equal the query's
    return _with_format(
        draw, Request("PUT", "/v1/sessions", (f"number={draw(numbers)}",), kind="update"), body
    )


@st.composite
def page(draw):
    body = {"number": draw(st.sampled_from(NUMBERS + (4095,)))}
    if draw(st.booleans()):
        body["pageMode"] = draw(modes)
    if draw(st.booleans()):
        body["message"] = draw(messages)
    if draw(st.booleans()):
        body["systemId"] = draw(st.sampled_from([0, 7, 255]))
    return _with_format(draw, Request("POST", "/v1/page", kind="standalone page"), body)


@st.composite
def settings(draw):
    body = {}
    if draw(st.booleans()):
        body["systemId"] = draw(st.sampled_from([0, 3, 255]))
    if draw(st.booleans()):
        body["defaultTargetGoal"] = draw(st.sampled_from([0, 30, 300]))
    if draw(st.booleans()):
        body["statisticsClearMark"] = draw(st.sampled_from([24, 18, 19, 0]))
    if draw(st.integers(0, 3)) == 0:
        body["datetime"] = draw(
            st.sampled_from(["2026-01-15T18:30:00", "2026-01-15T17:00:00", "2026-01-16T09:00:00"])
        )
    return _with_format(draw, Request("POST", "/v1/settings", kind="settings"), body)


@st.composite
def history_read(draw):
    query = []
    if draw(st.booleans()):
        query.append(f"limit={draw(st.sampled_from([1, 2]))}")
    else:
        query.append("limit=2")  # two archived sessions always fit one block
    if draw(st.booleans()):
        query.append(f"after={draw(st.integers(0, 8))}")
    return Request("GET", "/v1/sessions/history", tuple(query), kind="history")


def simple(method, path, kind, query=()):
    return st.just(None).map(lambda _: Request(method, path, tuple(query), kind=kind))


@st.composite
def invalid(draw):
    """A request the spec refuses (each changes nothing)."""
    n = draw(numbers)
    choice = draw(
        st.sampled_from(
            [
                ("POST", "/v1/sessions", b"{}", ()),
                ("POST", "/v1/sessions", _json({"number": 4096}), ()),
                ("POST", "/v1/sessions", _json({"number": "1"}), ()),
                ("POST", "/v1/sessions", _json({"number": True}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "goal": 86401}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "goal": 1.5}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "partySize": 0}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "label": ""}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "label": "x" * 65}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "action": "dance"}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "pageMode": "Blink"}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "message": "m" * 241}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "message": "x\f1"}), ()),
                ("POST", "/v1/sessions", _json({"number": n, "action": "clear"}), ()),
                ("POST", "/v1/sessions", b'{"number":', ()),
                ("POST", "/v1/sessions", b"[1]", ()),
                ("POST", "/v1/sessions", _json({"number": n, "label": "y" * 1100}), ()),
                ("PUT", "/v1/sessions", _json({"action": "page"}), ()),
                ("PUT", "/v1/sessions", _json({"action": "page"}), ("number=abc",)),
                ("PUT", "/v1/sessions", _json({"action": "page"}), (f"number={n}", f"number={n}")),
                ("PUT", "/v1/sessions", _json({"number": (n + 1) % 4}), (f"number={n}",)),
                ("PUT", "/v1/sessions", _json({"goal": -1}), (f"number={n}",)),
                ("DELETE", "/v1/sessions", b"", ("number=-1",)),
                ("GET", "/v1/sessions/history", b"", ("limit=0",)),
                ("GET", "/v1/sessions/history", b"", ("limit=1001",)),
                ("GET", "/v1/sessions/history", b"", ("after=x",)),
                ("POST", "/v1/settings", _json({"systemId": 256}), ()),
                ("POST", "/v1/settings", _json({"statisticsClearMark": 25}), ()),
                ("POST", "/v1/settings", _json({"datetime": "yesterday"}), ()),
                ("POST", "/v1/settings", _json({"datetime": "1999-12-31T23:59:59"}), ()),
                ("POST", "/v1/settings", _json({"defaultTargetGoal": "300"}), ()),
                ("POST", "/v1/page", b"{}", ()),
                ("POST", "/v1/page", _json({"number": 1, "systemId": 300}), ()),
                ("POST", "/v1/page", _json({"number": 1, "pageMode": "vibe1"}), ()),
                ("PUT", "/v1/settings", b"{}", ()),
            ]
        )
    )
    req = Request(choice[0], choice[1], choice[3], choice[2], kind="invalid")
    twist = draw(st.integers(0, 7))
    if twist == 0:
        req.content_format = 0  # text/plain: 4.15
    elif twist == 1:
        req.accept = 41  # 4.06
    return req


device_request = st.one_of(
    create(),
    create(),
    update(),
    update(),
    page(),
    settings(),
    history_read(),
    invalid(),
    invalid(),
    numbers.map(lambda n: Request("DELETE", "/v1/sessions", (f"number={n}",), kind="remove")),
    numbers.map(lambda n: Request("GET", "/v1/sessions", (f"number={n}",), kind="get one")),
    simple("DELETE", "/v1/sessions", "clear all"),
    simple("DELETE", "/v1/sessions/history", "clear history"),
    simple("GET", "/v1/sessions/statistics", "statistics"),
    simple("DELETE", "/v1/sessions/statistics", "clear statistics"),
    simple("GET", "/v1/settings", "get settings"),
).filter(lambda r: r.kind not in SKIP)  # STATEFUL_SKIP may name request kinds too
# what a reset may race with: requests whose answers show the time they were served at
reset_racer = st.one_of(create(), page())


def batch(of=device_request, lo=1, hi=3):
    return st.lists(of, min_size=lo, max_size=hi)


# ---- the machine -----------------------------------------------------------------------


@dataclass
class Op:
    req: Request | None  # None: the rig's POST /reset
    client: int = 0
    exchange: Exchange | None = None
    actual: dict | None = None
    retransmit_of: Sent | None = None

    def describe(self) -> str:
        if self.req is None:
            return "POST /reset (control API)"
        head = f"client {self.client}: {self.req.describe()}"
        if self.retransmit_of is not None:
            head = (
                f"client {self.client}: RETRANSMISSION of mid {self.exchange.mid}: "
                f"{self.req.describe()}"
            )
        if self.exchange is None or self.exchange.answer is None:
            return head + " -> no answer"
        return f"{head} -> {self.exchange.code} {self.exchange.payload[:400]!r}"


@dataclass
class Sent:
    """A request the rig may retransmit later."""

    op: Op
    life: int
    at: float
    answer: bytes | None
    code: str | None


class Violation(AssertionError):
    pass


def decode(ex: Exchange) -> dict | None:
    if ex.answer is None or not ex.payload:
        return None
    try:
        if ex.answer.opt.content_format == 60:
            return cbor2.loads(ex.payload)
        return json.loads(ex.payload)
    except Exception:
        return {"undecodable": repr(ex.payload[:200])}


def mismatch(exp: Expected, ex: Exchange, actual) -> str | None:
    """Why the answer is not the one expected, or None."""
    if ex.answer is None:
        return f"expected {exp.code}, got no answer"
    if ex.code != exp.code:
        return (
            f"expected {exp.code} {json.dumps(exp.body)[:300] if exp.body else ''}, got {ex.code}"
        )
    if exp.body is None:
        return None if not ex.payload else f"expected no payload, got {ex.payload[:200]!r}"
    if not isinstance(actual, dict):
        return f"expected a body, got {ex.payload[:200]!r}"
    want_ct = 60 if ex.answer.opt.content_format == 60 else 50
    if ex.answer.opt.content_format != want_ct:
        return f"Content-Format {ex.answer.opt.content_format}"
    if exp.code[0] in "45":
        head = (
            "responseTypes",
            "globalSessionSequence",
            "timestamp",
            "deviceName",
            "firmwareVersion",
        )
        got = {k: actual.get(k) for k in head}
        want = {k: exp.body[k] for k in head}
        err = actual.get("error")
        if got != want or list(actual)[:5] != list(head):
            return f"error envelope {got}, expected {want}"
        if (
            not isinstance(err, dict)
            or err.get("code") != exp.code
            or not isinstance(err.get("message"), str)
            or not err["message"]
        ):
            return f"error body {err}"
        if exp.field is not None and err.get("field") != exp.field:
            return f"error field {err.get('field')!r}, expected {exp.field!r}"
        return None
    if actual != exp.body:
        return f"differs from the model at {_diff(actual, exp.body)}"
    if list(actual)[:5] != list(exp.body)[:5]:
        return f"envelope order {list(actual)}"
    for section in ("sessions", "session_history"):
        for got, want in zip(actual.get(section) or [], exp.body.get(section) or []):
            if list(got) != list(want):
                return f"key order {list(got)}, expected {list(want)}"
    if exp.etag is not None and not ex.answer.opt.etag:
        return "no ETag"
    return None


def _diff(got, want, at="body") -> str:
    """Where two decoded bodies first differ."""
    if isinstance(got, dict) and isinstance(want, dict):
        for k in list(want) + [k for k in got if k not in want]:
            if got.get(k, "<absent>") != want.get(k, "<absent>"):
                return _diff(got.get(k, "<absent>"), want.get(k, "<absent>"), f"{at}.{k}")
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                return _diff(g, w, f"{at}[{i}]")
    return (
        f"{at}: server {json.dumps(got, ensure_ascii=False)[:300]}, "
        f"model {json.dumps(want, ensure_ascii=False)[:300]}"
    )


class PagerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory(prefix="pager-stateful-")
        self.rig = Rig(Path(self.tmp.name), history_limit=HISTORY_LIMIT)
        self.models = [Model(HISTORY_LIMIT)]
        self.sent: list[Sent] = []
        self.etag: bytes | None = None
        self.observer_at: float | None = None
        self.steps: list[str] = []
        FIGURES.runs += 1

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self):
        try:
            if self.observer_at is not None and self.rig.server.alive:
                # give a dead observer time to be declared dead, then look at the log
                left = self.observer_at + 4 * 0.3 + 1.0 - time.monotonic()
                if left > 0:
                    self.run(asyncio.sleep(left))
                self.check_logs()
        finally:
            self.run(self.rig.close())
            self.loop.close()
            self.tmp.cleanup()

    # -- plumbing

    def fail(self, text: str) -> None:
        raise Violation(text + "\nsteps so far (this example):\n  " + "\n  ".join(self.steps))

    def step(self, name: str, text: str) -> None:
        FIGURES.steps += 1
        FIGURES.rules[name] = FIGURES.rules.get(name, 0) + 1
        self.steps.append(text)

    def check_logs(self) -> None:
        errors = self.rig.log_errors()
        if errors:
            self.fail("the server logged errors:\n  " + "\n  ".join(self.rig.log_excerpt()))
        if self.rig.integrity_problems:
            self.fail(f"store integrity check after a kill: {self.rig.integrity_problems}")

    async def _send(self, op: Op, dead=None, first_wait=0.25, deadline=8.0) -> Op:
        c = self.rig.clients[op.client]
        if op.retransmit_of is not None:
            op.exchange = await c.resend(
                op.retransmit_of.op.exchange, self.rig.port, deadline=deadline, dead=dead
            )
        else:
            r = op.req
            msg = c.message(
                r.method, r.path, r.query, r.payload, r.content_format, r.accept, r.etag
            )
            op.exchange = await c.send(
                msg, self.rig.port, first_wait=first_wait, deadline=deadline, dead=dead
            )
        op.actual = decode(op.exchange)
        FIGURES.requests += 1
        return op

    async def _control_reset(self, op: Op, delay: float) -> Op:
        await asyncio.sleep(delay)
        op.actual = await self.rig.control("POST", "/reset")
        return op

    def _wall(self) -> datetime:
        return datetime.now().replace(microsecond=0)

    # -- candidates

    def resolve(
        self, ops: list[Op], killed: bool = False, window: tuple[datetime, datetime] | None = None
    ) -> None:
        """Keep the candidates that some serial order of `ops` explains."""
        answered = [op for op in ops if op.req is None or op.exchange.answer is not None]
        unanswered = [op for op in ops if op not in answered]
        if unanswered and not killed:
            self.fail(
                "no answer from a live server: " + "; ".join(o.describe() for o in unanswered)
            )
        orders = []
        for k in range(len(unanswered) + 1):
            for extra in itertools.combinations(unanswered, k):
                orders += list(itertools.permutations(answered + list(extra)))
        if len(ops) > 1:
            FIGURES.concurrent_steps += 1
            FIGURES.interleavings += len(orders)
        survivors, first_failure = {}, None
        for m in self.models:
            for order in orders:
                m2 = copy.deepcopy(m)
                why = self._simulate(m2, order, window)
                if why is None:
                    survivors.setdefault(m2.key(), m2)
                elif first_failure is None:
                    first_failure = why
        if not survivors:
            self.fail(
                "no serial order of the step explains the answers:\n  "
                + "\n  ".join(o.describe() for o in ops)
                + f"\nfirst candidate order: {first_failure}"
            )
        self.models = list(survivors.values())[:MAX_CANDIDATES]

    def _simulate(self, m: Model, order, window) -> str | None:
        """Apply `order` to `m`; None if every answered request got the model's answer.

        An answer shows the state right after its own request in that order (README:
        "Exactly once"), its globalSessionSequence and statistics included, even when
        later requests committed in the same transaction."""
        checks = []  # (op, expected)
        for op in order:
            if op.req is None:
                status, body = op.actual
                if (status, body) != (200, {"reset": True}):
                    return f"POST /reset answered {status} {body}"
                m.reset(window)
            else:
                key = (op.client, op.exchange.mid)
                if op.retransmit_of is not None:
                    exp = self._retransmitted(m, op, key)
                    if isinstance(exp, _Replay):
                        why = exp.mismatch(op.exchange, self.rig.lives)
                        if why is not None:
                            return f"{op.describe()}: {why}"
                        exp = None
                else:
                    before = m.durable()
                    exp = m.continuation_blocks(op.req, m.handle(op.req, op.actual))
                    if m.durable() == before:
                        m.unchanged.add(key)
                    else:
                        m.unchanged.discard(key)
                if exp is not None:
                    if op.exchange.answer is None:
                        m.committed_unanswered[key] = exp
                    else:
                        m.committed_unanswered.pop(key, None)
                        checks.append((op, exp))
        for op, exp in checks:
            why = mismatch(exp, op.exchange, op.actual)
            if why is not None:
                return f"{op.describe()}: {why}"
        return None

    def _retransmitted(self, m: Model, op: Op, key) -> Expected:
        """A duplicate CON is answered as the first time and never processed twice (spec §1,
        also across a restart); one whose first transmission was never processed is new, and
        so, after a restart, is one whose first processing changed nothing (README: "Exactly
        once": only changes keep their answers)."""
        sent = op.retransmit_of
        if sent.life != self.rig.lives and key in m.unchanged:
            return m.continuation_blocks(op.req, m.handle(op.req, op.actual))
        if sent.answer is not None:
            return _Replay(sent)
        if key in m.committed_unanswered:
            return m.committed_unanswered[key]
        return m.continuation_blocks(op.req, m.handle(op.req, op.actual))

    # -- observing everything

    def observe(self) -> None:
        self.check_logs()
        reads = [
            Request("GET", "/v1/sessions", kind="observe"),
            Request("GET", "/v1/sessions/statistics", kind="observe"),
            Request("GET", "/v1/sessions/history", kind="observe"),
            Request("GET", "/v1/settings", kind="observe"),
        ]
        for req in reads:
            op = self.run(self._send(Op(req, 0)))
            if op.exchange.answer is None:
                self.fail(f"no answer from a live server to {req.describe()}")
            self._bind_uuids(op.actual)
            self.resolve([op])
            if req.path == "/v1/sessions" and op.exchange.code == "2.05":
                self.etag = op.exchange.answer.opt.etag
        got = {
            path: self.run(self.rig.control("GET", path))
            for path in ("/transmissions", "/pagers", "/clock", "/faults")
        }
        keep = {}
        first = None
        for m in self.models:
            want = {
                "/transmissions": (200, {"transmissions": [m.tx_json(t) for t in m.transmissions]}),
                "/pagers": (200, m.pagers_json()),
                "/clock": (200, m.clock_json()),
                "/faults": (200, [(f.kind, f.path, f.remaining, f.code) for f in m.faults]),
            }
            status, faults = got["/faults"]
            seen = dict(
                got,
                **{
                    "/faults": (
                        status,
                        [
                            (f["kind"], f["path"], f["remaining"], f["code"])
                            for f in faults.get("faults", [])
                            if f["kind"] == "error"
                        ],
                    )
                },
            )
            diff = [p for p in want if want[p] != seen[p]]
            if not diff:
                keep.setdefault(m.key(), m)
            elif first is None:
                first = "; ".join(
                    f"{p}: server {json.dumps(seen[p])[:600]} model {json.dumps(want[p])[:600]}"
                    for p in diff
                )
        if not keep:
            self.fail(f"control API state differs from the model: {first}")
        self.models = list(keep.values())

    def _bind_uuids(self, actual) -> None:
        """Sessions created by requests whose answers were lost: the store shows their uuid."""
        if not isinstance(actual, dict):
            return
        shown = {
            s.get("id"): s.get("uuid")
            for key in ("sessions", "session_history")
            for s in actual.get(key) or []
            if isinstance(s, dict)
        }
        for m in self.models:
            for s in list(m.active.values()) + m.history:
                if s["uuid"] is None and s["id"] in shown:
                    got = shown[s["id"]]
                    s["uuid"] = got if got not in m.uuids else "a new UUID v4"
                    m.uuids.add(got)

    # -- rules

    @initialize()
    def start(self):
        self.run(self.rig.start())
        status, body = self.run(self.rig.control("POST", "/clock/set", {"datetime": fmt(START)}))
        self.run(self.rig.control("POST", "/clock/freeze"))
        for m in self.models:
            m.now, m.frozen = START, True
            m.look(START)
        self.observe()

    def _remember(self, ops: list[Op]) -> None:
        now = time.monotonic()
        for op in ops:
            if op.req is not None and op.retransmit_of is None:
                self.sent.append(
                    Sent(
                        op,
                        self.rig.lives,
                        now,
                        op.exchange.payload if op.exchange.answer is not None else None,
                        op.exchange.code,
                    )
                )
            elif (
                op.retransmit_of is not None
                and op.exchange.answer is not None
                and op.retransmit_of.answer is None
            ):
                op.retransmit_of.answer, op.retransmit_of.code = (
                    op.exchange.payload,
                    op.exchange.code,
                )
        self.sent = [s for s in self.sent if now - s.at < RETRANSMIT_WINDOW][-50:]

    def _clients(self, reqs) -> list[Op]:
        return [Op(r, i % len(self.rig.clients)) for i, r in enumerate(reqs)]

    async def _concurrently(self, ops, dead=None, deadline=8.0):
        return await asyncio.gather(*(self._send(op, dead=dead, deadline=deadline) for op in ops))

    @rule(reqs=batch())
    def requests(self, reqs):
        ops = self._clients(reqs)
        self.run(self._concurrently(ops))
        self.step("requests", "concurrently: " + " | ".join(o.describe() for o in ops))
        self.resolve(ops)
        self._remember(ops)
        self.observe()

    @skip("retransmit")
    @rule(pick=st.integers(0, 10_000), with_new=st.lists(device_request, max_size=1))
    def retransmit(self, pick, with_new):
        """A client sends an earlier message again: same message id, same source port."""
        single = [s for s in self.sent if s.op.exchange.requests == 1]
        if not single:
            return
        sent = single[pick % len(single)]
        ops = [Op(sent.op.req, sent.op.client, retransmit_of=sent)]
        ops += [Op(r, (sent.op.client + 1) % len(self.rig.clients)) for r in with_new]
        self.run(self._concurrently(ops))
        FIGURES.retransmissions += 1
        self.step(
            "retransmit",
            "concurrently: "
            + " | ".join(o.describe() for o in ops)
            + f" (first sent in server life {sent.life}, now {self.rig.lives})",
        )
        self.resolve(ops)
        self._remember(ops)
        self.observe()

    @skip("reset")
    @rule(reqs=batch(reset_racer, 0, 3), delay=st.sampled_from([0.0, 0.001, 0.005, 0.02]))
    def reset(self, reqs, delay):
        """POST /reset racing with creates and pages."""
        ops = self._clients(reqs)
        before = self._wall()

        async def race():
            return await asyncio.gather(
                self._control_reset(Op(None), delay), self._concurrently(ops)
            )

        reset_op, _ = self.run(race())
        FIGURES.resets += 1
        self.step(
            "reset",
            f"POST /reset after {delay} s, racing with: " + " | ".join(o.describe() for o in ops),
        )
        frozen, after = self._refreeze()
        self.resolve([reset_op] + ops, window=(before, frozen))
        self._refrozen(frozen, before, after, offset=False)

    def _refreeze(self) -> tuple[datetime, datetime]:
        """Freeze the clock that a reset or restart left running; (its time, wall time)."""
        status, clock = self.run(self.rig.control("POST", "/clock/freeze"))
        if status != 200:
            self.fail(f"POST /clock/freeze answered {status} {clock}")
        return datetime.strptime(clock["now"], FMT), self._wall()

    def _refrozen(self, frozen: datetime, before: datetime, after: datetime, offset: bool) -> None:
        """Keep the candidates whose clock could show `frozen`: system time (plus the
        persisted offset after a restart) between `before` and `after`."""
        keep = []
        for m in self.models:
            shift = timedelta(seconds=m.offset if offset else 0)
            if m.now is None and before + shift - timedelta(
                seconds=2
            ) <= frozen <= after + shift + timedelta(seconds=2):
                m.frozen_at(frozen)
                keep.append(m)
        if not keep:
            self.fail(
                f"the clock showed {fmt(frozen)} after the "
                f"{'restart' if offset else 'reset'}: not the system time (plus the "
                f"persisted offset {self.models[0].offset} s) between {before} and {after}"
            )
        self.models = keep
        self.sent = [] if not offset else self.sent
        self.etag = None if not offset else self.etag
        self.observe()

    @skip("kill")
    @rule(reqs=batch(device_request, 0, 3), delay=st.sampled_from([0.0, 0.002, 0.01, 0.03]))
    def kill(self, reqs, delay):
        """SIGKILL (racing with requests), then a restart on the same store and port."""
        ops = self._clients(reqs)
        before = self._wall()

        async def race():
            sending = asyncio.ensure_future(self._concurrently(ops, dead=self.rig.dead))
            await asyncio.sleep(delay)
            await self.rig.kill()
            await sending
            for c in self.rig.clients:  # answers that arrive after the kill do not count
                while not c.proto.received.empty():
                    c.proto.received.get_nowait()
            await self.rig.restart()

        self.run(race())
        FIGURES.kills += 1
        self.step(
            "kill",
            f"SIGKILL after {delay} s racing with: "
            + " | ".join(o.describe() for o in ops)
            + "; restart",
        )
        self.resolve(ops, killed=True)
        for m in self.models:
            m.restarted()
        self._remember_killed(ops)
        frozen, after = self._refreeze()
        self._refrozen(frozen, before, after, offset=True)

    def _remember_killed(self, ops):
        # a killed step's requests may be retransmitted to the restarted server; the
        # registry survives the restart (unlike a reset)
        now = time.monotonic()
        for op in ops:
            self.sent.append(
                Sent(
                    op,
                    self.rig.lives - 1,
                    now,
                    op.exchange.payload if op.exchange.answer else None,
                    op.exchange.code,
                )
            )

    @skip("clock")
    @rule(
        action=st.sampled_from(["set", "advance", "freeze", "run", "speed", "bad"]),
        seconds=st.sampled_from([1, 29, 30, 61, 3600, 5400, -600, 86400]),
        when=st.sampled_from(
            [
                "2026-01-15T18:59:59",
                "2026-01-16T00:00:00",
                "2026-01-15T12:00:00",
                "2026-01-17T19:00:00",
            ]
        ),
    )
    def clock(self, action, seconds, when):
        rig = self.rig
        if action == "set":
            got = self.run(rig.control("POST", "/clock/set", {"datetime": when}))
            target = datetime.strptime(when, FMT)
            outcomes = []
            for m in self.models:
                for clears in (False, True):
                    m2 = copy.deepcopy(m)
                    m2.clock_set(target, clears)
                    outcomes.append(m2)
            self._rig_answer(
                f"POST /clock/set {when}", got, outcomes, lambda m: (200, m.clock_json())
            )
        elif action == "advance":
            got = self.run(rig.control("POST", "/clock/advance", {"seconds": seconds}))
            for m in self.models:
                m.clock_advance(seconds)
            self._rig_answer(
                f"POST /clock/advance {seconds}", got, self.models, lambda m: (200, m.clock_json())
            )
        elif action == "freeze":
            got = self.run(rig.control("POST", "/clock/freeze"))
            self._rig_answer(
                "POST /clock/freeze", got, self.models, lambda m: (200, m.clock_json())
            )
        elif action == "speed":
            factor = 60.0 if seconds > 60 else 1.0
            got = self.run(rig.control("POST", "/clock/speed", {"factor": factor}))
            for m in self.models:
                m.speed = factor
            self._rig_answer(
                f"POST /clock/speed {factor}", got, self.models, lambda m: (200, m.clock_json())
            )
        elif action == "run":  # unfreeze, let it run a moment, freeze again
            t0 = time.monotonic()
            status, body = self.run(rig.control("POST", "/clock/unfreeze"))
            self.run(asyncio.sleep(0.05))
            status2, body2 = self.run(rig.control("POST", "/clock/freeze"))
            elapsed = time.monotonic() - t0
            if status != 200 or status2 != 200 or body.get("frozen") is not False:
                self.fail(f"unfreeze/freeze answered {status} {body} / {status2} {body2}")
            frozen = datetime.strptime(body2["now"], FMT)
            keep = []
            for m in self.models:
                ran = (frozen - m.now).total_seconds()
                if 0 <= ran <= elapsed * m.speed + 1:
                    m.clock_advance(int(ran))
                    keep.append(m)
            if not keep:
                self.fail(
                    f"the clock ran from {fmt(self.models[0].now)} to {body2['now']} "
                    f"in {elapsed:.2f} s at speed {self.models[0].speed}"
                )
            self.models = keep
        else:
            bad = [
                ("/clock/set", {"datetime": "1999-01-01T00:00:00"}),
                ("/clock/set", {"datetime": "noon"}),
                ("/clock/advance", {"seconds": "x"}),
                ("/clock/speed", {"factor": 0}),
                ("/clock/freeze", {"x": 1}),
                ("/reset", {"now": True}),
                ("/power-cycle", {"seconds": 0}),
                ("/faults", {"kind": "explode"}),
                ("/faults", {"kind": "error", "code": "2.05"}),
            ]
            path, body = bad[seconds % len(bad)]
            status, answer = self.run(rig.control("POST", path, body))
            if (
                status != 400
                or not isinstance(answer, dict)
                or not isinstance(answer.get("error"), str)
            ):
                self.fail(
                    f"POST {path} {body} answered {status} {answer}, expected 400 with an error"
                )
            action = f"bad {path}"
        self.step("clock", f"clock {action} ({seconds}, {when})")
        self.observe()

    def _rig_answer(self, what, got, outcomes, want) -> None:
        keep = {}
        for m in outcomes:
            if want(m) == tuple(got):
                keep.setdefault(m.key(), m)
        if not keep:
            self.fail(f"{what} answered {got}, expected {want(outcomes[0])}")
        self.models = list(keep.values())

    @skip("faults")
    @rule(
        path=st.sampled_from(
            [None, "/v1/sessions", "/v1/page", "/v1/settings", "/v1/sessions/statistics"]
        ),
        count=st.sampled_from([1, 2, None]),
        code=st.sampled_from(["5.03", "5.00", "4.29"]),
        then=batch(device_request, 0, 3),
    )
    def error_fault(self, path, count, code, then):
        body = {"kind": "error", "code": code}
        if path is not None:
            body["path"] = path
        if count is not None:
            body["count"] = count
        status, answer = self.run(self.rig.control("POST", "/faults", body))
        if status != 201 or (
            answer.get("kind"),
            answer.get("path"),
            answer.get("remaining"),
            answer.get("code"),
        ) != ("error", path, count, code):
            self.fail(f"POST /faults {body} answered {status} {answer}")
        for m in self.models:
            m.add_fault(Fault(answer["id"], "error", path, count, code=code))
        ops = self._clients(then)
        self.run(self._concurrently(ops))
        self.step(
            "error_fault",
            f"error fault {body}, then concurrently: " + " | ".join(o.describe() for o in ops),
        )
        self.resolve(ops)
        self._remember(ops)
        self.observe()

    @skip("faults")
    @rule(which=st.integers(0, 3))
    def clear_faults(self, which):
        faults = self.models[0].faults
        if which == 0 or not faults:
            got = self.run(self.rig.control("DELETE", "/faults"))
            for m in self.models:
                m.faults = []
            self._rig_answer("DELETE /faults", got, self.models, lambda m: (200, {"faults": []}))
            what = "all"
        else:
            fid = faults[which % len(faults)].id
            got = self.run(self.rig.control("DELETE", f"/faults/{fid}"))
            for m in self.models:
                m.remove_fault(fid)
            self._rig_answer(
                f"DELETE /faults/{fid}", got, self.models, lambda m: (200, {"removed": fid})
            )
            what = str(fid)
        self.step("clear_faults", f"DELETE faults {what}")
        self.observe()

    @skip("drop")
    @rule(req=device_request)
    def drop(self, req):
        """The next datagram of a request is lost; the client's retransmission gets through."""
        status, answer = self.run(
            self.rig.control("POST", "/faults", {"kind": "drop", "path": req.path, "count": 1})
        )
        if status != 201:
            self.fail(f"POST /faults drop answered {status} {answer}")
        ops = [Op(req, 0)]
        self.run(self._concurrently(ops))
        self.run(self.rig.control("DELETE", f"/faults/{answer['id']}"))
        self.step("drop", f"drop fault on {req.path}, then {ops[0].describe()}")
        self.resolve(ops)
        self._remember(ops)
        self.observe()

    @skip("delay")
    @rule(req=device_request)
    def delay(self, req):
        """A delayed answer arrives late, also when the client retransmits meanwhile."""
        seconds = 0.5
        status, answer = self.run(
            self.rig.control(
                "POST",
                "/faults",
                {"kind": "delay", "path": req.path, "count": 1, "seconds": seconds},
            )
        )
        if status != 201:
            self.fail(f"POST /faults delay answered {status} {answer}")
        op = Op(req, 0)
        self.run(self._send(op, first_wait=0.1))
        self.run(self.rig.control("DELETE", f"/faults/{answer['id']}"))
        self.step(
            "delay",
            f"delay fault {seconds} s on {req.path}, then {op.describe()} "
            f"(sent at {[round(t - op.exchange.sent[0], 2) for t in op.exchange.sent]})",
        )
        ex = op.exchange
        if ex.answer is not None and ex.answered_at - ex.sent[0] < seconds - 0.05:
            self.fail(
                f"a delay fault of {seconds} s, yet the answer came after "
                f"{ex.answered_at - ex.sent[0]:.3f} s (the request was sent "
                f"{len(ex.sent)} times)"
            )
        self.resolve([op])
        self._remember([op])
        self.observe()

    @skip("power_cycle")
    @rule(reqs=batch(device_request, 1, 3))
    def power_cycle(self, reqs):
        status, answer = self.run(self.rig.control("POST", "/power-cycle", {"seconds": 0.3}))
        if (status, answer) != (200, {"unreachableFor": 0.3}):
            self.fail(f"POST /power-cycle answered {status} {answer}")
        ops = self._clients(reqs)
        self.run(self._concurrently(ops, deadline=10.0))
        self.step(
            "power_cycle",
            "power cycle 0.3 s, then concurrently: " + " | ".join(o.describe() for o in ops),
        )
        self.resolve(ops)
        self._remember(ops)
        self.observe()

    @skip("observer")
    @rule()
    def dead_observer(self):
        """An observer that registers and then never acknowledges a notification."""
        self.run(self.rig.register_dead_observer())
        self.observer_at = time.monotonic()
        self.step("dead_observer", "an observer registers and goes silent")
        self.observe()

    @skip("etag")
    @precondition(lambda self: self.etag is not None)
    @rule()
    def etag_read(self):
        op = Op(Request("GET", "/v1/sessions", etag=self.etag, kind="etag"), 1)
        self.run(self._send(op))
        self.step("etag", f"{op.describe()}")
        self.resolve([op])
        self.observe()


class _Replay(Expected):
    """The answer a duplicate must get: the first answer again (byte for byte within one
    server process; across a restart the same code and body but for the timestamp)."""

    def __init__(self, sent: Sent):
        body = None
        if sent.answer:
            try:
                body = json.loads(sent.answer)
            except ValueError:
                body = cbor2.loads(sent.answer)
        super().__init__(sent.code, body)
        self.sent = sent

    def mismatch(self, ex: Exchange, life: int) -> str | None:
        if ex.answer is None:
            return f"expected the first answer again ({self.code}), got no answer"
        if ex.code != self.code:
            return (
                f"processed again: first answered {self.code} {self.sent.answer[:300]!r},"
                f" now {ex.code}"
            )
        if life == self.sent.life:
            if ex.payload != self.sent.answer:
                return f"processed again: first answered {self.sent.answer[:300]!r}"
            return None
        got = decode(ex)

        def strip(d):
            return {k: v for k, v in d.items() if k != "timestamp"} if isinstance(d, dict) else d

        if strip(got) != strip(self.body):
            return f"processed again after the restart: first answered {self.sent.answer[:300]!r}"
        return None
