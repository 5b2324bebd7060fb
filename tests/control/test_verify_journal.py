"""Verification end to end: an emulator driven by a real aiocoap client, then verified over
real HTTP (`POST /journal/verify`, `/journal/verify-sequence`) and in Python
(`emu.verify`, `emu.verify_in_order`), which must reach the same verdicts."""

import asyncio
import re

import aiocoap
import pytest
from aiocoap.numbers.types import Type

from pager.control.verify import (
    BODY_NODES_MAX,
    BadPattern,
    Request,
    SequenceVerdict,
    Verdict,
    VerificationFailed,
)
from tests.conftest import REPO, Client, datagrams_to

SESSIONS = "/v1/sessions"


async def session(coap: Client) -> None:
    """What a point-of-sale client might send: two parties, a look at the list, a page, a
    bad request and a typo in a path."""
    assert (await coap.post(SESSIONS, {"number": 12, "goal": 300})).code == "2.01"
    assert (await coap.post(SESSIONS, {"number": 13})).code == "2.01"
    assert (await coap.get(SESSIONS)).code == "2.05"
    paged = await coap.put(SESSIONS, {"action": "page"}, query="number=12")
    assert paged.code.startswith("2."), paged.payload
    assert (await coap.post(SESSIONS, {"number": "twelve"})).code == "4.00"
    assert (await coap.get("/v1/sesions")).code == "4.04"


@pytest.fixture
async def driven(frozen):
    await session(frozen.coap)
    return frozen


def ids(entries) -> list[int]:
    return [e["id"] if isinstance(e, dict) else e.id for e in entries]


async def test_a_hit_over_http_and_in_python(driven):
    http, emu = driven.http, driven.emu
    pattern = {"method": "POST", "path": SESSIONS, "body": {"number": 12}, "contains": True}
    answer = await http.post("/journal/verify", {**pattern, "code": "2.01", "exactly": 1})
    assert answer["holds"] is True and answer["count"] == 1
    assert answer["expected"] == {"exactly": 1} and answer["near_misses"] == []
    assert answer["pattern"] == {**pattern, "code": "2.01"}
    (hit,) = answer["matches"]
    assert (hit["method"], hit["path"], hit["body"], hit["code"]) == (
        "POST",
        SESSIONS,
        {"number": 12, "goal": 300},
        "2.01",
    )
    found = emu.verify("POST", SESSIONS, body={"number": 12}, contains=True, exactly=1)
    assert [e.to_json() for e in found] == answer["matches"]
    # the default condition is "at least 1"
    assert ids(emu.verify(path=SESSIONS, method="post")) == ids(
        (await http.post("/journal/verify", {"path": SESSIONS, "method": "post"}))["matches"]
    )


async def test_query_and_exact_body(driven):
    http, emu = driven.http, driven.emu
    (page,) = emu.verify("PUT", query={"number": 12}, body={"action": "page"})
    assert page.query == ("number=12",)
    status, answer = await http.request(
        "POST", "/journal/verify", {"method": "PUT", "body": {"action": "pag"}}
    )
    assert status == 409 and answer["count"] == 0
    (miss,) = answer["near_misses"]
    assert miss["entry"]["id"] == page.id
    assert miss["differences"] == [
        {"part": "body.action", "expected": "pag", "actual": "page", "kind": "different"}
    ]
    assert emu.verify("PUT", body={"action": "pag"}, contains=True) == [page]


