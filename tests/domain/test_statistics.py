"""Statistics (spec §4.5): running counters, the figures, resets and the daily clear mark."""

from datetime import datetime, timedelta

import pytest

from pager.domain import operations as ops
from pager.domain.model import Device, Settings, State
from pager.domain.operations import DeviceRules, SessionPatch, SettingsPatch
from pager.domain.statistics import NEVER, Counters, Figures, clear_due, figures, round_half_up
from tests.domain.conftest import apply, seconds_after

T0 = datetime(2024, 3, 15, 11, 55, 20)
CFG = DeviceRules()


at = seconds_after(T0)


def serve(state: State, number: int, goal: int, wait: int, created: datetime = T0, **patch) -> None:
    """Create a session at `created` and page it `wait` seconds later."""
    apply(
        state,
        ops.create_or_update(
            state, number, SessionPatch(goal=goal, **patch), created, f"uuid-{number}", CFG
        ),
    )
    apply(
        state,
        ops.update(
            state, number, SessionPatch(action="page"), created + timedelta(seconds=wait), CFG
        ),
    )


def counters_of(*waits_and_goals: tuple[int, int], created: int = 0) -> Counters:
    c = Counters(num_sessions=created)
    for wait, goal in waits_and_goals:
        c = c.first_page(T0, at(wait), goal)
    return c


# --- counters ---------------------------------------------------------------------------


def test_counters_start_at_zero():
    assert Counters() == Counters(0, 0, 0, 0)


def test_created_counts_a_session():
    assert Counters().created().created() == Counters(num_sessions=2)


@pytest.mark.parametrize(
    "wait, goal, on_time",
    [
        (0, 0, 1),  # goal 0, paged at once
        (1, 0, 0),
        (59, 60, 1),
        (60, 60, 1),  # exactly at the goal is on time
        (61, 60, 0),  # one second over is late
        (86400, 86400, 1),
    ],
)
def test_first_page_on_time_boundary(wait, goal, on_time):
    c = Counters().first_page(T0, at(wait), goal)
    assert c == Counters(num_sessions=0, guests_served=1, on_time=on_time, total_wait=wait)


def test_first_page_with_notified_before_started_counts_no_wait():
    c = Counters().first_page(T0, at(-30), 10)
    assert c == Counters(guests_served=1, on_time=1, total_wait=0)


def test_first_page_ignores_sub_second_parts():
    c = Counters().first_page(T0, T0 + timedelta(seconds=60, microseconds=900_000), 60)
    assert (c.on_time, c.total_wait) == (1, 60)


# --- rounding and the figures -----------------------------------------------------------


@pytest.mark.parametrize(
    "num, den, expected",
    [
        (0, 1, 0),
        (1, 2, 1),  # 0.5 -> 1 (Python's round() would give 0)
        (3, 2, 2),  # 1.5 -> 2
        (5, 2, 3),  # 2.5 -> 3 (round() would give 2)
        (100, 8, 13),  # 12.5 -> 13
        (200, 3, 67),  # 66.67 -> 67
        (100, 3, 33),  # 33.33 -> 33
        (7, 3, 2),
        (8, 3, 3),
        (1, 200, 0),  # 0.005 -> 0
        (100, 200, 1),  # 0.5 -> 1
        (249, 100, 2),  # 2.49 -> 2
        (250, 100, 3),  # 2.5 -> 3
    ],
)
def test_round_half_up(num, den, expected):
    assert round_half_up(num, den) == expected


def test_figures_all_zero_when_none_served():
    assert figures(Counters(num_sessions=5)) == Figures(
        guests_served=0, percent_late=0, percent_on_time=0, average_time_served=0, num_sessions=5
    )


def test_figures_of_nothing():
    assert figures(Counters()) == Figures(0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "served, on_time, percent_on_time",
    [
        (1, 1, 100),
        (1, 0, 0),
        (8, 1, 13),  # 12.5 -> 13
        (8, 7, 88),  # 87.5 -> 88
        (3, 2, 67),
        (3, 1, 33),
        (6, 5, 83),
        (6, 1, 17),
        (200, 1, 1),  # 0.5 -> 1
        (201, 1, 0),  # 0.497 -> 0
        (40, 40, 100),
    ],
)
def test_percent_on_time_and_late(served, on_time, percent_on_time):
    f = figures(Counters(num_sessions=served, guests_served=served, on_time=on_time, total_wait=0))
    assert f.percent_on_time == percent_on_time
    assert f.percent_late == 100 - percent_on_time
    assert f.guests_served == served


