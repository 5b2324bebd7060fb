"""Malformed requests end to end over real UDP (spec §2, §2.2, §4, §7, §9).

Every refusal must:
- answer with the right 4.xx code and a compact JSON error envelope (§2, §2.1, §2.2):
  `responseTypes:["error"]`, then `globalSessionSequence`, `timestamp`, `deviceName`,
  `firmwareVersion`, then `error` with `code`, a non-empty `message` and `field` when one
  field is at fault;
- change nothing (§2.2): active sessions, statistics, settings, history, the sessions ETag and
  the transmission record are the same before and after.

The `strict` setting (§2) is exercised at the end: unknown fields, unknown query keys and
non-compact JSON are refused with 4.00 when it is on, and accepted with a logged warning when
it is off.
"""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest

from tests.conftest import START

DEVICE_NAME = "T7470"
FIRMWARE = "8.4.100.43"
ENVELOPE_ORDER = [
    "responseTypes",
    "globalSessionSequence",
    "timestamp",
    "deviceName",
    "firmwareVersion",
    "error",
]
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def js(obj: Any) -> bytes:
    return compact(obj).encode()


def padded_session_body(size: int) -> bytes:
    """`{"number":8,"label":"xxx…"}` of exactly `size` bytes (the label is too long anyway)."""
    head, tail = b'{"number":8,"label":"', b'"}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail
    assert len(body) == size
    return body


def case(
    case_id: str,
    method: str,
    path: str,
    code: str,
    field: str | None,
    *,
    query: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    content_format: int | None = None,
    accept: int | None = None,
    marks=(),
):
    """One malformed request. `body` is sent as compact JSON with Content-Format 50; `raw` is
    sent byte for byte with only the Content-Format given (none: the server reads JSON)."""
    if body is not None:
        assert raw is None
        raw = js(body)
        content_format = 50 if content_format is None else content_format
    return pytest.param(
        method, path, query, raw, content_format, accept, code, field, id=case_id, marks=marks
    )


S, PAGE, SETTINGS = "/v1/sessions", "/v1/page", "/v1/settings"
HISTORY, STATISTICS = "/v1/sessions/history", "/v1/sessions/statistics"