async def test_a_miss_is_409_with_the_near_misses_and_python_says_the_same(driven):
    http, emu = driven.http, driven.emu
    body = {"method": "POST", "path": SESSIONS, "body": {"number": 14}, "code": "2.01"}
    status, answer = await http.request("POST", "/journal/verify", body)
    assert status == 409 and answer["holds"] is False and answer["count"] == 0
    misses = answer["near_misses"]
    # fewest parts differing first: the creation of 13 (its number); the refused one
    # (number, code) and the creation of 12 (number, and its goal not asked for), the newer
    # first; the list (method, body, code); the page (method, number, action, code)
    assert [m["entry"]["body"] for m in misses] == [
        {"number": 13},
        {"number": "twelve"},
        {"number": 12, "goal": 300},
        None,
        {"action": "page"},
    ]
    assert misses[0]["differences"] == [
        {"part": "body.number", "expected": 14, "actual": 13, "kind": "different"}
    ]
    assert [d["part"] for d in misses[1]["differences"]] == ["body.number", "code"]
    assert misses[2]["differences"][1] == {
        "part": "body.goal",
        "expected": None,
        "actual": 300,
        "kind": "unexpected",
    }

    with pytest.raises(AssertionError) as caught:
        emu.verify("POST", SESSIONS, body={"number": 14}, code="2.01")
    assert isinstance(caught.value, VerificationFailed)
    assert str(caught.value) == Verdict.from_json(answer).message()
    text = str(caught.value)
    assert text.startswith(
        "expected at least 1 request matching\n"
        '    POST /v1/sessions body {"number": 14} answered 2.01\n'
        "found none.\n"
        "Closest requests (best first):\n"
    )
    assert "      body.number: expected 14, got 13\n" in text
    assert "      code: expected 2.01, got 4.00" in text


async def test_too_many_lists_the_matches_and_no_near_misses(driven):
    http, emu = driven.http, driven.emu
    status, answer = await http.request(
        "POST", "/journal/verify", {"method": "POST", "path": SESSIONS, "at_most": 2}
    )
    assert status == 409 and answer["count"] == 3 and answer["near_misses"] == []
    with pytest.raises(AssertionError) as caught:
        emu.verify("POST", SESSIONS, exactly=2)
    lines = str(caught.value).splitlines()
    assert lines[:3] == [
        "expected exactly 2 requests matching",
        "    POST /v1/sessions",
        "found 3:",
    ]
    assert [line.split()[1:3] for line in lines[3:]] == [["POST", SESSIONS]] * 3
    assert (await http.post("/journal/verify", {"path": "/v1/page", "exactly": 0}))["count"] == 0
    assert emu.verify(path="/v1/page", at_most=0) == []


async def test_after_limits_verification_to_later_entries(driven):
    http, emu = driven.http, driven.emu
    first, second, _ = emu.verify("POST", SESSIONS, exactly=3)
    assert emu.verify("POST", SESSIONS, exactly=2, after=first.id)[0] == second
    answer = await http.post(
        "/journal/verify", {"method": "POST", "path": SESSIONS, "exactly": 2, "after": first.id}
    )
    assert answer["matches"][0]["id"] == second.id


async def test_sequences_over_http_and_in_python(driven):
    http, emu = driven.http, driven.emu
    patterns = [
        {"method": "POST", "body": {"number": 12}, "contains": True},
        {"method": "PUT", "query": {"number": "12"}},
        {"path": "/v1/sesions", "code": "4.04"},
    ]
    answer = await http.post("/journal/verify-sequence", {"patterns": patterns})
    assert answer["holds"] is True and answer["unmatched"] is None
    assert [m["method"] for m in answer["matches"]] == ["POST", "PUT", "GET"]
    found = emu.verify_in_order(*(Request(**p) for p in patterns))
    assert [e.to_json() for e in found] == answer["matches"]
    # the same pattern twice needs two requests
    twice = [{"method": "POST", "code": "2.01"}] * 2
    assert (await http.post("/journal/verify-sequence", {"patterns": twice}))["holds"]
    status, answer = await http.request("POST", "/journal/verify-sequence", {"patterns": twice * 2})
    assert status == 409 and answer["unmatched"]["index"] == 2


