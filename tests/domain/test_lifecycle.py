"""Session lifecycle (spec §3, §4.1, §4.2, §5, §9) through the pure operations.

Every operation is a pure function of (state, input, now); the tests advance the state with
`Change.apply`, as the shell does after committing.
"""

from datetime import datetime, timedelta

import pytest

from pager.domain import operations as ops
from pager.domain.errors import NoActiveSession
from pager.domain.model import REMOVED, STOP, Archived, Change, Device, Session, Settings, State
from pager.domain.operations import DeviceRules, PageRequest, SessionPatch, SettingsPatch
from pager.domain.pagemodes import AlertCode
from pager.domain.statistics import Counters
from tests.domain.conftest import apply, seconds_after

T0 = datetime(2018, 3, 15, 11, 55, 20)
CFG = DeviceRules()


at = seconds_after(T0)


def create(
    state: State, number: int, now: datetime = T0, cfg: DeviceRules = CFG, **patch
) -> ops.Outcome:
    return apply(
        state,
        ops.create_or_update(
            state,
            number,
            SessionPatch(**patch),
            now,
            f"uuid-{number}-{state.device.next_session_id}",
            cfg,
        ),
    )


def put(
    state: State, number: int, now: datetime = T0, cfg: DeviceRules = CFG, **patch
) -> ops.Outcome:
    return apply(state, ops.update(state, number, SessionPatch(**patch), now, cfg))


def fresh(**settings) -> State:
    return State(Device(settings=Settings(**settings)))


# --- create -----------------------------------------------------------------------------


def test_create_with_defaults():
    state = fresh(default_goal=120)
    outcome = ops.create_or_update(state, 66, SessionPatch(), T0, "947fbd21", CFG)
    s = outcome.session
    assert outcome.created is True
    assert s == Session(
        id=1,
        sequence=1,
        uuid="947fbd21",
        number=66,
        party_size=1,
        goal=120,
        created=T0,
        notified=None,
        label=None,
    )
    assert s.state == "started"
    assert outcome.transmission is None
    change = outcome.change
    assert change.saved == (s,)
    assert change.archived == () and change.transmissions == ()
    assert change.device.global_sequence == 1
    assert change.device.next_session_id == 2
    assert change.device.counters == Counters(num_sessions=1)
    assert change.settings_changed is False and change.statistics_cleared is False
    # pure: nothing happened to the state until the change is applied
    assert state.active == {} and state.device == Device(settings=Settings(default_goal=120))
    change.apply(state)
    assert state.active == {66: s}
    assert state.device == change.device


def test_default_goal_is_read_from_the_settings_at_creation():
    state = fresh()
    assert create(state, 1).session.goal == 300
    apply(state, ops.update_settings(state, SettingsPatch(default_goal=45), T0))
    assert create(state, 2).session.goal == 45
    assert state.active[1].goal == 300  # existing sessions keep theirs


def test_create_with_every_field():
    state = fresh()
    s = create(state, 66, goal=60, label="Sarah", party_size=4).session
    assert (s.goal, s.label, s.party_size, s.number) == (60, "Sarah", 4, 66)
    assert s.created == T0 and s.notified is None and s.state == "started"


def test_create_with_action_page():
    state = State(Device(settings=Settings(system_id=7)))
    outcome = ops.create_or_update(state, 66, SessionPatch(action="page", goal=60), T0, "u", CFG)
    s = outcome.session
    assert outcome.created is True
    assert s.state == "paged"
    assert s.notified == T0 and s.created == T0
    change = outcome.change
    assert change.saved == (s,)  # one session change, not two
    assert s.sequence == 1 and change.device.global_sequence == 1
    assert change.device.counters == Counters(
        num_sessions=1, guests_served=1, on_time=1, total_wait=0
    )
    (tx,) = change.transmissions
    assert (
        tx.id,
        tx.time,
        tx.number,
        tx.system_id,
        tx.page_mode,
        tx.message,
        tx.override_codes,
        tx.session_id,
    ) == (1, T0, 66, 7, "Flash30Sec", None, (), 1)
    assert change.device.next_transmission_id == 2


