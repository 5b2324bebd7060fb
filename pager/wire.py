"""Request and response bodies as pydantic models; JSON and CBOR encoding; the envelope.

Decoding checks types strictly (a number is a JSON integer, never "66", 66.5 or true) and
turns every failure into `domain.errors.Invalid` carrying the same sentence the range check
would use, so each field has one message whatever was wrong with it.
"""

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self, TypeVar

import cbor2
import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from pager.domain import rules
from pager.domain.errors import Invalid
from pager.domain.model import Archived, Session, Settings, State
from pager.domain.operations import UNSET, PageRequest, SessionPatch, SettingsPatch, Unset
from pager.domain.pagemodes import Transmission
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


class _Out(BaseModel):
    """A response body, built only from the emulator's own state and never validated."""

    @classmethod
    def of(cls, **fields: Any) -> Self:
        """What `model_construct(**fields)` builds, without its walk over every field.

        The walk fills in defaults and resolves aliases; these models have no aliases, and
        the fields left out are the ones `exclude_unset` leaves out of the encoding. Building
        the answers is a measurable part of a request (README, Benchmarks), so this sets
        pydantic's per-instance slots itself; `_check_of` proves at import that they are
        still the ones pydantic has and that the result encodes as `model_construct`'s does.
        """
        out = cls.__new__(cls)
        object.__setattr__(out, "__dict__", fields)
        object.__setattr__(out, "__pydantic_fields_set__", set(fields))
        object.__setattr__(out, "__pydantic_extra__", None)
        object.__setattr__(out, "__pydantic_private__", None)
        return out


class SessionOut(_Out):
    id: int
    sessionSequence: int | None = None
    uuid: str
    number: int
    partySize: int
    goalInSeconds: int
    created: str
    started: str
    notified: str | None = None
    cleared: str | None = None
    label: str | None
    state: str
    clearType: str | None = None


class StatisticsOut(_Out):
    guestsServed: int
    percentLate: int
    percentOnTime: int
    averageTimeServed: int
    numSessions: int


class SettingsOut(_Out):
    datetime: str
    systemId: int
    defaultTargetGoal: int
    statisticsClearMark: int


class AlertCodeOut(_Out):
    code: str
    value: int | None


class PageOut(_Out):
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
    power: int | None = None  # LRSN's, only when the page gave it
    color: str | None = None


class ErrorOut(_Out):
    code: str
    message: str
    field: str | None = None


class Envelope(_Out):
    """The response body: the envelope members first, then the sections it names in order."""

    responseTypes: list[str]
    globalSessionSequence: int
    timestamp: str
    deviceName: str
    firmwareVersion: str
    sessions: list[SessionOut] | None = None
    statistics: StatisticsOut | None = None
    session_history: list[SessionOut] | None = None
    settings: SettingsOut | None = None
    ping: dict[str, Any] | None = None
    page: PageOut | None = None
    error: ErrorOut | None = None

    def encode(self, content_format: int) -> bytes:
        if content_format == CBOR:
            return cbor2.dumps(self.model_dump(mode="json", exclude_unset=True))
        # the serializer's own bytes: model_dump_json decodes them to text, to be encoded again
        return self.__pydantic_serializer__.to_json(self, exclude_unset=True)


@dataclass(frozen=True)
class Identity:
    """What the transmitter calls itself in every envelope."""

    device_name: str = "T7470"
    firmware_version: str = "8.4.100.43"


SECTION_ORDER = ("sessions", "statistics", "session_history", "settings", "ping", "page", "error")


