"""The transmitter's clock against an injected system clock: no sleeping, exact times."""

from datetime import datetime, timedelta

import pytest

from pager.clock import Clock

T0 = datetime(2026, 1, 15, 18, 0, 0)
LATER = datetime(2030, 6, 1, 9, 30, 0)


class System:
    """A system clock that moves only when told to."""

    def __init__(self, at: datetime = T0) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def system() -> System:
    return System()


@pytest.fixture
def clock(system: System) -> Clock:
    return Clock(system=system)


def test_follows_the_system_clock_from_the_stored_offset(system: System) -> None:
    clock = Clock(offset=90, system=system)
    assert clock.now() == T0 + timedelta(seconds=90)
    system.advance(10)
    assert clock.now() == T0 + timedelta(seconds=100)


def test_now_drops_microseconds_and_exact_keeps_them(system: System, clock: Clock) -> None:
    system.advance(1.75)
    assert clock.exact() == T0 + timedelta(seconds=1.75)
    assert clock.now() == T0 + timedelta(seconds=1)
    assert clock.now().microsecond == 0


def test_set_moves_to_the_time_and_runs_on_from_there(system: System, clock: Clock) -> None:
    system.advance(5)
    clock.set(LATER)
    assert clock.now() == LATER
    system.advance(30)
    assert clock.now() == LATER + timedelta(seconds=30)


@pytest.mark.parametrize("seconds", [3600, -86400, 0.5])
def test_shift_moves_by_seconds_and_keeps_running(
    system: System, clock: Clock, seconds: float
) -> None:
    system.advance(7)
    clock.shift(seconds)
    assert clock.exact() == T0 + timedelta(seconds=7 + seconds)
    system.advance(3)
    assert clock.exact() == T0 + timedelta(seconds=10 + seconds)


def test_frozen_clock_stands_still_and_resumes_where_it_stopped(
    system: System, clock: Clock
) -> None:
    system.advance(10)
    clock.freeze()
    assert clock.frozen
    system.advance(1000)
    assert clock.now() == T0 + timedelta(seconds=10)
    clock.unfreeze()
    assert not clock.frozen
    assert clock.now() == T0 + timedelta(seconds=10)  # no jump by the time it stood still
    system.advance(5)
    assert clock.now() == T0 + timedelta(seconds=15)


def test_shift_and_set_while_frozen_move_it_and_leave_it_frozen(
    system: System, clock: Clock
) -> None:
    clock.freeze()
    clock.shift(600)
    system.advance(50)
    assert clock.frozen and clock.now() == T0 + timedelta(seconds=600)
    clock.set(LATER)
    system.advance(50)
    assert clock.frozen and clock.now() == LATER
    clock.unfreeze()
    system.advance(2)
    assert clock.now() == LATER + timedelta(seconds=2)


def test_speed_multiplies_system_time_from_the_moment_it_is_set(
    system: System, clock: Clock
) -> None:
    system.advance(10)
    clock.set_speed(60)
    assert clock.speed == 60
    assert clock.now() == T0 + timedelta(seconds=10)  # not retroactive
    system.advance(2)
    assert clock.now() == T0 + timedelta(seconds=10 + 120)
    clock.set_speed(0.5)
    system.advance(4)
    assert clock.now() == T0 + timedelta(seconds=10 + 120 + 2)


def test_shift_while_fast_moves_by_exactly_the_seconds(system: System, clock: Clock) -> None:
    clock.set_speed(10)
    system.advance(1)
    clock.shift(60)
    assert clock.now() == T0 + timedelta(seconds=10 + 60)
    system.advance(1)
    assert clock.now() == T0 + timedelta(seconds=10 + 60 + 10)


def test_speed_set_while_frozen_applies_once_unfrozen(system: System, clock: Clock) -> None:
    clock.freeze()
    clock.set_speed(100)
    system.advance(9)
    assert clock.now() == T0
    clock.unfreeze()
    system.advance(1)
    assert clock.now() == T0 + timedelta(seconds=100)


@pytest.mark.parametrize("speed", [0, -1, -0.5])
def test_speed_zero_or_negative_is_refused_and_changes_nothing(
    system: System, clock: Clock, speed: float
) -> None:
    clock.set_speed(2)
    system.advance(1)
    with pytest.raises(ValueError, match="positive"):
        clock.set_speed(speed)
    assert clock.speed == 2 and not clock.frozen
    system.advance(1)
    assert clock.now() == T0 + timedelta(seconds=4)


def test_reset_returns_to_system_time_at_normal_speed(system: System) -> None:
    clock = Clock(offset=-3600, system=system)
    clock.set_speed(50)
    clock.shift(999)
    clock.freeze()
    system.advance(20)
    clock.reset()
    assert clock.speed == 1.0 and not clock.frozen
    assert clock.now() == T0 + timedelta(seconds=20)
    system.advance(3)
    assert clock.now() == T0 + timedelta(seconds=23)


def test_wall_offset_is_what_the_clock_adds_to_the_system_clock_only_while_that_holds() -> None:
    """The journal makes a request's device time from its wall time and `wall_offset`: the
    offset must be exactly the clock's while it runs at speed 1 on the system's own clock,
    and None in every other state, including with an injected system clock."""
    clock = Clock(offset=-3600)

    def made(offset: timedelta | None) -> datetime:
        assert offset is not None
        return datetime.now() + offset

    assert abs(made(clock.wall_offset) - clock.exact()) < timedelta(seconds=1)
    clock.shift(7200)
    assert abs(made(clock.wall_offset) - clock.exact()) < timedelta(seconds=1)
    clock.set(LATER)
    assert abs(made(clock.wall_offset) - LATER) < timedelta(seconds=1)
    clock.freeze()
    assert clock.wall_offset is None
    clock.unfreeze()
    assert abs(made(clock.wall_offset) - clock.exact()) < timedelta(seconds=1)
    clock.set_speed(2)
    assert clock.wall_offset is None
    clock.reset()
    assert abs(made(clock.wall_offset) - datetime.now()) < timedelta(seconds=1)
    assert Clock(system=System()).wall_offset is None