def test_create_with_action_page_mode_and_message():
    state = fresh()
    outcome = create(
        state, 66, action="page", page_mode="Glow5Min", message="Your table is ready!\fF30Vv5"
    )
    (tx,) = outcome.change.transmissions
    assert tx.page_mode == "Glow5Min"
    assert tx.message == "Your table is ready!"
    assert tx.override_codes == (AlertCode("F", 30), AlertCode("V", None), AlertCode("v", 5))


def test_page_mode_without_action_page_transmits_nothing():
    state = fresh()
    outcome = create(state, 66, page_mode="Vibe2", message="hi")
    assert outcome.change.transmissions == ()
    assert outcome.session.state == "started"


@pytest.mark.parametrize("action", ["clear", "remove"])
def test_post_clear_or_remove_without_active_session(action):
    state = fresh()
    with pytest.raises(NoActiveSession) as exc:
        ops.create_or_update(state, 66, SessionPatch(action=action), T0, "u", CFG)
    assert exc.value.number == 66
    assert exc.value.field == "number"
    assert exc.value.message == "no active session for number 66"
    assert state.device.next_session_id == 1  # no id was spent


# --- update -----------------------------------------------------------------------------


def test_post_on_active_session_is_a_partial_update():
    state = fresh()
    first = create(state, 66, goal=60, label="Sarah", party_size=4).session
    outcome = ops.create_or_update(state, 66, SessionPatch(party_size=5), at(5), "other-uuid", CFG)
    s = outcome.session
    assert outcome.created is False
    assert s == Session(
        id=first.id,
        sequence=2,
        uuid=first.uuid,
        number=66,
        party_size=5,
        goal=60,
        created=T0,
        notified=None,
        label="Sarah",
    )
    assert outcome.change.saved == (s,)
    assert outcome.change.device.counters.num_sessions == 1
    assert outcome.change.device.next_session_id == 2


@pytest.mark.parametrize(
    "patch, expected",
    [
        (dict(goal=90), dict(goal=90, label="Sarah", party_size=4)),
        (dict(label="Yuri."), dict(goal=60, label="Yuri.", party_size=4)),
        (dict(party_size=3), dict(goal=60, label="Sarah", party_size=3)),
        (dict(label=None), dict(goal=60, label=None, party_size=4)),
        (dict(goal=0, label=None, party_size=999), dict(goal=0, label=None, party_size=999)),
    ],
)
def test_put_changes_only_the_given_fields(patch, expected):
    state = fresh()
    create(state, 66, goal=60, label="Sarah", party_size=4)
    outcome = ops.update(state, 66, SessionPatch(**patch), at(5), CFG)
    s = outcome.session
    assert dict(goal=s.goal, label=s.label, party_size=s.party_size) == expected
    assert (s.id, s.created, s.notified, s.state) == (1, T0, None, "started")
    assert s.sequence == 2
    assert outcome.created is False
    assert outcome.change.saved == (s,)
    assert outcome.change.device.global_sequence == 2
    assert outcome.change.transmissions == ()


def test_put_on_missing_session():
    state = fresh()
    with pytest.raises(NoActiveSession) as exc:
        ops.update(state, 66, SessionPatch(goal=60), T0, CFG)
    assert exc.value.number == 66 and exc.value.field == "number"


def test_put_on_another_number_does_not_find_the_session():
    state = fresh()
    create(state, 66)
    with pytest.raises(NoActiveSession):
        ops.update(state, 67, SessionPatch(action="page"), T0, CFG)


