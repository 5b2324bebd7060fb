"""Record and replay: a recorded journal's requests sent again to any CoAP server, and every
answer compared with the recorded one (`pager-emulator replay`, docs/replay.md).

The journal keeps exchanges as the emulator saw them, not requests as a client meant them: a
retransmission, each block of a block-wise transfer and an answer a fault made are entries
of their own. `plan` turns entries back into requests (one per exchange a client meant, its
block-wise parts put together) and says why it leaves out each entry it does not replay, so
that what the report compares is always the target's answer against the device's. aiocoap is
the client: it sends a body too long for one datagram block-wise and reads a block-wise
answer whole, as any client would, so neither side's block boundaries are compared.

Some values differ on every run whatever the device does (its clock, random uuids, ETags made
from the store's counters); comparing them would bury the differences that matter, so they
are left out by name (`NOT_COMPARED`), and the report lists them so that a user sees exactly
what was not compared.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiocoap
import aiocoap.error
import cbor2

from pager import wire
from pager.control.journal import decode_payload
from pager.control.journal_entry import Entry

CLIENT_LOG = "pager.replay.aiocoap"
"""The logger of the replay's aiocoap client. The command keeps it off the terminal: aiocoap
logs an error of its own for an answer that comes after the replay stopped waiting for it
(at the timeout, or at Ctrl-C), and the summary already says what matters."""
DEFAULT_TIMEOUT = 30.0


class ReplayError(Exception):
    """A journal, target or report path the replay cannot use, or a target it cannot reach:
    one line for the user, exit status 2."""


# -- what is compared ---------------------------------------------------------------------

_CLOCK = "the transmitter's clock when it was made: the recording's and the target's differ"
_SESSION_TIMES = (
    "a session's time, from the transmitter's clock: the recording's and the target's differ"
)
_UUID = "a random UUID made when the session was created"

NOT_COMPARED: tuple[tuple[str, str], ...] = (
    ("timestamp", _CLOCK),
    *(
        (f"{list_}[].{name}", _SESSION_TIMES)
        for list_ in ("sessions", "session_history")
        for name in ("created", "started", "notified", "cleared")
    ),
    ("sessions[].uuid", _UUID),
    ("session_history[].uuid", _UUID),
    ("settings.datetime", "the transmitter's clock"),
    ("page.time", _CLOCK),
    ("page.alertUntil", "page.time plus the page mode's alert length"),
    (
        "statistics.averageTimeServed",
        "seconds measured with the transmitter's clock, in whole seconds: the replay's timing"
        " and the target's clock move it",
    ),
)
"""Body members whose value is not compared (`[]`: every element of a list). Whether they are
present is compared: a session paged on one side only still differs in `notified`."""

NOT_RECORDED: tuple[tuple[str, str], ...] = (
    ("ETag", "not in the journal; made from the store's counters"),
    (
        "options",
        "no answer option but Content-Format is in the journal (Observe, Max-Age, Block2...)",
    ),
    ("type, message id, token", "the replay's own exchange"),
    ("latency", "the replay measures the target, not the recording"),
)
"""What the journal does not keep of an answer, so the replay cannot compare it either."""

_IGNORED = frozenset(name for name, _why in NOT_COMPARED)
_INDEX = re.compile(r"\[\d+\]")

# Answers a request option made that the journal does not keep: replayed without it the
# request would get another answer, or change what it was refused.
UNKEPT_OPTION = {
    "2.03": "answered 2.03 Valid for an ETag the journal does not keep",
    "4.01": "the address check's (Echo) first answer: the client repeats the request with Echo",
    "4.02": "refused for a critical option the journal does not keep",
    "4.06": "refused for an Accept the journal does not keep",
    "4.12": "refused for an If-Match or If-None-Match the journal does not keep",
    "5.05": "refused for a Proxy-Uri or Proxy-Scheme the journal does not keep",
}


# -- reading the journal ------------------------------------------------------------------


def read_journal(path: str | Path) -> list[Entry]:
    """Every entry of a JSON Lines journal, in the file's order; blank lines are allowed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplayError(f"no such journal file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ReplayError(f"cannot read journal {path}: {e}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReplayError(f"{path} line {number} is not JSON: {e}") from None
        try:
            entries.append(_entry(data))
        except (ValueError, TypeError, KeyError) as e:
            raise ReplayError(f"{path} line {number} is not a journal entry: {e}") from None
    if not entries:
        raise ReplayError(f"{path} holds no journal entries")
    return entries


