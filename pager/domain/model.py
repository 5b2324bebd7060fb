"""The transmitter's state and the shape of a change to it."""

from dataclasses import dataclass, field
from datetime import datetime

from pager.domain.pagemodes import Transmission
from pager.domain.statistics import Counters

STOP = "STOP"
REMOVED = "REMOVED"


@dataclass(frozen=True)
class Session:
    id: int
    sequence: int
    uuid: str
    number: int
    party_size: int
    goal: int
    created: datetime  # `started` is always equal to it
    notified: datetime | None
    label: str | None

    @property
    def state(self) -> str:
        return "started" if self.notified is None else "paged"


@dataclass(frozen=True)
class Archived:
    """A session that was cleared or removed: it lives on only in history."""

    session: Session
    cleared: datetime
    clear_type: str  # STOP or REMOVED

    state = "cleared"


@dataclass(frozen=True)
class Settings:
    """The part of the device's state a client reads and writes through /v1/settings.

    Persisted inside `Device`; the emulator's own settings are `pager.config.Config`, and
    the rules a request cannot change are `operations.DeviceRules`.
    """

    system_id: int = 0
    default_goal: int = 300
    clear_mark: int = 24


@dataclass(frozen=True)
class Device:
    """Every scalar the transmitter persists; rewritten whole by each change.

    State, not configuration: `pager.config.Config` and `operations.DeviceRules` hold what
    is fixed at start; `Settings` is the client-writable part of this.
    """

    global_sequence: int = 0
    next_session_id: int = 1
    next_transmission_id: int = 1
    counters: Counters = Counters()
    statistics_generation: int = 0  # bumped by every statistics clear; part of the ETag
    clear_mark_since: datetime | None = None  # see statistics.clear_due
    settings: Settings = Settings()
    clock_offset: int = 0  # seconds from system time to transmitter time


@dataclass
class State:
    """The live state the shell keeps in memory, mirrored by the store."""

    device: Device
    active: dict[int, Session] = field(default_factory=dict)  # by pager number


@dataclass(frozen=True)
class Change:
    """What one request (or one maintenance tick) changes, committed as one transaction."""

    device: Device
    saved: tuple[Session, ...] = ()  # active sessions created or updated
    archived: tuple[Archived, ...] = ()
    transmissions: tuple[Transmission, ...] = ()
    settings_changed: bool = False
    statistics_cleared: bool = False

    def apply(self, state: State) -> None:
        state.device = self.device
        for s in self.saved:
            state.active[s.number] = s
        for a in self.archived:
            state.active.pop(a.session.number, None)

    @property
    def session_events(self) -> list[Session | Archived]:
        """Every changed session in sequence order: one notification each."""
        events: list[Session | Archived] = [*self.saved, *self.archived]
        return sorted(
            events, key=lambda e: e.sequence if isinstance(e, Session) else e.session.sequence
        )