@pytest.mark.parametrize(
    "patch",
    [
        dict(),
        dict(goal=60),
        dict(label="Sarah"),
        dict(goal=60, label="Sarah", party_size=4),
        dict(page_mode="Vibe1", message="no action, so nothing is sent"),
    ],
)
@pytest.mark.parametrize("via", ["put", "post"])
def test_noop_update_changes_nothing(patch, via):
    state = fresh()
    before = create(state, 66, goal=60, label="Sarah", party_size=4).session
    if via == "put":
        outcome = ops.update(state, 66, SessionPatch(**patch), at(5), CFG)
    else:
        outcome = ops.create_or_update(state, 66, SessionPatch(**patch), at(5), "u2", CFG)
    assert outcome.change is None
    assert outcome.session == before  # same sequence: no step
    assert outcome.created is False
    assert state.device.global_sequence == 1


def test_label_none_on_unlabelled_session_is_a_noop():
    state = fresh()
    create(state, 66)
    assert ops.update(state, 66, SessionPatch(label=None), at(1), CFG).change is None


# --- page and re-page -------------------------------------------------------------------


def test_page_sets_notified_and_feeds_statistics():
    state = fresh()
    create(state, 66, goal=60)
    outcome = ops.update(state, 66, SessionPatch(action="page"), at(45), CFG)
    s = outcome.session
    assert s.notified == at(45) and s.state == "paged"
    assert s.created == T0
    assert s.sequence == 2
    change = outcome.change
    assert change.saved == (s,)
    assert change.device.global_sequence == 2
    assert change.device.counters == Counters(
        num_sessions=1, guests_served=1, on_time=1, total_wait=45
    )
    (tx,) = change.transmissions
    assert (tx.id, tx.time, tx.number, tx.session_id, tx.page_mode) == (
        1,
        at(45),
        66,
        1,
        "Flash30Sec",
    )


def test_page_with_field_changes_is_one_sequence_step():
    state = fresh()
    create(state, 66, goal=60)
    outcome = ops.update(state, 66, SessionPatch(action="page", label="Ann", goal=30), at(45), CFG)
    s = outcome.session
    assert (s.label, s.goal, s.notified, s.sequence) == ("Ann", 30, at(45), 2)
    # the goal given in the same request is the one the page is measured against
    assert outcome.change.device.counters == Counters(
        num_sessions=1, guests_served=1, on_time=0, total_wait=45
    )


def test_page_through_post_on_active_session():
    state = fresh()
    create(state, 66)
    outcome = ops.create_or_update(state, 66, SessionPatch(action="page"), at(10), "u2", CFG)
    assert outcome.created is False
    assert outcome.session.notified == at(10)
    assert outcome.session.sequence == 2


def test_page_uses_the_given_mode_message_and_the_system_id_setting():
    state = State(Device(settings=Settings(system_id=42)))
    create(state, 66)
    outcome = put(state, 66, at(10), action="page", page_mode="FlashBeep5x5", message="Table 4\fB3")
    (tx,) = outcome.change.transmissions
    assert (tx.page_mode, tx.message, tx.override_codes, tx.system_id) == (
        "FlashBeep5x5",
        "Table 4",
        (AlertCode("B", 3),),
        42,
    )


def test_repage_retransmits_and_changes_neither_notified_nor_statistics():
    state = fresh()
    create(state, 66, goal=60)
    put(state, 66, at(45), action="page")
    counters = state.device.counters
    outcome = ops.update(
        state, 66, SessionPatch(action="page", page_mode="Beep3Times"), at(100), CFG
    )
    change = outcome.change
    assert change is not None
    (tx,) = change.transmissions
    assert (tx.id, tx.time, tx.session_id, tx.page_mode) == (2, at(100), 1, "Beep3Times")
    assert change.device.next_transmission_id == 3
    assert change.device.counters == counters
    assert outcome.session.notified == at(45)
    assert outcome.session.state == "paged"
    change.apply(state)
    assert state.active[66].notified == at(45)


