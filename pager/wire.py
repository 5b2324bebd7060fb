"""Request bodies as pydantic models, response bodies as typed dicts; JSON and CBOR encoding;
the envelope.

Decoding checks types strictly (a number is a JSON integer, never "66", 66.5 or true) and
turns every failure into `domain.errors.Invalid` carrying the same sentence the range check
would use, so each field has one message whatever was wrong with it.
"""

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired, TypeVar

import cbor2
import pydantic_core
from pydantic import BaseModel, ConfigDict, ValidationError

# pydantic takes typing.TypedDict as a field type only from Python 3.12 on (the control API's
# answers hold some of these)
from typing_extensions import TypedDict

from pager.domain import rules
from pager.domain.errors import Invalid
from pager.domain.model import Archived, Session, Settings, State
from pager.domain.operations import UNSET, PageRequest, SessionPatch, SettingsPatch, Unset
from pager.domain.pagemodes import AlertCode, Transmission
from pager.domain.statistics import Counters, figures
from pager.domain.timefmt import fmt, parse

JSON = 50
CBOR = 60
FORMATS = (JSON, CBOR)


# ---- requests ---------------------------------------------------------------------------


T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    def given(self, name: str, value: T) -> T | Unset:
        return value if name in self.model_fields_set else UNSET

    def optional(self, name: str, value: T) -> T | None:
        return value if name in self.model_fields_set else None


# Defaults below only stand for "not given" (see `given`); only `label` may be null.


class SessionBody(_Body):
    number: int = 0  # required for POST /v1/sessions; in PUT the query names the session
    goal: int = 0
    label: str | None = None
    partySize: int = 0
    action: str = ""
    pageMode: str = ""
    message: str = ""

    def patch(self) -> SessionPatch:
        return SessionPatch(
            goal=self.given("goal", self.goal),
            label=self.given("label", self.label),
            party_size=self.given("partySize", self.partySize),
            action=self.optional("action", self.action),
            page_mode=self.optional("pageMode", self.pageMode),
            message=self.optional("message", self.message),
        )


class PageBody(_Body):
    number: int
    pageMode: str = ""
    message: str = ""
    systemId: int = 0

    def request(self) -> PageRequest:
        return PageRequest(
            self.number,
            self.optional("pageMode", self.pageMode),
            self.optional("message", self.message),
            self.optional("systemId", self.systemId),
        )


class SettingsBody(_Body):
    datetime: str = ""
    systemId: int = 0
    defaultTargetGoal: int = 0
    statisticsClearMark: int = 0

    def patch(self, limits: rules.Limits) -> SettingsPatch:
        when: datetime | Unset = UNSET
        if "datetime" in self.model_fields_set:
            try:
                when = parse(self.datetime)
            except ValueError:
                raise Invalid(rules.requirement("datetime", limits), "datetime") from None
        return SettingsPatch(
            datetime=when,
            system_id=self.given("systemId", self.systemId),
            default_goal=self.given("defaultTargetGoal", self.defaultTargetGoal),
            clear_mark=self.given("statisticsClearMark", self.statisticsClearMark),
        )


def decode(
    model: type[_Body],
    payload: bytes,
    content_format: int | None,
    limits: rules.Limits,
    required: tuple[str, ...] = (),
) -> _Body:
    """Parse a request body of `model`; raises Invalid naming the field at fault."""
    try:
        if content_format == CBOR:
            body = model.model_validate(_cbor_map(payload))
        else:
            body = model.model_validate_json(payload or b"{}")
    except ValidationError as e:
        raise _invalid(e, limits) from None
    for name in required:
        if name not in body.model_fields_set:
            raise Invalid(f"{name} is required", name)
    return body


def _cbor_map(payload: bytes) -> dict[str, Any]:
    """Exactly one CBOR data item, a map with text keys (the shape of a JSON object)."""
    stream = io.BytesIO(payload)
    try:
        data = cbor2.CBORDecoder(stream).decode()
    except Exception as e:  # cbor2 raises several types for malformed input
        raise Invalid(f"body is not valid CBOR: {e}") from None
    if stream.tell() != len(payload):
        raise Invalid("body is not valid CBOR: data after the first item")
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise Invalid("body must be a CBOR map with text keys")
    return data


