"""Validation ranges (spec §7) through rules, SessionPatch.check, PageRequest and settings.

Every refusal must be an `Invalid` naming the field, with the field's one requirement sentence.
"""

from datetime import datetime

import pytest

from pager.domain import operations as ops
from pager.domain import rules
from pager.domain.errors import Invalid
from pager.domain.model import Device, Settings, State
from pager.domain.operations import (
    UNSET,
    DeviceRules,
    PageRequest,
    SessionPatch,
    SettingsPatch,
    create_or_update,
    page,
    update,
    update_settings,
)
from pager.domain.pagemodes import ALERT_SECONDS

T0 = datetime(2024, 3, 15, 11, 55, 20)
DEFAULT = rules.Limits()
CFG = DeviceRules()

SPEC_PAGE_MODES = [
    "Flash1Sec",
    "Flash30Sec",
    "Flash5Min",
    "FlashBeep5x5",
    "Beep3Times",
    "Beep5Min",
    "Glow5Min",
    "Glow15Times",
    "Vibe1",
    "Vibe2",
    "Vibe3",
    "VibeBeep1",
    "VibeBeep2",
    "VibeBeep3",
]


def assert_invalid(exc_info, field: str, limits: rules.Limits = DEFAULT) -> None:
    err = exc_info.value
    assert type(err) is Invalid
    assert err.field == field
    assert err.message == rules.requirement(field, limits)
    assert str(err) == err.message


# --- the requirement sentences ----------------------------------------------------------


@pytest.mark.parametrize(
    "field, sentence",
    [
        ("number", "number must be an integer from 0 to 4095"),
        ("goal", "goal must be an integer from 0 to 86400"),  # the spec §2.2 example
        ("partySize", "partySize must be an integer from 1 to 999"),
        ("systemId", "systemId must be an integer from 0 to 255"),
        ("defaultTargetGoal", "defaultTargetGoal must be an integer from 0 to 86400"),
        ("statisticsClearMark", "statisticsClearMark must be an integer from 0 to 24"),
        ("limit", "limit must be an integer from 1 to 1000"),
        ("label", "label must be a string of 1 to 64 characters, or null"),
        ("action", "action must be one of page, clear, remove"),
        ("message", "message must be a string of at most 240 characters"),
        (
            "datetime",
            "datetime must be a local time written YYYY-MM-DDTHH:MM:SS, from "
            "2000-01-01T00:00:00 to 2099-12-31T23:59:59",
        ),
        ("after", "after must be a session id, an integer of 0 or more"),
        ("bogus", "bogus is not valid"),
    ],
)
def test_requirement_sentences(field, sentence):
    assert rules.requirement(field, DEFAULT) == sentence


def test_page_mode_sentence_lists_every_mode():
    assert rules.requirement("pageMode", DEFAULT) == "pageMode must be one of " + ", ".join(
        SPEC_PAGE_MODES
    )


def test_number_sentence_follows_the_configured_range():
    assert (
        rules.requirement("number", rules.Limits(100, 199))
        == "number must be an integer from 100 to 199"
    )


# --- number -----------------------------------------------------------------------------


@pytest.mark.parametrize("number", [0, 1, 4094, 4095])
def test_number_in_default_range(number):
    rules.check_number(number, DEFAULT)


@pytest.mark.parametrize("number", [-1, 4096, 100000])
def test_number_outside_default_range(number):
    with pytest.raises(Invalid) as exc:
        rules.check_number(number, DEFAULT)
    assert_invalid(exc, "number")


CUSTOM = rules.Limits(number_min=100, number_max=199)


@pytest.mark.parametrize(
    "number, ok", [(99, False), (100, True), (199, True), (200, False), (0, False)]
)
def test_number_in_custom_range(number, ok):
    if ok:
        rules.check_number(number, CUSTOM)
    else:
        with pytest.raises(Invalid) as exc:
            rules.check_number(number, CUSTOM)
        assert_invalid(exc, "number", CUSTOM)


@pytest.mark.parametrize("number, ok", [(99, False), (100, True), (199, True), (200, False)])
def test_custom_number_range_applies_to_every_operation(number, ok):
    cfg = DeviceRules(limits=CUSTOM)
    state = State(Device())
    calls = [
        lambda: create_or_update(state, number, SessionPatch(), T0, "u", cfg),
        lambda: page(state, PageRequest(number), T0, cfg),
    ]
    for call in calls:
        if ok:
            assert call().change is not None
        else:
            with pytest.raises(Invalid) as exc:
                call()
            assert_invalid(exc, "number", CUSTOM)