@pytest.mark.parametrize("via", ["put", "post"])
def test_repage_is_a_session_change_with_a_sequence_step(via):
    # spec §3.1: a later page "changes nothing else except sessionSequence";
    # spec §5: globalSessionSequence increases by one for every ... page, re-page ...
    state = fresh()
    create(state, 66, goal=60)
    put(state, 66, at(45), action="page")
    assert state.device.global_sequence == 2
    if via == "put":
        outcome = ops.update(state, 66, SessionPatch(action="page"), at(100), CFG)
    else:
        outcome = ops.create_or_update(state, 66, SessionPatch(action="page"), at(100), "u", CFG)
    change = outcome.change
    assert change.device.global_sequence == 3
    assert outcome.session.sequence == 3
    assert change.saved == (outcome.session,)  # so observers get a sessions notification
    assert outcome.session.notified == at(45)


def test_staff_pagers_default_to_vibe1_and_guests_to_flash30sec():
    cfg = DeviceRules(staff_pagers=frozenset({900, 901}))
    state = fresh()
    create(state, 66, cfg=cfg)
    create(state, 900, cfg=cfg)
    guest = put(state, 66, at(1), cfg=cfg, action="page").change.transmissions[0]
    staff = put(state, 900, at(1), cfg=cfg, action="page").change.transmissions[0]
    assert guest.page_mode == "Flash30Sec"
    assert staff.page_mode == "Vibe1"


def test_staff_pager_given_mode_wins():
    cfg = DeviceRules(staff_pagers=frozenset({900}))
    state = fresh()
    outcome = create(state, 900, cfg=cfg, action="page", page_mode="Glow15Times")
    assert outcome.change.transmissions[0].page_mode == "Glow15Times"


# --- clear and remove -------------------------------------------------------------------


@pytest.mark.parametrize("action, clear_type", [("clear", STOP), ("remove", REMOVED)])
@pytest.mark.parametrize("via", ["put", "post"])
def test_clear_or_remove_action_archives(action, clear_type, via):
    state = fresh()
    created = create(state, 66, goal=60, label="Sarah").session
    put(state, 66, at(30), action="page")
    if via == "put":
        outcome = ops.update(state, 66, SessionPatch(action=action), at(90), CFG)
    else:
        outcome = ops.create_or_update(state, 66, SessionPatch(action=action), at(90), "u2", CFG)
    a = outcome.session
    assert isinstance(a, Archived)
    assert outcome.created is False
    assert a.clear_type == clear_type
    assert a.cleared == at(90)
    assert a.state == "cleared"
    assert a.session.id == created.id and a.session.uuid == created.uuid
    assert a.session.notified == at(30)
    assert a.session.sequence == 3
    change = outcome.change
    assert change.archived == (a,) and change.saved == () and change.transmissions == ()
    assert change.device.global_sequence == 3
    counters = state.device.counters
    assert change.device.counters == counters
    change.apply(state)
    assert state.active == {}


def test_clear_of_a_started_session_keeps_it_unpaged():
    state = fresh()
    create(state, 66)
    a = put(state, 66, at(10), action="clear").session
    assert a.session.notified is None
    assert a.session.state == "started"  # the live-session view; the archive says cleared
    assert a.state == "cleared"
    assert state.device.counters == Counters(num_sessions=1)


def test_clear_with_field_changes_archives_the_updated_session():
    state = fresh()
    create(state, 66, label="Sarah")
    a = put(state, 66, at(10), action="clear", label="Ann").session
    assert a.session.label == "Ann"
    assert a.session.sequence == 2


def test_remove_operation():
    state = fresh()
    create(state, 66)
    create(state, 67)
    outcome = ops.remove(state, 66, at(5), CFG)
    a = outcome.session
    assert (a.clear_type, a.cleared, a.session.id, a.session.sequence) == (REMOVED, at(5), 1, 3)
    assert outcome.change.archived == (a,)
    assert outcome.change.device.global_sequence == 3
    outcome.change.apply(state)
    assert list(state.active) == [67]