def _invalid(e: ValidationError, limits: rules.Limits) -> Invalid:
    err = e.errors(include_url=False)[0]
    loc = err["loc"]
    if err["type"] == "json_invalid":
        return Invalid(f"body is not valid JSON: {err['ctx']['error']}")
    if not loc or not isinstance(loc[0], str):
        return Invalid("body must be a JSON object")
    name = loc[0]
    if err["type"] == "missing":
        return Invalid(f"{name} is required", name)
    return Invalid(rules.requirement(name, limits), name)


def is_compact(payload: bytes) -> bool:
    """The vendor warns against tabs and newlines; raw ones can only sit outside strings."""
    return not any(c in payload for c in (b"\t", b"\n", b"\r"))


# ---- responses --------------------------------------------------------------------------


# Each answer body is plain data: dicts, lists, strings, integers and None, typed here as
# TypedDicts. A key a TypedDict marks NotRequired is left out of an answer that has no value
# for it. `encode` writes an envelope with pydantic-core's serializer (JSON) or cbor2 (CBOR);
# building pydantic models first cost more than the rest of the answer (README, Benchmarks).


class SessionOut(TypedDict):
    id: int
    sessionSequence: NotRequired[int]  # active sessions only, not in history
    uuid: str
    number: int
    partySize: int
    goalInSeconds: int
    created: str
    started: str
    notified: NotRequired[str]
    cleared: NotRequired[str]
    label: str | None
    state: str
    clearType: NotRequired[str]  # history only


class StatisticsOut(TypedDict):
    guestsServed: int
    percentLate: int
    percentOnTime: int
    averageTimeServed: int
    numSessions: int


class SettingsOut(TypedDict):
    datetime: str
    systemId: int
    defaultTargetGoal: int
    statisticsClearMark: int


class AlertCodeOut(TypedDict):
    code: str
    value: int | None


class PageOut(TypedDict):
    id: int
    time: str
    number: int
    systemId: int
    pageMode: str
    message: str | None
    overrideCodes: list[AlertCodeOut]
    sessionId: int | None
    alertUntil: str
    source: str
    power: NotRequired[int]  # LRSN's, only when the page gave it
    color: NotRequired[str]


class ErrorOut(TypedDict):
    code: str
    message: str
    field: NotRequired[str]


class Envelope(TypedDict):
    """The response body: the envelope members first, then the sections it names in order."""

    responseTypes: list[str]
    globalSessionSequence: int
    timestamp: str
    deviceName: str
    firmwareVersion: str
    sessions: NotRequired[list[SessionOut]]
    statistics: NotRequired[StatisticsOut]
    session_history: NotRequired[list[SessionOut]]
    settings: NotRequired[SettingsOut]
    ping: NotRequired[dict[str, Any]]
    page: NotRequired[PageOut]
    error: NotRequired[ErrorOut]


def encode(body: Any, content_format: int) -> bytes:
    """An answer body (an envelope, or a part of one) in JSON or CBOR."""
    if content_format == CBOR:
        return cbor2.dumps(body)
    return pydantic_core.to_json(body)


@dataclass(frozen=True)
class Identity:
    """What the transmitter calls itself in every envelope."""

    device_name: str = "T7470"
    firmware_version: str = "8.4.100.43"


SECTION_ORDER = ("sessions", "statistics", "session_history", "settings", "ping", "page", "error")


def envelope(identity: Identity, sequence: int, now: datetime, **sections: Any) -> Envelope:
    names = [n for n in SECTION_ORDER if n in sections]
    body: dict[str, Any] = {
        "responseTypes": names,
        "globalSessionSequence": sequence,
        "timestamp": fmt(now),
        "deviceName": identity.device_name,
        "firmwareVersion": identity.firmware_version,
    }
    for name in names:
        body[name] = sections[name]
    return body  # type: ignore[return-value]  # the sections are the callers' to type