CASES = [
    # ---- the body is not a JSON object (§2) -------------------------------------------------
    case("json-syntax", "POST", S, "4.00", None, raw=b"{number:8}"),
    case(
        "json-syntax-trailing-comma",
        "POST",
        S,
        "4.00",
        None,
        raw=b'{"number":8,}',
        content_format=50,
    ),
    case("json-truncated", "POST", S, "4.00", None, raw=b'{"number":8,"label":"ke'),
    case("json-array", "POST", S, "4.00", None, raw=b"[8]", content_format=50),
    case("json-string", "POST", S, "4.00", None, raw=b'"number"'),
    case("json-number", "POST", S, "4.00", None, raw=b"8"),
    case("json-garbage-bytes", "POST", S, "4.00", None, raw=b"\xff\xfe{}"),
    # ---- number (§2 strict types, §4.1 required, §7 range) ----------------------------------
    case("empty-body-no-number", "POST", S, "4.00", "number", raw=b""),
    case("empty-object-no-number", "POST", S, "4.00", "number", body={}),
    case("missing-number", "POST", S, "4.00", "number", body={"label": "x", "goal": 60}),
    case("number-as-string", "POST", S, "4.00", "number", body={"number": "66"}),
    case("number-as-float", "POST", S, "4.00", "number", body={"number": 66.5}),
    case("number-as-true", "POST", S, "4.00", "number", body={"number": True}),
    case("number-null", "POST", S, "4.00", "number", body={"number": None}),
    case("number-minus-1", "POST", S, "4.00", "number", body={"number": -1}),
    case("number-4096", "POST", S, "4.00", "number", body={"number": 4096}),
    case("number-as-8.0", "POST", S, "4.00", "number", raw=b'{"number":8.0}'),
    case(
        "number-huge",
        "POST",
        S,
        "4.00",
        "number",
        raw=b'{"number":99999999999999999999999999}',
        content_format=50,
    ),
    case("number-twice-last-bad", "POST", S, "4.00", "number", raw=b'{"number":8,"number":"8"}'),
    case("json-two-objects", "POST", S, "4.00", None, raw=b'{"number":8}{"number":8}'),
    case("json-byte-order-mark", "POST", S, "4.00", None, raw=b'\xef\xbb\xbf{"number":8}'),
    case("json-raw-control-char", "POST", S, "4.00", None, raw=b'{"number":8,"label":"a\x00b"}'),
    # ---- goal, partySize, label (§2, §7); create path (8) and update path (7) ----------------
    case("goal-minus-1", "POST", S, "4.00", "goal", body={"number": 8, "goal": -1}),
    case("goal-86401", "POST", S, "4.00", "goal", body={"number": 8, "goal": 86401}),
    case("goal-as-string", "POST", S, "4.00", "goal", body={"number": 8, "goal": "60"}),
    case("goal-as-float", "POST", S, "4.00", "goal", body={"number": 8, "goal": 60.5}),
    case("goal-null", "POST", S, "4.00", "goal", body={"number": 8, "goal": None}),
    case("goal-exponent", "POST", S, "4.00", "goal", raw=b'{"number":8,"goal":1e3}'),
    case("goal-huge", "POST", S, "4.00", "goal", raw=b'{"number":8,"goal":1' + b"0" * 30 + b"}"),
    case("goal-86401-update", "POST", S, "4.00", "goal", body={"number": 7, "goal": 86401}),
    case("party-size-0", "POST", S, "4.00", "partySize", body={"number": 8, "partySize": 0}),
    case("party-size-1000", "POST", S, "4.00", "partySize", body={"number": 7, "partySize": 1000}),
    case("label-empty", "POST", S, "4.00", "label", body={"number": 8, "label": ""}),
    case("label-65-chars", "POST", S, "4.00", "label", body={"number": 8, "label": "L" * 65}),
    case("label-as-number", "POST", S, "4.00", "label", body={"number": 7, "label": 5}),
    case("label-as-list", "POST", S, "4.00", "label", body={"number": 8, "label": ["x"]}),
    case(
        "party-size-false", "POST", S, "4.00", "partySize", body={"number": 8, "partySize": False}
    ),
    # ---- action, pageMode, message (§4.1, §7, §9) --------------------------------------------
    case("action-dance", "POST", S, "4.00", "action", body={"number": 8, "action": "dance"}),
    case("action-as-number", "POST", S, "4.00", "action", body={"number": 7, "action": 5}),
    case("action-null", "POST", S, "4.00", "action", body={"number": 8, "action": None}),
    case("page-mode-null", "POST", S, "4.00", "pageMode", body={"number": 8, "pageMode": None}),
    case(
        "message-as-number",
        "POST",
        S,
        "4.00",
        "message",
        body={"number": 8, "action": "page", "message": 5},
    ),
    case(
        "page-mode-wrong-case",
        "POST",
        S,
        "4.00",
        "pageMode",
        body={"number": 8, "action": "page", "pageMode": "flash30sec"},
    ),
    case(
        "page-mode-unknown",
        "POST",
        S,
        "4.00",
        "pageMode",
        body={"number": 7, "action": "page", "pageMode": "Strobe"},
    ),
    case(
        "message-241-chars",
        "POST",
        S,
        "4.00",
        "message",
        body={"number": 8, "action": "page", "message": "m" * 241},
    ),
    case(
        "message-241-with-override",
        "POST",
        S,
        "4.00",
        "message",
        body={"number": 7, "action": "page", "message": "m" * 236 + "\fF30V"},
    ),
    case(
        "message-bad-override",
        "POST",
        S,
        "4.00",
        "message",
        body={"number": 7, "action": "page", "message": "hi\f#"},
    ),
    # ---- PUT /v1/sessions?number=N body (§4.2) -----------------------------------------------
    case("put-goal-minus-1", "PUT", S, "4.00", "goal", query="number=7", body={"goal": -1}),
    case(
        "put-label-65-chars", "PUT", S, "4.00", "label", query="number=7", body={"label": "L" * 65}
    ),
    case(
        "put-action-dance", "PUT", S, "4.00", "action", query="number=7", body={"action": "dance"}
    ),
    case(
        "put-body-number-mismatch",
        "PUT",
        S,
        "4.00",
        "number",
        query="number=7",
        body={"number": 8, "label": "x"},
    ),
    case("put-json-array", "PUT", S, "4.00", None, query="number=7", raw=b"[]"),
    case(
        "put-body-number-as-string",
        "PUT",
        S,
        "4.00",
        "number",
        query="number=7",
        body={"number": "7"},
    ),
    # ---- POST /v1/page (§9) ------------------------------------------------------------------
    case(
        "page-system-id-256", "POST", PAGE, "4.00", "systemId", body={"number": 3, "systemId": 256}
    ),
    case(
        "page-system-id-as-string",
        "POST",
        PAGE,
        "4.00",
        "systemId",
        body={"number": 3, "systemId": "1"},
    ),
    case(
        "page-system-id-null",
        "POST",
        PAGE,
        "4.00",
        "systemId",
        body={"number": 3, "systemId": None},
    ),
    case("page-message-null", "POST", PAGE, "4.00", "message", body={"number": 3, "message": None}),
    case("page-without-number", "POST", PAGE, "4.00", "number", body={"pageMode": "Flash30Sec"}),
    case("page-empty-body", "POST", PAGE, "4.00", "number", raw=b""),
    case("page-number-4096", "POST", PAGE, "4.00", "number", body={"number": 4096}),
    case(
        "page-standalone-mode-unknown",
        "POST",
        PAGE,
        "4.00",
        "pageMode",
        body={"number": 3, "pageMode": "Strobe"},
    ),
    case(
        "page-message-bad-override",
        "POST",
        PAGE,
        "4.00",
        "message",
        body={"number": 3, "message": "hi\f1"},
    ),
    # ---- POST /v1/settings (§4.6, §7) --------------------------------------------------------
    case(
        "settings-datetime-month-13",
        "POST",
        SETTINGS,
        "4.00",
        "datetime",
        body={"datetime": "2026-13-01T00:00:00"},
    ),
    case(
        "settings-datetime-word",
        "POST",
        SETTINGS,
        "4.00",
        "datetime",
        body={"datetime": "yesterday"},
    ),
    case(
        "settings-datetime-space",
        "POST",
        SETTINGS,
        "4.00",
        "datetime",
        body={"datetime": "2026-03-15 11:55:20"},
    ),
    case(
        "settings-datetime-with-offset",
        "POST",
        SETTINGS,
        "4.00",
        "datetime",
        body={"datetime": "2026-03-15T11:55:20Z"},
    ),
    case(
        "settings-datetime-as-number",
        "POST",
        SETTINGS,
        "4.00",
        "datetime",
        body={"datetime": 1773575720},
    ),
    case("settings-system-id-minus-1", "POST", SETTINGS, "4.00", "systemId", body={"systemId": -1}),
    case(
        "settings-default-goal-86401",
        "POST",
        SETTINGS,
        "4.00",
        "defaultTargetGoal",
        body={"defaultTargetGoal": 86401},
    ),
    case(
        "settings-clear-mark-25",
        "POST",
        SETTINGS,
        "4.00",
        "statisticsClearMark",
        body={"statisticsClearMark": 25},
    ),
    case(
        "settings-one-good-one-bad",
        "POST",
        SETTINGS,
        "4.00",
        "defaultTargetGoal",
        body={"systemId": 9, "datetime": "2030-01-01T00:00:00", "defaultTargetGoal": 86401},
    ),
    case("settings-json-array", "POST", SETTINGS, "4.00", None, raw=b'[{"systemId":1}]'),
    # ---- number in the query (§4) ------------------------------------------------------------
    case("get-number-abc", "GET", S, "4.00", "number", query="number=abc"),
    case("put-number-abc", "PUT", S, "4.00", "number", query="number=abc", body={"label": "x"}),
    case("delete-number-abc", "DELETE", S, "4.00", "number", query="number=abc"),
    case("get-number-empty", "GET", S, "4.00", "number", query="number="),
    case("put-number-empty", "PUT", S, "4.00", "number", query="number=", body={"label": "x"}),
    case("delete-number-empty", "DELETE", S, "4.00", "number", query="number="),
    case("get-number-minus-3", "GET", S, "4.00", "number", query="number=-3"),
    case("put-number-minus-3", "PUT", S, "4.00", "number", query="number=-3", body={"label": "x"}),
    case("delete-number-1.5", "DELETE", S, "4.00", "number", query="number=1.5"),
    case("get-number-1.5", "GET", S, "4.00", "number", query="number=1.5"),
    case("put-number-4096", "PUT", S, "4.00", "number", query="number=4096", body={"label": "x"}),
    case("get-number-no-equals", "GET", S, "4.00", "number", query="number"),
    case("delete-number-no-equals", "DELETE", S, "4.00", "number", query="number"),
    case("put-number-no-equals", "PUT", S, "4.00", "number", query="number", body={"label": "x"}),
    case("get-query-without-name", "GET", S, "4.00", None, query="=7"),
    case("get-number-hex", "GET", S, "4.00", "number", query="number=0x7"),
    case("get-number-twice", "GET", S, "4.00", "number", query="number=7&number=7"),
    case("delete-number-twice", "DELETE", S, "4.00", "number", query="number=7&number=7"),
    case(
        "put-number-twice",
        "PUT",
        S,
        "4.00",
        "number",
        query="number=7&number=8",
        body={"label": "x"},
    ),
    case("put-without-number", "PUT", S, "4.00", "number", body={"label": "x"}),
    case("put-without-query-or-body", "PUT", S, "4.00", "number"),
    # ---- history query (§4.4) ----------------------------------------------------------------
    case("history-limit-0", "GET", HISTORY, "4.00", "limit", query="limit=0"),
    case("history-limit-1001", "GET", HISTORY, "4.00", "limit", query="limit=1001"),
    case("history-limit-x", "GET", HISTORY, "4.00", "limit", query="limit=x"),
    case("history-limit-empty", "GET", HISTORY, "4.00", "limit", query="limit="),
    case("history-after-minus-1", "GET", HISTORY, "4.00", "after", query="after=-1"),
    case("history-limit-twice", "GET", HISTORY, "4.00", "limit", query="limit=1&limit=2"),
    # ---- methods a resource does not have (§4) -----------------------------------------------
    case("put-settings", "PUT", SETTINGS, "4.05", None, body={"systemId": 1}),
    case("delete-settings", "DELETE", SETTINGS, "4.05", None),
    case("delete-page", "DELETE", PAGE, "4.05", None),
    case("get-page", "GET", PAGE, "4.05", None),
    case("post-statistics", "POST", STATISTICS, "4.05", None, body={}),
    case("put-history", "PUT", HISTORY, "4.05", None, body={}),
    case("post-history", "POST", HISTORY, "4.05", None, body={"number": 7}),
    # ---- formats (§2) ------------------------------------------------------------------------
    case(
        "content-format-text-plain", "POST", S, "4.15", None, body={"number": 8}, content_format=0
    ),
    case(
        "content-format-xml-on-settings",
        "POST",
        SETTINGS,
        "4.15",
        None,
        body={"systemId": 1},
        content_format=41,
    ),
    case(
        "content-format-text-plain-on-put",
        "PUT",
        S,
        "4.15",
        None,
        query="number=7",
        body={"label": "new"},
        content_format=0,
    ),
    case("accept-text-plain", "POST", S, "4.06", None, body={"number": 8}, accept=0),
    case("accept-text-plain-on-delete", "DELETE", S, "4.06", None, query="number=7", accept=0),
    case("accept-text-plain-on-page", "POST", PAGE, "4.06", None, body={"number": 3}, accept=0),
    case("cbor-not-cbor", "POST", S, "4.00", None, raw=b"\xa1\x66num", content_format=60),
    case("cbor-json-bytes", "POST", S, "4.00", None, raw=b'{"number":8}', content_format=60),
    case(
        "cbor-number-as-text",
        "POST",
        S,
        "4.00",
        "number",
        raw=cbor2.dumps({"number": "8"}),
        content_format=60,
    ),
    case("cbor-array", "POST", S, "4.00", None, raw=cbor2.dumps([8]), content_format=60),
    case("cbor-null", "POST", S, "4.00", None, raw=cbor2.dumps(None), content_format=60),
    case("cbor-integer-keys", "POST", S, "4.00", None, raw=cbor2.dumps({1: 8}), content_format=60),
    case(
        "cbor-number-as-float",
        "POST",
        S,
        "4.00",
        "number",
        raw=cbor2.dumps({"number": 8.0}),
        content_format=60,
    ),
    case(
        "cbor-number-as-true",
        "POST",
        S,
        "4.00",
        "number",
        raw=cbor2.dumps({"number": True}),
        content_format=60,
    ),
    case(
        "cbor-label-as-bytes",
        "POST",
        S,
        "4.00",
        "label",
        raw=cbor2.dumps({"number": 8, "label": b"keep"}),
        content_format=60,
    ),
    case(
        "cbor-datetime-tag",
        "POST",
        SETTINGS,
        "4.00",
        "datetime",
        raw=cbor2.dumps({"datetime": datetime(2026, 1, 1, tzinfo=UTC)}),
        content_format=60,
    ),
    case(
        "cbor-trailing-bytes",
        "POST",
        S,
        "4.00",
        None,
        raw=cbor2.dumps({"number": 8}) + b"\x00",
        content_format=60,
    ),
    case(
        "cbor-settings-system-id-256",
        "POST",
        SETTINGS,
        "4.00",
        "systemId",
        raw=cbor2.dumps({"systemId": 256}),
        content_format=60,
    ),
    # ---- size (§7): checked before anything else ----------------------------------------------
    case(
        "body-1025-bytes", "POST", S, "4.13", None, raw=padded_session_body(1025), content_format=50
    ),
    case("body-2000-bytes", "POST", S, "4.13", None, raw=padded_session_body(2000)),
    # ---- which refusal wins (README: Content-Format, Accept, size, body/query, existence) ---
    case(
        "precedence-format-over-accept",
        "POST",
        S,
        "4.15",
        None,
        body={"number": 8},
        content_format=0,
        accept=0,
    ),
    case(
        "precedence-format-over-size",
        "POST",
        S,
        "4.15",
        None,
        raw=padded_session_body(1025),
        content_format=0,
    ),
    case(
        "precedence-accept-over-size",
        "POST",
        S,
        "4.06",
        None,
        raw=padded_session_body(1025),
        content_format=50,
        accept=0,
    ),
    case(
        "precedence-format-over-size-blockwise",
        "POST",
        S,
        "4.15",
        None,
        raw=padded_session_body(3000),
        content_format=0,
    ),
    case(
        "precedence-accept-over-size-blockwise",
        "POST",
        S,
        "4.06",
        None,
        raw=padded_session_body(3000),
        content_format=50,
        accept=0,
    ),
    case(
        "precedence-format-over-method",
        "PUT",
        SETTINGS,
        "4.15",
        None,
        body={"systemId": 1},
        content_format=0,
    ),
    case(
        "precedence-body-over-existence-put",
        "PUT",
        S,
        "4.00",
        "goal",
        query="number=8",
        body={"goal": -1},
    ),
    case(
        "precedence-body-over-existence-post",
        "POST",
        S,
        "4.00",
        "goal",
        body={"number": 8, "action": "clear", "goal": -1},
    ),
    case(
        "body-1024-bytes-is-read",
        "POST",
        S,
        "4.00",
        "label",
        raw=padded_session_body(1024),
        content_format=50,
    ),
    # ---- no active session (§4) --------------------------------------------------------------
    case(
        "post-clear-never-used", "POST", S, "4.04", "number", body={"number": 8, "action": "clear"}
    ),
    case(
        "post-remove-never-used",
        "POST",
        S,
        "4.04",
        "number",
        body={"number": 8, "action": "remove", "label": "x"},
    ),
    case("post-clear-archived", "POST", S, "4.04", "number", body={"number": 9, "action": "clear"}),
    case("put-no-session", "PUT", S, "4.04", "number", query="number=8", body={"label": "x"}),
    case(
        "put-page-archived", "PUT", S, "4.04", "number", query="number=9", body={"action": "page"}
    ),
    case("delete-no-session", "DELETE", S, "4.04", "number", query="number=8"),
    case("delete-archived", "DELETE", S, "4.04", "number", query="number=9"),
    case("get-no-session", "GET", S, "4.04", "number", query="number=8"),
]