@pytest.mark.parametrize(
    "call",
    [
        lambda s: ops.remove(s, 66, at(100), CFG),
        lambda s: ops.update(s, 66, SessionPatch(action="clear"), at(100), CFG),
        lambda s: ops.update(s, 66, SessionPatch(action="page"), at(100), CFG),
        lambda s: ops.update(s, 66, SessionPatch(label="x"), at(100), CFG),
        lambda s: ops.create_or_update(s, 66, SessionPatch(action="remove"), at(100), "u", CFG),
    ],
)
def test_after_archiving_there_is_no_active_session(call):
    state = fresh()
    create(state, 66)
    put(state, 66, at(10), action="clear")
    with pytest.raises(NoActiveSession):
        call(state)


def test_remove_missing_session():
    with pytest.raises(NoActiveSession) as exc:
        ops.remove(fresh(), 5, T0, CFG)
    assert exc.value.number == 5 and exc.value.field == "number"


def test_create_after_clear_starts_a_new_session():
    state = fresh()
    create(state, 66, label="old")
    put(state, 66, at(10), action="clear")
    outcome = create(state, 66, at(20))
    s = outcome.session
    assert outcome.created is True
    assert (s.id, s.sequence, s.label, s.created, s.state) == (2, 3, None, at(20), "started")
    assert state.device.counters.num_sessions == 2


# --- remove_all -------------------------------------------------------------------------


def sess(id_: int, number: int, sequence: int) -> Session:
    return Session(
        id=id_,
        sequence=sequence,
        uuid=f"u{id_}",
        number=number,
        party_size=1,
        goal=300,
        created=T0,
        notified=None,
        label=None,
    )


def test_remove_all_clears_by_id_one_step_each():
    # the dict's order (by number, as inserted) deliberately differs from the id order
    state = State(
        Device(global_sequence=20, next_session_id=8),
        active={3: sess(7, 3, 20), 1: sess(5, 1, 12), 2: sess(6, 2, 15)},
    )
    outcome = ops.remove_all(state, at(60))
    change = outcome.change
    assert [a.session.id for a in change.archived] == [5, 6, 7]
    assert [a.session.sequence for a in change.archived] == [21, 22, 23]
    assert all(a.clear_type == STOP and a.cleared == at(60) for a in change.archived)
    assert change.device.global_sequence == 23
    assert change.saved == () and change.transmissions == ()
    assert [a.session.id for a in change.session_events] == [5, 6, 7]
    change.apply(state)
    assert state.active == {}
    assert state.device.next_session_id == 8


def test_remove_all_with_nothing_active_changes_nothing():
    assert ops.remove_all(fresh(), T0).change is None


# --- ids and sequence numbers -----------------------------------------------------------


def test_session_ids_are_sequential_and_never_reused():
    state = fresh()
    ids = []
    for i in range(3):
        ids.append(create(state, 66, at(i * 10)).session.id)
        apply(state, ops.remove(state, 66, at(i * 10 + 5), CFG))
    ids.append(create(state, 1).session.id)
    ids.append(create(state, 2).session.id)
    apply(state, ops.remove_all(state, at(100)))
    ids.append(create(state, 1).session.id)
    assert ids == [1, 2, 3, 4, 5, 6]
    assert state.device.next_session_id == 7


def test_session_ids_continue_from_the_stored_counter():
    state = State(Device(next_session_id=41, global_sequence=116))
    s = create(state, 66).session
    assert (s.id, s.sequence) == (41, 117)
    assert state.device.next_session_id == 42