# --- SessionPatch.check -----------------------------------------------------------------


@pytest.mark.parametrize(
    "patch",
    [
        SessionPatch(),
        SessionPatch(goal=0),
        SessionPatch(goal=86400),
        SessionPatch(party_size=1),
        SessionPatch(party_size=999),
        SessionPatch(label="a"),
        SessionPatch(label="x" * 64),
        SessionPatch(label=None),
        SessionPatch(action="page"),
        SessionPatch(action="clear"),
        SessionPatch(action="remove"),
        SessionPatch(message=""),
        SessionPatch(message="m" * 240),
        SessionPatch(message="m" * 236 + "\fF30"),  # 240 with the override counted
    ],
    ids=repr,
)
def test_session_patch_accepts_edges(patch):
    patch.check()


@pytest.mark.parametrize(
    "patch, field",
    [
        (SessionPatch(goal=-1), "goal"),
        (SessionPatch(goal=86401), "goal"),
        (SessionPatch(party_size=0), "partySize"),
        (SessionPatch(party_size=1000), "partySize"),
        (SessionPatch(party_size=-5), "partySize"),
        (SessionPatch(label=""), "label"),
        (SessionPatch(label="x" * 65), "label"),
        (SessionPatch(action="stop"), "action"),
        (SessionPatch(action="Page"), "action"),
        (SessionPatch(action=""), "action"),
        (SessionPatch(page_mode="flash30sec"), "pageMode"),
        (SessionPatch(page_mode="Flash30sec"), "pageMode"),
        (SessionPatch(page_mode="Vibe4"), "pageMode"),
        (SessionPatch(page_mode=""), "pageMode"),
        (SessionPatch(message="m" * 241), "message"),
        (SessionPatch(message="m" * 237 + "\fF30"), "message"),  # 241 with the override counted
    ],
    ids=repr,
)
def test_session_patch_refuses_edges(patch, field):
    with pytest.raises(Invalid) as exc:
        patch.check()
    assert_invalid(exc, field)


@pytest.mark.parametrize("mode", SPEC_PAGE_MODES)
def test_every_spec_page_mode_is_accepted(mode):
    SessionPatch(page_mode=mode).check()
    rules.check_page_mode(mode)


def test_rules_mode_set_is_the_spec_set():
    assert list(ALERT_SECONDS) == SPEC_PAGE_MODES


def test_malformed_override_in_patch_is_refused_on_message():
    with pytest.raises(Invalid) as exc:
        SessionPatch(message="Ready\f 5").check()
    assert exc.value.field == "message"


def test_unset_fields_are_not_checked():
    # UNSET is the default of every patch field; nothing is validated then
    assert SessionPatch().goal is UNSET
    SessionPatch(goal=UNSET, label=UNSET, party_size=UNSET).check()


def test_the_first_bad_field_is_reported():
    with pytest.raises(Invalid) as exc:
        SessionPatch(goal=-1, party_size=0).check()
    assert exc.value.field == "goal"


# --- the checks run in the operations, and a refusal changes nothing --------------------


def test_create_refuses_bad_patch_and_changes_nothing():
    state = State(Device())
    before = state.device
    with pytest.raises(Invalid) as exc:
        create_or_update(state, 66, SessionPatch(goal=86401), T0, "u", CFG)
    assert_invalid(exc, "goal")
    assert state.device is before and state.active == {}


def test_create_refuses_bad_number_before_anything_else():
    with pytest.raises(Invalid) as exc:
        create_or_update(State(Device()), 4096, SessionPatch(action="clear"), T0, "u", CFG)
    assert_invalid(exc, "number")


def test_update_validates_before_looking_up_the_session():
    # an invalid body on a missing session answers 4.00, not 4.04
    with pytest.raises(Invalid) as exc:
        update(State(Device()), 66, SessionPatch(label=""), T0, CFG)
    assert_invalid(exc, "label")


