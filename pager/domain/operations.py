"""Every way the transmitter's state can change, as pure functions of (state, input, now).

Each returns an `Outcome`: the `Change` to commit (None when nothing changes) and what the
answer shows. Nothing here mutates the state; the shell applies the change after the commit.
"""

# The annotations stay unevaluated: SettingsPatch has a field named `datetime`.
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pager.domain import rules
from pager.domain.conditions import UNCONDITIONAL, Conditions
from pager.domain.errors import NoActiveSession
from pager.domain.model import REMOVED, STOP, Archived, Change, Device, Session, Settings, State
from pager.domain.pagemodes import Source, Transmission, default_mode, parse_message
from pager.domain.records import evolve
from pager.domain.statistics import Counters, clear_due, next_clear


class Unset(enum.Enum):
    """The type of a patch field the request did not give; `None` is a value (a label cleared)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET


@dataclass(frozen=True)
class DeviceRules:
    """The device's fixed rules: what the operations check and do, set at start and never
    changed by a request.

    Not `pager.config.Config` (every setting of the emulator process: addresses, store,
    limits of the CoAP layer, and these rules among them), nor `model.Device` (the state the
    transmitter persists and every change rewrites), nor `model.Settings` (the part of that
    state a client reads and writes through /v1/settings).
    """

    limits: rules.Limits = rules.Limits()
    staff_pagers: frozenset[int] = frozenset()
    auto_page_at_goal: bool = False


@dataclass(frozen=True)
class SessionPatch:
    """The fields of a session request; UNSET means 'not given' (partial update)."""

    goal: int | Unset = UNSET
    label: str | None | Unset = UNSET  # None clears it
    party_size: int | Unset = UNSET
    action: str | None = None
    page_mode: str | None = None
    message: str | None = None

    def check(self) -> None:
        if self.goal is not UNSET:
            rules.check_int("goal", self.goal, *rules.GOAL)
        if self.label is not UNSET:
            rules.check_label(self.label)
        if self.party_size is not UNSET:
            rules.check_int("partySize", self.party_size, *rules.PARTY_SIZE)
        if self.action is not None:
            rules.check_action(self.action)
        check_page_fields(self.page_mode, self.message)


@dataclass(frozen=True)
class PageRequest:
    number: int
    page_mode: str | None = None
    message: str | None = None
    system_id: int | None = None
    source: Source = "coap"
    power: int | None = None  # LRSN only: checked as it is read, recorded with the page
    color: str | None = None


@dataclass(frozen=True)
class SettingsPatch:
    """The fields of a settings request; UNSET means 'not given' (partial update)."""

    datetime: datetime | Unset = UNSET
    system_id: int | Unset = UNSET
    default_goal: int | Unset = UNSET
    clear_mark: int | Unset = UNSET


@dataclass(frozen=True)
class Outcome:
    change: Change | None
    session: Session | Archived | None = None
    created: bool = False
    transmission: Transmission | None = None

    @property
    def acted_on(self) -> Session | Archived:
        """The session of an operation on one session (create, update, remove)."""
        if self.session is None:
            raise LookupError("this outcome is of no one session")
        return self.session

    @property
    def transmitted(self) -> Transmission:
        """The transmission of a page."""
        if self.transmission is None:
            raise LookupError("this outcome is of no transmission")
        return self.transmission


def check_page_fields(page_mode: str | None, message: str | None) -> None:
    if page_mode is not None:
        rules.check_page_mode(page_mode)
    if message is not None:
        rules.check_message(message)
        parse_message(message)


class _Draft:
    """Accumulates one change: hands out sequence numbers and ids in order.

    The device's new scalars are collected as updates and the frozen Device is built once,
    when the change is taken: rebuilding it at every step cost more than the rest of a write's
    domain operation.
    """

    def __init__(self, device: Device) -> None:
        self.origin = device
        self._updates: dict[str, Any] = {}
        self.saved: list[Session] = []
        self.archived: list[Archived] = []
        self.transmissions: list[Transmission] = []
        self.settings_changed = False
        self.statistics_cleared = False

    def get(self, name: str) -> Any:
        return self._updates[name] if name in self._updates else getattr(self.origin, name)

    def set(self, **updates: Any) -> None:
        self._updates.update(updates)

    @property
    def device(self) -> Device:
        return evolve(self.origin, **self._updates) if self._updates else self.origin

    def _next_sequence(self) -> int:
        seq: int = self.get("global_sequence") + 1
        self.set(global_sequence=seq)
        return seq

    def save(self, session: Session) -> Session:
        session = evolve(session, sequence=self._next_sequence())
        self.saved.append(session)
        return session

    def archive(self, session: Session, now: datetime, clear_type: str) -> Archived:
        archived = Archived(evolve(session, sequence=self._next_sequence()), now, clear_type)
        self.archived.append(archived)
        return archived

    def new_session_id(self) -> int:
        sid: int = self.get("next_session_id")
        self.set(next_session_id=sid + 1)
        return sid

    def transmit(
        self,
        number: int,
        mode: str,
        message: str | None,
        system_id: int,
        session_id: int | None,
        now: datetime,
        source: Source = "coap",
        power: int | None = None,
        color: str | None = None,
    ) -> Transmission:
        text, codes = parse_message(message) if message is not None else (None, ())
        tx = Transmission(
            self.get("next_transmission_id"),
            now,
            number,
            system_id,
            mode,
            text,
            codes,
            session_id,
            source,
            power,
            color,
        )
        self.set(next_transmission_id=tx.id + 1)
        self.transmissions.append(tx)
        return tx

    def clear_statistics(self, now: datetime) -> None:
        self.set(
            counters=Counters(),
            clear_mark_since=now,
            statistics_generation=self.get("statistics_generation") + 1,
        )
        self.statistics_cleared = True

    def outcome(self, **kw: Any) -> Outcome:
        device = self.device
        if device == self.origin and not self.archived and not self.settings_changed:
            return Outcome(None, **kw)
        change = Change(
            device,
            tuple(self.saved),
            tuple(self.archived),
            tuple(self.transmissions),
            self.settings_changed,
            self.statistics_cleared,
        )
        return Outcome(change, **kw)


def _page(
    d: _Draft,
    s: Session,
    when: datetime,
    page_mode: str | None,
    message: str | None,
    cfg: DeviceRules,
) -> Session:
    """Transmit to a session's pager; the first page marks it paged and feeds the statistics."""
    mode = page_mode or default_mode(s.number, cfg.staff_pagers)
    d.transmit(s.number, mode, message, d.get("settings").system_id, s.id, when)
    if s.notified is None:
        d.set(counters=d.get("counters").first_page(s.created, when, s.goal))
        s = evolve(s, notified=when)
    return s


