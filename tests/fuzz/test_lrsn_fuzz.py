"""Hostile LRSN streams (issue 16): a live emulator takes 5,000 mutated LRSN messages, cut
into TCP writes at random, over four connections at once, and

- answers every message it reads with one well-formed line (`<Element ... ret="N" />`,
  N a result code), and never anything else,
- logs no error and no unhandled exception,
- records exactly one transmission per page it answered with ret 0, all with source lrsn,
- stays up: a fresh client logs in and pages afterwards.

The mutations come from a seeded `random.Random` (the same inputs every run): valid messages
of both forms, the catalogue of tests/lrsn/test_catalogue.py, byte flips, insertions and
deletions, truncation, splices, stray newlines, entity and DTD fragments, non-UTF-8 bytes.
"""

import asyncio
import logging
import random
import re

from pager.app import Emulator
from tests.conftest import make_config
from tests.lrsn.conftest import LOGIN, connected, ret
from tests.lrsn.test_catalogue import CATALOGUE

MESSAGES = 5_000
CONNECTIONS = 4
SEED = 3700
ANSWER = re.compile(
    rb'<(LoginAck|PageRequestStatus|Error|Heartbeat)( id="[^"\n]*")? ret="(\d+)" />'
)

VALID = [
    b'<PageRequest id="1" pager="2;123" message="Vibe1" system_id="4" />',
    b'<PageRequest pager="0;7" message="Table&#10;ready&#12;F30V" />',
    b'<PageRequest id="42"><Pager Type="Guest" ID="12" SystemID="4" /><Message>11</Message>'
    b"</PageRequest>",
    b'<PageRequest id="x"><Pager Type="AlphaCoaster" ID="9" power="2" color="G" /><Message>'
    b"Hi</Message></PageRequest>",
    b'<Login services="NetPage:2.0;Heartbeat:1.0" />',
]
FRAGMENTS = [
    b"&#10;", b"&#12;", b"&amp;", b"&lol;", b"<!DOCTYPE a>", b"<!ENTITY x 'y'>", b"\xff",
    b"\xc3", b"\x00", b'"', b"<", b">", b"/>", b"\n", b"\r", b";", b"-1", b"99999", b"]]>",
    b"<![CDATA[", b"<?xml version='1.0'?>", b" ret=\"0\"", b"\t", b"\xe2\x80\xa8",
]  # fmt: skip


def mutate(rng: random.Random) -> bytes:
    base = bytearray(
        rng.choice(VALID) if rng.random() < 0.6 else rng.choice(CATALOGUE)[1].rstrip(b"\n")
    )
    for _ in range(rng.randrange(4)):
        op = rng.randrange(6)
        at = rng.randrange(len(base) + 1)
        if op == 0 and base:
            base[min(at, len(base) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1:
            base[at:at] = rng.choice(FRAGMENTS)
        elif op == 2:
            del base[at : at + rng.randrange(1, 8)]
        elif op == 3:
            del base[at:]
        elif op == 4:
            other = rng.choice(VALID)
            base[at:] = other[rng.randrange(len(other)) :]
        else:
            base[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5)))
    return bytes(base[:8000]) + b"\n"


async def _client(address, messages: list[bytes], rng: random.Random) -> list[bytes]:
    answers: list[bytes] = []
    async with connected(address) as conn:
        assert await conn.login(LOGIN) == 0
        stream = b"".join(messages)

        async def read() -> None:
            while line := await conn.reader.readline():
                answers.append(line)

        reader = asyncio.create_task(read())
        at = 0
        while at < len(stream):
            step = rng.randrange(1, 600)
            await conn.send(stream[at : at + step])
            at += step
        await conn.send(b'<PageRequest id="end" pager="2;1" />\n')
        while not any(b'id="end"' in a for a in answers):
            assert not reader.done(), "the server closed the connection"
            await asyncio.sleep(0.02)
        reader.cancel()
    return answers


async def test_lrsn_survives_hostile_streams(db_path, caplog):
    caplog.set_level(logging.WARNING)
    rng = random.Random(SEED)
    batches = [[mutate(rng) for _ in range(MESSAGES // CONNECTIONS)] for _ in range(CONNECTIONS)]
    async with Emulator(make_config(db_path, lrsn_max_clients=CONNECTIONS + 1)) as emu:
        address = emu.lrsn_address
        results = await asyncio.wait_for(
            asyncio.gather(
                *(_client(address, b, random.Random(SEED + i)) for i, b in enumerate(batches))
            ),
            120,
        )
        answers = [line for r in results for line in r]
        bad = [a for a in answers if not (ANSWER.fullmatch(a.rstrip(b"\n")) and a.endswith(b"\n"))]
        assert bad == []
        assert all(0 <= ret(a) <= 10 for a in answers)
        paged = sum(1 for a in answers if a.startswith(b"<PageRequestStatus") and ret(a) == 0)
        txs = await emu.transmissions()
        assert len(txs) == paged and {t.source for t in txs} <= {"lrsn"}
        assert paged > CONNECTIONS  # some of the valid ones got through
        assert len(answers) > MESSAGES // 2, len(answers)
        print(f"{len(answers)} answers, {paged} pages")
        async with connected(address) as fresh:
            assert await fresh.login() == 0
            assert ret(await fresh.ask(b'<PageRequest id="9" pager="2;9" />\n')) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
