"""Chaos faults racing with the emulator's lifecycle: what the faults hold back (a delayed
answer, a duplicate's copy, a reorder window) when the emulator stops or loses its power,
and how much they may hold at once. Real UDP against a real emulator."""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pager.app import Emulator
from pager.control import faults
from tests.conftest import make_config
from tests.control.test_chaos import peer


def faults_timers(loop: asyncio.AbstractEventLoop, injector: Any) -> list[asyncio.Handle]:
    """The timers on `loop` whose callback is a method of `injector`."""
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    return [
        h
        for h in scheduled
        if not h.cancelled() and getattr(h._callback, "__self__", None) is injector  # type: ignore[attr-defined]
    ]


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the loop's exception handler while the test runs (a callback raising)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    before = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    yield errors
    loop.set_exception_handler(before)


FAULTS = [
    {"kind": "delay", "seconds": 0.6},
    {"kind": "duplicate", "seconds": 0.6},
    {"kind": "duplicate", "seconds": 0.6, "direction": "answer"},
    {"kind": "reorder", "seconds": 0.6, "window": 10},
    {"kind": "reorder", "seconds": 0.6, "window": 10, "direction": "answer"},
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f['kind']}-{f.get('direction')}")
async def test_what_faults_hold_at_a_stop_is_lost_quietly(tmp_path, loop_errors, fault):
    config = make_config(tmp_path / "pager.db")
    emu = await Emulator(config).start()
    try:
        emu.add_fault(**fault)
        async with peer(emu.port) as client:
            for mid in (1, 2, 3):
                client.send(mid)
            await asyncio.sleep(0.3)  # read, answered, and held
    finally:
        await emu.stop()
    loop = asyncio.get_running_loop()
    assert faults_timers(loop, emu.faults) == []  # nothing left to fire on a closed transport
    await asyncio.sleep(0.6)
    assert loop_errors == []
    assert [f.kind for f in emu.faults.faults] == [fault["kind"]]  # the faults stay set


async def test_a_delayed_answer_is_lost_with_the_power_though_the_delay_outlasts_it(rig):
    await rig.http.post("/faults", {"kind": "delay", "seconds": 1.0}, status=201)
    async with peer(rig.emu.port) as client:
        client.send(1)
        await asyncio.sleep(0.3)
        await rig.http.post("/power-cycle", {"seconds": 0.2})
        await asyncio.sleep(1.4)  # the power back, and past the delay
    assert client.run.answers == {}  # as documented: what a delay held back is lost


async def test_the_faults_hold_at_most_their_bound_and_lose_the_rest(rig, monkeypatch, caplog):
    monkeypatch.setattr(faults, "HELD_MAX", 5, raising=False)  # raising: to fail without it
    caplog.set_level(logging.WARNING, "pager.faults")
    rig.emu.add_fault("duplicate", seconds=600, direction="answer")
    async with peer(rig.emu.port) as client:
        for mid in range(1, 21):
            client.send(mid)
        await client.settle(0.3)
    assert sorted(client.run.answers) == list(range(1, 21))  # every original answered
    loop = asyncio.get_running_loop()
    assert len(faults_timers(loop, rig.emu.faults)) == 5  # five copies held, fifteen lost
    warnings = [r for r in caplog.records if "datagrams" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once, not per datagram
    rig.emu.clear_faults()
