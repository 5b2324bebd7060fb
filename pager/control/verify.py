"""Verification against the request journal: did the software under test send this, so many
times, in this order? And when it did not, what did it send that came closest?

Pure: it reads the `Entry` objects it is given (`RigControls.journal`), so the Python API and
`POST /journal/verify` answer alike, and a journal read back from JSON Lines verifies the
same. Patterns and verdicts have a JSON form (`to_json` / `from_json`) that is the control
API's, so that a remote rig rebuilds the very verdict the emulator reached.

Verification counts requests, not datagrams: a retransmission answered from the
deduplication cache, and a request lost to a fault whose retransmission the journal holds,
are the request already counted (`requests`). A test asserting "sent exactly once" would
otherwise fail whenever the network (or a fault) made the client retransmit.
"""

from __future__ import annotations

import difflib
import heapq
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pager.control.journal_entry import Entry

COUNT_MAX = 10**9
PATH_MAX = 1024
QUERY_MAX = 32  # names in one pattern's query
TEXT_MAX = 4096  # characters of one string in a pattern (a request body is at most 1 KiB)
BODY_DEPTH_MAX = 32
BODY_NODES_MAX = 1000  # values in one pattern's body: it is compared with every entry
SEQUENCE_MAX = 1000  # patterns in one ordered verification
NEAR_MISSES = 5
SHOWN = 10  # matches listed in a message; the verdict holds them all
_METHOD = re.compile(r"[A-Za-z0-9.]{1,16}")
_CODE = re.compile(r"[0-9]\.[0-9]{2}")

Condition = Literal["exactly", "at_least", "at_most"]
DifferenceKind = Literal["different", "missing", "unexpected", "not_contained"]


class BadPattern(ValueError):
    """A pattern or count that cannot be verified: the message says what was wrong."""


class VerificationFailed(AssertionError):
    """A verification that does not hold; the message is the readable diff, `verdict` the
    whole of it."""

    def __init__(self, verdict: Verdict | SequenceVerdict) -> None:
        super().__init__(verdict.message())
        self.verdict = verdict


# ---- patterns ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What a request must look like to match; every part left None matches anything.

    `query`: each name must be among the request's query options with that value (others
    may be there too). `body`: with `contains` False the request's decoded body equals it;
    with `contains` True every field and list item of it is present in the body and every
    string is contained in the body's string. `code`: the answer's code. Methods compare
    without regard to case."""

    method: str | None = None
    path: str | None = None
    query: Mapping[str, str | int] | None = None  # held as strings: an integer is its digits
    body: Any = None
    contains: bool = False
    code: str | None = None

    def __post_init__(self) -> None:
        if self.method is not None and not (
            isinstance(self.method, str) and _METHOD.fullmatch(self.method)
        ):
            raise BadPattern(f"method must be a CoAP method such as GET, not {self.method!r}")
        if self.path is not None and not (
            isinstance(self.path, str) and self.path.startswith("/") and len(self.path) <= PATH_MAX
        ):
            raise BadPattern(f"path must start with / and be at most {PATH_MAX} characters")
        if self.query is not None:
            object.__setattr__(self, "query", _query(self.query))
        if self.body is not None:
            _check_body(self.body)
        if not isinstance(self.contains, bool):
            raise BadPattern(f"contains must be true or false, not {self.contains!r}")
        if self.code is not None and not (
            isinstance(self.code, str) and _CODE.fullmatch(self.code)
        ):
            raise BadPattern(f"code must be a response code such as 2.05, not {self.code!r}")

    def to_json(self) -> dict[str, Any]:
        """The parts set, named as `POST /journal/verify` takes them."""
        out: dict[str, Any] = {}
        for name in ("method", "path", "query", "body", "code"):
            value = getattr(self, name)
            if value is not None:
                out[name] = dict(value) if name == "query" else value
        if self.contains:
            out["contains"] = True
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Request:
        if not isinstance(data, Mapping):
            raise BadPattern("a pattern must be a JSON object")
        unknown = sorted(set(data) - _PATTERN_NAMES)
        if unknown:
            raise BadPattern(
                f"unknown pattern part {', '.join(map(str, unknown))}; a pattern takes "
                + ", ".join(sorted(_PATTERN_NAMES))
            )
        return cls(**data)

    def describe(self) -> str:
        """One line, as a person would write the request: `POST /v1/page?number=12 body
        contains {"number": 12} answered 2.04`."""
        words = [self.method.upper() if self.method else "any method"]
        path = self.path or "any path"
        if self.query:
            path += "?" + "&".join(f"{k}={v}" for k, v in self.query.items())
        words.append(path)
        if self.body is not None:
            words.append(("body contains " if self.contains else "body ") + _show(self.body))
        if self.code is not None:
            words.append(f"answered {self.code}")
        return " ".join(words)


_PATTERN_NAMES = {"method", "path", "query", "body", "contains", "code"}


def _query(query: Any) -> dict[str, str]:
    if not isinstance(query, Mapping):
        raise BadPattern("query must be an object of names and values")
    if len(query) > QUERY_MAX:
        raise BadPattern(f"query may name at most {QUERY_MAX} options")
    out: dict[str, str] = {}
    for name, value in query.items():
        if not isinstance(name, str) or not 0 < len(name) <= 255 or "=" in name:
            raise BadPattern(f"query names must be 1 to 255 characters without =, not {name!r}")
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > 255:
            raise BadPattern(f"query.{name} must be a string (or an integer) of at most 255")
        out[name] = value
    return out


def _check_body(body: Any) -> None:
    """A JSON value of bounded size: a pattern is compared with every entry."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if nodes > BODY_NODES_MAX:
            raise BadPattern(f"body may hold at most {BODY_NODES_MAX} values")
        if depth > BODY_DEPTH_MAX:
            raise BadPattern(f"body may nest at most {BODY_DEPTH_MAX} levels deep")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise BadPattern(f"body field names must be strings, not {key!r}")
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            if len(value) > TEXT_MAX:
                raise BadPattern(f"body strings may be at most {TEXT_MAX} characters")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise BadPattern("body numbers must be finite")
        elif not (value is None or isinstance(value, bool | int)):
            raise BadPattern(f"body must be a JSON value, got a {type(value).__name__}")


