"""The reference model of one T7470 transmitter and its test rig, written from the device
reference (docs/device-api.md) and the README, never from `pager/`: the emulator's core
cannot be its own oracle. It imports nothing from `pager`.

A `Model` is the whole observable state. `Model.handle(request, actual)` applies one device-API
request and returns the answer the spec demands (`Expected`); `actual`, the answer the server
gave, is consulted only to learn what the spec leaves to the server: the uuid of a new session
and, while the clock runs (after a reset, before the rig freezes it again), the time a request
was served, which must lie in the window the rig measured. Rig actions (reset, restart, clock,
faults) are methods too. Everything is plain data so that a model can be copied, one copy per
serial order the concurrent requests may have been served in.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import cbor2

FMT = "%Y-%m-%dT%H:%M:%S"
NEVER = 24
ALERT = {
    "Flash1Sec": 1,
    "Flash30Sec": 30,
    "Flash5Min": 300,
    "FlashBeep5x5": 25,
    "Beep3Times": 3,
    "Beep5Min": 300,
    "Glow5Min": 300,
    "Glow15Times": 15,
    "Vibe1": 1,
    "Vibe2": 2,
    "Vibe3": 3,
    "VibeBeep1": 1,
    "VibeBeep2": 2,
    "VibeBeep3": 3,
}
DEFAULT_MODE = "Flash30Sec"  # no staff pagers in the rig's configuration
BODY_MAX = 1024
BLOCK = 1024  # aiocoap's default Block2 size
NUMBER_MAX = 4095
CLOCK_MIN, CLOCK_MAX = datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)
DEVICE_NAME, FIRMWARE = "T7470", "8.4.100.43"


def fmt(t: datetime) -> str:
    return t.strftime(FMT)


def half_up(n: int, d: int) -> int:
    return (2 * n + d) // (2 * d)


def is_uuid4(text: Any) -> bool:
    try:
        return (
            isinstance(text, str)
            and uuidlib.UUID(text).version == 4
            and str(uuidlib.UUID(text)) == text
        )
    except ValueError:
        return False


class Refusal(Exception):
    """A refused request: its CoAP code and, when one field is at fault, the field."""

    def __init__(self, code: str, field: str | None = None):
        super().__init__(code, field)
        self.code, self.field = code, field


@dataclass
class Request:
    """One device-API request as the rig sends it."""

    method: str
    path: str
    query: tuple[str, ...] = ()
    payload: bytes = b""
    content_format: int | None = None
    accept: int | None = None
    etag: bytes | None = None  # an ETag the rig saw on GET /v1/sessions (the model's seen_etag)
    kind: str = ""  # a label for the figures and the failure report

    def describe(self) -> str:
        q = "?" + "&".join(self.query) if self.query else ""
        extra = "".join(
            f" {k}={v}"
            for k, v in (("ct", self.content_format), ("accept", self.accept), ("etag", self.etag))
            if v is not None
        )
        return f"{self.method} {self.path}{q} {self.payload[:120]!r}{extra}"


@dataclass
class Expected:
    code: str
    body: dict | None = None  # None: no payload
    field: str | None = None  # for errors: the field the spec names (None: not checked)
    etag: bytes | None = None  # GET /v1/sessions: the answer must carry an ETag

    def blocks(self, accept: int | None) -> int:
        if self.body is None:
            return 1
        size = len(encode(self.body, accept))
        return max(1, -(-size // BLOCK))


def encode(body: dict, accept: int | None) -> bytes:
    if accept == 60:
        return cbor2.dumps(body)
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class Fault:
    id: int
    kind: str
    path: str | None
    remaining: int | None
    seconds: float = 0.0
    code: str = "5.03"


@dataclass
class Model:
    history_limit: int
    now: datetime | None = None  # None: running at system time, not yet frozen again
    frozen: bool = False
    speed: float = 1.0
    offset: int = 0  # the persisted clock offset (seconds) the datetime setting made
    system_id: int = 0
    default_goal: int = 300
    clear_mark: int = NEVER
    clear_since: datetime | None = None
    sequence: int = 0
    next_id: int = 1
    next_tx: int = 1
    active: dict[int, dict] = field(default_factory=dict)  # number -> session
    history: list[dict] = field(default_factory=list)  # archived, by id
    num_sessions: int = 0
    served: int = 0
    on_time: int = 0
    total_wait: int = 0
    statistics_generation: int = 0
    transmissions: list[dict] = field(default_factory=list)
    pagers: dict[int, dict] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    uuids: set[str] = field(default_factory=set)
    # messages sent but never answered, that this serial order says were processed:
    # (client, message id) -> the answer the spec demanded then
    committed_unanswered: dict[tuple[int, int], Expected] = field(default_factory=dict)
    # requests (client, message id) whose processing in this order changed nothing durable:
    # a restarted emulator has no answer kept for them and processes a retransmission anew
    unchanged: set[tuple[int, int]] = field(default_factory=set)
    window: tuple[datetime, datetime] | None = None  # while now is None: when it ran
    seen_etag: tuple[int, int] | None = None  # the state the rig's latest list ETag stands for

    # ---- envelope and sections -------------------------------------------------------

    def key(self) -> str:
        """What two candidate states must share to be the same state."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("window",)}
        return repr(sorted((k, repr(v)) for k, v in d.items()))

    def durable(self) -> str:
        """What a request can change that outlives a restart (the store's contents)."""
        keep = (
            "offset",
            "system_id",
            "default_goal",
            "clear_mark",
            "clear_since",
            "sequence",
            "next_id",
            "next_tx",
            "active",
            "history",
            "num_sessions",
            "served",
            "on_time",
            "total_wait",
            "statistics_generation",
            "transmissions",
            "pagers",
        )
        return repr([getattr(self, k) for k in keep])

    def envelope(self, now: datetime, *sections: tuple[str, Any]) -> dict:
        body = {
            "responseTypes": [n for n, _ in sections],
            "globalSessionSequence": self.sequence,
            "timestamp": fmt(now),
            "deviceName": DEVICE_NAME,
            "firmwareVersion": FIRMWARE,
        }
        body.update(sections)
        return body

    def statistics(self) -> dict:
        if self.served == 0:
            pct = late = avg = 0
        else:
            pct = half_up(100 * self.on_time, self.served)
            late = 100 - pct
            avg = half_up(self.total_wait, self.served)
        return {
            "guestsServed": self.served,
            "percentLate": late,
            "percentOnTime": pct,
            "averageTimeServed": avg,
            "numSessions": self.num_sessions,
        }

    @staticmethod
    def session_json(s: dict, history: bool = False) -> dict:
        out: dict[str, Any] = {"id": s["id"]}
        if not history:
            out["sessionSequence"] = s["sequence"]
        out.update(
            uuid=s["uuid"],
            number=s["number"],
            partySize=s["party"],
            goalInSeconds=s["goal"],
            created=fmt(s["created"]),
            started=fmt(s["created"]),
        )
        if s["notified"] is not None:
            out["notified"] = fmt(s["notified"])
        if s.get("cleared") is not None:
            out["cleared"] = fmt(s["cleared"])
        out["label"] = s["label"]
        out["state"] = (
            "cleared"
            if s.get("cleared") is not None
            else "paged"
            if s["notified"] is not None
            else "started"
        )
        if history:
            out["clearType"] = s["clear_type"]
        return out

    @staticmethod
    def tx_json(t: dict) -> dict:
        return {
            "id": t["id"],
            "time": fmt(t["time"]),
            "number": t["number"],
            "systemId": t["system_id"],
            "pageMode": t["mode"],
            "message": t["message"],
            "overrideCodes": [{"code": c, "value": v} for c, v in t["codes"]],
            "sessionId": t["session_id"],
            "alertUntil": fmt(t["time"] + timedelta(seconds=ALERT[t["mode"]])),
            "source": "coap",
        }

    def settings_json(self, now: datetime) -> dict:
        return {
            "datetime": fmt(now),
            "systemId": self.system_id,
            "defaultTargetGoal": self.default_goal,
            "statisticsClearMark": self.clear_mark,
        }

    def error(self, now: datetime, refusal: Refusal) -> Expected:
        return Expected(
            refusal.code, self.envelope(now, ("error", {"code": refusal.code})), refusal.field
        )

    # ---- time ------------------------------------------------------------------------

    def _clear_statistics(self, now: datetime) -> None:
        self.num_sessions = self.served = self.on_time = self.total_wait = 0
        self.statistics_generation += 1
        self.clear_since = now

    def clear_due(self, now: datetime) -> bool:
        """The clock ran past the hour `clear_mark` since the statistics were last cleared,
        the mark was changed or the datetime was set (README: never retroactively)."""
        if self.clear_mark == NEVER or self.clear_since is None:
            return False
        boundary = now.replace(hour=self.clear_mark, minute=0, second=0)
        if boundary > now:
            boundary -= timedelta(days=1)
        return boundary > self.clear_since

    def look(self, now: datetime) -> None:
        """What the passing of time does before a request is served at `now`."""
        if self.clear_since is None:
            self.clear_since = now  # a factory-fresh transmitter counts from its first look
        elif self.clear_due(now):
            self._clear_statistics(now)

    def served_at(self, actual_times: list[str]) -> datetime:
        """The time a request was served at: the model's own, or while the clock runs, the
        one the answer shows if it lies in the window the rig measured."""
        if self.now is not None:
            return self.now
        lo, hi = self.window
        for text in actual_times:
            try:
                t = datetime.strptime(text, FMT)
            except (TypeError, ValueError):
                continue
            if lo - timedelta(seconds=1) <= t <= hi + timedelta(seconds=1):
                return t
        return lo - timedelta(days=1)  # no plausible time: the answer will not match

    # ---- device API ------------------------------------------------------------------

    def handle(self, req: Request, actual: dict | None = None) -> Expected:
        now = self.served_at(_times(actual))
        self.look(now)
        fault = self._take_fault("error", req.path)
        if fault is not None:
            return self.error(now, Refusal(fault.code))
        try:
            if req.content_format not in (None, 50, 60):
                raise Refusal("4.15")
            if req.accept not in (None, 50, 60):
                raise Refusal("4.06")
            if len(req.payload) > BODY_MAX:
                raise Refusal("4.13")
            query = _query(req.query)
            route = (req.method, req.path)
            handler = {
                ("POST", "/v1/sessions"): self._post_session,
                ("PUT", "/v1/sessions"): self._put_session,
                ("DELETE", "/v1/sessions"): self._delete_session,
                ("GET", "/v1/sessions"): self._get_sessions,
                ("GET", "/v1/sessions/history"): self._get_history,
                ("DELETE", "/v1/sessions/history"): self._delete_history,
                ("GET", "/v1/sessions/statistics"): self._get_statistics,
                ("DELETE", "/v1/sessions/statistics"): self._delete_statistics,
                ("GET", "/v1/settings"): self._get_settings,
                ("POST", "/v1/settings"): self._post_settings,
                ("POST", "/v1/page"): self._post_page,
            }.get(route)
            if handler is None:
                raise Refusal("4.05")
            return handler(req, query, now, actual)
        except Refusal as r:
            return self.error(now, r)

    def _take_fault(self, kind: str, path: str) -> Fault | None:
        for f in self.faults:
            if f.kind == kind and (f.path is None or f.path == path):
                if f.remaining is not None:
                    f.remaining -= 1
                self.faults = [g for g in self.faults if g.remaining is None or g.remaining > 0]
                return f
        return None

    def continuation_blocks(self, req: Request, exp: Expected) -> Expected:
        """A large answer is fetched block by block; each block request is a request on the
        same path, so an error fault may answer one of them instead."""
        if not exp.code.startswith("2.") or exp.body is None:
            return exp
        for _ in range(exp.blocks(req.accept) - 1):
            fault = self._take_fault("error", req.path)
            if fault is not None:
                return self.error(self.now or self.window[0], Refusal(fault.code))
        return exp

    def _answer(self, code: str, now: datetime, *sections) -> Expected:
        return Expected(code, self.envelope(now, *sections))

    def _session_body(self, req: Request, allowed_number: bool = True) -> dict:
        data = _decode(req)
        out: dict[str, Any] = {}
        for name, value in data.items():
            if name == "number":
                _int(value, 0, NUMBER_MAX, "number")
            elif name == "goal":
                _int(value, 0, 86400, "goal")
            elif name == "partySize":
                _int(value, 1, 999, "partySize")
            elif name == "label":
                if value is not None and not (isinstance(value, str) and 1 <= len(value) <= 64):
                    raise Refusal("4.00", "label")
            elif name == "action":
                if value not in ("page", "clear", "remove"):
                    raise Refusal("4.00", "action")
            elif name == "pageMode":
                if not isinstance(value, str) or value not in ALERT:
                    raise Refusal("4.00", "pageMode")
            elif name == "message":
                parse_message(value)
            else:
                continue  # unknown fields are ignored (not strict)
            out[name] = value
        return out

    def _transmit(
        self,
        number: int,
        mode: str | None,
        message: str | None,
        system_id: int,
        session_id: int | None,
        now: datetime,
    ) -> dict:
        text, codes = parse_message(message) if message is not None else (None, [])
        tx = {
            "id": self.next_tx,
            "time": now,
            "number": number,
            "system_id": system_id,
            "mode": mode or DEFAULT_MODE,
            "message": text,
            "codes": codes,
            "session_id": session_id,
        }
        self.next_tx += 1
        self.transmissions.append(tx)
        del self.transmissions[: -self.history_limit]
        self.pagers[number] = tx
        return tx

    def _change(self, s: dict) -> None:
        self.sequence += 1
        s["sequence"] = self.sequence

    def _page(self, s: dict, body: dict, now: datetime) -> None:
        self._transmit(
            s["number"], body.get("pageMode"), body.get("message"), self.system_id, s["id"], now
        )
        if s["notified"] is None:
            s["notified"] = now
            wait = max(0, int((now - s["created"]).total_seconds()))
            self.served += 1
            self.on_time += wait <= s["goal"]
            self.total_wait += wait

    def _archive(self, s: dict, now: datetime, clear_type: str) -> dict:
        del self.active[s["number"]]
        self._change(s)
        s = dict(s, cleared=now, clear_type=clear_type)
        self.history.append(s)
        self.history.sort(key=lambda a: a["id"])
        del self.history[: -self.history_limit]  # the oldest (lowest id) dropped first
        return s

    def _apply(self, s: dict, body: dict, now: datetime, new: bool) -> dict:
        before = dict(s)
        if "goal" in body:
            s["goal"] = body["goal"]
        if "label" in body:
            s["label"] = body["label"]
        if "partySize" in body:
            s["party"] = body["partySize"]
        action = body.get("action")
        if action in ("clear", "remove"):
            return self._archive(s, now, "STOP" if action == "clear" else "REMOVED")
        if action == "page":
            self._page(s, body, now)
            self._change(s)
        elif new or s != before:
            self._change(s)
        return s

    def _post_session(self, req, query, now, actual) -> Expected:
        body = self._session_body(req)
        if "number" not in body:
            raise Refusal("4.00", "number")
        number = body["number"]
        s = self.active.get(number)
        if s is not None:
            s = self._apply(s, body, now, new=False)
            code = "2.00"
        else:
            if body.get("action") in ("clear", "remove"):
                raise Refusal("4.04")
            s = {
                "id": self.next_id,
                "sequence": 0,
                "uuid": self._learn_uuid(actual),
                "number": number,
                "party": 1,
                "goal": self.default_goal,
                "created": now,
                "notified": None,
                "label": None,
            }
            self.next_id += 1
            self.num_sessions += 1
            self.active[number] = s
            s = self._apply(s, body, now, new=True)
            code = "2.01"
        return self._answer(
            code, now, ("sessions", [self.session_json(s)]), ("statistics", self.statistics())
        )

    def _learn_uuid(self, actual: dict | None) -> str | None:
        try:
            got = actual["sessions"][0]["uuid"]
        except (TypeError, KeyError, IndexError):
            return None  # unknown until the store shows it
        if is_uuid4(got) and got not in self.uuids:
            self.uuids.add(got)
            return got
        return "a new UUID v4"

    def _number(self, query: dict, required: bool = True) -> int | None:
        text = query.get("number")
        if text is None:
            if required:
                raise Refusal("4.00", "number")
            return None
        if not (text.isascii() and text.isdigit()) or int(text) > NUMBER_MAX:
            raise Refusal("4.00", "number")
        return int(text)

    def _put_session(self, req, query, now, actual) -> Expected:
        body = self._session_body(req)
        number = self._number(query)
        if "number" in body and body["number"] != number:
            raise Refusal("4.00", "number")
        s = self.active.get(number)
        if s is None:
            raise Refusal("4.04")
        s = self._apply(s, body, now, new=False)
        return self._answer(
            "2.04", now, ("sessions", [self.session_json(s)]), ("statistics", self.statistics())
        )

    def _delete_session(self, req, query, now, actual) -> Expected:
        number = self._number(query, required=False)
        if number is None:  # spec §4: "Clear all active sessions", clearType STOP
            for s in sorted(self.active.values(), key=lambda s: s["id"]):
                self._archive(s, now, "STOP")
            return Expected("2.02")
        s = self.active.get(number)
        if s is None:
            raise Refusal("4.04")
        self._archive(s, now, "REMOVED")
        return Expected("2.02")

    def etag(self) -> tuple[int, int]:
        return self.sequence, self.statistics_generation

    def _get_sessions(self, req, query, now, actual) -> Expected:
        number = self._number(query, required=False)
        if number is not None:
            s = self.active.get(number)
            if s is None:
                raise Refusal("4.04")
            return self._answer("2.05", now, ("sessions", [self.session_json(s)]))
        if req.etag is not None and self.seen_etag == self.etag():
            return Expected("2.03")
        if req.kind == "observe":
            self.seen_etag = self.etag()
        exp = self._answer(
            "2.05",
            now,
            (
                "sessions",
                [self.session_json(s) for s in sorted(self.active.values(), key=lambda s: s["id"])],
            ),
            ("statistics", self.statistics()),
        )
        exp.etag = b"any"
        return exp

    def _get_history(self, req, query, now, actual) -> Expected:
        limit, after = query.get("limit"), query.get("after")
        if limit is not None and not (
            limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 1000
        ):
            raise Refusal("4.00", "limit")
        if after is not None and not (after.isascii() and after.isdigit()):
            raise Refusal("4.00", "after")
        items = [a for a in self.history if after is None or a["id"] > int(after)]
        if limit is not None:
            items = items[: int(limit)]
        return self._answer(
            "2.05", now, ("session_history", [self.session_json(a, history=True) for a in items])
        )

    def _delete_history(self, req, query, now, actual) -> Expected:
        self.history = []
        return Expected("2.02")

    def _get_statistics(self, req, query, now, actual) -> Expected:
        return self._answer("2.05", now, ("statistics", self.statistics()))

    def _delete_statistics(self, req, query, now, actual) -> Expected:
        self._clear_statistics(now)
        return Expected("2.02")

    def _get_settings(self, req, query, now, actual) -> Expected:
        return self._answer("2.05", now, ("settings", self.settings_json(now)))

    def _post_settings(self, req, query, now, actual) -> Expected:
        data = _decode(req)
        patch: dict[str, Any] = {}
        for name, value in data.items():
            if name == "systemId":
                _int(value, 0, 255, name)
            elif name == "defaultTargetGoal":
                _int(value, 0, 86400, name)
            elif name == "statisticsClearMark":
                _int(value, 0, 24, name)
            elif name == "datetime":
                value = _datetime(value)
            else:
                continue
            patch[name] = value
        self.system_id = patch.get("systemId", self.system_id)
        self.default_goal = patch.get("defaultTargetGoal", self.default_goal)
        if "datetime" in patch:
            self.offset += int((patch["datetime"] - now).total_seconds())
            now = patch["datetime"]
            self.clear_since = now
            self.now = now if self.now is not None else None
        elif patch.get("statisticsClearMark", self.clear_mark) != self.clear_mark:
            self.clear_since = now
        self.clear_mark = patch.get("statisticsClearMark", self.clear_mark)
        return self._answer("2.04", now, ("settings", self.settings_json(now)))

    def _post_page(self, req, query, now, actual) -> Expected:
        data = _decode(req)
        if "number" not in data:
            raise Refusal("4.00", "number")
        _int(data["number"], 0, NUMBER_MAX, "number")
        if "pageMode" in data and (
            not isinstance(data["pageMode"], str) or data["pageMode"] not in ALERT
        ):
            raise Refusal("4.00", "pageMode")
        if "message" in data:
            parse_message(data["message"])
        if "systemId" in data:
            _int(data["systemId"], 0, 255, "systemId")
        tx = self._transmit(
            data["number"],
            data.get("pageMode"),
            data.get("message"),
            data.get("systemId", self.system_id),
            None,
            now,
        )
        return self._answer("2.04", now, ("page", self.tx_json(tx)))

    # ---- the rig ----------------------------------------------------------------------

    def pagers_json(self) -> dict:
        out = []
        for number in sorted(self.pagers):
            t = self.pagers[number]
            until = t["time"] + timedelta(seconds=ALERT[t["mode"]])
            on = t["time"] <= self.now < until
            out.append(
                {
                    "number": number,
                    "state": "alerting" if on else "idle",
                    "pageMode": t["mode"] if on else None,
                    "message": t["message"] if on else None,
                    "overrideCodes": (
                        [{"code": c, "value": v} for c, v in t["codes"]] if on else []
                    ),
                    "alertingUntil": fmt(until) if on else None,
                    "lastTransmission": self.tx_json(t),
                }
            )
        return {"pagers": out}

    def clock_json(self) -> dict:
        return {"now": fmt(self.now), "frozen": self.frozen, "speed": self.speed}

    def reset(self, window: tuple[datetime, datetime]) -> None:
        """Back to factory: an empty store, default settings, the clock at system time,
        running at normal speed, no faults."""
        fresh = Model(self.history_limit)
        self.__dict__.update(fresh.__dict__)
        self.now, self.window = None, window

    def restarted(self) -> None:
        """A new process on the same store: what lives in memory only is gone (faults, the
        rig's clock controls); pagers are what the record of transmissions still shows."""
        self.faults = []
        self.speed, self.frozen, self.now = 1.0, False, None
        self.pagers = {}
        for t in self.transmissions:
            self.pagers[t["number"]] = t

    def frozen_at(self, when: datetime) -> None:
        """The rig froze the running clock and read it: `when`."""
        self.now, self.frozen, self.window = when, True, None
        self.look(when)

    def clock_set(self, when: datetime, clears: bool) -> None:
        """POST /clock/set. Whether moving the clock past the clear mark this way clears is
        not specified (README: "setting datetime never clears retroactively"); the caller
        tries both where it matters."""
        self.now = when
        if clears and self.clear_due(when):
            self._clear_statistics(when)

    def clock_advance(self, seconds: int) -> None:
        self.now = self.now + timedelta(seconds=seconds)
        self.look(self.now)

    def add_fault(self, fault: Fault) -> None:
        self.faults.append(fault)

    def remove_fault(self, fault_id: int) -> bool:
        before = len(self.faults)
        self.faults = [f for f in self.faults if f.id != fault_id]
        return len(self.faults) != before