def _apply_fields(s: Session, p: SessionPatch) -> Session:
    changes: dict[str, int | str | None] = {}
    if p.goal is not UNSET:
        changes["goal"] = p.goal
    if p.label is not UNSET:
        changes["label"] = p.label
    if p.party_size is not UNSET:
        changes["party_size"] = p.party_size
    return evolve(s, **changes)


def _finish(
    d: _Draft,
    before: Session | None,
    s: Session,
    p: SessionPatch,
    now: datetime,
    cfg: DeviceRules,
    created: bool,
) -> Outcome:
    if p.action == "clear" or p.action == "remove":
        return d.outcome(
            session=d.archive(s, now, STOP if p.action == "clear" else REMOVED), created=created
        )
    if p.action == "page":  # a re-page changes only the sequence, but it is a change
        s = d.save(_page(d, s, now, p.page_mode, p.message, cfg))
    elif s != before:
        s = d.save(s)
    return d.outcome(session=s, created=created)


def create_or_update(
    state: State,
    number: int,
    p: SessionPatch,
    now: datetime,
    uuid: str,
    cfg: DeviceRules,
    conditions: Conditions = UNCONDITIONAL,
) -> Outcome:
    """POST /v1/sessions: create a session for `number`, or update the active one."""
    rules.check_number(number, cfg.limits)
    p.check()
    d = _Draft(state.device)
    existing = state.active.get(number)
    conditions.check(number, existing)
    if existing is not None:
        return _finish(d, existing, _apply_fields(existing, p), p, now, cfg, created=False)
    if p.action in ("clear", "remove"):
        raise NoActiveSession(number)
    s = Session(
        id=d.new_session_id(),
        sequence=0,
        uuid=uuid,
        number=number,
        party_size=1,
        goal=state.device.settings.default_goal,
        created=now,
        notified=None,
        label=None,
    )
    d.set(counters=d.get("counters").created())
    return _finish(d, None, _apply_fields(s, p), p, now, cfg, created=True)


def update(
    state: State,
    number: int,
    p: SessionPatch,
    now: datetime,
    cfg: DeviceRules,
    conditions: Conditions = UNCONDITIONAL,
) -> Outcome:
    """PUT /v1/sessions?number=N: partial update and action on an active session."""
    rules.check_number(number, cfg.limits)
    p.check()
    existing = state.active.get(number)
    conditions.check(number, existing)
    if existing is None:
        raise NoActiveSession(number)
    return _finish(
        _Draft(state.device), existing, _apply_fields(existing, p), p, now, cfg, created=False
    )


