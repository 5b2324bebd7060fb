"""`pager-emulator replay`: a journal recorded on one emulator replayed to another over real
CoAP, the answers compared, and every input it refuses."""

import asyncio
import base64
import json
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiocoap
import aiohttp
import cbor2
import pytest
from aiocoap.numbers.types import Type

from pager import cli
from pager.app import Emulator
from pager.clock import Clock
from pager.control.journal_entry import Entry, FaultMark
from pager.replay import (
    ABSENT,
    NOT_COMPARED,
    NOT_RECORDED,
    UNKEPT_OPTION,
    Payload,
    compare,
    decode,
    plan,
    read_journal,
    replay,
)
from tests.conftest import REPO, Client, ManualTime, datagrams_to, make_config

LONG = "Party of the table by the window with the harbour view"
T = datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC)


async def scripted_session(c: Client) -> None:
    """Every kind of request the device API takes, bad ones too."""
    await c.get("/v1/settings")
    await c.post("/v1/settings", {"defaultTargetGoal": 420})
    await c.post("/v1/sessions", {"number": 66, "goal": 600, "label": "Sarah", "partySize": 4})
    await c.post("/v1/sessions", {"number": 66, "partySize": 5})
    cbor = cbor2.dumps({"number": 21, "label": "Ana"})
    await c.post("/v1/sessions", raw=cbor, content_format=60, accept=60)
    await c.post("/v1/sessions", {"number": 12, "action": "page"})
    await c.put("/v1/sessions", {"action": "page", "pageMode": "Vibe2"}, query="number=66")
    await c.put("/v1/sessions", {"label": None}, query="number=66")
    await c.get("/v1/sessions", query="number=66")
    await c.get("/v1/sessions")
    await c.get("/v1/sessions", accept=60)
    await c.put("/v1/sessions", {"action": "clear"}, query="number=66")
    await c.delete("/v1/sessions", query="number=21")
    await c.post("/v1/page", {"number": 200, "pageMode": "Beep3Times", "message": "Call 4"})
    await c.get("/v1/sessions/statistics")
    await c.get("/v1/sessions/history", query="limit=2&after=1")
    await c.get("/v1/notify")
    await c.get("/v1/notify", query="action=get_sessions")
    await c.get("/.well-known/core")
    for n in range(101, 107):  # a list too long for one datagram: a block-wise answer
        await c.post("/v1/sessions", {"number": n, "label": LONG})
    await c.get("/v1/sessions")
    await c.get("/v1/sessions", accept=60)
    # bad requests
    await c.post("/v1/sessions", {"number": 5, "goal": -1})
    await c.post("/v1/sessions", raw=b"{not json")
    await c.post("/v1/sessions", raw=b"text", content_format=0)
    await c.put("/v1/sessions", {"action": "page"}, query="number=999")
    await c.get("/v1/sessions", query="number=abc")
    await c.get("/v1/nothing")
    await c.post("/v1/sessions", {"number": 7, "label": "x" * 1500})  # 4.13, sent block-wise
    # and what ends it all
    await c.delete("/v1/sessions/statistics")
    await c.delete("/v1/sessions")
    await c.get("/v1/sessions/history")
    await c.delete("/v1/sessions/history")
    await c.get("/v1/sessions/history")


def write_journal(path: Path, entries: list[Entry]) -> Path:
    path.write_text("".join(json.dumps(e.to_json()) + "\n" for e in entries))
    return path


@pytest.fixture
async def other(tmp_path):
    """Emulator B: a fresh one with its own store and clock."""
    config = make_config(tmp_path / "b.db")
    async with Emulator(config, Clock(system=ManualTime(datetime(2027, 1, 2, 3, 4, 5)))) as emu:
        yield emu


@pytest.fixture
def config_overrides() -> dict:
    return {"control": True, "control_port": 0}


@pytest.fixture
async def recorded(emulator, coap_context, tmp_path) -> Path:
    """The scripted session on emulator A, its journal as `GET /journal?format=jsonl` gives
    it."""
    await scripted_session(Client(coap_context, emulator.port))
    url = f"http://127.0.0.1:{emulator.control_port}/journal?format=jsonl"
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        assert answer.status == 200
        journal = tmp_path / "a.jsonl"
        journal.write_bytes(await answer.read())
    return journal