@pytest.mark.parametrize(
    "served, total_wait, average",
    [
        (1, 285, 285),
        (2, 3, 2),  # 1.5 -> 2
        (2, 5, 3),  # 2.5 -> 3
        (2, 1, 1),  # 0.5 -> 1
        (3, 7, 2),  # 2.33 -> 2
        (3, 8, 3),  # 2.67 -> 3
        (4, 0, 0),
    ],
)
def test_average_time_served(served, total_wait, average):
    f = figures(Counters(guests_served=served, on_time=served, total_wait=total_wait))
    assert f.average_time_served == average


def test_figures_from_counters_built_page_by_page():
    # 1 on time of 8, waits 60 + 7 * 61 = 487 -> 60.875 -> 61
    c = counters_of((60, 60), *[(61, 60)] * 7, created=9)
    assert figures(c) == Figures(
        guests_served=8, percent_late=87, percent_on_time=13, average_time_served=61, num_sessions=9
    )


# --- statistics through the operations --------------------------------------------------


def test_num_sessions_counts_creation_not_paging():
    state = State(Device())
    apply(state, ops.create_or_update(state, 1, SessionPatch(), T0, "a", CFG))
    apply(state, ops.create_or_update(state, 2, SessionPatch(), T0, "b", CFG))
    assert figures(state.device.counters) == Figures(0, 0, 0, 0, num_sessions=2)


def test_updates_and_clears_do_not_count_sessions_again():
    state = State(Device())
    apply(state, ops.create_or_update(state, 1, SessionPatch(), T0, "a", CFG))
    apply(state, ops.create_or_update(state, 1, SessionPatch(goal=10), at(1), "ignored", CFG))
    apply(state, ops.update(state, 1, SessionPatch(label="x"), at(2), CFG))
    apply(state, ops.update(state, 1, SessionPatch(action="clear"), at(3), CFG))
    assert state.device.counters == Counters(num_sessions=1)


@pytest.mark.parametrize("wait, on_time", [(299, 1), (300, 1), (301, 0)])
def test_page_at_exactly_the_goal_is_on_time(wait, on_time):
    state = State(Device())
    serve(state, 66, goal=300, wait=wait)
    assert state.device.counters == Counters(
        num_sessions=1, guests_served=1, on_time=on_time, total_wait=wait
    )


def test_goal_changed_before_page_is_the_one_that_counts():
    state = State(Device())
    apply(state, ops.create_or_update(state, 66, SessionPatch(goal=60), T0, "u", CFG))
    apply(state, ops.update(state, 66, SessionPatch(goal=120), at(10), CFG))
    apply(state, ops.update(state, 66, SessionPatch(action="page"), at(100), CFG))
    assert state.device.counters.on_time == 1


def test_guests_served_counts_sessions_not_party_members():
    state = State(Device())
    serve(state, 1, goal=60, wait=30, party_size=4)
    serve(state, 2, goal=60, wait=90, party_size=12)
    f = figures(state.device.counters)
    assert f == Figures(
        guests_served=2, percent_late=50, percent_on_time=50, average_time_served=60, num_sessions=2
    )


def test_create_with_page_counts_served():
    state = State(Device())
    apply(state, ops.create_or_update(state, 66, SessionPatch(action="page"), T0, "u", CFG))
    assert state.device.counters == Counters(
        num_sessions=1, guests_served=1, on_time=1, total_wait=0
    )


def test_repage_does_not_count_again():
    state = State(Device())
    serve(state, 66, goal=60, wait=30)
    before = state.device.counters
    outcome = ops.update(state, 66, SessionPatch(action="page"), at(500), CFG)
    assert outcome.change is not None
    assert outcome.change.device.counters == before


def test_clear_and_remove_do_not_feed_statistics():
    state = State(Device())
    apply(state, ops.create_or_update(state, 1, SessionPatch(), T0, "a", CFG))
    apply(state, ops.create_or_update(state, 2, SessionPatch(), T0, "b", CFG))
    apply(state, ops.update(state, 1, SessionPatch(action="clear"), at(10), CFG))
    apply(state, ops.remove(state, 2, at(10), CFG))
    assert figures(state.device.counters) == Figures(0, 0, 0, 0, num_sessions=2)


def test_mixed_figures_through_operations():
    state = State(Device())
    serve(state, 1, goal=60, wait=60)  # on time
    serve(state, 2, goal=60, wait=61)  # late
    serve(state, 3, goal=600, wait=0)  # on time
    apply(state, ops.create_or_update(state, 4, SessionPatch(), T0, "d", CFG))  # never paged
    assert figures(state.device.counters) == Figures(
        guests_served=3, percent_late=33, percent_on_time=67, average_time_served=40, num_sessions=4
    )


# --- clear_statistics -------------------------------------------------------------------


