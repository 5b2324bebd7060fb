#!/usr/bin/env python3
"""Soak (issue 6): long mixed load with observers; memory must stay flat, nothing may fail.

Run from the repository root:

    .venv/bin/python scripts/soak.py [--minutes 30] [--observers 20] [--clients 8] [--quick]
                                     [--think MS] [--max-slope MIB] [--seed N]

``--quick`` runs the load for 20 s (a smoke run: too short to judge memory); the suite runs
it (tests/reliability/test_soak_short.py).

What it does
------------
1. Starts the emulator as users run it, ``python -m pager serve --host 127.0.0.1 --port 0
   --no-control --db <tmp>/soak.db --log-level WARNING`` (its stderr goes to a file), and
   creates ``INITIAL_SESSIONS`` long-lived sessions on numbers 10.. (so that the session list
   takes several notifications and ``GET /v1/sessions`` several Block2 blocks).
2. Registers ``--observers`` raw observers on ``/v1/notify`` (``bench_notify.Observer``:
   one UDP socket each, every Confirmable notification ACKed); every other one registers
   with ``?action=get_sessions``. The global sequence is read before and after the
   registrations: nothing changes in between, so every observer must start from it.
3. Runs the load: ``--clients`` closed-loop virtual users (``bench.VirtualUser``, raw CoAP,
   CON, retransmitted after ``--rto`` s doubling, ``--retransmit`` times, then a timeout;
   at full speed unless ``--think`` makes each pause before every request), each on its
   own pager numbers (at most ``MAX_ACTIVE`` active sessions each) and with a model of
   which of them are active, so the code of every answer is known in advance. The
   mix, by weight: creates (2.01), updates by POST (2.00) and PUT (2.04), pages and
   re-pages (2.04), clears (2.04), removes by DELETE (2.02) and PUT (2.04); GET one
   session (2.05), GET all (2.05, followed block by block with Block2 and the whole body
   parsed), statistics and settings reads, history with ``limit``/``after`` (2.05, Block2,
   ids checked > after and count <= limit), standalone ``POST /v1/page`` (2.04); now and
   then a settings change (systemId / defaultTargetGoal, 2.04); and deliberately bad
   requests with their expected 4.xx (no session 4.04, number out of range, broken JSON,
   bad action, history limit=0, systemId 256 and notify action: 4.00; unknown path 4.04;
   DELETE /v1/settings 4.05; Content-Format 42: 4.15; Accept 42: 4.06; a 1100-byte body:
   4.13). A write that times out retires its number for the rest of the run: it may still
   be processed later (a read right after could not tell), so no answer on that number
   could be predicted any more.
4. Every 10 s prints one line: elapsed, requests (exchanges answered or timed out) so far,
   req/s over the last interval, timeouts, retransmissions, unexpected answers, the
   server's VmRSS and VmHWM (/proc/PID/status), its open fds (/proc/PID/fd), observers
   alive, session notifications received by all observers, sequence gaps, and the lag of
   the slowest observer behind the newest globalSessionSequence seen in any answer.
5. After the load has drained, reads the final globalSessionSequence and waits until every
   observer has caught up (printing a line every 10 s meanwhile; given up after 20 s without
   progress or max(60 s, the load's duration) in all), then checks each observer's stream:
   it starts at the sequence read at registration, its session notifications rise (no step
   back, nothing twice) up to the final sequence, by exactly one each except where the
   server says it dropped notifications for that observer (its WARNING "caught up after N
   session notifications were dropped and M settings or statistics notifications replaced
   by newer ones", matched by the observer's port: the numbers skipped must equal the N
   dropped); one settings notification per settings change answered 2.04, but for the M
   replaced, and the last one shows the final settings; no statistics notification
   (nothing clears them: the daily clear is off by default); Observe values only increase;
   pings carry the sequence of the last session notification before them; the
   get_sessions observers' first notifications list exactly the sessions active at
   registration; and no observer was sent a Message ID again, on another message, within
   EXCHANGE_LIFETIME (spec §1, RFC 7252 §4.4).
6. Stops the server with SIGTERM (it must exit 0) and scans its stderr for ERROR,
   CRITICAL and Traceback lines (WARNING lines are counted and shown, not failed).

Memory: RSS at the start (server ready), after warm-up (the first sample at or after one
minute; the 10 s sample in a quick run), the maximum (the largest sample, and VmHWM) and at
the end; the slope is a least-squares fit of the samples from one minute on, in MiB per 10
minutes. The emulator's memory keeps settling for a few minutes after the first one (in a
10-minute run at 360 req/s: +7 MiB from 1 to 5 minutes, then flat within 1.5 MiB), so
what is judged (``--max-slope``, default 2 MiB per 10 min) is the slope of the later half
of those samples, which is printed too; it is judged only when at least
``JUDGE_MEMORY_AFTER`` s of samples follow the warm-up: a quick run only reports it.

Load level: at full speed (the default) the virtual users make several hundred session
changes a second, each a notification to every observer, and a CoAP server sends one
Confirmable notification at a time per observer; when the fan-out cannot keep up, the
``lag`` column grows, up to the server's ``observer_queue_limit`` (1000) per observer, and
then the server drops the oldest waiting notifications (observers see gaps). ``--think 20``
(about 360 req/s from 8 users here) keeps the lag at 0 and the streams gap-free.

Exit status: 0 when nothing was wrong, 1 when anything was (each reason is printed), 2 on
a setup error or the deadline. Everything is bounded (requests, the drain, the catch-up wait,
a deadline on the whole run); the server is stopped (terminated, then killed) in a
``finally`` and the temporary directory removed. Only 127.0.0.1 is used.
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
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: bench, bench_notify

import bench
import bench_notify
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type
from bench import (
    C_2_00,
    C_CHANGED,
    C_CONTENT,
    C_CREATED,
    C_DELETED,
    C_NOT_FOUND,
    HOST,
    Probe,
    ServerProcess,
    SetupError,
    Template,
    block2_of,
    dotted,
    proc_memory,
)

from tests.reliability.harness import logged_errors

SUMMARY_HEADER = "==== soak.py summary ===="
QUICK_SECONDS = 20.0
WARMUP_SECONDS = 60.0  # memory: the slope is fitted from here on
JUDGE_MEMORY_AFTER = 300.0  # seconds of samples after the warm-up needed to judge the slope
INITIAL_SESSIONS = 10  # long-lived sessions on numbers 10.., made before the observers
NUMBER_BASE = 100  # virtual user i works on numbers NUMBER_BASE + i * span ...
MAX_ACTIVE = 4  # active sessions per virtual user
CATCH_UP_TIMEOUT = 60.0  # seconds the observers get to catch up after the load
SEEN_HORIZON = bench_notify.EXCHANGE_LIFETIME  # observers remember message ids this long
MAX_SAMPLES_SHOWN = 10  # unexpected answers shown in full

C_BAD_REQUEST, C_METHOD_NOT_ALLOWED = 0x80, 0x85
C_NOT_ACCEPTABLE, C_TOO_LARGE, C_UNSUPPORTED = 0x86, 0x8D, 0x8F
GSEQ = re.compile(rb'"globalSessionSequence":(\d+)')
PAGE_MODES = ("Flash1Sec", "Flash30Sec", "Beep3Times", "Vibe1", "Vibe2", "VibeBeep1", "Glow15Times")

OK_CONTENT = frozenset((C_CONTENT,))
OK_CREATED = frozenset((C_CREATED,))
OK_UPDATED = frozenset((C_2_00,))
OK_CHANGED = frozenset((C_CHANGED,))
OK_DELETED = frozenset((C_DELETED,))


def code_name(code: int) -> str:
    return "RST" if code == -1 else dotted(code)


def body_of(r: tuple) -> bytes:
    return r[1][block2_of(r[1], r[2])[1] :]


# ---- the load ----------------------------------------------------------------------------


class Soak:
    """Counters of the whole run, and the templates the virtual users share."""

    def __init__(self, args, numbers_per_user: int) -> None:
        self.args = args
        self.span = numbers_per_user
        self.requests = 0
        self.codes: Counter[int] = Counter()  # answer code -> count (-1 RST; None timeout)
        self.by_op: Counter[tuple[str, str]] = Counter()  # (operation, code) -> count
        self.unexpected = 0
        self.lrsn: LrsnPager | None = None  # set once the server's LRSN port is known
        self.unexpected_samples: list[str] = []
        self.timeouts = 0
        self.block2_transfers = 0
        self.block2_blocks = 0
        self.history_reads = 0
        self.settings_sent = 0
        self.settings_changes = 0  # answered 2.04: each one a settings notification
        self.settings_unknown = 0  # timed out: may or may not have happened
        self.retired = 0  # numbers retired after a write on them timed out
        self.max_gseq = 0  # newest globalSessionSequence seen in any answer
        self.max_session_id = 0
        self._cache: dict[tuple, Template] = {}
        self.sessions_path = ("v1", "sessions")
        self.run: bench.Run | None = None
        self.rst_seen = 0

    # -- templates
    def tpl(self, key: tuple, make) -> Template:
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = make()
        return t

    def get(
        self,
        path: tuple[str, ...],
        query: tuple[str, ...] = (),
        block: tuple[int, int] | None = None,
    ) -> Template:
        """A GET (with Block2 `(num, szx)` if given); cached unless it names a session id,
        whose variety has no bound."""

        def make() -> Template:
            return Template(
                f"GET {'/'.join(path)}" + (f" block {block[0]}" if block else ""),
                Code.GET,
                path,
                query,
                block2=block,
            )

        if any(q.startswith("after=") for q in query):
            return make()
        return self.tpl(("get", path, query, block), make)

    # -- one exchange, as a sub-generator of a virtual user's script
    def exchange(self, op: str, tpl: Template, ok: frozenset[int]):
        r = yield tpl
        self.requests += 1
        if r is None:
            rst = self.run.errors.get(-1, 0) if self.run is not None else 0
            if rst > self.rst_seen:  # bench.VirtualUser answers None to the script for an RST
                self.rst_seen = rst
                self.codes[-1] += 1
                self.by_op[op, "RST"] += 1
                self.bad(f"{op}: RST")
                return None
            self.timeouts += 1
            self.codes[None] += 1
            self.by_op[op, "timeout"] += 1
            return None
        code = r[0]
        self.codes[code] += 1
        self.by_op[op, dotted(code)] += 1
        if code < 0x80:
            m = GSEQ.search(r[1], 4 + r[2])
            if m is not None:
                g = int(m.group(1))
                if g > self.max_gseq:
                    self.max_gseq = g
        if code not in ok:
            self.bad(
                f"{op}: {dotted(code)} (expected "
                f"{' or '.join(dotted(c) for c in sorted(ok))}) {body_of(r)[:160]!r}"
            )
        return r

    def bad(self, what: str) -> None:
        self.unexpected += 1
        if len(self.unexpected_samples) < MAX_SAMPLES_SHOWN:
            self.unexpected_samples.append(what)

    def fetch(self, op: str, path: tuple[str, ...], query: tuple[str, ...] = ()):
        """GET following Block2; returns the whole body, or None after a failed exchange."""
        r = yield from self.exchange(op, self.get(path, query), OK_CONTENT)
        payload = b""
        blocks = 0
        while r is not None and r[0] == C_CONTENT:
            blocks += 1
            block2, at = block2_of(r[1], r[2])
            payload += r[1][at:]
            if block2 is None or not block2[1]:
                if blocks > 1:
                    self.block2_transfers += 1
                    self.block2_blocks += blocks
                return payload
            r = yield from self.exchange(
                op + " (block)", self.get(path, query, (block2[0] + 1, block2[2])), OK_CONTENT
            )
        return None

    # -- a virtual user's script
    def script(self, user: bench.VirtualUser, run: bench.Run) -> Iterator[Template]:
        self.run = run
        rnd = random.Random(self.args.seed * 1000 + user.index)
        base = NUMBER_BASE + user.index * self.span
        numbers = list(range(base, base + self.span))
        active: dict[int, bool] = {}  # number -> paged
        free = [n for n in numbers]
        rnd.shuffle(free)
        S = self.sessions_path
        weights = {
            "create": 12,
            "update": 6,
            "page": 8,
            "re-page": 4,
            "clear": 6,
            "remove": 5,
            "get one": 8,
            "get all": 4,
            "statistics": 6,
            "settings": 4,
            "history": 5,
            "standalone page": 4,
            "settings change": 0.25,
            "bad request": 3,
        }
        ops, cum = list(weights), []
        total = 0.0
        for w in weights.values():
            total += w
            cum.append(total)

        def pick_active() -> int:
            return rnd.choice(list(active))

        def release(n: int) -> None:
            active.pop(n, None)
            free.append(n)

        def lost(n: int) -> None:
            """A write on n timed out: it may yet be processed, so n is never used again."""
            active.pop(n, None)
            self.retired += 1

        while not run.stopping:
            op = ops[_bisect(cum, rnd.random() * total)]
            if op in ("update", "page", "re-page", "clear", "remove", "get one") and not active:
                op = "create"
            if op == "re-page" and not any(active.values()):
                op = "page"
            if op == "create" and (len(active) >= MAX_ACTIVE or not free):
                op = "page" if active else "statistics"

            if op == "create":
                n = free.pop(rnd.randrange(len(free)))
                goal, size = rnd.choice((0, 60, 300, 900)), rnd.choice((2, 4, 6))
                tpl = self.tpl(
                    ("create", n, goal, size),
                    lambda: Template(
                        "POST create",
                        Code.POST,
                        S,
                        body={"number": n, "goal": goal, "partySize": size, "label": f"guest {n}"},
                    ),
                )
                r = yield from self.exchange("POST create", tpl, OK_CREATED)
                if r is None:
                    lost(n)
                elif r[0] == C_CREATED:
                    active[n] = False
                    m = re.search(rb'"id":(\d+)', r[1], 4 + r[2])
                    if m is not None:
                        self.max_session_id = max(self.max_session_id, int(m.group(1)))
                elif r[0] == C_2_00:  # (unexpected) it was active: follow the server
                    active[n] = True
                else:
                    free.append(n)
            elif op == "update":
                n = pick_active()
                if rnd.random() < 0.5:
                    label = rnd.choice(("window", "patio", "booth", None))
                    tpl = self.tpl(
                        ("upd-post", n, label),
                        lambda: Template(
                            "POST update", Code.POST, S, body={"number": n, "label": label}
                        ),
                    )
                    r = yield from self.exchange("POST update", tpl, OK_UPDATED)
                else:
                    size = rnd.choice((1, 3, 8))
                    q = (f"number={n}",)
                    tpl = self.tpl(
                        ("upd-put", n, size),
                        lambda: Template("PUT update", Code.PUT, S, q, body={"partySize": size}),
                    )
                    r = yield from self.exchange("PUT update", tpl, OK_CHANGED)
                if r is None:
                    lost(n)
            elif op in ("page", "re-page"):
                if op == "re-page":
                    n = rnd.choice([k for k, paged in active.items() if paged])
                else:
                    n = pick_active()
                q = (f"number={n}",)
                mode = rnd.choice((None, "Vibe2", "Flash1Sec"))
                body = {"action": "page"} if mode is None else {"action": "page", "pageMode": mode}
                tpl = self.tpl(
                    ("page", n, mode), lambda: Template("PUT page", Code.PUT, S, q, body=body)
                )
                r = yield from self.exchange(f"PUT {op}", tpl, OK_CHANGED)
                if r is None:
                    lost(n)
                elif r[0] == C_CHANGED:
                    active[n] = True
            elif op == "clear":
                n = pick_active()
                q = (f"number={n}",)
                tpl = self.tpl(
                    ("clear", n),
                    lambda: Template("PUT clear", Code.PUT, S, q, body={"action": "clear"}),
                )
                r = yield from self.exchange("PUT clear", tpl, OK_CHANGED)
                if r is None:
                    lost(n)
                else:
                    release(n)
            elif op == "remove":
                n = pick_active()
                q = (f"number={n}",)
                if rnd.random() < 0.5:
                    tpl = self.tpl(("delete", n), lambda: Template("DELETE", Code.DELETE, S, q))
                    r = yield from self.exchange("DELETE ?number", tpl, OK_DELETED)
                else:
                    tpl = self.tpl(
                        ("remove", n),
                        lambda: Template("PUT remove", Code.PUT, S, q, body={"action": "remove"}),
                    )
                    r = yield from self.exchange("PUT remove", tpl, OK_CHANGED)
                if r is None:
                    lost(n)
                else:
                    release(n)
            elif op == "get one":
                n = pick_active()
                q = (f"number={n}",)
                yield from self.exchange("GET ?number", self.get(S, q), OK_CONTENT)
            elif op == "get all":
                body = yield from self.fetch("GET all", S)
                if body is not None:
                    try:
                        sessions = json.loads(body)["sessions"]
                        if len(sessions) < INITIAL_SESSIONS:
                            self.bad(
                                f"GET all: {len(sessions)} sessions, fewer than the "
                                f"{INITIAL_SESSIONS} long-lived ones"
                            )
                    except (ValueError, KeyError, TypeError) as e:
                        self.bad(
                            f"GET all: the reassembled body is not the session list "
                            f"({e}): {body[:80]!r}...{body[-80:]!r}"
                        )
            elif op == "statistics":
                yield from self.exchange(
                    "GET statistics", self.get(S + ("statistics",)), OK_CONTENT
                )
            elif op == "settings":
                yield from self.exchange("GET settings", self.get(("v1", "settings")), OK_CONTENT)
            elif op == "history":
                limit = rnd.choice((1, 5, 10, 20))
                if rnd.random() < 0.3 or self.max_session_id < 50:
                    q = (f"limit={limit}",)
                    after = 0
                else:
                    after = max(0, self.max_session_id - rnd.randint(0, 500))
                    q = (f"after={after}", f"limit={limit}")
                body = yield from self.fetch("GET history", S + ("history",), q)
                if body is not None:
                    self.history_reads += 1
                    try:
                        ids = [h["id"] for h in json.loads(body)["session_history"]]
                        if len(ids) > limit or any(i <= after for i in ids):
                            self.bad(f"GET history {q}: ids {ids}")
                    except (ValueError, KeyError, TypeError) as e:
                        self.bad(
                            f"GET history {q}: the body is not a history ({e}): {body[:120]!r}"
                        )
            elif op == "standalone page":
                n = rnd.randrange(4096)
                mode = rnd.choice(PAGE_MODES)
                tpl = self.tpl(
                    ("standalone", n % 64, mode),
                    lambda: Template(
                        "POST /v1/page",
                        Code.POST,
                        ("v1", "page"),
                        body={"number": 4000 + n % 64, "pageMode": mode, "message": "Table ready"},
                    ),
                )
                yield from self.exchange("POST /v1/page", tpl, OK_CHANGED)
            elif op == "settings change":
                # a value other than the field's last one: a request that changes nothing
                # notifies nobody (spec §8), and each 2.04 here must be one notification
                self.settings_sent += 1
                k = self.settings_sent
                if k % 2:
                    body = {"systemId": (k // 2 + 1) % 256}
                else:
                    body = {"defaultTargetGoal": 60 + k // 2 % 1000}
                tpl = Template("POST settings", Code.POST, ("v1", "settings"), body=body)
                r = yield from self.exchange("POST settings", tpl, OK_CHANGED)
                if r is None:
                    self.settings_unknown += 1
                elif r[0] == C_CHANGED:
                    self.settings_changes += 1
            else:  # a deliberately bad request
                yield from self.bad_request(rnd, free)

    def bad_request(self, rnd: random.Random, free: list[int]):
        S = self.sessions_path
        kind = rnd.randrange(12)
        if kind == 0 and free:
            n = rnd.choice(free)  # inactive for sure: only this user touches it
            q = (f"number={n}",)
            tpl = self.tpl(
                ("bad-nosession", n),
                lambda: Template("PUT page, no session", Code.PUT, S, q, body={"action": "page"}),
            )
            ok, op = frozenset((C_NOT_FOUND,)), "bad: PUT on no session"
        elif kind <= 1:
            tpl = self.tpl(
                ("bad-range",),
                lambda: Template("POST number 5000", Code.POST, S, body={"number": 5000}),
            )
            ok, op = frozenset((C_BAD_REQUEST,)), "bad: number out of range"
        elif kind == 2:
            tpl = self.tpl(
                ("bad-json",),
                lambda: Template.of_message(
                    "POST broken JSON",
                    Message(code=Code.POST, uri_path=S, payload=b'{"number":', content_format=50),
                ),
            )
            ok, op = frozenset((C_BAD_REQUEST,)), "bad: broken JSON"
        elif kind == 3:
            tpl = self.tpl(
                ("bad-path",),
                lambda: Template("GET unknown path", Code.GET, ("v1", "nothing-here")),
            )
            ok, op = frozenset((C_NOT_FOUND,)), "bad: unknown path"
        elif kind == 4:
            tpl = self.tpl(
                ("bad-method",),
                lambda: Template("DELETE settings", Code.DELETE, ("v1", "settings")),
            )
            ok, op = frozenset((C_METHOD_NOT_ALLOWED,)), "bad: DELETE /v1/settings"
        elif kind == 5:
            tpl = self.tpl(
                ("bad-cf",),
                lambda: Template.of_message(
                    "POST Content-Format 42",
                    Message(code=Code.POST, uri_path=S, payload=b'{"number":1}', content_format=42),
                ),
            )
            ok, op = frozenset((C_UNSUPPORTED,)), "bad: Content-Format 42"
        elif kind == 6:

            def make() -> Template:
                msg = Message(code=Code.GET, uri_path=S + ("statistics",))
                msg.opt.accept = 42
                return Template.of_message("GET Accept 42", msg)

            tpl = self.tpl(("bad-accept",), make)
            ok, op = frozenset((C_NOT_ACCEPTABLE,)), "bad: Accept 42"
        elif kind == 7:
            tpl = self.tpl(
                ("bad-large",),
                lambda: Template(
                    "POST 1100-byte body",
                    Code.POST,
                    ("v1", "page"),
                    body={"number": 4001, "message": "x" * 1070},
                ),
            )
            ok, op = frozenset((C_TOO_LARGE,)), "bad: body over 1024 bytes"
        elif kind == 8:
            q = ("limit=0",)
            tpl = self.tpl(
                ("bad-limit",),
                lambda: Template("GET history limit=0", Code.GET, S + ("history",), q),
            )
            ok, op = frozenset((C_BAD_REQUEST,)), "bad: history limit=0"
        elif kind == 9:
            n = rnd.randrange(NUMBER_BASE, NUMBER_BASE + self.span)
            q = (f"number={n}",)
            tpl = self.tpl(
                ("bad-action", n),
                lambda: Template("PUT action explode", Code.PUT, S, q, body={"action": "explode"}),
            )
            ok, op = frozenset((C_BAD_REQUEST,)), "bad: unknown action"
        elif kind == 10:
            tpl = self.tpl(
                ("bad-settings",),
                lambda: Template(
                    "POST systemId 256", Code.POST, ("v1", "settings"), body={"systemId": 256}
                ),
            )
            ok, op = frozenset((C_BAD_REQUEST,)), "bad: systemId 256"
        else:
            q = ("action=bogus",)
            tpl = self.tpl(
                ("bad-notify",),
                lambda: Template("GET notify action=bogus", Code.GET, ("v1", "notify"), q),
            )
            ok, op = frozenset((C_BAD_REQUEST,)), "bad: notify action=bogus"
        yield from self.exchange(op, tpl, ok)


def _bisect(cum: list[float], x: float) -> int:
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


# ---- observers ---------------------------------------------------------------------------


class SoakObserver(bench_notify.Observer):
    """`bench_notify.Observer`, checking its stream as it comes instead of keeping it."""

    def __init__(self, index: int, port: int, with_sessions: bool) -> None:
        super().__init__(index, port, self)  # the `bench` it reports counts to: itself
        self.with_sessions = with_sessions
        self.base: int | None = None  # globalSessionSequence of the first notification
        self.last: int | None = None  # of the last session notification (or the base)
        self.listing = with_sessions  # still in the initial session list
        self.list_notes = 0
        self.list_sessions: set[int] = set()
        self.changes = 0  # session notifications after the base
        self.gaps = 0  # jumps forward by more than one
        self.missing = 0  # sequence numbers jumped over
        self.backwards = 0  # a sequence number again or an older one
        self.settings = 0
        self.statistics = 0
        self.unexpected_kinds = 0
        self.pings = 0
        self.ping_mismatch = 0  # a ping whose sequence is not the last one received
        self.observe_regressions = 0
        self.last_observe: int | None = None
        self.received = 0
        self.local_port: int | None = None
        self.last_settings: dict | None = None  # of the latest settings notification
        # a block-wise notification (RFC 7959 §2.6) being fetched: its first block, the
        # token of the GETs for the rest, and the retransmission timer of the one in flight
        self.fetching: Message | None = None
        self.fetch_token = b""
        self.fetch_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.local_port = transport.get_extra_info("sockname")[1]

    # called by Observer.handle for each session notification; the check happens below
    def count(self, gseq: int) -> None:
        pass

    def register_message(self) -> bytes:
        if not self.with_sessions:
            return super().register_message()
        msg = Message(
            code=Code.GET, uri=f"coap://{HOST}:{self.port}/v1/notify?action=get_sessions", observe=0
        )
        msg.mtype = Type.CON
        msg.mid = self.mid()
        msg.token = self.token
        return msg.encode()

    def handle(self, t: float, msg: Message) -> None:
        """A notification larger than one block comes as its first block: the rest is
        fetched (GET + Block2, a token of its own) and the whole handled as one."""
        block2 = msg.opt.block2
        if self.fetching is not None and msg.token == self.fetch_token and block2 is not None:
            if self.fetch_timer is not None:
                self.fetch_timer.cancel()
            if block2.block_number * block2.size != len(self.fetching.payload):
                return  # a retransmitted answer
            self.fetching.payload += msg.payload
            if block2.more:
                self._fetch_block(block2.block_number + 1, block2.size_exponent)
                return
            whole, self.fetching = self.fetching, None
            whole.opt.block2 = None
            self._handle_whole(t, whole)
            return
        if msg.token == self.token and block2 is not None and block2.more:
            self.fetching = msg
            self.fetch_token = os.urandom(4)
            self._fetch_block(1, block2.size_exponent)
            return
        self._handle_whole(t, msg)

    def _fetch_block(self, number: int, size_exponent: int, attempt: int = 0) -> None:
        request = Message(code=Code.GET, uri=self.register_uri())
        request.opt.block2 = (number, False, size_exponent)
        request.mtype, request.mid, request.token = Type.CON, self.mid(), self.fetch_token
        self.send(request.encode())
        if attempt < 4:
            self.fetch_timer = asyncio.get_running_loop().call_later(
                2.0 * 2**attempt, self._fetch_block, number, size_exponent, attempt + 1
            )

    def register_uri(self) -> str:
        query = "?action=get_sessions" if self.with_sessions else ""
        return f"coap://{HOST}:{self.port}/v1/notify{query}"

    def _handle_whole(self, t: float, msg: Message) -> None:
        before = len(self.receipts)
        super().handle(t, msg)
        if len(self.receipts) == before:
            return
        r = self.receipts.pop()  # consumed here: a 30-minute run would not fit in memory
        self.received += 1
        if r.observe is not None:
            if self.last_observe is not None and not (
                0
                < (r.observe - self.last_observe) % bench_notify.OBSERVE_MODULO
                < bench_notify.OBSERVE_MODULO // 2
            ):
                self.observe_regressions += 1
            self.last_observe = r.observe
        if self.base is None:  # the registration's answer: a ping, or the session list
            self.base = self.last = r.gseq
            if r.kind == "ping" and not self.with_sessions:
                self.listing = False
                return
        if r.kind == "ping":
            self.pings += 1
            if r.gseq != self.last:
                self.ping_mismatch += 1
            return
        if r.kind == "session":
            if self.listing and r.gseq == self.base:
                self.list_notes += 1
                try:
                    self.list_sessions.update(s["id"] for s in json.loads(msg.payload)["sessions"])
                except (ValueError, KeyError, TypeError):
                    self.unexpected_kinds += 1
                return
            self.listing = False
            if r.gseq == self.last + 1:
                self.changes += 1
                self.last = r.gseq
            elif r.gseq > self.last + 1:
                self.changes += 1
                self.gaps += 1
                self.missing += r.gseq - self.last - 1
                self.last = r.gseq
            else:
                self.backwards += 1
            return
        try:
            types = json.loads(msg.payload).get("responseTypes", [])
        except (ValueError, AttributeError):
            types = []
        if types == ["settings"]:
            self.settings += 1
            settings = json.loads(msg.payload)["settings"]
            self.last_settings = {k: settings.get(k) for k in SETTINGS_COMPARED}
        elif types == ["statistics"]:
            self.statistics += 1
        else:
            self.unexpected_kinds += 1

    def prune_seen(self, now: float) -> None:
        """Forget message ids older than SEEN_HORIZON (EXCHANGE_LIFETIME: a server may send
        an id again after that), so that `Endpoint.seen` holds those of the last 247 s."""
        old = now - SEEN_HORIZON
        if len(self.seen) > 256:
            self.seen = {mid: v for mid, v in self.seen.items() if v[1] >= old}

    @property
    def alive(self) -> bool:
        return self.ended is None


# ---- the run -----------------------------------------------------------------------------

DROPPED = re.compile(
    r"observer \S+:(\d+) caught up after (\d+) session notifications were "
    r"dropped and (\d+) settings or statistics notifications replaced"
)


def server_dropped(stderr_text: str) -> tuple[Counter, Counter]:
    """Session notifications the server says it dropped, and settings/statistics ones it
    replaced by newer ones, by observer port (pager.hub.Observer)."""
    dropped: Counter = Counter()
    replaced: Counter = Counter()
    for m in DROPPED.finditer(stderr_text):
        dropped[int(m.group(1))] += int(m.group(2))
        replaced[int(m.group(1))] += int(m.group(3))
    return dropped, replaced


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def slope_per_10min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, KiB) samples, in MiB per 10 minutes."""
    n = len(samples)
    if n < 3:
        return math.nan
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    sxx = sum((t - mx) ** 2 for t, _ in samples)
    if sxx == 0:
        return math.nan
    sxy = sum((t - mx) * (v - my) for t, v in samples)
    return sxy / sxx * 600 / 1024