def test_update_refuses_bad_patch_on_active_session_and_changes_nothing():
    state = State(Device())
    create_or_update(state, 66, SessionPatch(), T0, "u", CFG).change.apply(state)
    snapshot = (state.device, dict(state.active))
    with pytest.raises(Invalid) as exc:
        update(state, 66, SessionPatch(goal=60, party_size=1000), T0, CFG)
    assert_invalid(exc, "partySize")
    assert (state.device, state.active) == snapshot


# --- PageRequest ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "req",
    [
        PageRequest(0),
        PageRequest(4095),
        PageRequest(66, system_id=0),
        PageRequest(66, system_id=255),
        PageRequest(66, page_mode="VibeBeep3"),
        PageRequest(66, message="m" * 240),
    ],
    ids=repr,
)
def test_page_request_accepts_edges(req):
    assert page(State(Device()), req, T0, CFG).transmission is not None


@pytest.mark.parametrize(
    "req, field",
    [
        (PageRequest(-1), "number"),
        (PageRequest(4096), "number"),
        (PageRequest(66, system_id=256), "systemId"),
        (PageRequest(66, system_id=-1), "systemId"),
        (PageRequest(66, page_mode="flash30sec"), "pageMode"),
        (PageRequest(66, message="m" * 241), "message"),
    ],
    ids=repr,
)
def test_page_request_refuses_edges(req, field):
    with pytest.raises(Invalid) as exc:
        page(State(Device()), req, T0, CFG)
    assert_invalid(exc, field)


def test_page_request_refuses_malformed_override():
    with pytest.raises(Invalid) as exc:
        page(State(Device()), PageRequest(66, message="Hi\f12"), T0, CFG)
    assert exc.value.field == "message"


# --- settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patch",
    [
        SettingsPatch(system_id=0),
        SettingsPatch(system_id=255),
        SettingsPatch(default_goal=0),
        SettingsPatch(default_goal=86400),
        *[SettingsPatch(clear_mark=m) for m in range(0, 25)],
        SettingsPatch(datetime=datetime(2030, 1, 1, 0, 0, 0)),
    ],
    ids=repr,
)
def test_settings_accept_edges(patch):
    # from settings none of whose values is the edge: one that changes nothing is no change
    other = Settings(
        system_id=1 if patch.system_id == 0 else 0,
        default_goal=1 if patch.default_goal == 0 else 0,
        clear_mark=1 if patch.clear_mark == 0 else 0,
    )
    assert update_settings(State(Device(settings=other)), patch, T0).change is not None


@pytest.mark.parametrize(
    "patch, field",
    [
        (SettingsPatch(system_id=-1), "systemId"),
        (SettingsPatch(system_id=256), "systemId"),
        (SettingsPatch(default_goal=-1), "defaultTargetGoal"),
        (SettingsPatch(default_goal=86401), "defaultTargetGoal"),
        (SettingsPatch(clear_mark=-1), "statisticsClearMark"),
        (SettingsPatch(clear_mark=25), "statisticsClearMark"),
        (SettingsPatch(datetime="2030-01-01T00:00:00"), "datetime"),
        (SettingsPatch(datetime=None), "datetime"),
    ],
    ids=repr,
)
def test_settings_refuse_edges(patch, field):
    state = State(Device())
    with pytest.raises(Invalid) as exc:
        update_settings(state, patch, T0)
    assert_invalid(exc, field)
    assert state.device == Device()


def test_settings_refusal_applies_nothing_even_if_other_fields_are_good():
    state = State(Device())
    with pytest.raises(Invalid) as exc:
        update_settings(state, SettingsPatch(system_id=9, clear_mark=25), T0)
    assert_invalid(exc, "statisticsClearMark")
    assert state.device.settings.system_id == 0


@pytest.mark.parametrize(
    "when,ok",
    [
        (datetime(2000, 1, 1, 0, 0, 0), True),
        (datetime(1999, 12, 31, 23, 59, 59), False),
        (datetime(2099, 12, 31, 23, 59, 59), True),
        (datetime(2100, 1, 1, 0, 0, 0), False),
    ],
)
def test_datetime_setting_range(when, ok):
    state = State(Device(clear_mark_since=datetime(2026, 3, 15)))
    patch = ops.SettingsPatch(datetime=when)
    if ok:
        assert ops.update_settings(state, patch, datetime(2026, 3, 15)).change
    else:
        with pytest.raises(Invalid) as e:
            ops.update_settings(state, patch, datetime(2026, 3, 15))
        assert e.value.field == "datetime"