# ---- helpers -------------------------------------------------------------------------------


async def seed(client) -> None:
    """One archived session (number 9, paged then cleared) and one active one (number 7)."""
    r = await client.post(S, {"number": 9, "label": "gone", "action": "page"})
    assert r.code == "2.01", r.payload
    r = await client.put(S, {"action": "clear"}, query="number=9")
    assert r.code == "2.04", r.payload
    r = await client.post(S, {"number": 7, "label": "keep"})
    assert r.code == "2.01", r.payload


async def snapshot(client, emulator) -> dict:
    """Everything a rejected request must leave alone, as the API (and the store) show it."""
    sessions = await client.get(S)
    assert sessions.code == "2.05", sessions.payload
    sessions_json = sessions.json
    sessions_json.pop("timestamp")
    statistics = await client.get(STATISTICS)
    assert statistics.code == "2.05", statistics.payload
    settings = await client.get(SETTINGS)
    assert settings.code == "2.05", settings.payload
    settings_json = settings.json
    settings_json.pop("timestamp")
    settings_json["settings"].pop("datetime")
    history = await client.get(HISTORY)
    assert history.code == "2.05", history.payload
    transmissions = await emulator.engine.store.transmissions()
    return {
        "sessions": sessions_json,
        "etag": sessions.message.opt.etag,
        "statistics": statistics.json,
        "settings": settings_json,
        "history": history.json,
        "transmissions": [t.id for t in transmissions],
    }