def envelope_on(identity: Identity, state: State, now: datetime, **sections: Any) -> Envelope:
    """The envelope of an answer or notification showing `state`: its globalSessionSequence
    is the state's, so that a client can tell which change it reflects."""
    return envelope(identity, state.device.global_sequence, now, **sections)


def active_sessions(state: State) -> list[SessionOut]:
    """The active sessions in id order, the one order every list of them has (spec §4, §8)."""
    return [session_out(s) for s in sorted(state.active.values(), key=_session_id)]


def _session_id(session: Session) -> int:
    return session.id


def history_pieces(
    identity: Identity,
    sequence: int,
    now: datetime,
    archived: Sequence[Archived],
    content_format: int,
    per_piece: int,
) -> Iterator[bytes]:
    """The encoded history envelope in pieces of `per_piece` sessions each.

    Joined, the pieces are byte for byte what `encode(envelope(...))` gives; encoding a long
    history at once would keep the event loop from everything else for as long as it takes.
    """
    head = encode(envelope(identity, sequence, now, session_history=[]), content_format)
    cbor = content_format == CBOR
    # less the empty list: CBOR's array head (the last byte), JSON's "]}"
    yield head[:-1] + _cbor_array_head(len(archived)) if cbor else head[:-2]
    for start in range(0, len(archived), per_piece):
        part = [session_out(a, history=True) for a in archived[start : start + per_piece]]
        if cbor:
            yield b"".join(encode(p, CBOR) for p in part)
        else:
            yield (b"," if start else b"") + encode(part, JSON)[1:-1]
    yield b"" if cbor else b"]}"


def _cbor_array_head(length: int) -> bytes:
    """RFC 8949 §3: major type 4 with the length in its shortest form, as cbor2 writes it."""
    if length < 24:
        return bytes([0x80 | length])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([0x80 | info]) + length.to_bytes(size, "big")
    raise ValueError("array too long for CBOR")


def session_out(item: Session | Archived, history: bool = False) -> SessionOut:
    s = item.session if isinstance(item, Archived) else item
    created = fmt(s.created)
    out: dict[str, Any] = {"id": s.id} if history else {"id": s.id, "sessionSequence": s.sequence}
    out["uuid"] = s.uuid
    out["number"] = s.number
    out["partySize"] = s.party_size
    out["goalInSeconds"] = s.goal
    out["created"] = created
    out["started"] = created
    if s.notified is not None:
        out["notified"] = fmt(s.notified)
    if isinstance(item, Archived):
        out["cleared"] = fmt(item.cleared)
    out["label"] = s.label
    out["state"] = item.state
    if history and isinstance(item, Archived):
        out["clearType"] = item.clear_type
    return out  # type: ignore[return-value]  # built key by key, in the answer's order


def statistics_out(counters: Counters) -> StatisticsOut:
    f = figures(counters)
    return {
        "guestsServed": f.guests_served,
        "percentLate": f.percent_late,
        "percentOnTime": f.percent_on_time,
        "averageTimeServed": f.average_time_served,
        "numSessions": f.num_sessions,
    }


def settings_out(settings: Settings, now: datetime) -> SettingsOut:
    return {
        "datetime": fmt(now),
        "systemId": settings.system_id,
        "defaultTargetGoal": settings.default_goal,
        "statisticsClearMark": settings.clear_mark,
    }


def alert_codes_out(codes: Sequence[AlertCode]) -> list[AlertCodeOut]:
    return [{"code": c.code, "value": c.value} for c in codes]


def page_out(t: Transmission) -> PageOut:
    out: PageOut = {
        "id": t.id,
        "time": fmt(t.time),
        "number": t.number,
        "systemId": t.system_id,
        "pageMode": t.page_mode,
        "message": t.message,
        "overrideCodes": alert_codes_out(t.override_codes),
        "sessionId": t.session_id,
        "alertUntil": fmt(t.alert_until),
        "source": t.source,
    }
    if t.power is not None:
        out["power"] = t.power
    if t.color is not None:
        out["color"] = t.color
    return out


def error_out(code: str, message: str, field: str | None) -> ErrorOut:
    if field is None:
        return {"code": code, "message": message}
    return {"code": code, "message": message, "field": field}
