"""pager.control.verify on journal entries built here: matching, count conditions at their
bounds, exact and "contains" bodies, near misses and their order, ordered verification,
retransmissions counted once, bad patterns, and the text a pytest user reads."""

import json

import pytest

from pager.control.journal_entry import Entry, FaultMark
from pager.control.verify import (
    BODY_DEPTH_MAX,
    BODY_NODES_MAX,
    COUNT_MAX,
    NEAR_MISSES,
    SEQUENCE_MAX,
    BadPattern,
    Count,
    Difference,
    Request,
    SequenceVerdict,
    Verdict,
    VerificationFailed,
    count,
    differences,
    matches,
    near_misses,
    requests,
    verify,
    verify_in_order,
)


def entry(
    id: int,
    method: str = "POST",
    path: str = "/v1/sessions",
    query: tuple[str, ...] = (),
    body: object = None,
    code: str | None = "2.01",
    **kw: object,
) -> Entry:
    values: dict = {
        "time": f"2026-01-15T18:00:{id:02d}.000000+00:00",
        "device_time": "2026-01-15T18:00:00",
        "peer": "127.0.0.1:40000",
        "type": "CON",
        "mid": 1000 + id,
        "token": f"{id:04x}",
        **kw,
    }
    return Entry(id=id, method=method, path=path, query=query, body=body, code=code, **values)


CREATE_12 = entry(1, body={"number": 12, "goal": 300})
CREATE_13 = entry(2, body={"number": 13})
LIST = entry(3, "GET", code="2.05")
PAGE_12 = entry(
    4,
    "PUT",
    query=("number=12",),
    body={"action": "page", "message": "Table ready\fF30"},
    code="2.04",
)
DELETE_12 = entry(5, "DELETE", query=("number=12",), code="2.02")
JOURNAL = [CREATE_12, CREATE_13, LIST, PAGE_12, DELETE_12]


# ---- matching a pattern ---------------------------------------------------------------


def test_every_part_matches_or_names_its_difference():
    full = Request("PUT", "/v1/sessions", {"number": 12}, {"action": "page"}, True, "2.04")
    assert matches(full, PAGE_12)
    assert matches(Request(), LIST)  # nothing asked: anything matches
    assert matches(Request(method="put"), PAGE_12)  # methods without regard to case
    assert differences(Request("GET", "/v1/page", code="2.05"), PAGE_12) == [
        Difference("method", "GET", "PUT"),
        Difference("path", "/v1/page", "/v1/sessions"),
        Difference("code", "2.05", "2.04"),
    ]


def test_query_values_among_the_options():
    e = entry(1, "GET", query=("number=12", "verbose", "tag=a", "tag=b"))
    assert matches(Request(query={"number": "12"}), e)
    assert matches(Request(query={"number": 12}), e)  # an integer is its digits
    assert matches(Request(query={"tag": "b", "verbose": ""}), e)
    assert differences(Request(query={"number": "13", "system": "1"}), e) == [
        Difference("query.number", "13", "12"),
        Difference("query.system", "1", None, "missing"),
    ]
    assert differences(Request(query={"tag": "c"}), e) == [Difference("query.tag", "c", ["a", "b"])]


