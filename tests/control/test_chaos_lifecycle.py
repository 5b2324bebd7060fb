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


async def test_a_delay_holds_at_most_the_bound_of_exchanges(rig, monkeypatch):
    monkeypatch.setattr(faults, "HELD_MAX", 5, raising=False)
    rig.emu.add_fault("delay", seconds=600)
    async with peer(rig.emu.port) as client:
        for mid in range(1, 21):
            client.send(mid)
        await asyncio.sleep(0.5)
    assert client.run.answers == {}  # five held for 600 s, fifteen lost
    timers = faults_timers(asyncio.get_running_loop(), rig.emu.faults)
    assert len(timers) == 10  # each held exchange: its answer's and the end of its hold
    rig.emu.clear_faults()


# ---- a reorder fault's draws -------------------------------------------------------------


async def _reordered(rig, burst: int) -> list[int]:
    """The message ids a seeded reorder fault (probability 0.5, window 3) holds among 60
    requests sent `burst` at a time, each burst answered before the next: one at a time,
    every window goes by its time holding one; three at a time, many fill."""
    rig.emu.clear_journal()
    fault = rig.emu.add_fault("reorder", probability=0.5, seed=11, window=3, seconds=0.15)
    async with peer(rig.emu.port) as client:
        for first in range(1, 61, burst):
            mids = list(range(first, first + burst))
            for mid in mids:
                client.send(mid)
            async with asyncio.timeout(10):
                while not set(mids) <= client.run.answered:
                    await asyncio.sleep(0.01)
    rig.emu.remove_fault(fault.id)
    held = [e.mid for e in rig.emu.journal() if e.fault is not None and e.fault.id == fault.id]
    return sorted(held)  # as read: in the order the windows let them go


async def test_which_datagrams_a_reorder_fault_holds_does_not_depend_on_how_its_windows_fill(
    rig,
):
    """The order a window goes in is drawn from a generator of its own: drawing it from the
    one that chooses the datagrams took as many draws as the window held, which the timing
    decides, and so changed which later datagrams the same seed chose."""
    one_at_a_time = await _reordered(rig, 1)
    three_at_a_time = await _reordered(rig, 3)
    assert 15 < len(one_at_a_time) < 45
    assert three_at_a_time == one_at_a_time