def assert_error_body(reply, code: str, field: str | None, sequence: int | None = None) -> dict:
    """The §2.2 error envelope, compact JSON, members in order."""
    assert reply.code == code, reply.payload
    assert reply.message.opt.content_format == 50
    text = reply.payload.decode("utf-8")
    body = json.loads(text)
    assert isinstance(body, dict)
    assert text == compact(body), "response is not compact JSON"
    assert list(body) == ENVELOPE_ORDER
    assert body["responseTypes"] == ["error"]
    assert isinstance(body["globalSessionSequence"], int)
    if sequence is not None:
        assert body["globalSessionSequence"] == sequence
    assert TIMESTAMP.match(body["timestamp"])
    assert body["deviceName"] == DEVICE_NAME
    assert body["firmwareVersion"] == FIRMWARE
    error = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"].strip()
    assert error.get("field") == field
    if field is None:
        assert "field" not in error, "field must be absent when no single field is at fault"
    assert set(error) <= {"code", "message", "field"}
    return body


# ---- 1. the catalogue ----------------------------------------------------------------------


def test_catalogue_is_large_and_ids_unique():
    ids = [p.id for p in CASES]
    assert len(ids) >= 40
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("method, path, query, raw, content_format, accept, code, field", CASES)
async def test_malformed_request_is_refused_and_changes_nothing(
    client, emulator, method, path, query, raw, content_format, accept, code, field
):
    await seed(client)
    before = await snapshot(client, emulator)

    reply = await client.request(
        method, path, query=query, raw=raw, content_format=content_format, accept=accept
    )

    body = assert_error_body(
        reply, code, field, sequence=before["sessions"]["globalSessionSequence"]
    )
    assert body["timestamp"] == START.strftime("%Y-%m-%dT%H:%M:%S")
    if code == "4.13":
        assert reply.message.opt.size1 == 1024
    after = await snapshot(client, emulator)
    assert after == before