def test_exact_body_is_equal_and_nothing_more():
    e = entry(1, body={"number": 12, "goal": 300, "codes": [{"code": "F", "value": 30}]})
    assert matches(
        Request(body={"goal": 300, "number": 12, "codes": [{"code": "F", "value": 30}]}), e
    )
    assert differences(Request(body={"number": 12, "goal": 301}), e) == [
        Difference("body.goal", 301, 300),
        Difference("body.codes", None, [{"code": "F", "value": 30}], "unexpected"),
    ]
    assert differences(
        Request(body={"number": 12, "goal": 300, "codes": [{"code": "F", "value": 31}]}), e
    ) == [Difference("body.codes[0].value", 31, 30)]
    assert differences(Request(body={"number": 12, "goal": 300, "codes": []}), e) == [
        Difference("body.codes", [], [{"code": "F", "value": 30}])
    ]
    # JSON equality, not Python's: true is not 1; 300 is 300.0 (CBOR may carry a float)
    assert not matches(Request(body={"flag": 1}), entry(2, body={"flag": True}))
    assert not matches(Request(body={"flag": True}), entry(2, body={"flag": 1}))
    assert matches(Request(body={"goal": 300}), entry(2, body={"goal": 300.0}))
    assert not matches(Request(body={"n": "12"}), entry(2, body={"n": 12}))
    assert not matches(Request(body={"n": None}), entry(2, body={"n": 0}))
    assert matches(Request(body=[1, "a"]), entry(2, body=[1, "a"]))
    assert not matches(Request(body=[1, "a"]), entry(2, body=["a", 1]))
    # no body at all
    assert differences(Request(body={"number": 12}), LIST) == [
        Difference("body", {"number": 12}, None, "missing")
    ]


def test_contains_body_fields_items_and_substrings():
    e = entry(1, body={"message": "Table ready\fF30", "codes": [{"code": "F", "value": 30}, 7]})
    assert matches(Request(body={"message": "ready"}, contains=True), e)
    assert matches(Request(body={"codes": [7, {"code": "F"}]}, contains=True), e)
    assert matches(Request(body={}, contains=True), e)  # any object
    assert not matches(Request(body={}, contains=False), e)
    assert differences(Request(body={"message": "Seated", "x": 1}, contains=True), e) == [
        Difference("body.message", "Seated", "Table ready\fF30", "not_contained"),
        Difference("body.x", 1, None, "missing"),
    ]
    assert differences(Request(body={"codes": [{"code": "G"}]}, contains=True), e) == [
        Difference("body.codes[0]", {"code": "G"}, e.body["codes"], "not_contained")
    ]
    # numbers and booleans are equal or not, contained or not
    assert not matches(Request(body={"codes": [30]}, contains=True), e)
    assert not matches(Request(body={"message": 5}, contains=True), e)
    # a string is contained in a string only
    assert not matches(Request(body="ready", contains=True), entry(2, body=["ready"]))
    assert matches(Request(body="ready", contains=True), entry(2, body="Table ready"))
    assert matches(Request(body=["read"], contains=True), entry(2, body=["x", "ready"]))


# ---- counts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "n", "holds"),
    [
        ("exactly", 1, False),
        ("exactly", 2, True),
        ("exactly", 3, False),
        ("at_least", 0, True),
        ("at_least", 2, True),
        ("at_least", 3, False),
        ("at_most", 1, False),
        ("at_most", 2, True),
        ("at_most", 0, False),
    ],
)
def test_count_conditions_at_their_bounds(condition, n, holds):
    verdict = verify(JOURNAL, Request("POST", "/v1/sessions"), count(**{condition: n}))
    assert verdict.count == 2 and verdict.matches == (CREATE_12, CREATE_13)
    assert verdict.holds is holds


def test_no_condition_is_at_least_one_and_zero_matches_hold_for_exactly_zero():
    assert count() == Count("at_least", 1)
    assert not verify(JOURNAL, Request(path="/v1/page"), count()).holds
    assert verify(JOURNAL, Request(path="/v1/page"), count(exactly=0)).holds
    assert verify([], Request(), count(at_most=0)).holds
    assert verify(JOURNAL, Request(), count(exactly=5)).holds


def test_near_misses_only_when_too_few_matched():
    too_few = verify(JOURNAL, Request("POST", "/v1/sessions", body={"number": 14}), count())
    assert not too_few.holds and too_few.near_misses
    too_many = verify(JOURNAL, Request("POST"), count(at_most=1))
    assert not too_many.holds and too_many.near_misses == ()
    assert too_many.matches == (CREATE_12, CREATE_13)


# ---- near misses ----------------------------------------------------------------------