def test_global_sequence_rises_by_one_per_changed_session():
    state = fresh()
    steps = []

    def step(outcome: ops.Outcome) -> None:
        before = state.device.global_sequence
        if outcome.change is not None:
            outcome.change.apply(state)
        steps.append(state.device.global_sequence - before)

    step(ops.create_or_update(state, 1, SessionPatch(), T0, "a", CFG))  # create
    step(ops.update(state, 1, SessionPatch(goal=10), at(1), CFG))  # update
    step(ops.update(state, 1, SessionPatch(goal=10), at(2), CFG))  # no-op
    step(ops.update(state, 1, SessionPatch(action="page"), at(3), CFG))  # page
    step(
        ops.create_or_update(state, 2, SessionPatch(action="page"), at(4), "b", CFG)
    )  # create+page
    step(ops.create_or_update(state, 3, SessionPatch(), at(5), "c", CFG))  # create
    step(ops.page(state, PageRequest(3), at(6), CFG))  # standalone page
    step(ops.update_settings(state, SettingsPatch(system_id=3), at(7)))  # settings
    step(ops.clear_statistics(state, at(8)))  # statistics
    step(ops.update(state, 1, SessionPatch(action="clear"), at(9), CFG))  # clear
    step(ops.create_or_update(state, 4, SessionPatch(), at(10), "d", CFG))  # create
    step(ops.remove(state, 4, at(11), CFG))  # remove
    step(ops.create_or_update(state, 5, SessionPatch(), at(12), "e", CFG))  # create
    step(ops.remove_all(state, at(13)))  # 3 removed
    assert steps == [1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 3]
    assert state.device.global_sequence == 12


def test_session_sequence_is_the_global_value_of_its_latest_change():
    state = fresh()
    create(state, 1)
    create(state, 2)
    s = put(state, 1, at(1), label="x").session
    assert s.sequence == 3 == state.device.global_sequence
    assert state.active[2].sequence == 2


# --- Change.apply and session_events ----------------------------------------------------


def test_change_apply_replaces_the_device_and_the_sessions():
    state = State(Device(), active={1: sess(1, 1, 1), 2: sess(2, 2, 2)})
    updated = sess(1, 1, 3)
    new = sess(3, 7, 4)
    archived = Archived(sess(2, 2, 5), at(1), STOP)
    dev = Device(global_sequence=5, next_session_id=4)
    Change(dev, saved=(updated, new), archived=(archived,)).apply(state)
    assert state.device is dev
    assert state.active == {1: updated, 7: new}


def test_session_events_are_in_sequence_order():
    a1 = Archived(sess(1, 1, 4), at(1), STOP)
    s2 = sess(2, 2, 3)
    s3 = sess(3, 3, 5)
    change = Change(Device(), saved=(s3, s2), archived=(a1,))
    assert change.session_events == [s2, a1, s3]


# --- standalone page --------------------------------------------------------------------


def test_standalone_page_creates_no_session():
    state = State(
        Device(
            global_sequence=9,
            next_session_id=4,
            next_transmission_id=12,
            counters=Counters(num_sessions=3, guests_served=2, on_time=2, total_wait=8),
            settings=Settings(system_id=17),
        )
    )
    outcome = ops.page(state, PageRequest(66), at(5), CFG)
    change = outcome.change
    tx = outcome.transmission
    assert change is not None
    assert change.transmissions == (tx,)
    assert (
        tx.id,
        tx.time,
        tx.number,
        tx.system_id,
        tx.page_mode,
        tx.message,
        tx.override_codes,
        tx.session_id,
    ) == (12, at(5), 66, 17, "Flash30Sec", None, (), None)
    assert change.saved == () and change.archived == ()
    assert change.settings_changed is False and change.statistics_cleared is False
    assert change.device.global_sequence == 9
    assert change.device.counters == state.device.counters
    assert change.device.next_session_id == 4
    assert change.device.next_transmission_id == 13
    assert outcome.session is None and outcome.created is False


def test_standalone_page_to_a_number_with_an_active_session_leaves_it_alone():
    state = fresh()
    s = create(state, 66).session
    outcome = apply(state, ops.page(state, PageRequest(66), at(10), CFG))
    assert state.active[66] == s
    assert s.state == "started"
    assert outcome.transmission.session_id is None
    assert state.device.counters == Counters(num_sessions=1)


