"""Response models: `_Out.of` builds what `model_construct` builds, for the encoders, and
wire refuses to load on a pydantic where it would not."""

from datetime import datetime

import cbor2
import pytest
from pydantic import BaseModel

from pager import wire
from pager.domain.model import STOP, Archived, Session
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


def constructed(model):
    """The same model as pydantic's own model_construct makes it."""
    fields = {name: getattr(model, name) for name in model.model_fields_set}
    for name, value in fields.items():
        if isinstance(value, wire._Out):
            fields[name] = constructed(value)
        elif isinstance(value, list):
            fields[name] = [constructed(v) if isinstance(v, wire._Out) else v for v in value]
    return type(model).model_construct(**fields)


def envelopes() -> list[wire.Envelope]:
    ident = wire.Identity()
    transmission = Transmission(3, NOW, 7, 0, "Flash30Sec", "table ready", (AlertCode("A", 2),), 1)
    return [
        wire.envelope(
            ident,
            6,
            NOW,
            sessions=[wire.session_out(ACTIVE)],
            statistics=wire.statistics_out(Counters(3, 2, 1, 400)),
        ),
        wire.envelope(
            ident,
            6,
            NOW,
            session_history=[wire.session_out(ARCHIVED, history=True), wire.session_out(ARCHIVED)],
        ),
        wire.envelope(ident, 0, NOW, error=wire.error_out("4.00", "bad", None)),
        wire.envelope(ident, 0, NOW, error=wire.error_out("4.00", "bad", "number")),
        wire.envelope(ident, 0, NOW, settings=wire.settings_out(wire.Settings(), NOW)),
        wire.envelope(ident, 0, NOW, page=wire.page_out(transmission)),
    ]


@pytest.mark.parametrize("env", envelopes(), ids=lambda e: e.responseTypes[0])
def test_encodes_exactly_as_model_construct_would(env):
    reference = constructed(env)
    assert env.encode(wire.JSON) == reference.encode(wire.JSON)
    assert env.encode(wire.CBOR) == reference.encode(wire.CBOR)
    assert cbor2.loads(env.encode(wire.CBOR))["responseTypes"] == env.responseTypes


def test_fields_not_given_stay_out_of_the_answer():
    active = wire.session_out(ACTIVE)
    assert {"notified", "cleared", "clearType"}.isdisjoint(active.model_fields_set)
    body = wire.envelope(wire.Identity(), 6, NOW, sessions=[active]).encode(wire.JSON)
    assert b"notified" not in body and b"clearType" not in body and b'"label":null' in body
    history = wire.session_out(ARCHIVED, history=True)
    assert history.clearType == STOP and "sessionSequence" not in history.model_fields_set


def test_models_are_complete_pydantic_models():
    out = wire.session_out(ACTIVE)
    assert out.model_dump()["number"] == 7  # what the control API's page_out relies on
    assert out.model_copy(update={"number": 8}).number == 8
    assert out.model_extra is None


def test_of_is_checked_at_import_on_this_pydantic():
    wire._check_of()  # what import ran; a refusal would have failed every test


def test_a_builder_that_marks_defaults_as_given_is_refused():
    def every_field_set(**fields):
        return wire.ErrorOut.model_construct(_fields_set=set(wire.ErrorOut.model_fields), **fields)

    with pytest.raises(RuntimeError, match=r"pydantic 2\.\d+.*model_fields_set") as e:
        wire._check_of(every_field_set)
    assert "encodes as" in str(e.value)  # the default shows in the answer: "field":null


def test_a_new_pydantic_instance_slot_is_refused(monkeypatch):
    monkeypatch.setattr(BaseModel, "__slots__", (*BaseModel.__slots__, "__pydantic_new__"))
    with pytest.raises(RuntimeError, match="slots"):
        wire._check_of()