def test_near_misses_best_first():
    pattern = Request("POST", "/v1/sessions", body={"number": 12, "goal": 600}, code="2.01")
    misses = near_misses(pattern, JOURNAL)
    # CREATE_12: one part differs; CREATE_13: two (number, and goal missing); then the
    # others, fewest parts differing first, the newest first among equals
    assert [m.entry for m in misses] == [CREATE_12, CREATE_13, DELETE_12, LIST, PAGE_12]
    assert misses[0].differences == (Difference("body.goal", 600, 300),)
    assert misses[1].differences == (
        Difference("body.number", 12, 13),
        Difference("body.goal", 600, None, "missing"),
    )


def test_near_misses_are_a_handful():
    journal = [entry(i, body={"number": i}) for i in range(1, 40)]
    misses = near_misses(Request("POST", body={"number": 99}), journal)
    assert len(misses) == NEAR_MISSES
    assert [m.entry.id for m in misses] == [39, 38, 37, 36, 35]  # all as near: newest first


def test_a_typo_in_the_path_is_near_an_unrelated_path_is_not():
    journal = [entry(1, "GET", "/v1/sessions", code="2.05"), entry(2, "GET", "/v1/settings")]
    misses = near_misses(Request(path="/v1/sesions"), journal)
    assert [m.entry.id for m in misses] == [1, 2]  # both alike; the closer one first
    assert near_misses(Request(path="/.well-known/core"), journal) == []
    # nothing in common but the path that differs: not near
    assert near_misses(Request("POST", "/x", code="4.04"), journal) == []


def test_a_closer_path_ranks_first_among_equals():
    journal = [entry(1, path="/v1/page"), entry(2, path="/v1/sessionz")]
    misses = near_misses(Request("POST", "/v1/sessions"), journal)
    assert [m.entry.id for m in misses] == [2, 1]


# ---- retransmissions are the request already counted -----------------------------------


def test_a_retransmission_is_counted_once():
    original = entry(1, body={"number": 12})
    again = entry(2, body={"number": 12}, mid=original.mid, token=original.token, duplicate=True)
    assert requests([original, again]) == [original]
    assert verify([original, again], Request(path="/v1/sessions"), count(exactly=1)).holds


def test_a_request_lost_to_a_fault_then_retransmitted_is_counted_once():
    lost = entry(1, code=None, fault=FaultMark(1, "drop"))
    got_through = entry(2, mid=lost.mid, token=lost.token)
    other_lost = entry(3, code=None, fault=FaultMark(1, "drop"))  # never retransmitted
    non = entry(4, type="NON", code=None, mid=5, token="aa", fault=FaultMark(1, "drop"))
    non_again = entry(5, type="NON", mid=5, token="aa")
    journal = [lost, got_through, other_lost, non, non_again]
    assert requests(journal) == [got_through, other_lost, non, non_again]
    assert verify(journal, Request(path="/v1/sessions", code="2.01"), count(exactly=2)).holds


# ---- ordered verification -------------------------------------------------------------


def test_in_order_with_other_requests_between():
    verdict = verify_in_order(
        JOURNAL, [Request("POST", body={"number": 12}, contains=True), Request("DELETE")]
    )
    assert verdict.holds and verdict.matches == (CREATE_12, DELETE_12)
    assert verify_in_order(JOURNAL, [Request()] * 5).matches == tuple(JOURNAL)


def test_out_of_order_names_the_pattern_the_entry_and_where_it_matched():
    verdict = verify_in_order(JOURNAL, [Request("PUT"), Request("POST", body={"number": 13})])
    assert not verdict.holds
    assert verdict.matches == (PAGE_12,)
    failed = verdict.unmatched
    assert failed is not None
    assert (failed.index, failed.after, failed.earlier) == (1, PAGE_12.id, (CREATE_13,))
    # after the PUT only the DELETE, which has no part in common with it: not near
    assert failed.near_misses == ()


