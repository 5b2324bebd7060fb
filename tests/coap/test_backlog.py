"""Backlogs: aiocoap's per-peer queues, as aiocoap uses them, plus waiting for them to empty."""

import asyncio

import pytest

from pager.coap.seam import Backlogs


async def _pending(awaitable) -> asyncio.Task:
    task = asyncio.ensure_future(awaitable)
    await asyncio.sleep(0)
    return task


async def test_behaves_like_the_dict_of_lists_aiocoap_keeps():
    b = Backlogs()
    assert "peer" not in b and b.waiting("peer") == 0
    b["peer"] = []  # a first CON goes out: an (empty) backlog exists
    b["peer"].append("m2")
    b["peer"].append("m3")
    assert b.waiting("peer") == 2 and b["peer"] != []
    assert b["peer"].pop(0) == "m2"
    assert b["peer"] == ["m3"]
    del b["peer"]
    assert b.pop("peer", ()) == ()


async def test_drained_waits_until_nothing_waits_for_that_peer():
    b = Backlogs()
    b["a"] = ["a1", "a2"]
    b["b"] = ["b1"]
    task = await _pending(b.drained("a"))
    b["b"].pop(0)  # another peer moving does not matter
    await asyncio.sleep(0)
    assert not task.done()
    b["a"].pop(0)  # one still waits
    await asyncio.sleep(0)
    assert not task.done()
    b["a"].pop(0)
    await asyncio.wait_for(task, 1)
    assert (await _pending(b.drained("a"))).done()  # nothing waits: returns at once


@pytest.mark.parametrize("end", ["del", "pop"])
async def test_a_peer_given_up_wakes_its_waiters(end):
    b = Backlogs()
    b["a"] = ["a1"]
    task = await _pending(b.drained("a"))
    if end == "del":
        del b["a"]  # retransmissions exhausted
    else:
        b.pop("a", ())  # an error from the transport
    await asyncio.wait_for(task, 1)


async def test_a_cancelled_waiter_is_harmless():
    b = Backlogs()
    b["a"] = ["a1", "a2"]
    task = await _pending(b.drained("a"))
    task.cancel()
    await asyncio.sleep(0)
    assert task.cancelled()
    b["a"].pop(0)  # its future is done: waking it must not raise
    b["a"].pop(0)
    assert b.waiting("a") == 0


async def test_installed_in_place_of_aiocoaps_own(emulator):
    managers = [i.token_interface for i in emulator._context.request_interfaces]
    assert managers and all(m._backlogs is emulator.backlogs for m in managers)
