"""Per-session ETags and conditional requests (RFC 7252 §5.10.8) in the pure operations."""

from datetime import datetime

import pytest

from pager.domain import operations as ops
from pager.domain.conditions import Conditions, session_etag
from pager.domain.errors import Invalid, NoActiveSession, PreconditionFailed
from pager.domain.model import Device, State
from pager.domain.operations import DeviceRules, SessionPatch
from tests.domain.conftest import apply, seconds_after

T0 = datetime(2026, 3, 15, 11, 55, 20)
CFG = DeviceRules()
at = seconds_after(T0)
STALE = b"\x00" * 8


def create(state: State, number: int, uuid: str | None = None) -> ops.Outcome:
    uuid = uuid or f"uuid-{number}-{state.device.next_session_id}"
    return apply(state, ops.create_or_update(state, number, SessionPatch(), T0, uuid, CFG))


def put(state: State, number: int, conditions: Conditions, **patch) -> ops.Outcome:
    return ops.update(state, number, SessionPatch(**patch), at(1), CFG, conditions)


def test_the_etag_changes_with_every_change_and_differs_between_sessions():
    state = State(Device())
    first = create(state, 1).acted_on
    other = create(state, 2).acted_on
    relabelled = apply(state, put(state, 1, Conditions(), label="Ada")).acted_on
    repaged = apply(state, put(state, 1, Conditions(), action="page")).acted_on
    archived = put(state, 1, Conditions(), action="clear").acted_on
    tags = [session_etag(s) for s in (first, other, relabelled, repaged, archived)]
    assert len(set(tags)) == len(tags)
    assert all(len(t) == 8 for t in tags)
    # a change that changes nothing keeps it
    assert session_etag(put(state, 1, Conditions(), label="Ada").acted_on) == tags[3]


def test_an_etag_from_before_a_factory_reset_names_no_session_after_it():
    """Ids and sequence numbers start again after a reset; the uuid tells them apart."""
    before = create(State(Device()), 1, "0b7a3c1e-aaaa-4bbb-8ccc-000000000001").acted_on
    after = create(State(Device()), 1, "5d2f9e40-aaaa-4bbb-8ccc-000000000002").acted_on
    assert (before.id, before.sequence) == (after.id, after.sequence)
    assert session_etag(before) != session_etag(after)


@pytest.mark.parametrize(
    "if_match",
    [
        pytest.param("current", id="its-etag"),
        pytest.param("one-of-several", id="one-of-several"),
        pytest.param("empty", id="empty-means-exists"),
    ],
)
def test_if_match_that_holds_lets_the_change_through(if_match):
    state = State(Device())
    tag = session_etag(create(state, 5).acted_on)
    values = {"current": (tag,), "one-of-several": (STALE, tag), "empty": (b"",)}[if_match]
    outcome = put(state, 5, Conditions(if_match=values), label="Ada")
    assert outcome.change is not None and outcome.acted_on.label == "Ada"


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda s, c: put(s, 5, c, label="Ada"), id="put"),
        pytest.param(
            lambda s, c: ops.create_or_update(s, 5, SessionPatch(goal=9), T0, "u", CFG, c),
            id="post",
        ),
        pytest.param(lambda s, c: ops.remove(s, 5, at(1), CFG, c), id="delete"),
    ],
)
def test_a_stale_if_match_or_if_none_match_on_an_existing_session_changes_nothing(operation):
    state = State(Device())
    create(state, 5)
    before = (state.device, dict(state.active))
    for conditions in (Conditions(if_match=(STALE,)), Conditions(if_none_match=True)):
        with pytest.raises(PreconditionFailed) as e:
            operation(state, conditions)
        assert e.value.field is None and session_etag(state.active[5]).hex() in e.value.message
    assert (state.device, state.active) == before


@pytest.mark.parametrize("value", [STALE, b""])
@pytest.mark.parametrize("via", ["put", "post", "delete"])
def test_if_match_on_a_number_with_no_session_is_a_failed_precondition_not_a_404(via, value):
    """RFC 7252 §5.10.8.1: the condition is decided first, 4.12 rather than 4.04."""
    state = State(Device())
    conditions = Conditions(if_match=(value,))
    with pytest.raises(PreconditionFailed):
        if via == "put":
            put(state, 5, conditions, label="Ada")
        elif via == "post":
            ops.create_or_update(state, 5, SessionPatch(), T0, "u", CFG, conditions)
        else:
            ops.remove(state, 5, at(1), CFG, conditions)
    assert state.active == {} and state.device == Device()


def test_if_none_match_creates_only_where_there_is_no_session():
    state = State(Device())
    only_new = Conditions(if_none_match=True)
    created = ops.create_or_update(state, 5, SessionPatch(), T0, "u", CFG, only_new)
    assert created.created is True
    apply(state, created)
    with pytest.raises(PreconditionFailed):
        ops.create_or_update(state, 5, SessionPatch(), T0, "u2", CFG, only_new)
    # on PUT and DELETE it holds where there is no session, which they then do not find
    with pytest.raises(NoActiveSession):
        put(state, 6, only_new, label="Ada")
    with pytest.raises(NoActiveSession):
        ops.remove(state, 6, at(1), CFG, only_new)


def test_an_invalid_body_is_refused_before_its_condition_is_looked_at():
    state = State(Device())
    create(state, 5)
    with pytest.raises(Invalid):
        put(state, 5, Conditions(if_match=(STALE,)), goal=-1)


def test_two_changes_on_one_etag_one_after_the_other_the_second_fails():
    """What the engine does with two requests that arrive together: the second is computed
    on the state the first left, before either is committed."""
    state = State(Device())
    tag = session_etag(create(state, 5).acted_on)
    same = Conditions(if_match=(tag,))
    apply(state, put(state, 5, same, label="first"))
    with pytest.raises(PreconditionFailed):
        put(state, 5, same, label="second")
    assert state.active[5].label == "first"