def test_standalone_page_with_every_field():
    state = fresh()
    tx = ops.page(
        state,
        PageRequest(66, page_mode="VibeBeep2", message="Call the kitchen\fV2", system_id=200),
        T0,
        CFG,
    ).transmission
    assert (tx.system_id, tx.page_mode, tx.message, tx.override_codes) == (
        200,
        "VibeBeep2",
        "Call the kitchen",
        (AlertCode("V", 2),),
    )


def test_standalone_page_system_id_zero_is_not_the_default():
    state = State(Device(settings=Settings(system_id=17)))
    assert ops.page(state, PageRequest(66, system_id=0), T0, CFG).transmission.system_id == 0


def test_standalone_page_defaults_by_staff_pagers():
    cfg = DeviceRules(staff_pagers=frozenset({900}))
    state = fresh()
    assert ops.page(state, PageRequest(900), T0, cfg).transmission.page_mode == "Vibe1"
    assert ops.page(state, PageRequest(66), T0, cfg).transmission.page_mode == "Flash30Sec"


def test_transmission_ids_are_shared_by_session_and_standalone_pages():
    state = fresh()
    create(state, 66, action="page")
    apply(state, ops.page(state, PageRequest(5), at(1), CFG))
    tx = put(state, 66, at(2), action="page").change.transmissions[0]
    assert tx.id == 3
    assert state.device.next_transmission_id == 4


# --- settings ---------------------------------------------------------------------------


def test_update_settings_is_partial():
    state = State(
        Device(
            settings=Settings(system_id=3, default_goal=120, clear_mark=5),
            global_sequence=8,
            clock_offset=60,
        )
    )
    outcome = ops.update_settings(state, SettingsPatch(default_goal=600), T0)
    change = outcome.change
    assert change.device.settings == Settings(system_id=3, default_goal=600, clear_mark=5)
    assert change.settings_changed is True
    assert change.device.global_sequence == 8
    assert change.device.clock_offset == 60
    assert change.saved == () and change.archived == () and change.transmissions == ()


def test_update_settings_all_fields():
    state = fresh()
    change = ops.update_settings(
        state, SettingsPatch(system_id=255, default_goal=0, clear_mark=0), T0
    ).change
    assert change.device.settings == Settings(system_id=255, default_goal=0, clear_mark=0)


def test_empty_settings_update_changes_nothing():
    """Spec §8: a settings request that changes nothing is no change, and notifies nobody."""
    assert ops.update_settings(fresh(), SettingsPatch(), T0).change is None


@pytest.mark.parametrize(
    "patch",
    [
        SettingsPatch(system_id=0, default_goal=300, clear_mark=24),
        SettingsPatch(default_goal=300),
    ],
    ids=repr,
)
def test_settings_update_to_the_same_values_changes_nothing(patch):
    state = fresh()
    assert ops.update_settings(state, patch, T0).change is None


def test_setting_the_clock_to_the_time_it_shows_notifies_nobody():
    """It restarts the count of the statistics clear mark, as any setting of the clock does,
    but neither a setting nor the clock moved: no settings notification."""
    state = State(Device(clock_offset=100, clear_mark_since=T0 - timedelta(hours=1)))
    change = ops.update_settings(state, SettingsPatch(datetime=T0), T0).change
    assert change is not None and change.settings_changed is False
    assert change.device.clock_offset == 100 and change.device.clear_mark_since == T0


@pytest.mark.parametrize(
    "patch",
    [SettingsPatch(system_id=1), SettingsPatch(clear_mark=3), SettingsPatch(datetime=at(1))],
    ids=repr,
)
def test_a_settings_update_that_changes_one_value_notifies(patch):
    change = ops.update_settings(fresh(), patch, T0).change
    assert change is not None and change.settings_changed is True