async def test_a_fresh_emulator_answers_the_recorded_session_as_recorded(recorded, other):
    result = await replay(read_journal(recorded), other.uri, speed=None)
    assert [d.to_json() for d in result.differences] == []
    assert {s.reason for s in result.skipped} == {
        "a later block of a block-wise transfer, replayed with its first"
    }
    assert len(result.outcomes) + len(result.skipped) == len(read_journal(recorded))
    whole = {
        (o.exchange.entry.method, o.exchange.entry.path)
        for o in result.outcomes
        if len(o.exchange.parts) > 1
    }
    assert whole == {  # block-wise, both ways
        ("GET", "/v1/sessions"),
        ("POST", "/v1/sessions"),
        ("GET", "/v1/sessions/history"),
    }
    codes = {o.exchange.code for o in result.outcomes}
    assert {"2.01", "2.00", "2.04", "2.02", "2.05", "4.00", "4.04", "4.13", "4.15"} <= codes


async def test_an_emulator_already_in_another_state_is_reported(
    recorded, other, coap_context, tmp_path
):
    b = Client(coap_context, other.port)
    await b.post("/v1/sessions", {"number": 66, "label": "Someone else"})
    await b.post("/v1/settings", {"systemId": 9})
    result = await replay(read_journal(recorded), other.uri, speed=None)
    found = {(d.id, d.field): (d.recorded, d.got) for d in result.differences}
    assert found[(1, "settings.systemId")] == (0, 9)
    assert found[(3, "code")] == ("2.01", "2.00")  # 66 was taken: an update, not a create
    assert found[(3, "globalSessionSequence")] == (1, 2)
    assert found[(14, "page.systemId")] == (0, 9)
    assert all(d.method and d.path for d in result.differences)


async def test_the_command_in_its_own_process(recorded, other, coap_context, tmp_path):
    report = tmp_path / "report.json"
    args = [str(recorded), "--target", other.uri, "--speed", "max", "--report", str(report)]
    code, out, err = await _command(*args)
    assert (code, err) == (0, ""), out
    assert "no differences" in out and "not compared" in out
    data = json.loads(report.read_text())
    assert data["same"] is True and data["differences"] == []
    assert data["entries"] == len(read_journal(recorded))
    assert data["replayed"] + len(data["skipped"]) == data["entries"]
    assert data["target"] == other.uri and data["speed"] == "max"
    not_compared = {n["field"] for n in data["not_compared"]}
    assert {"timestamp", "sessions[].uuid", "settings.datetime", "ETag"} <= not_compared
    assert all(n["why"] for n in data["not_compared"])
    first = data["exchanges"][0]
    assert first["method"] == "GET" and first["path"] == "/v1/settings" and first["same"]

    await Client(coap_context, other.port).post("/v1/sessions", {"number": 12})
    code, out, err = await _command(*args)
    assert code == 1, (out, err)
    assert '#6 POST /v1/sessions code: recorded "2.01", got "2.00"' in out
    data = json.loads(report.read_text())
    assert data["same"] is False
    assert {
        "id": 6,
        "method": "POST",
        "path": "/v1/sessions",
        "field": "code",
        "recorded": "2.01",
        "got": "2.00",
    } in data["differences"]


async def test_ctrl_c_ends_it_without_a_traceback(other, coap_context, tmp_path):
    post = {"method": "POST", "path": "/v1/settings", "content_format": 50}
    entries = [entry(1, 0, **post, body={"systemId": 3}, code="2.04"), entry(2, 60, code="2.05")]
    journal = write_journal(tmp_path / "j.jsonl", entries)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pager", "replay", str(journal), "--target", other.uri),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    b = Client(coap_context, other.port)
    for _ in range(400):  # until the first request is in: then the replay waits for 60 s
        if (await b.get("/v1/settings")).json["settings"]["systemId"] == 3:
            break
        await asyncio.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (proc.returncode, out, err) == (130, b"", b"pager-emulator replay: interrupted\n")


