"""The model-based stateful test (issue 11), short version: a fixed, derandomized set of
examples, each a fresh emulator process driven through random concurrent requests and rig
actions and checked against the reference model after every step (tests/stateful/machine.py).

The long version: `scripts/stateful.py --minutes 30`.
"""

import asyncio
import json

import aiocoap
from aiocoap.numbers.types import Type
from hypothesis import HealthCheck, settings
from hypothesis.internal.conjecture import engine
from hypothesis.stateful import run_state_machine_as_test

from tests.conftest import Datagrams
from tests.stateful.machine import PagerMachine

SHORT = settings(
    max_examples=8,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_the_emulator_behaves_like_the_model(monkeypatch):
    # a failure is shrunk, but within the suite's time: each example starts a process
    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", 60)
    run_state_machine_as_test(PagerMachine, settings=SHORT)


async def test_clear_all_archives_with_clear_type_stop(client):
    assert (await client.post("/v1/sessions", {"number": 5})).code == "2.01"
    assert (await client.delete("/v1/sessions")).code == "2.02"
    history = (await client.get("/v1/sessions/history")).json["session_history"]
    assert [(s["number"], s["clearType"]) for s in history] == [(5, "STOP")]


async def test_a_no_change_answer_never_runs_ahead_of_the_commit(emulator):
    loop = asyncio.get_running_loop()
    ends = [
        await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
        for _ in range(2)
    ]
    bad = []
    try:
        for number in range(20):
            for i, (transport, _) in enumerate(ends):
                msg = aiocoap.Message(
                    code=aiocoap.POST,
                    uri_path=("v1", "sessions"),
                    payload=json.dumps({"number": number}).encode(),
                    content_format=50,
                )
                msg.mtype, msg.mid, msg.token = Type.CON, 100 + number, bytes([i, number])
                transport.sendto(msg.encode(), ("127.0.0.1", emulator.port))
            for _, proto in ends:
                answer = aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))
                body = json.loads(answer.payload)
                session = body["sessions"][0]
                if body["globalSessionSequence"] < session["sessionSequence"]:
                    bad.append(
                        (
                            number,
                            answer.code.dotted,
                            body["globalSessionSequence"],
                            session["sessionSequence"],
                        )
                    )
    finally:
        for transport, _ in ends:
            transport.close()
    assert bad == [], f"(number, code, globalSessionSequence, sessionSequence): {bad}"


async def test_a_refusal_never_runs_ahead_of_the_commit(emulator):
    """Found by scripts/stateful.py: a PUT refused 4.04 because a clear-all queued just before
    it had archived the session was answered at once, before that clear-all was committed,
    with the committed globalSessionSequence (still showing the session)."""
    loop = asyncio.get_running_loop()
    ends = [
        await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
        for _ in range(2)
    ]
    bad, refused = [], 0

    def con(code, path, payload, query=(), mid=0, token=b"") -> bytes:
        msg = aiocoap.Message(
            code=code, uri_path=path, uri_query=query, payload=payload, content_format=50
        )
        msg.mtype, msg.mid, msg.token = Type.CON, mid, token
        return msg.encode()

    async def answer(proto) -> aiocoap.Message:
        """The response, piggybacked or separate: an answer slower than aiocoap's empty-ACK
        delay (a loaded machine) comes as an empty ACK first."""
        while True:
            message = aiocoap.Message.decode(await asyncio.wait_for(proto.received.get(), 5))
            if message.code != aiocoap.EMPTY:
                return message

    try:
        for number in range(30):
            (t0, p0), (t1, p1) = ends
            t0.sendto(
                con(
                    aiocoap.POST,
                    ("v1", "sessions"),
                    b'{"number":%d}' % number,
                    mid=1000 + number,
                    token=b"c",
                ),
                ("127.0.0.1", emulator.port),
            )
            created = json.loads((await answer(p0)).payload)["globalSessionSequence"]
            t0.sendto(
                con(aiocoap.DELETE, ("v1", "sessions"), b"", mid=2000 + number, token=b"d"),
                ("127.0.0.1", emulator.port),
            )
            t1.sendto(
                con(
                    aiocoap.PUT,
                    ("v1", "sessions"),
                    b'{"label":"x"}',
                    (f"number={number}",),
                    mid=3000 + number,
                    token=b"u",
                ),
                ("127.0.0.1", emulator.port),
            )
            await answer(p0)
            put = await answer(p1)
            if put.code.dotted == "4.04":
                refused += 1
                shown = json.loads(put.payload)["globalSessionSequence"]
                if shown <= created:
                    bad.append((number, created, shown))
    finally:
        for transport, _ in ends:
            transport.close()
    assert refused > 0  # the race was met: some PUT came after the clear-all
    assert bad == [], f"(number, sequence after the create, sequence the 4.04 showed): {bad}"