async def global_sequence(port: int) -> tuple[int, set[int]]:
    """(globalSessionSequence, ids of the active sessions) read with GET /v1/sessions."""
    w = bench.Workloads()
    probe = Probe(port)
    try:
        code, payload, _ = await probe.fetch(w.all_sessions, w)
    finally:
        probe.close()
    if code != C_CONTENT:
        raise SetupError(f"GET /v1/sessions answered {dotted(code)}")
    body = json.loads(payload)
    return body["globalSessionSequence"], {s["id"] for s in body["sessions"]}


SETTINGS_COMPARED = ("systemId", "defaultTargetGoal")  # what the load changes


async def current_settings(port: int) -> dict:
    """The settings the load changes, as GET /v1/settings reads them."""
    probe = Probe(port)
    try:
        code, payload, _ = await probe.fetch(
            Template("GET settings", Code.GET, ("v1", "settings")), bench.Workloads()
        )
    finally:
        probe.close()
    if code != C_CONTENT:
        raise SetupError(f"GET /v1/settings answered {dotted(code)}")
    settings = json.loads(payload)["settings"]
    return {k: settings[k] for k in SETTINGS_COMPARED}


class PacedUser(bench.VirtualUser):
    """`bench.VirtualUser` with an optional think time before each request (--think)."""

    def __init__(self, index: int, port: int, run: bench.Run, script, think: float) -> None:
        self.think = think
        super().__init__(index, port, run, script)

    def _next(self, r, first: bool = False) -> None:
        if self.think > 0 and not first:
            self.loop.call_later(self.think, self._resume, r)
        else:
            super()._next(r, first)

    def _resume(self, r) -> None:
        if self.sock is not None:  # not closed meanwhile
            super()._next(r)