@dataclass(frozen=True)
class Count:
    """How many requests must match: `exactly`, `at_least` or `at_most` `n`."""

    condition: Condition
    n: int

    def holds(self, found: int) -> bool:
        if self.condition == "exactly":
            return found == self.n
        if self.condition == "at_least":
            return found >= self.n
        return found <= self.n

    def to_json(self) -> dict[str, int]:
        return {self.condition: self.n}

    def __str__(self) -> str:
        return f"{self.condition.replace('_', ' ')} {self.n}"


def count(
    exactly: int | None = None, at_least: int | None = None, at_most: int | None = None
) -> Count:
    """One count condition of the three (none: at least 1)."""
    given = {
        name: n
        for name, n in (("exactly", exactly), ("at_least", at_least), ("at_most", at_most))
        if n is not None
    }
    if len(given) > 1:
        raise BadPattern(f"give one count condition, not {' and '.join(given)}")
    if not given:
        return Count("at_least", 1)
    ((name, n),) = given.items()
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= COUNT_MAX:
        raise BadPattern(f"{name} must be an integer from 0 to {COUNT_MAX}, not {n!r}")
    return Count(name, n)  # type: ignore[arg-type]  # one of the three names above


# ---- matching ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One part of a request that is not what the pattern asked: `part` names it
    (`method`, `path`, `query.number`, `body.overrideCodes[0].code`, `code`); `kind` is
    `different`, `missing` (asked for, absent), `unexpected` (present, not asked for: an
    exact body's extra field) or `not_contained` (a "contains" string or list item)."""

    part: str
    expected: Any
    actual: Any
    kind: DifferenceKind = "different"

    def to_json(self) -> dict[str, Any]:
        return {
            "part": self.part,
            "expected": self.expected,
            "actual": self.actual,
            "kind": self.kind,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Difference:
        return cls(data["part"], data["expected"], data["actual"], data["kind"])

    def describe(self) -> str:
        show = _show if self.part.startswith("body") else _plain
        got = "none" if self.actual is None else show(self.actual)
        if self.kind == "unexpected":
            return f"{self.part}: not expected, got {got}"
        if self.kind == "not_contained":
            return f"{self.part}: expected to contain {show(self.expected)}, got {got}"
        return f"{self.part}: expected {show(self.expected)}, got {got}"


def differences(pattern: Request, entry: Entry) -> list[Difference]:
    """Every part of `entry` that `pattern` does not match (none: it matches)."""
    found: list[Difference] = []
    if pattern.method is not None and pattern.method.upper() != entry.method.upper():
        found.append(Difference("method", pattern.method, entry.method))
    if pattern.path is not None and pattern.path != entry.path:
        found.append(Difference("path", pattern.path, entry.path))
    if pattern.query:
        options = _options(entry.query)
        for name, value in pattern.query.items():
            values = options.get(name)
            if values is None:
                found.append(Difference(f"query.{name}", value, None, "missing"))
            elif str(value) not in values:
                found.append(
                    Difference(f"query.{name}", value, values[0] if len(values) == 1 else values)
                )
    if pattern.body is not None:
        if entry.body is None:
            found.append(Difference("body", pattern.body, None, "missing"))
        else:
            _body_differences(pattern.body, entry.body, "body", pattern.contains, found)
    if pattern.code is not None and pattern.code != entry.code:
        if entry.code is None:
            found.append(Difference("code", pattern.code, None, "missing"))
        else:
            found.append(Difference("code", pattern.code, entry.code))
    return found


def matches(pattern: Request, entry: Entry) -> bool:
    return not differences(pattern, entry)


def _options(query: Sequence[str]) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for option in query:
        name, _, value = option.partition("=")
        options.setdefault(name, []).append(value)
    return options


def _same(expected: Any, actual: Any) -> bool:
    """JSON equality: true is not 1 (as Python's == has it), 1 is 1.0 (CBOR may carry
    either)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return expected == actual
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_same(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_same(e, a) for e, a in zip(expected, actual))
        )
    return type(expected) is type(actual) and bool(expected == actual)


def _contained(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _contained(v, actual[k]) for k, v in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and all(
            any(_contained(e, a) for a in actual) for e in expected
        )
    if isinstance(expected, str):
        return isinstance(actual, str) and expected in actual
    return _same(expected, actual)


def _body_differences(
    expected: Any, actual: Any, where: str, contains: bool, found: list[Difference]
) -> None:
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            if key not in actual:
                found.append(Difference(f"{where}.{key}", value, None, "missing"))
            else:
                _body_differences(value, actual[key], f"{where}.{key}", contains, found)
        if not contains:
            found.extend(
                Difference(f"{where}.{key}", None, value, "unexpected")
                for key, value in actual.items()
                if key not in expected
            )
    elif isinstance(expected, list) and isinstance(actual, list):
        if contains:
            found.extend(
                Difference(f"{where}[{i}]", item, actual, "not_contained")
                for i, item in enumerate(expected)
                if not any(_contained(item, a) for a in actual)
            )
        elif len(expected) != len(actual):
            found.append(Difference(where, expected, actual))
        else:
            for i, (e, a) in enumerate(zip(expected, actual)):
                _body_differences(e, a, f"{where}[{i}]", contains, found)
    elif contains and isinstance(expected, str) and isinstance(actual, str):
        if expected not in actual:
            found.append(Difference(where, expected, actual, "not_contained"))
    elif not _same(expected, actual):
        found.append(Difference(where, expected, actual))


# ---- the requests a client made ---------------------------------------------------------


def requests(entries: Iterable[Entry]) -> list[Entry]:
    """The entries that are requests of their own, oldest first: not a retransmission
    answered from the deduplication cache (`duplicate`), nor a CON lost to a fault (no
    answer) whose retransmission, same peer, message id and token, is in the journal."""
    kept = [e for e in entries if not e.duplicate]
    seen_later: set[tuple[str, int | None, str | None]] = set()
    out: list[Entry] = []
    for entry in reversed(kept):
        key = (entry.peer, entry.mid, entry.token)
        if entry.type == "CON" and entry.code is None and key in seen_later:
            continue
        if entry.type == "CON":
            seen_later.add(key)
        out.append(entry)
    out.reverse()
    return out


# ---- near misses ------------------------------------------------------------------------


@dataclass(frozen=True)
class NearMiss:
    """An entry close to a pattern, and the parts of it that differed."""

    entry: Entry
    differences: tuple[Difference, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "entry": self.entry.to_json(),
            "differences": [d.to_json() for d in self.differences],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NearMiss:
        return cls(
            Entry.from_json(data["entry"]),
            tuple(Difference.from_json(d) for d in data["differences"]),
        )


def _parts(pattern: Request) -> set[str]:
    """The parts a pattern asks for, as differences name their top (`_top`): method, path,
    code, each query name, and each field of an object body (another body is one part)."""
    parts = {name for name in ("method", "path", "code") if getattr(pattern, name) is not None}
    parts |= {f"query.{name}" for name in pattern.query or ()}
    if isinstance(pattern.body, dict) and pattern.body:
        parts |= {f"body.{key}" for key in pattern.body}
    elif pattern.body is not None:
        parts.add("body")
    return parts


def _top(part: str) -> str:
    """The part of the pattern a difference is in: `body.overrideCodes[0].code` is in
    `body.overrideCodes`."""
    if not part.startswith("body."):
        return part
    return "body." + re.split(r"[.\[]", part[5:], maxsplit=1)[0]


def near_misses(
    pattern: Request, entries: Iterable[Entry], limit: int = NEAR_MISSES
) -> list[NearMiss]:
    """The entries that do not match `pattern` but come closest, best first: fewest parts
    differing, then the most similar path, then the newest. An entry with no part in common
    is near only when its path is much like the pattern's (a typo)."""
    parts = _parts(pattern)
    ranked: list[tuple[tuple[int, float, int], NearMiss]] = []
    for entry in entries:
        found = differences(pattern, entry)
        if not found:
            continue
        tops = {_top(d.part) for d in found}
        whole_body = "body" in tops  # not even an object: every field of it differs
        matched = sum(p not in tops and not (whole_body and p.startswith("body")) for p in parts)
        distance = 0.0
        if "path" in tops and pattern.path is not None:
            distance = 1 - difflib.SequenceMatcher(None, pattern.path, entry.path).ratio()
        if not matched and not 0 < distance <= 0.4:
            continue
        ranked.append(((len(tops), distance, -entry.id), NearMiss(entry, tuple(found))))
    return [miss for _, miss in heapq.nsmallest(limit, ranked, key=lambda r: r[0])]


# ---- verification -----------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Whether `pattern` matched as many requests as `expected` asks; `matches` oldest
    first; `near_misses` (best first) when too few matched."""

    pattern: Request
    expected: Count
    matches: tuple[Entry, ...]
    near_misses: tuple[NearMiss, ...] = ()

    @property
    def holds(self) -> bool:
        return self.expected.holds(len(self.matches))

    @property
    def count(self) -> int:
        return len(self.matches)

    def to_json(self) -> dict[str, Any]:
        return {
            "holds": self.holds,
            "pattern": self.pattern.to_json(),
            "expected": self.expected.to_json(),
            "count": self.count,
            "matches": [e.to_json() for e in self.matches],
            "near_misses": [m.to_json() for m in self.near_misses],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            Request.from_json(data["pattern"]),
            count(**data["expected"]),
            tuple(Entry.from_json(e) for e in data["matches"]),
            tuple(NearMiss.from_json(m) for m in data["near_misses"]),
        )

    def message(self) -> str:
        lines = [
            f"expected {self.expected} request{'' if self.expected.n == 1 else 's'} matching",
            f"    {self.pattern.describe()}",
        ]
        if not self.matches:
            lines.append("found none.")
        else:
            lines.append(f"found {self.count}:")
            lines += _listed(self.matches)
        lines += _near_miss_lines(self.near_misses, "")
        return "\n".join(lines)


def verify(entries: Iterable[Entry], pattern: Request, expected: Count) -> Verdict:
    """`pattern` against the requests among `entries` (`requests`), counted."""
    made = requests(entries)
    found = tuple(e for e in made if matches(pattern, e))
    misses: tuple[NearMiss, ...] = ()
    if len(found) < expected.n and not expected.holds(len(found)):  # too few, not too many
        misses = tuple(near_misses(pattern, made))
    return Verdict(pattern, expected, found, misses)


@dataclass(frozen=True)
class Unmatched:
    """Where an ordered verification stopped: `patterns[index]` matched no request after
    entry `after` (None: from the start); `earlier` are the requests before it that it
    matches (so it came out of order); `near_misses` the closest requests after it."""

    index: int
    after: int | None
    earlier: tuple[Entry, ...] = ()
    near_misses: tuple[NearMiss, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "after": self.after,
            "earlier": [e.to_json() for e in self.earlier],
            "near_misses": [m.to_json() for m in self.near_misses],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Unmatched:
        return cls(
            data["index"],
            data["after"],
            tuple(Entry.from_json(e) for e in data["earlier"]),
            tuple(NearMiss.from_json(m) for m in data["near_misses"]),
        )


@dataclass(frozen=True)
class SequenceVerdict:
    """Whether `patterns` matched requests in their order; `matches` one per pattern
    matched, in order; `unmatched` where it stopped (None: it holds)."""

    patterns: tuple[Request, ...]
    matches: tuple[Entry, ...]
    unmatched: Unmatched | None = None

    @property
    def holds(self) -> bool:
        return self.unmatched is None

    def to_json(self) -> dict[str, Any]:
        return {
            "holds": self.holds,
            "patterns": [p.to_json() for p in self.patterns],
            "matches": [e.to_json() for e in self.matches],
            "unmatched": None if self.unmatched is None else self.unmatched.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SequenceVerdict:
        unmatched = data["unmatched"]
        return cls(
            tuple(Request.from_json(p) for p in data["patterns"]),
            tuple(Entry.from_json(e) for e in data["matches"]),
            None if unmatched is None else Unmatched.from_json(unmatched),
        )

    def message(self) -> str:
        lines = ["expected requests in this order (others may come between):"]
        for i, pattern in enumerate(self.patterns):
            if i < len(self.matches):
                state = f"matched {_summary(self.matches[i])}"
            elif self.unmatched is not None and i == self.unmatched.index:
                state = "NOT MATCHED"
            else:
                state = "not tried"
            lines.append(f"  [{i}] {pattern.describe()}")
            lines.append(f"      {state}")
        failed = self.unmatched
        if failed is None:
            return "\n".join(lines)
        where = "at all" if failed.after is None else f"after entry #{failed.after}"
        lines.append(f"patterns[{failed.index}] matched no request {where}.")
        if failed.earlier:
            ids = ", ".join(f"#{e.id}" for e in failed.earlier[:SHOWN])
            more = f" and {len(failed.earlier) - SHOWN} more" if len(failed.earlier) > SHOWN else ""
            lines.append(f"It matches earlier requests, out of order: {ids}{more}.")
        lines += _near_miss_lines(failed.near_misses, "" if failed.after is None else f" {where}")
        return "\n".join(lines)


def sequence(patterns: Sequence[Request]) -> tuple[Request, ...]:
    """`patterns` if they can be verified in order: 1 to `SEQUENCE_MAX` of them, each a
    `Request`."""
    if not patterns:
        raise BadPattern("give at least one pattern")
    if len(patterns) > SEQUENCE_MAX:
        raise BadPattern(f"give at most {SEQUENCE_MAX} patterns")
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, Request):
            raise BadPattern(f"patterns[{i}] must be a Request, not a {type(pattern).__name__}")
    return tuple(patterns)


def verify_in_order(entries: Iterable[Entry], patterns: Sequence[Request]) -> SequenceVerdict:
    """Each pattern matched by a request after the one the previous pattern matched, the
    earliest such (which leaves the most for the patterns after it)."""
    patterns = sequence(patterns)
    made = requests(entries)
    found: list[Entry] = []
    position = 0
    for index, pattern in enumerate(patterns):
        hit = next((i for i in range(position, len(made)) if matches(pattern, made[i])), None)
        if hit is None:
            after = found[-1].id if found else None
            taken = {e.id for e in found}
            earlier = tuple(e for e in made[:position] if e.id not in taken and matches(pattern, e))
            misses = tuple(near_misses(pattern, made[position:]))
            return SequenceVerdict(patterns, tuple(found), Unmatched(index, after, earlier, misses))
        found.append(made[hit])
        position = hit + 1
    return SequenceVerdict(patterns, tuple(found))


# ---- text -------------------------------------------------------------------------------


def _show(value: Any, width: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _plain(value: Any) -> str:
    """A method, path, code or query value as written in a request line."""
    return value if isinstance(value, str) and value else _show(value)


def _summary(entry: Entry) -> str:
    """`#7 POST /v1/sessions?number=12 {"goal": 300} -> 4.00`."""
    target = entry.path + ("?" + "&".join(entry.query) if entry.query else "")
    words = [f"#{entry.id}", entry.method, target]
    if entry.body is not None:
        words.append(_show(entry.body, 60))
    elif entry.body_base64 is not None:
        words.append("(undecodable body)")
    words.append(f"-> {entry.code}" if entry.code is not None else "-> no answer")
    if entry.fault is not None:
        words.append(f"[fault {entry.fault.kind}]")
    return " ".join(words)


def _listed(entries: Sequence[Entry]) -> list[str]:
    lines = [f"  {_summary(e)}" for e in entries[:SHOWN]]
    if len(entries) > SHOWN:
        lines.append(f"  ... and {len(entries) - SHOWN} more")
    return lines


def _near_miss_lines(misses: Sequence[NearMiss], where: str) -> list[str]:
    if not misses:
        return []
    lines = [f"Closest requests{where} (best first):"]
    for miss in misses:
        lines.append(f"  {_summary(miss.entry)}")
        lines += [f"      {d.describe()}" for d in miss.differences]
    return lines


__all__ = [
    "BadPattern",
    "Count",
    "Difference",
    "NearMiss",
    "Request",
    "SequenceVerdict",
    "Unmatched",
    "VerificationFailed",
    "Verdict",
    "count",
    "differences",
    "matches",
    "near_misses",
    "requests",
    "sequence",
    "verify",
    "verify_in_order",
]