def test_repeated_patterns_need_as_many_requests():
    post = Request("POST", "/v1/sessions")
    assert verify_in_order(JOURNAL, [post, post]).matches == (CREATE_12, CREATE_13)
    verdict = verify_in_order(JOURNAL, [post, post, post])
    assert verdict.unmatched is not None
    assert (verdict.unmatched.index, verdict.unmatched.after) == (2, CREATE_13.id)
    assert verdict.unmatched.earlier == ()  # both were taken by the patterns before


def test_the_first_pattern_unmatched_looks_from_the_start():
    verdict = verify_in_order(JOURNAL, [Request(path="/v1/page")])
    assert verdict.unmatched is not None and verdict.unmatched.after is None
    assert verify_in_order([], [Request()]).unmatched is not None


def test_earliest_match_leaves_room_for_the_rest():
    journal = [entry(1, "POST"), entry(2, "POST"), entry(3, "PUT")]
    assert verify_in_order(journal, [Request("POST"), Request("POST"), Request("PUT")]).holds


# ---- bad patterns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: Request(method=""), "method"),
        (lambda: Request(method="GET /"), "method"),
        (lambda: Request(method=1), "method"),
        (lambda: Request(path="v1/sessions"), "path"),
        (lambda: Request(path="/" + "x" * 1024), "path"),
        (lambda: Request(query=["number=12"]), "query"),
        (lambda: Request(query={"number": 1.5}), "query.number"),
        (lambda: Request(query={"number": True}), "query.number"),
        (lambda: Request(query={"a=b": "c"}), "query names"),
        (lambda: Request(query={f"n{i}": "1" for i in range(33)}), "at most 32"),
        (lambda: Request(body={1: "x"}), "field names"),
        (lambda: Request(body={"x": float("nan")}), "finite"),
        (lambda: Request(body={"x": b"bytes"}), "JSON value"),
        (lambda: Request(body=[0] * BODY_NODES_MAX), f"at most {BODY_NODES_MAX}"),
        (lambda: Request(body="x" * 4097), "strings"),
        (lambda: Request(contains="yes"), "contains"),
        (lambda: Request(code="205"), "code"),
        (lambda: Request(code=2.05), "code"),
        (lambda: Request.from_json({"methd": "GET"}), "unknown pattern part methd"),
        (lambda: Request.from_json(["GET"]), "JSON object"),
        (lambda: count(exactly=1, at_least=1), "not exactly and at_least"),
        (lambda: count(exactly=-1), "exactly must be an integer from 0"),
        (lambda: count(at_most=COUNT_MAX + 1), "at_most"),
        (lambda: count(at_least=True), "at_least"),
        (lambda: count(exactly=1.0), "exactly"),
        (lambda: verify_in_order(JOURNAL, []), "at least one pattern"),
        (lambda: verify_in_order(JOURNAL, [Request(), {"method": "GET"}]), "patterns[1] must be"),
        (lambda: verify_in_order(JOURNAL, [Request()] * (SEQUENCE_MAX + 1)), "at most"),
    ],
)
def test_bad_patterns_are_refused_saying_why(make, says):
    with pytest.raises(BadPattern, match=None) as caught:
        make()
    assert says in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_a_body_nested_too_deep_is_refused():
    deep: object = 1
    for _ in range(BODY_DEPTH_MAX):
        deep = [deep]
    with pytest.raises(BadPattern, match="nest"):
        Request(body=deep)
    Request(body=deep[0])  # type: ignore[index]  # one level less is fine


# ---- JSON, as the control API writes it -----------------------------------------------


def test_verdicts_read_back_from_their_json():
    verdict = verify(JOURNAL, Request("POST", query={"n": 1}, body={"number": 14}), count())
    assert verdict.near_misses
    data = json.loads(json.dumps(verdict.to_json()))
    assert Verdict.from_json(data) == verdict
    assert data["pattern"] == {"method": "POST", "query": {"n": "1"}, "body": {"number": 14}}
    assert data["expected"] == {"at_least": 1} and data["holds"] is False
    sequence = verify_in_order(JOURNAL, [Request("PUT"), Request("POST", contains=True)])
    data = json.loads(json.dumps(sequence.to_json()))
    assert SequenceVerdict.from_json(data) == sequence
    assert data["patterns"][1] == {"method": "POST", "contains": True}
    assert data["unmatched"]["index"] == 1