class LrsnPager:
    """One LRSN client beside the virtual users (issue 16): logged in once, a standalone page
    (short form) at the users' think time, each answer checked to be ret 0. A page over LRSN
    changes no session, so the observers' streams are what they are without it."""

    def __init__(self, soak: Soak, port: int, think: float) -> None:
        self.soak, self.port, self.think = soak, port, think
        self.pages = 0

    async def run(self, stop: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.port)
        try:
            greeting = await asyncio.wait_for(reader.readline(), 10)
            if not greeting.startswith(b"<LRSN "):
                self.soak.bad(f"LRSN greeting {greeting!r}")
                return
            writer.write(b'<Login services="NetPage" />\n')
            answer = await asyncio.wait_for(reader.readline(), 10)
            if answer != b'<LoginAck ret="0" />\n':
                self.soak.bad(f"LRSN login answered {answer!r}")
                return
            while not stop.is_set():
                number = 4000 + self.pages % 96  # above the virtual users' numbers
                writer.write(b'<PageRequest id="%d" pager="2;%d" />\n' % (self.pages, number))
                answer = await asyncio.wait_for(reader.readline(), 10)
                want = b'<PageRequestStatus id="%d" ret="0" />\n' % self.pages
                if answer != want:
                    self.soak.bad(f"LRSN page answered {answer!r}, not {want!r}")
                self.pages += 1
                await asyncio.sleep(max(self.think, 0.01))
        except (OSError, TimeoutError) as e:
            self.soak.bad(f"LRSN client: {e!r}")
        finally:
            writer.close()