def remove(
    state: State,
    number: int,
    now: datetime,
    cfg: DeviceRules,
    conditions: Conditions = UNCONDITIONAL,
) -> Outcome:
    """DELETE /v1/sessions?number=N."""
    rules.check_number(number, cfg.limits)
    existing = state.active.get(number)
    conditions.check(number, existing)
    if existing is None:
        raise NoActiveSession(number)
    d = _Draft(state.device)
    return d.outcome(session=d.archive(existing, now, REMOVED))


def remove_all(state: State, now: datetime) -> Outcome:
    """DELETE /v1/sessions, the vendor's "Clear all active sessions": every active session is
    cleared (STOP, spec §4), one sequence step each, by id."""
    d = _Draft(state.device)
    for s in sorted(state.active.values(), key=lambda s: s.id):
        d.archive(s, now, STOP)
    return d.outcome()


def clear_statistics(state: State, now: datetime) -> Outcome:
    d = _Draft(state.device)
    d.clear_statistics(now)
    return d.outcome()


def page(state: State, req: PageRequest, now: datetime, cfg: DeviceRules) -> Outcome:
    """POST /v1/page and LRSN's PageRequest: a standalone transmission; no session, statistics
    or sequence change."""
    rules.check_number(req.number, cfg.limits)
    check_page_fields(req.page_mode, req.message)
    if req.system_id is not None:
        rules.check_int("systemId", req.system_id, *rules.SYSTEM_ID)
    d = _Draft(state.device)
    system_id = state.device.settings.system_id if req.system_id is None else req.system_id
    mode = req.page_mode or default_mode(req.number, cfg.staff_pagers)
    tx = d.transmit(
        req.number, mode, req.message, system_id, None, now, req.source, req.power, req.color
    )
    return d.outcome(transmission=tx)


def update_settings(state: State, p: SettingsPatch, now: datetime) -> Outcome:
    """POST /v1/settings: partial update. Setting `datetime` moves the transmitter's clock."""
    if p.system_id is not UNSET:
        rules.check_int("systemId", p.system_id, *rules.SYSTEM_ID)
    if p.default_goal is not UNSET:
        rules.check_int("defaultTargetGoal", p.default_goal, *rules.GOAL)
    if p.clear_mark is not UNSET:
        rules.check_int("statisticsClearMark", p.clear_mark, *rules.CLEAR_MARK)
    if p.datetime is not UNSET:
        rules.check_clock(p.datetime)
    dev, old = state.device, state.device.settings
    settings = Settings(
        system_id=old.system_id if p.system_id is UNSET else p.system_id,
        default_goal=old.default_goal if p.default_goal is UNSET else p.default_goal,
        clear_mark=old.clear_mark if p.clear_mark is UNSET else p.clear_mark,
    )
    since = dev.clear_mark_since
    offset = dev.clock_offset
    if p.datetime is not UNSET:
        offset += int((p.datetime - now).total_seconds())
        since = p.datetime
    elif settings.clear_mark != old.clear_mark:
        since = now
    d = _Draft(dev)
    d.set(settings=settings, clock_offset=offset, clear_mark_since=since)
    # The same values, or the clock set to the time it shows, notify nobody (spec §8), as a
    # session update that changes nothing; the clock set so still restarts the mark's count.
    d.settings_changed = settings != old or offset != dev.clock_offset
    return d.outcome()


def maintenance(state: State, now: datetime, cfg: DeviceRules) -> Change | None:
    """What time alone changes: the daily statistics clear and, if enabled, paging at the goal."""
    d = _Draft(state.device)
    since = state.device.clear_mark_since
    if since is None:  # a new store: the clear mark counts from the first start
        d.set(clear_mark_since=now)
    elif clear_due(since, now, state.device.settings.clear_mark):
        d.clear_statistics(now)
    if cfg.auto_page_at_goal:
        due = [
            s
            for s in state.active.values()
            if s.notified is None and s.created + timedelta(seconds=s.goal) <= now
        ]
        for s in sorted(due, key=lambda s: (s.created + timedelta(seconds=s.goal), s.id)):
            d.save(_page(d, s, s.created + timedelta(seconds=s.goal), None, None, cfg))
    return d.outcome().change


def next_due(state: State, cfg: DeviceRules) -> datetime | None:
    """The earliest time at which `maintenance` could change anything, None for never.

    Valid until the next change; lets readers skip `maintenance` until then.
    """
    since = state.device.clear_mark_since
    if since is None:
        return datetime.min
    times = [next_clear(since, state.device.settings.clear_mark)]
    if cfg.auto_page_at_goal:
        times += [
            s.created + timedelta(seconds=s.goal)
            for s in state.active.values()
            if s.notified is None
        ]
    return min((t for t in times if t is not None), default=None)