async def _command(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pager",
        "replay",
        *args,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def entry(id: int, seconds: float = 0, method: str = "GET", path: str = "/v1/settings", **kw: Any):
    return Entry(
        id=id,
        time=(T + timedelta(seconds=seconds)).isoformat(),
        device_time="2026-12-01T10:00:00",
        peer="127.0.0.1:40000",
        type="CON",
        mid=id,
        token=f"{id:02x}",
        method=method,
        path=path,
        **kw,
    )


SETTINGS = {
    "responseTypes": ["settings"],
    "globalSessionSequence": 0,
    "timestamp": "2026-12-01T10:00:00",
    "deviceName": "T7470",
    "firmwareVersion": "8.4.100.43",
    "settings": {
        "datetime": "2026-12-01T10:00:00",
        "systemId": 0,
        "defaultTargetGoal": 300,
        "statisticsClearMark": 24,
    },
}


@pytest.mark.parametrize("speed, least, most", [(4.0, 0.45, 1.5), (None, 0.0, 0.3)])
async def test_the_recorded_pace_scaled_by_speed(other, tmp_path, speed, least, most):
    answer = {"code": "2.05", "answer_content_format": 50, "answer": SETTINGS}
    entries = [entry(1, 0, **answer), entry(2, 2, **answer)]
    result = await replay(entries, other.uri, speed=speed)
    assert result.differences == []
    assert result.outcomes[0].sent_after < 0.3
    assert least <= result.outcomes[1].sent_after < most
    assert least <= result.seconds < most + 0.5


def create(number: int, id_: int, sequence: int, sessions: int) -> dict[str, Any]:
    """The recorded answer to creating a session on a fresh emulator."""
    return {
        "code": "2.01",
        "answer_content_format": 50,
        "answer": {
            "responseTypes": ["sessions", "statistics"],
            "globalSessionSequence": sequence,
            "timestamp": "2026-12-01T10:00:00",
            "deviceName": "T7470",
            "firmwareVersion": "8.4.100.43",
            "sessions": [
                {
                    "id": id_,
                    "sessionSequence": sequence,
                    "uuid": "e3e70682-c209-4cac-a29f-6fbed82c07cd",
                    "number": number,
                    "partySize": 1,
                    "goalInSeconds": 300,
                    "created": "2026-12-01T10:00:00",
                    "started": "2026-12-01T10:00:00",
                    "label": None,
                    "state": "started",
                }
            ],
            "statistics": {
                "guestsServed": 0,
                "percentLate": 0,
                "percentOnTime": 0,
                "averageTimeServed": 0,
                "numSessions": sessions,
            },
        },
    }


async def test_what_is_not_replayed_is_left_out_and_said(other, coap_context):
    """Each entry below, replayed, would change what the target answers later (a second
    create of 66 is 2.00, a session 7 or 8 would show in the last list)."""
    post = {"method": "POST", "path": "/v1/sessions", "content_format": 50}
    first = create(66, 1, 1, 1)
    entries = [
        entry(1, **post, body={"number": 66}, **first),
        entry(2, **post, body={"number": 66}, **first, duplicate=True),
        entry(3, **post, body={"number": 7}, code="5.03", fault=FaultMark(1, "error")),
        entry(4, **post, body={"number": 8}, fault=FaultMark(2, "drop")),
        entry(5, **post, body={"number": 9}, **create(9, 2, 2, 2), fault=FaultMark(3, "delay")),
        entry(6, method="PUT", path="/v1/sessions", query=("number=66",), code="4.12"),
        entry(7, method="GET", path="/v1/sessions", code="2.03"),
        entry(8, method="GET", path="/v1/sessions", block2=3, code="4.08"),
        entry(9, **post, body={"number": 10}, **create(10, 3, 3, 3), observe=0),
    ]
    result = await replay(entries, other.uri, speed=None)
    assert [d.to_json() for d in result.differences] == []
    assert [o.exchange.entry.id for o in result.outcomes] == [1, 5, 9]
    reasons = {s.id: s.reason for s in result.skipped}
    assert "retransmission" in reasons[2]
    assert "fault #1 (error)" in reasons[3]
    assert "no answer recorded (fault #2, drop)" == reasons[4]
    assert "If-Match" in reasons[6] and "ETag" in reasons[7]
    assert "first block is not replayed" in reasons[8]
    assert result.outcomes[2].to_json()["note"] == "Observe 0 replayed as a plain GET"
    sessions = (await Client(coap_context, other.port).get("/v1/sessions")).json["sessions"]
    assert [s["number"] for s in sessions] == [66, 9, 10]


async def test_what_the_journal_holds_beside_requests_is_left_out(emulator, coap_context, other):
    """Recorded: a retransmission, requests faults acted on, an observation, conditional
    requests; each, replayed, would be answered otherwise (the second create of 40 is 2.00,
    41 would be created) or change what the last list shows."""
    c = Client(coap_context, emulator.port)
    async with datagrams_to(emulator.port) as (transport, proto):
        m = aiocoap.Message(code=aiocoap.POST, payload=b'{"number":40}', content_format=50)
        m.opt.uri_path = ("v1", "sessions")
        m.mtype, m.mid, m.token = Type.CON, 4242, b"r"
        for _ in range(2):
            transport.sendto(m.encode())
            await asyncio.wait_for(proto.received.get(), 5)
    emulator.add_fault("error", path="/v1/sessions", count=1)
    assert (await c.post("/v1/sessions", {"number": 41})).code == "5.03"
    emulator.add_fault("drop", path="/v1/sessions", count=1)
    assert (await c.post("/v1/sessions", {"number": 42})).code == "2.01"  # retransmitted
    emulator.add_fault("delay", path="/v1/sessions", count=1, seconds=0.2)
    assert (await c.post("/v1/sessions", {"number": 43})).code == "2.01"
    emulator.add_fault("drop", path="/v1/sessions", count=1, direction="answer")
    assert (await c.post("/v1/sessions", {"number": 44})).code == "2.01"  # from the cache
    emulator.add_fault("duplicate", path="/v1/sessions", count=1, direction="request")
    assert (await c.post("/v1/sessions", {"number": 45})).code == "2.01"
    uri = f"{emulator.uri}/v1/notify?action=get_sessions"
    observation = coap_context.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
    assert (await asyncio.wait_for(observation.response, 5)).code == aiocoap.CONTENT
    observation.observation.cancel()
    etag = (await c.get("/v1/sessions")).message.opt.etag
    assert (await c.get("/v1/sessions", etags=(etag,))).code == "2.03"
    put = aiocoap.Message(
        code=aiocoap.PUT, uri=f"{emulator.uri}/v1/sessions?number=40", payload=b'{"label":"x"}'
    )
    put.opt.if_match = (b"nope",)
    assert (await asyncio.wait_for(coap_context.request(put).response, 5)).code.dotted == "4.12"
    await c.get("/v1/sessions")

    result = await replay(emulator.journal(), other.uri, speed=None)
    assert [d.to_json() for d in result.differences] == []
    reasons = sorted(s.reason for s in result.skipped)
    assert reasons == [
        *["a later block of a block-wise transfer, replayed with its first"] * 3,  # lists
        *["a retransmission answered from the deduplication cache: a retry, not a request"] * 3,
        "answered 2.03 Valid for an ETag the journal does not keep",
        "answered by fault #1 (error), not by the device",
        "no answer recorded (fault #2, drop)",
        "refused for an If-Match or If-None-Match the journal does not keep",
    ]
    notes = [o.to_json().get("note") for o in result.outcomes]
    assert notes.count("Observe 0 replayed as a plain GET") == 1
    last = result.outcomes[-1].answer.value
    assert [s["number"] for s in last["sessions"]] == [40, 42, 43, 44, 45]


def test_the_blocks_of_a_transfer_are_one_request_and_one_answer():
    """As a journal records a block-wise transfer: an entry per block, each with its part of
    the body or the answer (a part does not decode: base64)."""
    body = json.dumps({"number": 7, "label": "x" * 1500}).encode()
    answer = json.dumps({"responseTypes": ["x"], "x": "y" * 2500}).encode()
    b64 = lambda part: base64.b64encode(part).decode()  # noqa: E731
    upload = {"method": "POST", "path": "/v1/sessions", "content_format": 50}
    fetch = {"code": "2.05", "answer_content_format": 50}
    entries = [
        entry(1, **upload, block1=0, body_base64=b64(body[:1024]), code="2.31"),
        entry(2, method="GET", path="/v1/sessions", **fetch, answer_base64=b64(answer[:1024])),
        entry(3, **upload, block1=1, body_base64=b64(body[1024:]), code="4.13"),
        entry(
            4,
            method="GET",
            path="/v1/sessions",
            block2=1,
            **fetch,
            answer_base64=b64(answer[1024:2048]),
        ),
        entry(5, method="GET", path="/v1/sessions", block2=1, duplicate=True, **fetch),
        entry(
            6,
            method="GET",
            path="/v1/sessions",
            block2=2,
            **fetch,
            answer_base64=b64(answer[2048:]),
        ),
        entry(7, method="GET", path="/v1/sessions", block2=5, code="4.08"),
        entry(8, **upload, block1=0, body_base64=b64(body[:1024]), code="2.31"),
    ]
    exchanges, skipped = plan(entries)
    assert [(x.entry.id, x.parts) for x in exchanges] == [(1, (1, 3)), (2, (2, 4, 6))]
    assert exchanges[0].payload == body and exchanges[0].code == "4.13"
    assert exchanges[1].answer.value == json.loads(answer)
    reasons = {s.id: s.reason for s in skipped}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert (
        reasons[3]
        == reasons[6]
        == "a later block of a block-wise transfer, replayed with its first"
    )
    assert {s.id: s.part_of for s in skipped if s.part_of} == {3: 1, 4: 2, 6: 2}
    assert "retransmission" in reasons[5] and "not replayed" in reasons[7]
    assert reasons[8] == "a block-wise upload that was never finished"


def test_a_payload_that_does_not_decode_whole_is_kept_as_bytes():
    item = cbor2.dumps({"number": 21})
    assert decode(item, 60) == Payload({"number": 21})
    assert decode(item + b"\x01", 60) == Payload(raw=item + b"\x01")
    assert decode(item[:-1], 60) == Payload(raw=item[:-1])
    assert decode(b'{"a":1}', 50) == decode(b'{"a":1}', None) == Payload({"a": 1})
    assert decode(b'{"a":1', 50) == Payload(raw=b'{"a":1')
    assert decode(b"", 60) == Payload()
    assert decode(cbor2.dumps({"a": b"bytes"}), 60).raw is not None  # no JSON value
    assert decode(b'{"a":NaN}', 50).raw is not None
    assert decode(b"</v1/sessions>", 40) == Payload("</v1/sessions>")
    assert decode(b"{}", 42) == Payload(raw=b"{}")


def test_what_always_differs_is_compared_for_presence_only():
    recorded = {
        "timestamp": "2026-12-01T10:00:00",
        "sessions": [{"uuid": "a", "notified": "2026-12-01T10:00:00", "partySize": 1}],
        "statistics": {"averageTimeServed": 3, "percentLate": 0},
    }
    got = {
        "timestamp": "2027-01-02T03:04:05",
        "sessions": [{"uuid": "b", "partySize": True}, {"uuid": "c"}],
        "statistics": {"averageTimeServed": 9, "percentLate": 0.0},
    }
    found = compare(("2.05", 50, Payload(recorded)), ("2.05", 50, Payload(got)))
    assert found == [
        ("sessions[0].notified", "2026-12-01T10:00:00", ABSENT),
        ("sessions[0].partySize", 1, True),
        ("sessions[1]", ABSENT, {"uuid": "c"}),
        ("statistics.percentLate", 0, 0.0),
    ]
    raw = Payload(raw=b"</v1/sessions>")
    assert compare(("2.05", 42, raw), ("2.05", 42, raw)) == []
    assert compare(("2.05", 42, raw), ("4.04", None, Payload())) == [
        ("code", "2.05", "4.04"),
        ("content_format", 42, None),
        ("body", {"base64": "PC92MS9zZXNzaW9ucz4="}, None),
    ]


def test_the_documentation_names_what_is_not_compared_and_not_replayed():
    doc = (REPO / "docs" / "replay.md").read_text()
    for name, _why in (*NOT_COMPARED, *NOT_RECORDED):
        for part in name.split(", "):
            assert part in doc, part
    for name, _why in NOT_COMPARED:
        assert f"`{name}`" in doc, name
    for code in UNKEPT_OPTION:
        assert code in doc, code


# -- what it refuses ----------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


GOOD = json.dumps(entry(1, code="2.05").to_json())


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such journal file"),
        ("", "holds no journal entries"),
        ("\n  \n", "holds no journal entries"),
        (f"{GOOD}\n{{not json\n", "line 2 is not JSON"),
        (
            f"{GOOD}\n\n{json.dumps({**entry(3).to_json(), 'colour': 1})}\n",
            "line 3 is not a journal entry: unknown journal entry fields: colour",
        ),
        ('{"id": 1}\n', "line 1 is not a journal entry"),
        ("[1, 2]\n", "line 1 is not a journal entry: a JSON object is expected, not list"),
        (
            json.dumps({**entry(1).to_json(), "time": "yesterday"}),
            "line 1 is not a journal entry: time 'yesterday'",
        ),
        (
            json.dumps({**entry(1).to_json(), "method": "FROB"}),
            "line 1 is not a journal entry: method 'FROB'",
        ),
        (
            json.dumps({**entry(1).to_json(), "query": "number=1"}),
            "line 1 is not a journal entry: query is str: 'number=1'",
        ),
        (
            json.dumps({**entry(1).to_json(), "content_format": "50"}),
            "line 1 is not a journal entry: content_format is str",
        ),
        (
            json.dumps({**entry(1).to_json(), "type": "ACK"}),
            "line 1 is not a journal entry: type must be CON or NON",
        ),
        (
            json.dumps({**entry(1).to_json(), "body_base64": "***"}),
            "line 1 is not a journal entry: body_base64",
        ),
    ],
)
def test_a_bad_journal(tmp_path, capsys, content, message):
    path = tmp_path / "j.jsonl"
    if content is not None:
        path.write_text(content)
    assert cli.main(["replay", str(path), "--target", f"coap://127.0.0.1:{closed_port()}"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("pager-emulator replay: ") and message in err, err


@pytest.mark.parametrize(
    "target",
    [
        "127.0.0.1:5683",
        "http://127.0.0.1:5683",
        "coaps://127.0.0.1:5684",
        "coap://",
        "coap://127.0.0.1:99999",
        "coap://127.0.0.1:5683/v1/sessions",
        "coap://127.0.0.1:5683?number=1",
    ],
)
def test_a_target_that_is_not_a_coap_uri(tmp_path, capsys, target):
    journal = write_journal(tmp_path / "j.jsonl", [entry(1, code="2.05")])
    assert cli.main(["replay", str(journal), "--target", target]) == 2
    err = capsys.readouterr().err
    expected = f"--target must be a coap:// URI (coap://HOST:PORT), not {target!r}"
    assert err == f"pager-emulator replay: {expected}\n"


def test_an_unreachable_target(tmp_path, capsys):
    journal = write_journal(tmp_path / "j.jsonl", [entry(1, code="2.05")])
    target = f"coap://127.0.0.1:{closed_port()}"
    assert cli.main(["replay", str(journal), "--target", target, "--timeout", "10"]) == 2
    out, err = capsys.readouterr()
    assert (
        err.startswith(f"pager-emulator replay: cannot reach {target}: ") and err.count("\n") == 1
    )
    assert "Traceback" not in out + err


def test_a_target_that_never_answers(tmp_path, capsys):
    journal = write_journal(tmp_path / "j.jsonl", [entry(1, code="2.05")])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        target = f"coap://127.0.0.1:{silent.getsockname()[1]}"
        assert cli.main(["replay", str(journal), "--target", target, "--timeout", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err == f"pager-emulator replay: {target} did not answer within 0.5 s\n"


def test_a_report_in_a_folder_that_does_not_exist(tmp_path, capsys):
    journal = write_journal(tmp_path / "j.jsonl", [entry(1, code="2.05")])
    report = tmp_path / "no" / "r.json"
    args = ["replay", str(journal), "--target", "coap://127.0.0.1:5683", "--report", str(report)]
    assert cli.main(args) == 2
    assert "--report: no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("speed", ["-1", "fast", "nan", "inf"])
def test_a_speed_that_is_not_a_number_or_max(tmp_path, capsys, speed):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["replay", "j.jsonl", "--target", "coap://127.0.0.1", "--speed", speed])
    assert exit_.value.code == 2
    assert "is not a positive number" in capsys.readouterr().err