# ---- 2. strict mode ------------------------------------------------------------------------

UNKNOWN_FIELD = [
    pytest.param("POST", S, None, {"number": 8, "colour": "red"}, "2.01", id="post-session"),
    pytest.param("POST", S, None, {"number": 7, "colour": "red"}, "2.00", id="post-session-update"),
    pytest.param("PUT", S, "number=7", {"label": "new", "colour": "red"}, "2.04", id="put-session"),
    pytest.param("POST", SETTINGS, None, {"systemId": 3, "colour": "red"}, "2.04", id="settings"),
    pytest.param("POST", PAGE, None, {"number": 3, "colour": "red"}, "2.04", id="page"),
]

NOT_COMPACT = [
    pytest.param("POST", S, None, b'{"number":8,\n"label":"x"}', "2.01", id="session-newline"),
    pytest.param("POST", S, None, b'{"number":8,\t"label":"x"}', "2.01", id="session-tab"),
    pytest.param("POST", S, None, b'{\r\n"number":8\r\n}', "2.01", id="session-crlf"),
    pytest.param("PUT", S, "number=7", b'{\n\t"label": "new"\n}\n', "2.04", id="put-pretty"),
    pytest.param("POST", SETTINGS, None, b'{"systemId":3}\n', "2.04", id="settings-newline"),
    pytest.param("POST", PAGE, None, b'{\t"number":3}', "2.04", id="page-tab"),
]