_TYPES: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "time": (str,),
    "peer": (str,),
    "type": (str, type(None)),
    "method": (str,),
    "path": (str,),
    "query": (list,),
    "content_format": (int, type(None)),
    "body_base64": (str, type(None)),
    "observe": (int, type(None)),
    "block1": (int, type(None)),
    "block2": (int, type(None)),
    "code": (str, type(None)),
    "answer_content_format": (int, type(None)),
    "answer_base64": (str, type(None)),
    "duplicate": (bool,),
    "transport": (str,),
}
"""The types of the members a replay reads (`Entry.from_json` checks names, not types)."""


def _entry(data: Any) -> Entry:
    """`Entry.from_json`, and the checks a replay needs before it sends anything."""
    if not isinstance(data, dict):
        raise ValueError(f"a JSON object is expected, not {type(data).__name__}")
    for name, types in _TYPES.items():
        if name in data and not isinstance(data[name], types):
            raise ValueError(f"{name} is {type(data[name]).__name__}: {data[name]!r}")
    entry = Entry.from_json(data)
    if entry.transport == "lrsn":
        return entry  # not replayed (`plan`): nothing of it is sent
    if entry.transport != "coap":
        raise ValueError(f"transport must be coap or lrsn, not {entry.transport!r}")
    if entry.type not in ("CON", "NON"):
        raise ValueError(f"type must be CON or NON, not {entry.type!r}")
    _when(entry)
    _code(entry.method)
    if not all(isinstance(q, str) for q in entry.query):
        raise ValueError("query must be a list of strings")
    for name in ("body_base64", "answer_base64"):
        value = getattr(entry, name)
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error:
                raise ValueError(f"{name} is not base64") from None
    return entry


def _when(entry: Entry) -> float:
    try:
        return datetime.fromisoformat(entry.time).timestamp()
    except ValueError:
        raise ValueError(f"time {entry.time!r} is not ISO 8601") from None