# ---- decoding, as the spec describes it (§2, §7) ---------------------------------------


def _times(actual: dict | None) -> list[str]:
    """Times an answer shows for the request it answers, most specific first."""
    if not isinstance(actual, dict):
        return []
    out = []
    for s in actual.get("sessions") or []:
        out += [s.get("cleared"), s.get("notified"), s.get("created")]
    if isinstance(actual.get("page"), dict):
        out.append(actual["page"].get("time"))
    out.append(actual.get("timestamp"))
    return [t for t in out if t]


def _query(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for q in items:
        name, sep, value = q.partition("=")
        if not sep or not name or name in out:
            raise Refusal("4.00")
        out[name] = value
    return out


def _decode(req: Request) -> dict:
    try:
        if req.content_format == 60:
            data = cbor2.loads(req.payload)
        else:
            data = json.loads(req.payload or b"{}")
    except Exception:
        raise Refusal("4.00") from None
    if not isinstance(data, dict):
        raise Refusal("4.00")
    return data


def _int(value: Any, lo: int, hi: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise Refusal("4.00", name)
    return value


def _datetime(value: Any) -> datetime:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", value):
        raise Refusal("4.00", "datetime")
    try:
        when = datetime.strptime(value, FMT)
    except ValueError:
        raise Refusal("4.00", "datetime") from None
    if not CLOCK_MIN <= when <= CLOCK_MAX:
        raise Refusal("4.00", "datetime")
    return when


def parse_message(message: Any) -> tuple[str, list[tuple[str, int | None]]]:
    """Spec §9: the displayed part, then after a form feed letters each with an optional
    number clamped to 255 (anything else there is refused, README)."""
    if not isinstance(message, str) or len(message) > 240:
        raise Refusal("4.00", "message")
    text, sep, tail = message.partition("\f")
    codes = []
    for match in re.finditer(r"(.)(\d*)", tail, re.S):
        letter, digits = match.groups()
        if not ("a" <= letter.lower() <= "z"):
            raise Refusal("4.00", "message")
        codes.append((letter, min(int(digits), 255) if digits else None))
    return text, codes
