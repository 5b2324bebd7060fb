"""Interop: the get_sessions list as one representation, whatever its size (spec §8, RFC 7959
§2.6), for aiocoap, libcoap's coap-client-notls and node-coap; and the final notification
of a shutdown.

A list larger than one block goes out as its first block with Block2 and an ETag; each
client fetches the rest with GETs carrying Block2 (aiocoap and libcoap without Observe, on
tokens of their own; node-coap with Observe 0 on the observation's token) and hands its
application the whole list, with one globalSessionSequence. The next notification waits
until the last block was fetched, so a change made while a client fetches arrives after the
whole list, never inside it.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import aiocoap
import pytest

from tests.interop.helpers import INTEROP, fill_sessions

COUNTS = [0, 1, 4, 50, 500]


async def listing(client, count: int) -> dict:
    await fill_sessions(client, count)
    body = (await client.get("/v1/sessions")).json
    assert len(body["sessions"]) == count
    return body


async def change(client) -> dict:
    reply = await client.post("/v1/sessions", {"number": 999, "label": "late"})
    assert reply.code == "2.01", reply.payload
    return reply.json


def assert_whole_then_change(notes: list[dict], whole: dict, changed: dict) -> None:
    """The whole list exactly as GET /v1/sessions had it, then the change, with the next
    globalSessionSequence: nothing split, nothing mixed."""
    first, after = notes
    assert first == whole
    assert after["globalSessionSequence"] == whole["globalSessionSequence"] + 1
    assert after["sessions"] == changed["sessions"]


class AiocoapObserver:
    """aiocoap's client observing get_sessions on a context of its own."""

    def __init__(self, port: int):
        self.uri = f"coap://127.0.0.1:{port}/v1/notify?action=get_sessions"

    async def __aenter__(self) -> "AiocoapObserver":
        self.context = await aiocoap.Context.create_client_context()
        self.request = self.context.request(
            aiocoap.Message(code=aiocoap.GET, uri=self.uri, observe=0)
        )
        self.updates = self.request.observation.__aiter__()
        return self

    async def first(self) -> aiocoap.Message:
        return await asyncio.wait_for(self.request.response, 20)

    async def next(self) -> aiocoap.Message:
        return await asyncio.wait_for(self.updates.__anext__(), 10)

    async def __aexit__(self, *exc) -> None:
        await self.context.shutdown()


async def fetching(emulator, fault) -> None:
    """Return once the client is fetching the rest: its first GET of a later block is in
    (and held by the delay fault)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while fault.hits < 2:
        assert loop.time() < deadline, "the client never asked for block 1"
        await asyncio.sleep(0.005)
    assert emulator.api.block2.held_bytes > 0  # the list is held for the rest of the fetch


@contextlib.asynccontextmanager
async def reading(obs) -> AsyncIterator[None]:
    """Keep reading coap-client's log while the test waits on the emulator: at -v 7 it logs
    every block, and a client blocked on a full stdout pipe stops fetching."""

    async def drain() -> None:
        while raw := await obs.proc.stdout.readline():
            line = raw.decode(errors="replace").rstrip("\n")
            obs.stdout_lines.append(line)
            obs._feed(line)

    task = asyncio.create_task(drain())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_fetched(emulator) -> None:
    """Return once no transfer is held: the client fetched the last block of the list (or
    the list fitted one block)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while emulator.api.block2.held_bytes:
        assert loop.time() < deadline, "the client did not fetch the whole list"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------- the whole list, by size


@pytest.mark.parametrize("count", COUNTS)
async def test_aiocoap_gets_the_whole_list(count, client, emulator):
    whole = await listing(client, count)
    async with AiocoapObserver(emulator.port) as obs:
        first = await obs.first()
        assert (first.opt.block2 is not None) == (len(first.payload) > 1024)
        changed = await change(client)
        after = await obs.next()
        notes = [json.loads(first.payload), json.loads(after.payload)]
    assert_whole_then_change(notes, whole, changed)


@pytest.mark.parametrize("count", COUNTS)
async def test_coap_client_gets_the_whole_list(count, coap, client, emulator):
    whole = await listing(client, count)
    # -s counts from the start, and 500 sessions are over a hundred round trips
    async with coap.observe(10 if count == 500 else 3, query="action=get_sessions") as obs:
        await obs.wait_for(1, timeout=10)
        async with reading(obs):
            await until_fetched(emulator)
            changed = await change(client)
        notes = await obs.representations()
    assert_whole_then_change(notes, whole, changed)
    blocks = [p for p in obs.received() if p.option("Block2") is not None]
    assert bool(blocks) == (count >= 4)  # four sessions are more than 1024 bytes
    # later blocks are fetched without Observe, and answered without it
    assert all(p.option("Observe") is None for p in blocks[1:])