def test_clear_statistics_resets_counters_and_bumps_generation():
    state = State(Device(global_sequence=17, statistics_generation=3))
    serve(state, 66, goal=60, wait=30)
    active_before = dict(state.active)
    outcome = ops.clear_statistics(state, at(1000))
    change = outcome.change
    assert change is not None
    assert change.statistics_cleared is True
    assert change.device.counters == Counters()
    assert change.device.statistics_generation == 4
    assert change.device.clear_mark_since == at(1000)
    # not a session change
    assert change.device.global_sequence == state.device.global_sequence == 19
    assert change.saved == () and change.archived == () and change.transmissions == ()
    change.apply(state)
    assert state.active == active_before
    assert figures(state.device.counters) == Figures(0, 0, 0, 0, 0)


def test_clear_statistics_on_empty_counters_still_bumps_generation():
    state = State(Device())
    change = ops.clear_statistics(state, T0).change
    assert change is not None
    assert change.device.statistics_generation == 1


def test_session_created_before_clear_counts_served_after_it():
    state = State(Device())
    apply(state, ops.create_or_update(state, 66, SessionPatch(goal=60), T0, "u", CFG))
    apply(state, ops.clear_statistics(state, at(10)))
    apply(state, ops.update(state, 66, SessionPatch(action="page"), at(20), CFG))
    assert state.device.counters == Counters(
        num_sessions=0, guests_served=1, on_time=1, total_wait=20
    )


# --- clear_due --------------------------------------------------------------------------

D1 = datetime(2024, 3, 15)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)


def hms(day: datetime, h: int, m: int = 0, s: int = 0) -> datetime:
    return day.replace(hour=h, minute=m, second=s)


@pytest.mark.parametrize(
    "since, now, mark, due",
    [
        (hms(D1, 4), hms(D1, 4, 59, 59), 5, False),  # the hour is not reached
        (hms(D1, 4), hms(D1, 5), 5, True),  # exactly the hour
        (hms(D1, 4), hms(D1, 5, 0, 1), 5, True),
        (hms(D1, 5), hms(D1, 5), 5, False),  # cleared at the hour itself
        (hms(D1, 5), hms(D2, 4, 59, 59), 5, False),
        (hms(D1, 5), hms(D2, 5), 5, True),  # a day later
        (hms(D1, 6), hms(D1, 23, 59, 59), 5, False),  # since is after today's mark
        (hms(D1, 6), hms(D3, 3), 5, True),  # days skipped: D2 05:00 passed
        (hms(D1, 23, 59, 59), hms(D2, 0), 0, True),  # mark 0 is midnight
        (hms(D1, 23, 59, 59), hms(D1, 23, 59, 59), 0, False),
        (hms(D1, 22), hms(D1, 23), 23, True),
        (hms(D1, 23), hms(D2, 22, 59, 59), 23, False),
        (hms(D1, 0), hms(D3, 12), NEVER, False),  # 24 never clears
        (datetime(2000, 1, 1), hms(D1, 12), NEVER, False),
    ],
)
def test_clear_due(since, now, mark, due):
    assert clear_due(since, now, mark) is due


def test_never_is_24():
    assert NEVER == 24


# --- the clear mark through maintenance -------------------------------------------------


def state_with_counters(mark: int, since: datetime | None) -> State:
    dev = Device(
        counters=Counters(num_sessions=3, guests_served=2, on_time=1, total_wait=100),
        statistics_generation=5,
        clear_mark_since=since,
        settings=Settings(clear_mark=mark),
        global_sequence=10,
    )
    return State(dev)


def test_maintenance_does_not_clear_before_the_mark_hour():
    state = state_with_counters(5, hms(D1, 12))
    assert ops.maintenance(state, hms(D2, 4, 59, 59), CFG) is None


def test_maintenance_clears_at_the_mark_hour():
    state = state_with_counters(5, hms(D1, 12))
    change = ops.maintenance(state, hms(D2, 5), CFG)
    assert change is not None
    assert change.statistics_cleared is True
    assert change.device.counters == Counters()
    assert change.device.statistics_generation == 6
    assert change.device.clear_mark_since == hms(D2, 5)
    assert change.device.global_sequence == 10


def test_maintenance_clears_once_per_day():
    state = state_with_counters(5, hms(D1, 12))
    state.device = ops.maintenance(state, hms(D2, 5), CFG).device
    assert ops.maintenance(state, hms(D2, 5, 0, 1), CFG) is None
    assert ops.maintenance(state, hms(D2, 23, 59, 59), CFG) is None
    assert ops.maintenance(state, hms(D3, 4, 59, 59), CFG) is None
    change = ops.maintenance(state, hms(D3, 5), CFG)
    assert change is not None and change.statistics_cleared
    assert change.device.statistics_generation == 7