UNKNOWN_QUERY = [
    pytest.param("GET", S, "colour=red", None, "2.05", id="get-sessions"),
    pytest.param("GET", S, "number=7&colour=red", None, "2.05", id="get-session"),
    pytest.param("PUT", S, "number=7&colour=red", {"label": "new"}, "2.04", id="put-session"),
    pytest.param("DELETE", S, "number=7&colour=red", None, "2.02", id="delete-session"),
    pytest.param("GET", HISTORY, "colour=red", None, "2.05", id="history"),
    pytest.param("GET", HISTORY, "limit=5&colour=red", None, "2.05", id="history-limit"),
    pytest.param("POST", S, "colour=red", {"number": 8}, "2.01", id="post-session"),
    pytest.param("GET", STATISTICS, "colour=red", None, "2.05", id="statistics"),
    pytest.param("GET", SETTINGS, "colour=red", None, "2.05", id="settings"),
    pytest.param("POST", PAGE, "colour=red", {"number": 3}, "2.04", id="page"),
]


def _send(client, method, path, query, body):
    raw = body if isinstance(body, bytes) else (None if body is None else js(body))
    content_format = 50 if isinstance(body, dict) else None
    return client.request(method, path, query=query, raw=raw, content_format=content_format)


def _warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "pager.coap" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize("config_overrides", [{"strict": True}])
@pytest.mark.parametrize("method, path, query, body, ok", UNKNOWN_FIELD)
async def test_strict_refuses_unknown_field(client, emulator, method, path, query, body, ok):
    await seed(client)
    before = await snapshot(client, emulator)
    reply = await _send(client, method, path, query, body)
    assert_error_body(reply, "4.00", "colour")
    assert "colour" in reply.json["error"]["message"]
    assert await snapshot(client, emulator) == before