async def drive(soak: Soak, port: int, args, sample) -> tuple[bench.Run, float]:
    """Run the virtual users for args.duration seconds, calling `sample(elapsed, run)` every
    SAMPLE_EVERY seconds, then let each finish its step (bounded); as `bench.Bench.measure`
    does, with think times and no warm-up or latency recording."""
    run = bench.Run()
    users = [PacedUser(i, port, run, soak.script, args.think / 1000) for i in range(args.clients)]
    stop = asyncio.Event()
    timer_task = asyncio.create_task(bench.retransmit_timer(users, args.rto, args.retransmit, stop))
    assert soak.lrsn is not None
    lrsn_task = asyncio.create_task(soak.lrsn.run(stop))
    t0 = time.perf_counter()
    try:
        for u in users:
            u.start()
        await bench.sample_until(t0, args.duration, sample, run)
        elapsed = time.perf_counter() - t0
        run.stopping = True
        drain_until = (
            time.perf_counter() + args.rto * (2 ** (args.retransmit + 1)) + 1 + args.think / 1000
        )
        while not all(u.idle for u in users) and time.perf_counter() < drain_until:
            await asyncio.sleep(0.01)
        if not all(u.idle for u in users):
            soak.bad(f"{sum(not u.idle for u in users)} virtual users still busy after the drain")
    finally:
        stop.set()
        await timer_task
        await lrsn_task
        for u in users:
            u.close()
    return run, elapsed


