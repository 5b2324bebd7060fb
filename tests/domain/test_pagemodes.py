"""Page modes, alert-override codes and transmissions (spec §9)."""

from datetime import datetime, timedelta

import pytest

from pager.domain import pagemodes
from pager.domain.errors import Invalid
from pager.domain.pagemodes import AlertCode, Transmission, alerting, default_mode, parse_message

T0 = datetime(2024, 3, 15, 11, 55, 20)

# The spec's §9 table, copied by hand: name -> alert length in seconds.
SPEC_MODES = {
    "Flash1Sec": 1,
    "Flash30Sec": 30,
    "Flash5Min": 300,
    "FlashBeep5x5": 25,
    "Beep3Times": 3,
    "Beep5Min": 300,
    "Glow5Min": 300,
    "Glow15Times": 15,
    "Vibe1": 1,
    "Vibe2": 2,
    "Vibe3": 3,
    "VibeBeep1": 1,
    "VibeBeep2": 2,
    "VibeBeep3": 3,
}


def tx(mode: str = "Flash30Sec", time: datetime = T0) -> Transmission:
    return Transmission(
        id=1,
        time=time,
        number=66,
        system_id=0,
        page_mode=mode,
        message=None,
        override_codes=(),
        session_id=None,
    )


# --- the mode table ---------------------------------------------------------------------


def test_mode_table_is_exactly_the_spec_table():
    assert pagemodes.ALERT_SECONDS == SPEC_MODES


def test_default_modes():
    assert pagemodes.GUEST_DEFAULT_MODE == "Flash30Sec"
    assert pagemodes.STAFF_DEFAULT_MODE == "Vibe1"


@pytest.mark.parametrize(
    "number, staff, expected",
    [
        (66, frozenset(), "Flash30Sec"),
        (66, frozenset({900, 901}), "Flash30Sec"),
        (900, frozenset({900, 901}), "Vibe1"),
        (901, frozenset({900, 901}), "Vibe1"),
    ],
)
def test_default_mode_depends_on_staff_pagers(number, staff, expected):
    assert default_mode(number, staff) == expected


# --- alert-override parsing -------------------------------------------------------------


def test_parse_spec_example():
    text, codes = parse_message("Your table is ready!\fF30Vv5")
    assert text == "Your table is ready!"
    assert codes == (AlertCode("F", 30), AlertCode("V", None), AlertCode("v", 5))


def test_parse_without_form_feed_has_no_codes():
    assert parse_message("Your table is ready!") == ("Your table is ready!", ())


def test_parse_empty_message():
    assert parse_message("") == ("", ())


def test_parse_empty_override_section():
    assert parse_message("Hello\f") == ("Hello", ())


def test_parse_codes_only():
    assert parse_message("\fB3") == ("", (AlertCode("B", 3),))


def test_codes_are_case_sensitive():
    _, codes = parse_message("x\fFf7")
    assert codes == (AlertCode("F", None), AlertCode("f", 7))
    assert codes[0] != AlertCode("f", None)


@pytest.mark.parametrize(
    "override, value",
    [
        ("F0", 0),
        ("F007", 7),
        ("F254", 254),
        ("F255", 255),
        ("F256", 255),
        ("F999", 255),
        ("F99999999999999999999", 255),
    ],
)
def test_code_values_are_clamped_to_255(override, value):
    assert parse_message("msg\f" + override) == ("msg", (AlertCode("F", value),))


def test_codes_follow_each_other_without_separators():
    _, codes = parse_message("\fA1B22C333D")
    assert codes == (
        AlertCode("A", 1),
        AlertCode("B", 22),
        AlertCode("C", 255),
        AlertCode("D", None),
    )


@pytest.mark.parametrize(
    "message",
    [
        "Ready\f30",  # a number with no letter
        "Ready\fF30 V",  # a space
        "Ready\fF30\fV",  # a second form feed
        "Ready\f-F",  # punctuation
        "Ready\fé",  # a letter, but not ASCII
        "Ready\fF\u0663",  # a non-ASCII digit after the letter
    ],
)
def test_invalid_override_is_refused_on_field_message(message):
    with pytest.raises(Invalid) as exc:
        parse_message(message)
    assert exc.value.field == "message"


def test_invalid_override_error_names_the_position():
    with pytest.raises(Invalid) as exc:
        parse_message("Ready\fF3 ")
    # "Ready" is 5 characters, the form feed the 6th, then F, 3, and the space at index 8
    assert "position 8" in exc.value.message


# --- transmissions and alerting ---------------------------------------------------------


@pytest.mark.parametrize("mode, seconds", sorted(SPEC_MODES.items()))
def test_alert_until_per_mode(mode, seconds):
    assert tx(mode).alert_until == T0 + timedelta(seconds=seconds)


def test_alerting_without_a_transmission():
    assert alerting(None, T0) is False


@pytest.mark.parametrize(
    "offset, expected",
    [
        (-1, False),  # before the transmission
        (0, True),  # the moment it is sent
        (29, True),  # the last second of Flash30Sec
        (30, False),  # the alert length has passed
        (3600, False),
    ],
)
def test_alerting_window_flash30(offset, expected):
    assert alerting(tx("Flash30Sec"), T0 + timedelta(seconds=offset)) is expected


def test_alerting_window_vibe1_is_one_second():
    last = tx("Vibe1")
    assert alerting(last, T0) is True
    assert alerting(last, T0 + timedelta(milliseconds=999)) is True
    assert alerting(last, T0 + timedelta(seconds=1)) is False


def test_alerting_window_flash5min():
    last = tx("Flash5Min")
    assert alerting(last, T0 + timedelta(seconds=299)) is True
    assert alerting(last, T0 + timedelta(seconds=300)) is False