async def test_out_of_order_over_http_and_in_python(driven):
    http, emu = driven.http, driven.emu
    patterns = [{"method": "PUT"}, {"method": "POST", "body": {"number": 13}}, {"method": "GET"}]
    status, answer = await http.request("POST", "/journal/verify-sequence", {"patterns": patterns})
    assert status == 409 and answer["holds"] is False
    put = answer["matches"][0]
    assert [m["method"] for m in answer["matches"]] == ["PUT"]
    unmatched = answer["unmatched"]
    assert (unmatched["index"], unmatched["after"]) == (1, put["id"])
    assert [e["body"] for e in unmatched["earlier"]] == [{"number": 13}]
    # after the PUT: the refused POST, one part different
    assert [m["entry"]["body"] for m in unmatched["near_misses"]] == [{"number": "twelve"}]

    with pytest.raises(VerificationFailed) as caught:
        emu.verify_in_order(*(Request(**p) for p in patterns))
    assert str(caught.value) == SequenceVerdict.from_json(answer).message()
    text = str(caught.value)
    assert f"patterns[1] matched no request after entry #{put['id']}." in text
    earlier = unmatched["earlier"][0]["id"]
    assert f"It matches earlier requests, out of order: #{earlier}." in text
    assert '      body.number: expected 13, got "twelve"' in text


async def test_a_retransmitted_request_counts_once(frozen):
    """The client's first datagram is lost to a drop fault; aiocoap retransmits it and it
    gets through: two journal entries, one request."""
    emu = frozen.emu
    emu.add_fault("drop", path=SESSIONS, count=1)
    assert (await frozen.coap.post(SESSIONS, {"number": 21})).code == "2.01"
    recorded = emu.journal(path=SESSIONS)
    assert len(recorded) == 2 and recorded[0].code is None
    assert (recorded[0].mid, recorded[0].token) == (recorded[1].mid, recorded[1].token)
    assert emu.verify("POST", SESSIONS, body={"number": 21}, exactly=1) == [recorded[1]]
    answer = await frozen.http.post("/journal/verify", {"path": SESSIONS, "exactly": 1})
    assert ids(answer["matches"]) == [recorded[1].id]


async def test_a_retransmission_answered_from_the_cache_counts_once(frozen):
    """The same CON datagram twice (a client whose answer was lost): the second is answered
    from the deduplication cache, a journal entry of its own, and no second request."""
    emu = frozen.emu
    message = aiocoap.Message(
        code=aiocoap.POST,
        uri=f"coap://127.0.0.1:{emu.port}{SESSIONS}",
        payload=b'{"number":22}',
        content_format=50,
    )
    message.mtype, message.mid, message.token = Type.CON, 4242, b"vv"
    async with datagrams_to(emu.port) as (transport, proto):
        for _ in range(2):
            transport.sendto(message.encode())
            answer = aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))
            assert answer.code.dotted == "2.01"
    original, again = emu.journal(path=SESSIONS)
    assert (original.duplicate, again.duplicate) == (False, True)
    assert emu.verify("POST", SESSIONS, exactly=1) == [original]
    answer = await frozen.http.post("/journal/verify", {"path": SESSIONS, "exactly": 1})
    assert ids(answer["matches"]) == [original.id]


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ({"kind": "duplicate"}, "the network delivered the request twice"),
        ({"kind": "drop", "direction": "answer"}, "the answer was lost: the client retransmits"),
    ],
)
async def test_chaos_faults_make_entries_not_requests(frozen, fault, why):
    emu = frozen.emu
    emu.add_fault(path=SESSIONS, count=1, **fault)
    assert (await frozen.coap.post(SESSIONS, {"number": 23})).code == "2.01"
    entries = emu.journal(path=SESSIONS)
    assert len(entries) == 2 and [e.duplicate for e in entries] == [False, True], why
    assert emu.verify("POST", SESSIONS, body={"number": 23}, exactly=1) == entries[:1]