async def run(args) -> int:
    loop = asyncio.get_running_loop()
    workdir = Path(tempfile.mkdtemp(prefix="pager-soak-"))
    server = ServerProcess(
        "emulator",
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
            "--no-control",
            "--db",
            str(workdir / "soak.db"),
            "--log-level",
            "WARNING",
        ],
        workdir / "server-stderr.log",
        port_line=r"pager-emulator listening on udp .*:(\d+), store ",
    )
    observers: list[SoakObserver] = []
    problems: list[str] = []
    span = min(200, (4096 - NUMBER_BASE) // args.clients)
    soak = Soak(args, span)
    samples: list[tuple[float, int, int, int, int]] = []  # (t, RSS, HWM, fds, requests)
    began = time.perf_counter()
    print(f"soak.py: {bench.tree_state()}", flush=True)
    print(
        f"soak.py: {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.duration:g} s of load, "
        f"{args.clients} virtual users (think time {args.think:g} ms), {args.observers} "
        f"observers; workdir {workdir}",
        flush=True,
    )

    def check_alive() -> None:
        if not server.alive():
            raise SetupError(
                f"the server exited ({server.process.returncode})\n{server.log_tail()}"
            )

    def lag() -> int:
        live = [o.last or 0 for o in observers if o.alive]
        return max(0, soak.max_gseq - min(live)) if live else 0

    try:
        await server.start()
        pid, port = server.pid, server.port
        lrsn_port = re.search(r"lrsn tcp \S+:(\d+)", server.banner)
        if lrsn_port is None:
            raise SetupError(f"no LRSN port in the startup line {server.banner!r}")
        soak.lrsn = LrsnPager(soak, int(lrsn_port.group(1)), args.think / 1000)
        await bench.wait_answer(port, bench.Workloads().statistics[0], OK_CONTENT, 20)
        m = proc_memory(pid)
        rss_start, fd_start = m["VmRSS"], fd_count(pid)
        print(
            f"server pid {pid} on udp {HOST}:{port}: VmRSS {rss_start / 1024:.1f} MiB, "
            f"{fd_start} fds",
            flush=True,
        )

        # long-lived sessions, so that lists span several notifications and blocks
        probe = Probe(port)
        try:
            for i in range(INITIAL_SESSIONS):
                n = 10 + i
                r = await probe.request(
                    Template(
                        "POST",
                        Code.POST,
                        ("v1", "sessions"),
                        body={"number": n, "partySize": 2 + i, "label": f"long-lived table {n}"},
                    )
                )
                if r is None or r[0] != C_CREATED:
                    raise SetupError(f"creating session {n}: {dotted(r and r[0])}")
        finally:
            probe.close()

        g_reg, active_reg = await global_sequence(port)
        soak.max_gseq = g_reg
        t0 = time.perf_counter()
        for i in range(args.observers):
            _, ob = await loop.create_datagram_endpoint(
                lambda i=i: SoakObserver(i, port, with_sessions=i % 2 == 1),
                remote_addr=(HOST, port),
            )
            observers.append(ob)
        limit = asyncio.Semaphore(bench_notify.REGISTER_CONCURRENCY)

        async def register(ob: SoakObserver) -> None:
            async with limit:
                await ob.register(bench_notify.REQUEST_TIMEOUT)

        await asyncio.gather(*(register(ob) for ob in observers))
        g_after, _ = await global_sequence(port)
        if g_after != g_reg:
            raise SetupError(f"the global sequence moved during registration: {g_reg} -> {g_after}")
        print(
            f"registered {len(observers)} observers ({sum(o.with_sessions for o in observers)}"
            f" with ?action=get_sessions) in {time.perf_counter() - t0:.2f} s at "
            f"globalSessionSequence {g_reg}, {len(active_reg)} active sessions",
            flush=True,
        )

        m = proc_memory(pid)
        samples.append((0.0, m["VmRSS"], m["VmHWM"], fd_count(pid), 0))
        print(
            f"{'t':>6} {'requests':>9} {'req/s':>6} {'tmo':>4} {'rtx':>4} {'unexp':>5} "
            f"{'RSS MiB':>8} {'HWM MiB':>8} {'fds':>4} {'obs':>7} {'notes':>10} "
            f"{'gaps':>4} {'lag':>6}",
            flush=True,
        )

        def line(elapsed: float, requests: str, rate: str, r: bench.Run) -> tuple[int, int, int]:
            mem, fds = proc_memory(pid), fd_count(pid)
            print(
                f"{elapsed:5.0f}s {requests:>9} {rate:>6} {soak.timeouts:4d} "
                f"{r.retransmits:4d} {soak.unexpected:5d} "
                f"{mem['VmRSS'] / 1024:8.1f} {mem['VmHWM'] / 1024:8.1f} {fds:4d} "
                f"{sum(o.alive for o in observers):3d}/{len(observers):<3d} "
                f"{sum(o.changes for o in observers):10d} "
                f"{sum(o.gaps + o.backwards for o in observers):4d} {lag():6d}",
                flush=True,
            )
            return mem["VmRSS"], mem["VmHWM"], fds

        def sample(elapsed: float, r: bench.Run) -> None:
            check_alive()
            now = time.perf_counter()
            for ob in observers:
                ob.prune_seen(now)
            prev = samples[-1]
            rate = (soak.requests - prev[4]) / max(1e-9, elapsed - prev[0])
            rss, hwm, fds = line(elapsed, str(soak.requests), f"{rate:.0f}", r)
            samples.append((elapsed, rss, hwm, fds, soak.requests))

        t_load = time.perf_counter()
        run_, elapsed = await drive(soak, port, args, sample)

        # -- let the observers catch up with the final sequence (bounded; while they move)
        check_alive()
        g_final, _ = await global_sequence(port)
        want_settings = soak.settings_changes
        settings_final = await current_settings(port)
        waited = time.perf_counter()
        last_progress, progress_at, next_line = -1, waited, waited + bench.SAMPLE_EVERY
        give_up = waited + max(CATCH_UP_TIMEOUT, args.duration)

        def caught_up() -> bool:
            return all(
                not o.alive
                or (o.last == g_final and (not want_settings or o.last_settings == settings_final))
                for o in observers
            )

        while not caught_up():
            now = time.perf_counter()
            done = sum(o.changes for o in observers)
            if done != last_progress:
                last_progress, progress_at = done, now
            if now - progress_at > 20 or now > give_up:
                break
            if now >= next_line:
                check_alive()
                line(now - t_load, "catch-up", "-", run_)
                next_line += bench.SAMPLE_EVERY
            await asyncio.sleep(0.1)
        catch_up_s = time.perf_counter() - waited
        await asyncio.sleep(0.5)  # anything late or extra would show now
        check_alive()
        m = proc_memory(pid)
        rss_end, hwm_end, fd_end = m["VmRSS"], m["VmHWM"], fd_count(pid)
        for ob in observers:
            ob.close()
        await server.stop()
        exit_code = server.process.returncode
    finally:
        for ob in observers:
            ob.close()
        await server.stop()
        log_path = workdir / "server-stderr.log"
        stderr_text = log_path.read_text(errors="replace") if log_path.exists() else ""
        error_lines = logged_errors(log_path)
        shutil.rmtree(workdir, ignore_errors=True)

    # ---- the summary
    took = time.perf_counter() - began
    rst = run_.errors.get(-1, 0)
    warnings = Counter(
        re.sub(r"^\S+ \S+ ", "", line) for line in stderr_text.splitlines() if " WARNING " in line
    )
    dropped, replaced = server_dropped(stderr_text)
    print()
    print(SUMMARY_HEADER)
    print(
        f"load {elapsed:.0f} s, whole run {took:.0f} s; {args.clients} virtual users (think "
        f"time {args.think:g} ms), {len(observers)} observers; {os.cpu_count()} CPUs"
    )
    print(
        f"requests: {soak.requests} exchanges, {soak.requests / max(1e-9, elapsed):.0f} req/s;"
        f" Block2 transfers {soak.block2_transfers} ({soak.block2_blocks} blocks); history "
        f"reads {soak.history_reads}; settings changes {soak.settings_changes}"
    )
    print(
        "  by code: "
        + ", ".join(
            f"{'timeout' if c is None else code_name(c)} {n}"
            for c, n in sorted(soak.codes.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))
        )
    )
    width = max((len(op) for op, _ in soak.by_op), default=10)
    for op in sorted({op for op, _ in soak.by_op}):
        codes = ", ".join(f"{c} {n}" for (o, c), n in sorted(soak.by_op.items()) if o == op)
        print(f"    {op:<{width}}  {codes}")
    print(
        f"unexpected answers: {soak.unexpected} (RST {rst}); timeouts: {soak.timeouts}"
        f" (pager numbers retired after a write timed out: {soak.retired}); retransmissions:"
        f" {run_.retransmits}; socket errors: {run_.socket_errors}"
    )
    for s in soak.unexpected_samples:
        print(f"    {s}")
    lrsn_pages = 0 if soak.lrsn is None else soak.lrsn.pages
    print(f"lrsn: {lrsn_pages} standalone pages over LRSN beside the load")

    # observers
    expected = g_final - g_reg
    print(
        f"observers: registered at globalSessionSequence {g_reg} with {len(active_reg)} "
        f"active sessions; final {g_final}: {expected} session notifications and "
        f"{want_settings} settings notifications expected per observer"
        + (
            f" (+ up to {soak.settings_unknown} for settings changes that timed out)"
            if soak.settings_unknown
            else ""
        )
        + "; "
        + (
            f"all caught up {catch_up_s:.1f} s after the load"
            if caught_up()
            else f"NOT caught up after waiting {catch_up_s:.1f} s"
        )
    )
    print(
        f"  {'#':>3} {'register':<12} {'session notes':>17} {'settings':>9} {'list':>9} "
        f"{'pings':>5} {'gaps':>4} {'missing':>7} {'back':>4} {'dup':>4} {'state'}"
    )
    ob_problems = 0
    for o in observers:
        issues = []
        if o.ended:
            issues.append(f"ended: {o.ended}")
        if o.base != g_reg:
            issues.append(f"started at {o.base}")
        if o.changes + o.missing != expected or o.last != g_final:
            issues.append(f"last {o.last}")
        if o.backwards:
            issues.append(f"{o.backwards} back")
        if o.missing != dropped.get(o.local_port, 0):
            issues.append(f"{o.missing} missing, the server dropped {dropped.get(o.local_port, 0)}")
        if want_settings and o.last_settings != settings_final:
            issues.append(f"last settings {o.last_settings}, not {settings_final}")
        settings = o.settings + replaced.get(o.local_port, 0)
        if not want_settings <= settings <= want_settings + soak.settings_unknown:
            issues.append(
                f"{o.settings} settings notifications ("
                f"{replaced.get(o.local_port, 0)} replaced by the server)"
            )
        if o.statistics or o.unexpected_kinds or o.stray:
            issues.append(
                f"{o.statistics} statistics / {o.unexpected_kinds} unexpected / "
                f"{o.stray} stray notifications"
            )
        if o.observe_regressions:
            issues.append(f"{o.observe_regressions} Observe regressions")
        if o.ping_mismatch:
            issues.append(f"{o.ping_mismatch} pings out of step")
        if o.with_sessions and o.list_sessions != active_reg:
            issues.append(f"list had {len(o.list_sessions)} of {len(active_reg)} sessions")
        ob_problems += bool(issues)
        listing = f"{o.list_notes}n/{len(o.list_sessions)}s" if o.with_sessions else "-"
        print(
            f"  {o.index:>3} {'get_sessions' if o.with_sessions else 'ping':<12} "
            f"{o.changes:>8}/{expected:<8} {o.settings:>4}/{want_settings:<4} "
            f"{listing:>9} {o.pings:>5} {o.gaps:>4} {o.missing:>7} {o.backwards:>4} "
            f"{o.duplicates:>4} "
            + (
                (
                    "OK, in order, gaps only where the server dropped"
                    if o.missing
                    else "OK, gap-free and in order"
                )
                if not issues
                else "; ".join(issues)
            )
        )
    mid_reuses = sum(o.mid_reuses for o in observers)
    print(
        f"  notifications received: {sum(o.received for o in observers)} in all; server "
        f"retransmissions (duplicates) {sum(o.duplicates for o in observers)}; Message IDs "
        f"reused for a different notification to the same observer within "
        f"{SEEN_HORIZON:.0f} s (EXCHANGE_LIFETIME): {mid_reuses}"
    )

    # memory and fds
    after = [(t, rss) for t, rss, *_ in samples if t >= min(WARMUP_SECONDS, args.duration / 2)]
    warm = after[0] if after else None
    slope = slope_per_10min(after)
    fitted_span = after[-1][0] - after[0][0] if len(after) > 1 else 0.0
    later = [x for x in after if x[0] >= after[0][0] + fitted_span / 2] if after else []
    late_slope = slope_per_10min(later)
    max_rss = max([rss for _, rss, *_ in samples] + [rss_end])
    fds_seen = [f for *_, f, _ in samples] + [fd_end]
    judged = fitted_span >= JUDGE_MEMORY_AFTER
    print(
        f"memory (server VmRSS): start {rss_start / 1024:.1f} MiB; after warm-up "
        + (f"{warm[1] / 1024:.1f} MiB (t={warm[0]:.0f} s)" if warm else "n/a")
        + f"; max {max_rss / 1024:.1f} MiB (VmHWM {hwm_end / 1024:.1f} MiB); end "
        f"{rss_end / 1024:.1f} MiB (after the catch-up); slope after the warm-up "
        + (
            f"{slope:+.2f} MiB per 10 min over {fitted_span:.0f} s, over its later half "
            f"(t >= {later[0][0]:.0f} s) {late_slope:+.2f} MiB per 10 min"
            if late_slope == late_slope
            else "n/a (too few samples)"
        )
        + (
            f" (judged on the later half, limit {args.max_slope:g})"
            if judged
            else f" (not judged: under {JUDGE_MEMORY_AFTER:.0f} s of samples after the warm-up)"
        )
    )
    print(f"open fds (server): start {fd_start}, end {fd_end}, max {max(fds_seen)}")
    print(
        f"server stderr: {len(error_lines)} ERROR/CRITICAL/Traceback lines; "
        f"{sum(warnings.values())} WARNING lines; exit status {exit_code} after SIGTERM"
    )
    for text in error_lines[:10]:
        print(f"    {text}")
    for text, n in warnings.most_common(5):
        print(f"    {n} x {text}")

    # verdict
    if soak.requests == 0:
        problems.append("no request was answered")
    if soak.unexpected or rst:
        problems.append(f"{max(soak.unexpected, rst)} unexpected answers")
    if soak.timeouts:
        problems.append(f"{soak.timeouts} timeouts")
    if len(observers) != args.observers or ob_problems:
        problems.append(f"{ob_problems} observers with problems")
    if mid_reuses:
        problems.append(f"{mid_reuses} message ids reused within EXCHANGE_LIFETIME")
    if error_lines:
        problems.append(f"{len(error_lines)} error lines in the server's stderr")
    if exit_code != 0:
        problems.append(f"server exit status {exit_code}")
    if fd_end > fd_start + args.max_fd_growth:
        problems.append(f"fds grew from {fd_start} to {fd_end}")
    if judged and not late_slope <= args.max_slope:
        problems.append(
            f"memory grew {late_slope:.2f} MiB per 10 min in the later half of the "
            f"run (limit {args.max_slope:g})"
        )
    print("result: " + ("OK" if not problems else "FAILED: " + "; ".join(problems)))
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=30.0, help="load duration (default 30)")
    p.add_argument("--observers", type=int, default=20, help="observers (default 20)")
    p.add_argument("--clients", type=int, default=8, help="virtual users (default 8)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s of load")
    p.add_argument(
        "--rto",
        type=float,
        default=1.0,
        help="seconds before a request is retransmitted (default 1.0, doubling)",
    )
    p.add_argument(
        "--retransmit",
        type=int,
        default=2,
        help="retransmissions before a request times out (default 2)",
    )
    p.add_argument(
        "--max-slope",
        type=float,
        default=2.0,
        help="largest RSS slope over the later half of the samples after the "
        "warm-up, MiB per 10 min (default 2)",
    )
    p.add_argument(
        "--max-fd-growth",
        type=int,
        default=2,
        help="open fds the server may gain over the run (default 2)",
    )
    p.add_argument(
        "--think",
        type=float,
        default=0.0,
        metavar="MS",
        help="pause of each virtual user before each request, in milliseconds "
        "(default 0: full speed)",
    )
    p.add_argument("--seed", type=int, default=7470)
    args = p.parse_args(argv)
    args.duration = QUICK_SECONDS if args.quick else args.minutes * 60
    if args.duration <= 0 or not 1 <= args.clients <= 64 or not 0 <= args.observers <= 500:
        p.error("need a positive duration, 1-64 clients and 0-500 observers")
    if args.think < 0 or args.think > 10_000:
        p.error("--think must be 0 to 10,000 ms")
    # load, the catch-up wait (at most max(CATCH_UP_TIMEOUT, duration)), setup and the rest
    deadline = args.duration * 2.1 + CATCH_UP_TIMEOUT + 180

    return bench.run_to_exit("soak.py", run(args), deadline, (SetupError, RuntimeError))


if __name__ == "__main__":
    raise SystemExit(main())