@pytest.mark.parametrize("method, path, query, body, ok", UNKNOWN_FIELD)
async def test_lenient_accepts_unknown_field_with_warning(
    client, caplog, method, path, query, body, ok
):
    await seed(client)
    caplog.set_level(logging.WARNING, logger="pager.coap")
    caplog.clear()
    reply = await _send(client, method, path, query, body)
    assert reply.code == ok, reply.payload
    assert "colour" not in reply.payload.decode()
    assert any("colour" in w for w in _warnings(caplog)), caplog.records


@pytest.mark.parametrize("config_overrides", [{"strict": True}])
@pytest.mark.parametrize("method, path, query, raw, ok", NOT_COMPACT)
async def test_strict_refuses_whitespace_json(client, emulator, method, path, query, raw, ok):
    await seed(client)
    before = await snapshot(client, emulator)
    reply = await _send(client, method, path, query, raw)
    assert_error_body(reply, "4.00", None)
    assert await snapshot(client, emulator) == before


@pytest.mark.parametrize("method, path, query, raw, ok", NOT_COMPACT)
async def test_lenient_accepts_whitespace_json_with_warning(
    client, caplog, method, path, query, raw, ok
):
    await seed(client)
    caplog.set_level(logging.WARNING, logger="pager.coap")
    caplog.clear()
    reply = await _send(client, method, path, query, raw)
    assert reply.code == ok, reply.payload
    assert _warnings(caplog), caplog.records