def test_maintenance_with_mark_24_never_clears():
    state = state_with_counters(NEVER, hms(D1, 0))
    for now in (hms(D1, 5), hms(D2, 0), hms(D3, 23, 59, 59)):
        assert ops.maintenance(state, now, CFG) is None


def test_fresh_store_initialises_the_mark_without_clearing():
    state = state_with_counters(5, None)
    counters = state.device.counters
    change = ops.maintenance(state, hms(D1, 5), CFG)
    assert change is not None
    assert change.statistics_cleared is False
    assert change.device.clear_mark_since == hms(D1, 5)
    assert change.device.counters == counters
    assert change.device.statistics_generation == 5
    change.apply(state)
    # and from then on the mark counts from the first start
    assert ops.maintenance(state, hms(D2, 4, 59, 59), CFG) is None
    assert ops.maintenance(state, hms(D2, 5), CFG).statistics_cleared is True


def test_setting_the_mark_does_not_clear_for_an_hour_already_passed():
    state = state_with_counters(NEVER, hms(D1, 0))
    now = hms(D1, 12)
    change = ops.update_settings(state, SettingsPatch(clear_mark=5), now).change
    assert change.statistics_cleared is False
    assert change.device.counters == state.device.counters
    assert change.device.clear_mark_since == now
    change.apply(state)
    # 05:00 today is after the old `since` (00:00) but before the change: no clear
    assert ops.maintenance(state, hms(D1, 12, 0, 1), CFG) is None
    assert ops.maintenance(state, hms(D2, 4, 59, 59), CFG) is None
    assert ops.maintenance(state, hms(D2, 5), CFG).statistics_cleared is True


def test_setting_the_same_mark_again_keeps_since():
    state = state_with_counters(5, hms(D1, 0))
    # no change at all (spec §8): nothing to commit, and `since` stays where it was
    assert ops.update_settings(state, SettingsPatch(clear_mark=5), hms(D1, 4)).change is None
    assert state.device.clear_mark_since == hms(D1, 0)


def test_setting_the_clock_past_the_mark_does_not_clear():
    state = state_with_counters(5, hms(D1, 0))
    new_time = hms(D1, 6)
    change = ops.update_settings(state, SettingsPatch(datetime=new_time), hms(D1, 4)).change
    assert change.statistics_cleared is False
    assert change.device.clear_mark_since == new_time
    change.apply(state)
    assert ops.maintenance(state, hms(D1, 6, 0, 1), CFG) is None
    assert ops.maintenance(state, hms(D2, 5), CFG).statistics_cleared is True


def test_manual_clear_moves_the_mark_origin():
    state = state_with_counters(5, hms(D1, 0))
    apply(state, ops.clear_statistics(state, hms(D1, 6)))
    assert ops.maintenance(state, hms(D1, 7), CFG) is None


class TestNextDue:
    """operations.next_due: the first moment maintenance could act, so readers may skip it."""

    def test_never_without_mark_or_auto_page(self):
        state = State(Device(clear_mark_since=T0))
        assert ops.next_due(state, CFG) is None

    def test_fresh_store_is_due_at_once(self):
        assert ops.next_due(State(Device()), CFG) == datetime.min

    @pytest.mark.parametrize(
        "since,mark,expected",
        [
            (datetime(2024, 3, 15, 4, 59, 59), 5, datetime(2024, 3, 15, 5, 0, 0)),
            (datetime(2024, 3, 15, 5, 0, 0), 5, datetime(2024, 3, 16, 5, 0, 0)),
            (datetime(2024, 3, 15, 23, 0, 0), 0, datetime(2024, 3, 16, 0, 0, 0)),
        ],
    )
    def test_next_clear_mark(self, since, mark, expected):
        state = State(Device(clear_mark_since=since, settings=Settings(clear_mark=mark)))
        assert ops.next_due(state, CFG) == expected
        # consistent with clear_due: not due just before, due exactly then
        assert not clear_due(since, expected - timedelta(seconds=1), mark)
        assert clear_due(since, expected, mark)

    def test_earliest_auto_page_goal(self):
        cfg = DeviceRules(auto_page_at_goal=True)
        state = State(Device(clear_mark_since=T0))
        ops.create_or_update(state, 1, SessionPatch(goal=90), T0, "u1", cfg).change.apply(state)
        ops.create_or_update(state, 2, SessionPatch(goal=30), at(10), "u2", cfg).change.apply(state)
        assert ops.next_due(state, cfg) == at(40)
        assert ops.next_due(state, CFG) is None  # auto-page off: goals are not due dates
        assert ops.maintenance(state, at(39), cfg) is None
        assert ops.maintenance(state, at(40), cfg) is not None
