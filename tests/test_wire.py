"""Response bodies: the keys each answer has, in the order the TypedDicts declare them, and
their encodings, byte for byte what the standard library's json (and cbor2 from that) write
of the same data."""

import json
from datetime import datetime
from typing import get_type_hints

import cbor2
from hypothesis import given
from hypothesis import strategies as st

from pager import wire
from pager.domain.model import STOP, Archived, Session, Settings
from pager.domain.pagemodes import AlertCode, Transmission
from pager.domain.statistics import Counters

NOW = datetime(2026, 1, 1, 12, 5)
ACTIVE = Session(
    1, 5, "0f0e8d5c-1b7b-4c66-9a8e-1e7f7f1c2a3b", 7, 2, 600, datetime(2026, 1, 1, 12), None, None
)
ARCHIVED = Archived(
    Session(
        2,
        6,
        "1f0e8d5c-1b7b-4c66-9a8e-1e7f7f1c2a3b",
        8,
        3,
        300,
        datetime(2026, 1, 1, 11),
        datetime(2026, 1, 1, 11, 4),
        "Kim",
    ),
    datetime(2026, 1, 1, 11, 9),
    STOP,
)
TRANSMISSION = Transmission(3, NOW, 7, 0, "Flash30Sec", "table ready", (AlertCode("A", 2),), 1)


def declared(typed_dict: type) -> list[str]:
    return list(get_type_hints(typed_dict))


def in_declared_order(body: dict, typed_dict: type) -> bool:
    order = declared(typed_dict)
    return set(body) <= set(order) and list(body) == [k for k in order if k in body]


def stdlib(body: object) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def test_every_answer_has_its_keys_in_the_declared_order():
    sessions = [
        wire.session_out(ACTIVE),
        wire.session_out(ARCHIVED),
        wire.session_out(ARCHIVED, history=True),
    ]
    for s in sessions:
        assert in_declared_order(s, wire.SessionOut), list(s)
    assert in_declared_order(wire.statistics_out(Counters(3, 2, 1, 400)), wire.StatisticsOut)
    assert in_declared_order(wire.settings_out(Settings(), NOW), wire.SettingsOut)
    assert in_declared_order(wire.page_out(TRANSMISSION), wire.PageOut)
    assert in_declared_order(wire.error_out("4.00", "bad", "number"), wire.ErrorOut)
    env = wire.envelope(
        wire.Identity(), 6, NOW, error=wire.error_out("4.00", "bad", None), sessions=sessions
    )
    assert in_declared_order(env, wire.Envelope)  # sections in SECTION_ORDER, not as given
    assert env["responseTypes"] == ["sessions", "error"]


def test_fields_not_given_stay_out_of_the_answer():
    active = wire.session_out(ACTIVE)
    assert {"notified", "cleared", "clearType"}.isdisjoint(active)
    body = wire.encode(wire.envelope(wire.Identity(), 6, NOW, sessions=[active]), wire.JSON)
    assert b"notified" not in body and b"clearType" not in body and b'"label":null' in body
    history = wire.session_out(ARCHIVED, history=True)
    assert history["clearType"] == STOP and "sessionSequence" not in history
    assert "field" not in wire.error_out("4.00", "bad", None)
    page = wire.page_out(TRANSMISSION)
    assert "power" not in page and "color" not in page  # only an LRSN page that gave them


texts = st.text(max_size=40)


@given(
    label=st.none() | texts,
    message=st.none() | texts,
    error=texts,
    number=st.integers(0, 2**63 - 1),
)
def test_encodings_are_the_standard_librarys_of_the_same_data(label, message, error, number):
    session = Session(number, 1, "u", 7, 2, 600, NOW, NOW, label)
    tx = Transmission(number, NOW, 7, 0, "Flash30Sec", message, (AlertCode("A", None),), None)
    env = wire.envelope(
        wire.Identity(device_name=error),
        number,
        NOW,
        sessions=[wire.session_out(session)],
        statistics=wire.statistics_out(Counters(3, 2, 1, 400)),
        page=wire.page_out(tx),
        error=wire.error_out("4.00", error, error),
        ping={},
    )
    encoded = wire.encode(env, wire.JSON)
    assert encoded == stdlib(env)
    assert wire.encode(env, wire.CBOR) == cbor2.dumps(json.loads(encoded))


def test_history_pieces_join_into_the_whole_envelope():
    archived = [ARCHIVED] * 7
    for ct in wire.FORMATS:
        whole = wire.encode(
            wire.envelope(
                wire.Identity(),
                9,
                NOW,
                session_history=[wire.session_out(a, history=True) for a in archived],
            ),
            ct,
        )
        for per_piece in (1, 3, 7, 100):
            pieces = wire.history_pieces(wire.Identity(), 9, NOW, archived, ct, per_piece)
            assert b"".join(pieces) == whole