def envelope(identity: Identity, sequence: int, now: datetime, **sections: Any) -> Envelope:
    names = [n for n in SECTION_ORDER if n in sections]
    return Envelope.of(
        responseTypes=names,
        globalSessionSequence=sequence,
        timestamp=fmt(now),
        deviceName=identity.device_name,
        firmwareVersion=identity.firmware_version,
        **sections,
    )


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

    Joined, the pieces are byte for byte what `envelope(...).encode()` gives; encoding a long
    history at once would keep the event loop from everything else for as long as it takes.
    """
    head = envelope(identity, sequence, now, session_history=[]).encode(content_format)
    cbor = content_format == CBOR
    # less the empty list: CBOR's array head (the last byte), JSON's "]}"
    yield head[:-1] + _cbor_array_head(len(archived)) if cbor else head[:-2]
    for start in range(0, len(archived), per_piece):
        part = [session_out(a, history=True) for a in archived[start : start + per_piece]]
        if cbor:
            yield b"".join(cbor2.dumps(p.model_dump(mode="json", exclude_unset=True)) for p in part)
        else:
            encoded = _SESSION_LIST.dump_json(part, exclude_unset=True)
            yield (b"," if start else b"") + encoded[1:-1]
    yield b"" if cbor else b"]}"


_SESSION_LIST = TypeAdapter(list[SessionOut])


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
    fields: dict[str, Any] = {"id": s.id}
    if not history:
        fields["sessionSequence"] = s.sequence
    created = fmt(s.created)
    fields.update(
        uuid=s.uuid,
        number=s.number,
        partySize=s.party_size,
        goalInSeconds=s.goal,
        created=created,
        started=created,
    )
    if s.notified is not None:
        fields["notified"] = fmt(s.notified)
    if isinstance(item, Archived):
        fields["cleared"] = fmt(item.cleared)
    fields.update(label=s.label, state=item.state)
    if history and isinstance(item, Archived):
        fields["clearType"] = item.clear_type
    return SessionOut.of(**fields)


def statistics_out(counters: Counters) -> StatisticsOut:
    f = figures(counters)
    return StatisticsOut.of(
        guestsServed=f.guests_served,
        percentLate=f.percent_late,
        percentOnTime=f.percent_on_time,
        averageTimeServed=f.average_time_served,
        numSessions=f.num_sessions,
    )


def settings_out(settings: Settings, now: datetime) -> SettingsOut:
    return SettingsOut.of(
        datetime=fmt(now),
        systemId=settings.system_id,
        defaultTargetGoal=settings.default_goal,
        statisticsClearMark=settings.clear_mark,
    )


def page_out(t: Transmission) -> PageOut:
    return PageOut.of(
        id=t.id,
        time=fmt(t.time),
        number=t.number,
        systemId=t.system_id,
        pageMode=t.page_mode,
        message=t.message,
        overrideCodes=[AlertCodeOut.of(code=c.code, value=c.value) for c in t.override_codes],
        sessionId=t.session_id,
        alertUntil=fmt(t.alert_until),
        source=t.source,
        **({} if t.power is None else {"power": t.power}),
        **({} if t.color is None else {"color": t.color}),
    )


def error_out(code: str, message: str, field: str | None) -> ErrorOut:
    if field is None:
        return ErrorOut.of(code=code, message=message)
    return ErrorOut.of(code=code, message=message, field=field)


_PYDANTIC_SLOTS = (
    "__dict__",
    "__pydantic_fields_set__",
    "__pydantic_extra__",
    "__pydantic_private__",
)


def _check_of(of: Callable[..., ErrorOut] = ErrorOut.of) -> None:
    """Refuse to start on a pydantic whose models `_Out.of` would build wrong.

    Run at import. A new per-instance slot would be left unset; a changed `fields_set` or
    encoding would change the answers. Either shows here, naming the pydantic version.
    """
    problems = []
    if tuple(BaseModel.__slots__) != _PYDANTIC_SLOTS:
        problems.append(f"BaseModel's slots are {BaseModel.__slots__}, not {_PYDANTIC_SLOTS}")
    # `field` left out: a default must stay out of fields_set and of the encoding
    ours = of(code="4.00", message="bad")
    theirs = ErrorOut.model_construct(code="4.00", message="bad")
    for what in ("model_fields_set", "model_extra", "__pydantic_private__"):
        if getattr(ours, what) != getattr(theirs, what):
            problems.append(f"{what} is {getattr(ours, what)!r}, not {getattr(theirs, what)!r}")
    when = datetime(2000, 1, 1)
    for content_format in FORMATS:
        mine = envelope(Identity(), 0, when, error=ours).encode(content_format)
        reference = envelope(Identity(), 0, when, error=theirs).encode(content_format)
        if mine != reference:
            problems.append(f"format {content_format} encodes as {mine!r}, not {reference!r}")
    if problems:
        raise RuntimeError(
            "pager.wire: _Out.of does not build what model_construct builds on pydantic "
            f"{pydantic.VERSION}: " + "; ".join(problems)
        )


_check_of()