# ---- the message a pytest user reads --------------------------------------------------


def test_the_message_of_a_miss():
    pattern = Request("POST", "/v1/sessions", body={"number": 12, "goal": 600}, code="2.01")
    verdict = verify(JOURNAL, pattern, count(exactly=1))
    assert str(VerificationFailed(verdict)) == "\n".join(
        [
            "expected exactly 1 request matching",
            '    POST /v1/sessions body {"number": 12, "goal": 600} answered 2.01',
            "found none.",
            "Closest requests (best first):",
            '  #1 POST /v1/sessions {"number": 12, "goal": 300} -> 2.01',
            "      body.goal: expected 600, got 300",
            '  #2 POST /v1/sessions {"number": 13} -> 2.01',
            "      body.number: expected 12, got 13",
            "      body.goal: expected 600, got none",
            "  #5 DELETE /v1/sessions?number=12 -> 2.02",
            "      method: expected POST, got DELETE",
            '      body: expected {"number": 12, "goal": 600}, got none',
            "      code: expected 2.01, got 2.02",
            "  #3 GET /v1/sessions -> 2.05",
            "      method: expected POST, got GET",
            '      body: expected {"number": 12, "goal": 600}, got none',
            "      code: expected 2.01, got 2.05",
            '  #4 PUT /v1/sessions?number=12 {"action": "page", "message": "Table ready\\fF30"}'
            " -> 2.04",
            "      method: expected POST, got PUT",
            "      body.number: expected 12, got none",
            "      body.goal: expected 600, got none",
            '      body.action: not expected, got "page"',
            '      body.message: not expected, got "Table ready\\fF30"',
            "      code: expected 2.01, got 2.04",
        ]
    )


def test_the_message_of_too_many():
    verdict = verify(JOURNAL, Request(query={"number": "12"}), count(at_most=1))
    assert verdict.message() == "\n".join(
        [
            "expected at most 1 request matching",
            "    any method any path?number=12",
            "found 2:",
            '  #4 PUT /v1/sessions?number=12 {"action": "page", "message": "Table ready\\fF30"}'
            " -> 2.04",
            "  #5 DELETE /v1/sessions?number=12 -> 2.02",
        ]
    )


def test_the_message_lists_a_handful_of_many_matches():
    journal = [entry(i, "GET", code="2.05") for i in range(1, 26)]
    text = verify(journal, Request("GET"), count(exactly=0)).message()
    assert text.count("\n  #") == 10 and text.endswith("  ... and 15 more")


def test_the_message_of_a_sequence_out_of_order():
    lost = entry(6, "POST", "/v1/page", body={"number": 12}, code=None, fault=FaultMark(2, "drop"))
    verdict = verify_in_order(
        [*JOURNAL, lost],
        [Request("PUT"), Request("POST", body={"number": 13}), Request("DELETE")],
    )
    assert verdict.message() == "\n".join(
        [
            "expected requests in this order (others may come between):",
            "  [0] PUT any path",
            '      matched #4 PUT /v1/sessions?number=12 {"action": "page", "message": '
            '"Table ready\\fF30"} -> 2.04',
            '  [1] POST any path body {"number": 13}',
            "      NOT MATCHED",
            "  [2] DELETE any path",
            "      not tried",
            "patterns[1] matched no request after entry #4.",
            "It matches earlier requests, out of order: #2.",
            "Closest requests after entry #4 (best first):",
            '  #6 POST /v1/page {"number": 12} -> no answer [fault drop]',
            "      body.number: expected 13, got 12",
        ]
    )


def test_long_values_are_cut_in_the_message():
    e = entry(1, body={"message": "x" * 500})
    text = verify([e], Request("POST", body={"message": "y"}), count()).message()
    assert max(map(len, text.splitlines())) < 120 and "…" in text