@pytest.mark.parametrize(
    "offset, now, new, expected_offset",
    [
        (0, T0, T0 + timedelta(hours=1, minutes=30), 5400),
        (5400, T0, T0 - timedelta(minutes=30), 3600),
        (100, T0, T0, 100),
        (0, T0, T0 - timedelta(days=1), -86400),
    ],
)
def test_setting_datetime_moves_the_clock_offset_by_the_difference(
    offset, now, new, expected_offset
):
    state = State(Device(clock_offset=offset))
    change = ops.update_settings(state, SettingsPatch(datetime=new), now).change
    assert change.device.clock_offset == expected_offset
    assert change.device.clear_mark_since == new
    assert change.device.global_sequence == 0


def test_settings_do_not_touch_sessions_or_statistics():
    state = fresh()
    create(state, 66, action="page")
    before = (state.device.counters, state.device.statistics_generation, dict(state.active))
    apply(state, ops.update_settings(state, SettingsPatch(system_id=1, clear_mark=3), at(1)))
    assert (state.device.counters, state.device.statistics_generation, state.active) == before


# --- maintenance: auto_page_at_goal -----------------------------------------------------

AUTO = DeviceRules(auto_page_at_goal=True)


def auto_state() -> State:
    # clear_mark_since set, so maintenance has nothing to initialise
    return State(Device(clear_mark_since=T0 - timedelta(hours=1)))


def test_auto_page_not_before_the_goal():
    state = auto_state()
    create(state, 66, goal=60, cfg=AUTO)
    assert ops.maintenance(state, at(59), AUTO) is None


@pytest.mark.parametrize("tick", [60, 61, 500, 86400])
def test_auto_page_at_the_goal_is_exactly_on_time(tick):
    state = auto_state()
    create(state, 66, goal=60, cfg=AUTO)
    change = ops.maintenance(state, at(tick), AUTO)
    assert change is not None
    (s,) = change.saved
    assert s.notified == at(60)  # created + goal, whenever the tick ran
    assert s.state == "paged"
    assert s.sequence == 2 and change.device.global_sequence == 2
    assert change.device.counters == Counters(
        num_sessions=1, guests_served=1, on_time=1, total_wait=60
    )
    (tx,) = change.transmissions
    assert (tx.number, tx.session_id, tx.page_mode, tx.time) == (66, 1, "Flash30Sec", at(60))
    change.apply(state)
    assert state.active[66].notified == at(60)
    assert ops.maintenance(state, at(tick + 1), AUTO) is None  # paged once only


def test_auto_page_uses_staff_default_mode():
    cfg = DeviceRules(auto_page_at_goal=True, staff_pagers=frozenset({900}))
    state = auto_state()
    create(state, 900, goal=0, cfg=cfg)
    change = ops.maintenance(state, T0, cfg)
    assert change.transmissions[0].page_mode == "Vibe1"
    assert change.saved[0].notified == T0


def test_auto_page_skips_sessions_already_paged():
    state = auto_state()
    create(state, 66, goal=60, cfg=AUTO)
    put(state, 66, at(10), cfg=AUTO, action="page")
    assert ops.maintenance(state, at(1000), AUTO) is None


def test_auto_page_pages_due_sessions_in_order_of_due_time():
    state = auto_state()
    create(state, 1, T0, cfg=AUTO, goal=100)  # id 1, due at(100)
    create(state, 2, at(10), cfg=AUTO, goal=30)  # id 2, due at(40)
    create(state, 3, at(20), cfg=AUTO, goal=20)  # id 3, due at(40): tie broken by id
    create(state, 4, at(20), cfg=AUTO, goal=1000)  # not due yet
    change = ops.maintenance(state, at(200), AUTO)
    assert [(s.id, s.notified, s.sequence) for s in change.saved] == [
        (2, at(40), 5),
        (3, at(40), 6),
        (1, at(100), 7),
    ]
    assert [t.session_id for t in change.transmissions] == [2, 3, 1]
    assert change.device.global_sequence == 7
    assert change.device.counters.on_time == 3


def test_auto_page_is_off_by_default():
    state = auto_state()
    create(state, 66, goal=60)
    assert ops.maintenance(state, at(100000), CFG) is None