def _code(method: Any) -> aiocoap.Code:
    if not isinstance(method, str):
        raise ValueError("method must be a string")
    if method in ("GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "iPATCH"):
        code: aiocoap.Code = getattr(aiocoap.Code, method)
        return code
    match = re.fullmatch(r"([0-7])\.([0-2][0-9]|3[01])", method)
    if match is None:
        raise ValueError(f"method {method!r} is neither a method name nor a dotted code")
    return aiocoap.Code(int(match[1]) << 5 | int(match[2]))


# -- payloads -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """A body as the journal writes it: a decoded JSON/CBOR value, or raw bytes that do not
    decode (`raw`); an empty payload is the value None."""

    value: Any = None
    raw: bytes | None = None

    def to_json(self) -> Any:
        return self.value if self.raw is None else {"base64": base64.b64encode(self.raw).decode()}


def decode(payload: bytes, content_format: int | None) -> Payload:
    """A payload read as the journal reads it (`journal.decode_payload`), so that an answer
    got and the one recorded are compared alike."""
    value, undecoded = decode_payload(payload, content_format)
    return Payload(value) if undecoded is None else Payload(raw=payload)


def encode(value: Any, base64_text: str | None, content_format: int | None) -> bytes:
    """A recorded body's bytes: `base64_text` as is, else the value in its recorded format
    (CBOR, text, or compact JSON: the device API's own writing)."""
    if base64_text is not None:
        return base64.b64decode(base64_text)
    if value is None:
        return b""
    if content_format == wire.CBOR:
        return bytes(cbor2.dumps(value))
    if content_format not in (None, wire.JSON) and isinstance(value, str):
        return value.encode("utf-8")  # a text format's: the journal keeps it as text
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# -- planning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request to replay and the answer it was recorded with, whole: `parts` are the ids
    of every entry it stands for (the blocks of a block-wise transfer)."""

    entry: Entry
    parts: tuple[int, ...]
    payload: bytes
    code: str
    answer_content_format: int | None
    answer: Payload
    note: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An entry not replayed, and why; `part_of`: the first entry of the block-wise transfer
    it was replayed with."""

    id: int
    method: str
    path: str
    reason: str
    part_of: int | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.id, "method": self.method, "path": self.path, "reason": self.reason}
        return out if self.part_of is None else {**out, "part_of": self.part_of}


def plan(entries: Sequence[Entry]) -> tuple[list[Exchange], list[Skipped]]:
    """The requests to replay, in the journal's order, and every entry left out, with why."""
    exchanges: list[Exchange] = []
    skipped: list[Skipped] = []
    part_of: dict[int, int] = {}  # entry index -> the id of the transfer it belongs to

    def skip(entry: Entry, reason: str, first: int | None = None) -> None:
        skipped.append(Skipped(entry.id, entry.method, entry.path, reason, first))

    for i, entry in enumerate(entries):
        if entry.transport == "lrsn":
            skip(entry, "a request over LRSN (TCP): a replay speaks CoAP only")
        elif i in part_of:
            skip(
                entry, "a later block of a block-wise transfer, replayed with its first", part_of[i]
            )
        elif entry.duplicate:
            skip(
                entry,
                "a retransmission answered from the deduplication cache: a retry, not a request",
            )
        elif (entry.block1 or 0) > 0 or (entry.block2 or 0) > 0:
            skip(
                entry,
                "a later block of a block-wise transfer whose first block is not replayed",
            )
        elif entry.fault is not None and entry.fault.kind == "error":
            skip(entry, f"answered by fault #{entry.fault.id} (error), not by the device")
        elif entry.code is None:
            fault = f" (fault #{entry.fault.id}, {entry.fault.kind})" if entry.fault else ""
            skip(entry, f"no answer recorded{fault}")
        elif entry.code in UNKEPT_OPTION:
            skip(entry, UNKEPT_OPTION[entry.code])
        else:
            exchange, reason = _exchange(entries, i, part_of)
            if exchange is None:
                skip(entry, reason)
            else:
                exchanges.append(exchange)
    return exchanges, skipped


def _exchange(
    entries: Sequence[Entry], i: int, part_of: dict[int, int]
) -> tuple[Exchange | None, str]:
    """The request entry `i` starts, with the later blocks of its transfer, if any."""
    first = entries[i]
    last = first
    parts = [i]
    payload = encode(first.body, first.body_base64, first.content_format)
    answer_bytes: bytes | None = None
    if first.block1 == 0:
        for j in _later_blocks(entries, i, "block1"):
            parts.append(j)
            payload += encode(entries[j].body, entries[j].body_base64, entries[j].content_format)
        last = entries[parts[-1]]
        if last.code == "2.31":
            return None, "a block-wise upload that was never finished"
    if last.answer_base64 is not None:
        # A first block of a block-wise answer is a cut-off body: the rest is in later entries.
        later = list(_later_blocks(entries, parts[-1], "block2"))
        if later:
            answer_bytes = base64.b64decode(last.answer_base64)
            for j in later:
                answer_bytes += encode(
                    entries[j].answer, entries[j].answer_base64, entries[j].answer_content_format
                )
            parts.extend(later)
    if answer_bytes is not None:
        answer = decode(answer_bytes, last.answer_content_format)
        if answer.raw is not None:
            return None, "a block-wise answer that was not fetched whole"
    elif last.answer_base64 is not None:
        answer = Payload(raw=base64.b64decode(last.answer_base64))
    else:
        answer = Payload(last.answer)
    for j in parts[1:]:
        part_of[j] = first.id
    note = None
    if first.observe is not None:
        note = f"Observe {first.observe} replayed as a plain GET"
    assert last.code is not None
    exchange = Exchange(
        first,
        tuple(entries[j].id for j in parts),
        payload,
        last.code,
        last.answer_content_format,
        answer,
        note,
    )
    return exchange, ""


def _later_blocks(entries: Sequence[Entry], i: int, option: str) -> Iterable[int]:
    """The indices of the entries that continue entry `i`'s transfer (blocks 1, 2, ... of the
    same request from the same peer); it ends at a gap or at the same request started anew."""
    first = entries[i]
    expected = 1
    for j in range(i + 1, len(entries)):
        e = entries[j]
        if (e.peer, e.method, e.path, e.query) != (
            first.peer,
            first.method,
            first.path,
            first.query,
        ):
            continue
        if e.duplicate:
            continue
        number = getattr(e, option)
        if number != expected:
            return
        yield j
        expected += 1


# -- comparing ----------------------------------------------------------------------------

ABSENT: Any = object()


@dataclass(frozen=True)
class Difference:
    id: int
    method: str
    path: str
    field: str
    recorded: Any
    got: Any

    def to_json(self) -> dict[str, Any]:
        """`recorded` or `got` is left out where that side has no such member."""
        out = {"id": self.id, "method": self.method, "path": self.path, "field": self.field}
        if self.recorded is not ABSENT:
            out["recorded"] = self.recorded
        if self.got is not ABSENT:
            out["got"] = self.got
        return out


def compare(
    recorded: tuple[str, int | None, Payload], got: tuple[str | None, int | None, Payload]
) -> list[tuple[str, Any, Any]]:
    """(field, recorded, got) for every difference of code, Content-Format and body."""
    (code, cf, body), (got_code, got_cf, got_body) = recorded, got
    out: list[tuple[str, Any, Any]] = []
    if got_code is None:
        return [("code", code, None)]
    if code != got_code:
        out.append(("code", code, got_code))
    if cf != got_cf:
        out.append(("content_format", cf, got_cf))
    if body.raw is not None or got_body.raw is not None:
        if body != got_body:
            out.append(("body", body.to_json(), got_body.to_json()))
    else:
        _diff("", body.value, got_body.value, out)
    return out


def _diff(path: str, a: Any, b: Any, out: list[tuple[str, Any, Any]]) -> None:
    if a is not ABSENT and b is not ABSENT and _INDEX.sub("[]", path) in _IGNORED:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            inner = f"{path}.{key}" if path else str(key)
            _diff(inner, a.get(key, ABSENT), b.get(key, ABSENT), out)
    elif isinstance(a, list) and isinstance(b, list):
        for n in range(max(len(a), len(b))):
            _diff(
                f"{path}[{n}]", a[n] if n < len(a) else ABSENT, b[n] if n < len(b) else ABSENT, out
            )
    elif a is ABSENT or b is ABSENT or type(a) is not type(b) or a != b:
        out.append((path or "body", a, b))


# -- replaying ----------------------------------------------------------------------------


def parse_target(text: str) -> str:
    """`coap://HOST[:PORT]` with nothing after it, as the base of every replayed request."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme != "coap"
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ReplayError(f"--target must be a coap:// URI (coap://HOST:PORT), not {text!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"coap://{host}" + (f":{port}" if port is not None else "")


@dataclass
class Outcome:
    """What the target answered one exchange (`code` None: nothing within the timeout)."""

    exchange: Exchange
    sent_after: float
    code: str | None = None
    content_format: int | None = None
    answer: Payload = field(default_factory=Payload)
    differences: list[Difference] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        e = self.exchange.entry
        out: dict[str, Any] = {
            "id": e.id,
            "entries": list(self.exchange.parts),
            "method": e.method,
            "path": e.path,
            "query": list(e.query),
            "sent_after_s": round(self.sent_after, 3),
            "recorded_code": self.exchange.code,
            "code": self.code,
            "same": not self.differences,
        }
        if self.exchange.note:
            out["note"] = self.exchange.note
        return out


@dataclass
class Result:
    journal: str
    target: str
    speed: float | None
    entries: int
    outcomes: list[Outcome]
    skipped: list[Skipped]
    seconds: float

    @property
    def differences(self) -> list[Difference]:
        return [d for o in self.outcomes for d in o.differences]

    def to_json(self) -> dict[str, Any]:
        return {
            "journal": self.journal,
            "target": self.target,
            "speed": "max" if self.speed is None else self.speed,
            "entries": self.entries,
            "replayed": len(self.outcomes),
            "seconds": round(self.seconds, 3),
            "same": not self.differences,
            "differences": [d.to_json() for d in self.differences],
            "not_compared": [{"field": f, "why": w} for f, w in (*NOT_COMPARED, *NOT_RECORDED)],
            "skipped": [s.to_json() for s in self.skipped],
            "exchanges": [o.to_json() for o in self.outcomes],
        }

    def summary(self, most: int = 20) -> str:
        """A few lines for the terminal; the report file has everything."""
        speed = "max" if self.speed is None else f"{self.speed:g}"
        lines = [
            f"replayed {len(self.outcomes)} of {self.entries} entries to {self.target}"
            f" in {self.seconds:.1f} s (speed {speed})"
        ]
        if self.skipped:
            reasons: dict[str, int] = {}
            for s in self.skipped:
                reasons[s.reason] = reasons.get(s.reason, 0) + 1
            lines.append(f"not replayed: {len(self.skipped)}")
            lines += [f"  {n} × {reason}" for reason, n in sorted(reasons.items(), key=_by_count)]
        lines.append(f"not compared (the report says why): {_not_compared()}")
        differences = self.differences
        if not differences:
            lines.append("no differences")
            return "\n".join(lines)
        lines.append(f"{len(differences)} difference{'s' if len(differences) > 1 else ''}:")
        for d in differences[:most]:
            lines.append(
                f"  #{d.id} {d.method} {d.path} {d.field}: recorded {_shown(d.recorded)},"
                f" got {_shown(d.got)}"
            )
        if len(differences) > most:
            lines.append(f"  ... and {len(differences) - most} more (--report FILE has them all)")
        return "\n".join(lines)


def _not_compared() -> str:
    """NOT_COMPARED and NOT_RECORDED in one line: the members of list elements together."""
    by_list: dict[str, list[str]] = {}
    names: list[str] = []
    for name, _why in NOT_COMPARED:
        owner, _, member = name.rpartition("[].")
        if owner:
            if owner not in by_list:
                names.append(owner)
            by_list.setdefault(owner, []).append(member)
        else:
            names.append(name)
    shown = [f"{n}[].{{{','.join(by_list[n])}}}" if n in by_list else n for n in names]
    return ", ".join([*shown, *(name for name, _why in NOT_RECORDED)])


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _shown(value: Any) -> str:
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


async def replay(
    entries: Sequence[Entry],
    target: str,
    *,
    speed: float | None = 1.0,
    timeout: float = DEFAULT_TIMEOUT,
    journal: str = "",
) -> Result:
    """Replay `entries` to `target` one request at a time, each sent at its recorded time
    scaled by `speed` (None: at once) and never before the previous one was answered, so
    the target sees them in the recorded order."""
    exchanges, skipped = plan(entries)
    context = await aiocoap.Context.create_client_context(loggername=CLIENT_LOG)
    outcomes: list[Outcome] = []
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    try:
        origin = _when(exchanges[0].entry) if exchanges else 0.0
        start = loop.time()
        for exchange in exchanges:
            if speed is not None:
                due = start + (_when(exchange.entry) - origin) / speed
                await asyncio.sleep(max(0.0, due - loop.time()))
            outcome = Outcome(exchange, loop.time() - start)
            await _send(context, target, exchange, outcome, timeout, first=not outcomes)
            outcomes.append(outcome)
    finally:
        await context.shutdown()
    return Result(
        journal, target, speed, len(entries), outcomes, skipped, time.monotonic() - started
    )


async def _send(
    context: aiocoap.Context,
    target: str,
    exchange: Exchange,
    outcome: Outcome,
    timeout: float,
    *,
    first: bool,
) -> None:
    entry = exchange.entry
    message = aiocoap.Message(
        code=_code(entry.method),
        uri=target,
        payload=exchange.payload,
        transport_tuning=aiocoap.Reliable if entry.type == "CON" else aiocoap.Unreliable,
    )
    path = entry.path.removeprefix("/")
    message.opt.uri_path = tuple(path.split("/")) if path else ()
    message.opt.uri_query = entry.query
    if entry.content_format is not None:
        message.opt.content_format = entry.content_format
    if exchange.answer_content_format == wire.CBOR:
        # The journal keeps no Accept; a CBOR answer is what only Accept 60 asks for.
        message.opt.accept = wire.CBOR
    try:
        response = await asyncio.wait_for(context.request(message).response, timeout)
    except (TimeoutError, aiocoap.error.TimeoutError):
        if first:
            raise ReplayError(f"{target} did not answer within {timeout:g} s") from None
        response = None
    except aiocoap.error.NetworkError as e:
        raise ReplayError(f"cannot reach {target}: {e.args[0] if e.args else e}") from None
    except aiocoap.error.Error as e:
        # aiocoap refused the answer (a broken block-wise transfer, say): no answer
        outcome.differences.append(
            Difference(entry.id, entry.method, entry.path, "code", exchange.code, f"error: {e}")
        )
        return
    if response is not None:
        outcome.code = response.code.dotted
        cf = response.opt.content_format
        outcome.content_format = None if cf is None else int(cf)
        outcome.answer = decode(response.payload, outcome.content_format)
    recorded = (exchange.code, exchange.answer_content_format, exchange.answer)
    got = (outcome.code, outcome.content_format, outcome.answer)
    outcome.differences = [
        Difference(entry.id, entry.method, entry.path, name, a, b)
        for name, a, b in compare(recorded, got)
    ]


# -- the command --------------------------------------------------------------------------


def run(
    journal: str, target: str, *, speed: float | None, report: str | None, timeout: float
) -> int:
    """`pager-emulator replay`: 0 when no answer differs, 1 when one does; ReplayError for
    bad input or an unreachable target (the caller makes it exit status 2)."""
    logging.getLogger(CLIENT_LOG).setLevel(logging.CRITICAL)
    uri = parse_target(target)
    entries = read_journal(journal)
    if report is not None and not Path(report).resolve().parent.is_dir():
        raise ReplayError(f"--report: no such folder for {report}")
    result = asyncio.run(replay(entries, uri, speed=speed, timeout=timeout, journal=journal))
    if report is not None:
        try:
            Path(report).write_text(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        except OSError as e:
            raise ReplayError(f"cannot write the report {report}: {e}") from None
    print(result.summary(), flush=True)
    return 1 if result.differences else 0