@pytest.mark.parametrize("config_overrides", [{"strict": True}])
@pytest.mark.parametrize("method, path, query, body, ok", UNKNOWN_QUERY)
async def test_strict_refuses_unknown_query_key(client, emulator, method, path, query, body, ok):
    await seed(client)
    before = await snapshot(client, emulator)
    reply = await _send(client, method, path, query, body)
    assert_error_body(reply, "4.00", "colour")
    assert await snapshot(client, emulator) == before


@pytest.mark.parametrize("method, path, query, body, ok", UNKNOWN_QUERY)
async def test_lenient_accepts_unknown_query_key_with_warning(
    client, caplog, method, path, query, body, ok
):
    await seed(client)
    caplog.set_level(logging.WARNING, logger="pager.coap")
    caplog.clear()
    reply = await _send(client, method, path, query, body)
    assert reply.code == ok, reply.payload
    assert any("colour" in w for w in _warnings(caplog)), caplog.records


@pytest.mark.parametrize("config_overrides", [{"strict": True}])
async def test_strict_still_accepts_compact_known_requests(client):
    """Strict mode refuses only what §2 names: a clean request still succeeds."""
    r = await client.post(S, {"number": 8, "label": "ok", "goal": 60, "partySize": 2})
    assert r.code == "2.01", r.payload
    r = await client.put(S, {"action": "page", "pageMode": "Flash5Min"}, query="number=8")
    assert r.code == "2.04", r.payload
    r = await client.get(HISTORY, query="limit=10&after=0")
    assert r.code == "2.05", r.payload


# ---- 3. unknown paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/v1/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/v1/sessions/nope"),
        ("GET", "/v2/sessions"),
    ],
)
async def test_unknown_path_is_4_04(client, emulator, method, path):
    """§2.2: 4.04 for an unknown path is the one error that may come without a body."""
    await seed(client)
    before = await snapshot(client, emulator)
    raw = js({"number": 8}) if method == "POST" else None
    reply = await client.request(method, path, raw=raw)
    assert reply.code == "4.04"
    if reply.payload:  # a body is allowed, but if there is one it must be the error envelope
        assert_error_body(reply, "4.04", None)
    assert await snapshot(client, emulator) == before