async def test_a_reset_and_delete_journal_leave_nothing_to_verify(driven):
    http, emu = driven.http, driven.emu
    assert emu.verify(path=SESSIONS, at_least=5)
    await http.delete("/journal")
    assert emu.verify(exactly=0) == []
    assert (await driven.coap.get(SESSIONS)).code == "2.05"
    assert emu.verify("GET", SESSIONS, exactly=1)
    await emu.reset()
    assert (await http.post("/journal/verify", {"exactly": 0}))["holds"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"methd": "GET"}, "methd: Extra inputs are not permitted"),
        ({"exactly": "1"}, "exactly: Input should be a valid integer"),
        ({"exactly": 1, "at_least": 1}, "give one count condition, not exactly and at_least"),
        ({"at_most": -1}, "at_most must be an integer from 0 to 1000000000, not -1"),
        ({"path": "v1/sessions"}, "path must start with / and be at most 1024 characters"),
        ({"code": "201"}, "code must be a response code such as 2.05, not '201'"),
        ({"query": {"number": True}}, "query.number.str: Input should be a valid string"),
        ({"contains": "yes"}, "contains: Input should be a valid boolean"),
        ({"body": list(range(BODY_NODES_MAX))}, f"body may hold at most {BODY_NODES_MAX} values"),
        ({"after": -1}, "after: Input should be greater than or equal to 0"),
    ],
)
async def test_bad_patterns_are_400_saying_why(rig, body, error):
    status, answer = await rig.http.request("POST", "/journal/verify", body)
    assert (status, answer) == (400, {"error": error})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "patterns: Field required"),
        ({"patterns": []}, "give at least one pattern"),
        ({"patterns": [{"method": "GET", "exactly": 1}]}, "patterns.0.exactly: Extra inputs"),
        ({"patterns": [{}] * 1001}, "give at most 1000 patterns"),
        ({"patterns": [{"code": 2.05}]}, "patterns.0.code: Input should be a valid string"),
    ],
)
async def test_bad_sequences_are_400_saying_why(rig, body, error):
    status, answer = await rig.http.request("POST", "/journal/verify-sequence", body)
    assert status == 400 and answer["error"].startswith(error), answer


async def test_bad_patterns_in_python_are_value_errors(rig):
    with pytest.raises(BadPattern, match="give one count condition"):
        rig.emu.verify(exactly=1, at_most=2)
    with pytest.raises(ValueError, match="method must be a CoAP method"):
        rig.emu.verify(method="GET /v1")
    with pytest.raises(BadPattern, match=r"patterns\[0\] must be a Request"):
        rig.emu.verify_in_order({"method": "GET"})  # type: ignore[arg-type]


async def test_the_pytest_fixture_verifies(pager_emulator):
    context = await aiocoap.Context.create_client_context()
    try:
        coap = Client(context, pager_emulator.port)
        assert (await coap.post(SESSIONS, {"number": 12})).code == "2.01"
    finally:
        await context.shutdown()
    (created,) = pager_emulator.verify("POST", SESSIONS, body={"number": 12}, exactly=1)
    assert created.code == "2.01" and created.device_time == "2026-01-15T18:00:00"
    with pytest.raises(AssertionError, match="body.number: expected 13, got 12"):
        pager_emulator.verify_in_order(Request("POST", body={"number": 13}))


async def test_the_messages_docs_python_md_shows_are_what_pytest_shows(frozen):
    coap, emu = frozen.coap, frozen.emu
    assert (await coap.post(SESSIONS, {"number": 12})).code == "2.01"
    page = {"action": "page", "message": "Table ready\fF30"}
    assert (await coap.put(SESSIONS, page, query="number=12")).code == "2.04"
    doc = (REPO / "docs" / "python.md").read_text()
    shown = [
        "\n".join(line[4:] for line in block.splitlines()).removeprefix("AssertionError: ")
        for block in re.findall(r"^```\n(E   AssertionError: .*?)^```", doc, re.M | re.S)
    ]
    with pytest.raises(AssertionError) as miss:
        emu.verify("POST", SESSIONS, body={"number": 13}, code="2.01")
    with pytest.raises(AssertionError) as out_of_order:
        emu.verify_in_order(Request("PUT"), Request("POST", body={"number": 12}))
    assert shown == [str(miss.value), str(out_of_order.value)]