@pytest.mark.parametrize("count", COUNTS)
async def test_node_coap_gets_the_whole_list(count, node, client, emulator):
    whole = await listing(client, count)
    async with node.observe(query="action=get_sessions", count=2, timeout=20) as obs:
        first = await obs.next(timeout=15)
        assert len(emulator.hub.observers) == 1  # node-coap's block requests did not end it
        changed = await change(client)
        after = await obs.next()
        rest, deregistered = await obs.finish()
    assert rest == []
    assert_whole_then_change([first.json, after.json], whole, changed)
    assert deregistered == "2.05"


# ------------------------------------------------------- a change while the client fetches


@pytest.fixture
def held_fetch(emulator):
    """The registration's answer and the first GET of a later block are each held 0.3 s, so
    that the test changes the sessions while the client is fetching."""
    return emulator.add_fault("delay", path="/v1/notify", count=2, seconds=0.3)


async def test_aiocoap_change_while_fetching(held_fetch, client, emulator):
    whole = await listing(client, 50)
    async with AiocoapObserver(emulator.port) as obs:
        first_task = asyncio.ensure_future(obs.first())
        await fetching(emulator, held_fetch)
        changed = await change(client)
        assert emulator.api.block2.held_bytes > 0  # changed before the last block was fetched
        first = await first_task
        after = await obs.next()
    assert_whole_then_change([json.loads(first.payload), json.loads(after.payload)], whole, changed)


async def test_coap_client_change_while_fetching(held_fetch, coap, client, emulator):
    whole = await listing(client, 50)
    async with coap.observe(3, query="action=get_sessions") as obs:
        async with reading(obs):
            await fetching(emulator, held_fetch)
            changed = await change(client)
            assert emulator.api.block2.held_bytes > 0
            await until_fetched(emulator)
        notes = await obs.representations()
    assert_whole_then_change(notes, whole, changed)


async def test_node_coap_change_while_fetching(held_fetch, node, client, emulator):
    whole = await listing(client, 50)
    async with node.observe(query="action=get_sessions", count=2, timeout=20) as obs:
        await fetching(emulator, held_fetch)
        changed = await change(client)
        assert emulator.api.block2.held_bytes > 0
        notes = [await obs.next(timeout=10), await obs.next()]
        rest, _ = await obs.finish()
    assert rest == []
    assert_whole_then_change([n.json for n in notes], whole, changed)


# ------------------------------------------------------------------ the end of observations


async def test_aiocoap_observer_is_told_of_a_shutdown(emulator):
    context = await aiocoap.Context.create_client_context()
    try:
        request = context.request(
            aiocoap.Message(code=aiocoap.GET, uri=emulator.uri + "/v1/notify", observe=0)
        )
        await asyncio.wait_for(request.response, 5)
        updates = request.observation.__aiter__()
        final_task = asyncio.ensure_future(updates.__anext__())
        await emulator.stop()
        final = await asyncio.wait_for(final_task, 5)
        assert final.code.dotted == "5.03" and final.opt.observe is None
        assert json.loads(final.payload)["error"]["code"] == "5.03"
        with pytest.raises(StopAsyncIteration):  # a non-2.xx notification ended it
            await asyncio.wait_for(updates.__anext__(), 5)
    finally:
        await context.shutdown()


async def test_node_coap_gets_the_final_notification_but_tells_its_application_nothing(
    node, emulator
):
    """node-coap 1.5.0 acknowledges the final 5.03 but emits no event for it: its
    ObserveReadStream (observe_read_stream.js, append) reads a notification without an
    Observe option as sequence number 0 and drops it as older than the last one it had, and
    nothing in the agent ends the stream on a non-2.xx code. RFC 7641 §3.2 gives a non-2.xx
    notification no Observe option, so no notification can reach a node-coap application
    as the end: it needs a watchdog of its own (README, "Notifications")."""
    argv = [node.executable, str(INTEROP / "observe_end.js"), "--port", str(emulator.port)]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=INTEROP
    )
    try:
        lines = []
        while not any(line.get("event") == "data" for line in lines):
            lines.append(json.loads(await asyncio.wait_for(proc.stdout.readline(), 10)))
        assert len(emulator.hub.observers) == 1
        before = len(lines)
        await emulator.stop()
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0, err.decode()
    after = [json.loads(line) for line in out.decode().splitlines()]
    assert {"datagram": "5.03", "observe": None} in after  # it reached node-coap
    assert [line for line in after if "event" in line] == []  # and node-coap said nothing
    assert lines[:before][-1]["event"] == "data"


async def test_coap_client_is_told_of_a_shutdown(coap, emulator):
    async with coap.observe(3) as obs:
        await obs.wait_for(1)
        await emulator.stop()
        notes = await obs.finish()
    first, final = notes
    assert (final.type, final.code, final.observe) == ("CON", "5.03", None)
    assert final.mid in obs.acked()  # libcoap acknowledged it
