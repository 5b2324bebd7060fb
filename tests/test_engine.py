"""The engine: whole-state operations (reset, power cycle, history deletion, close) against
changes in flight, over a real store; and a factory reset racing real CoAP clients."""

import asyncio
import random
from datetime import datetime, timedelta

import aiocoap
import pytest

from pager.app import Emulator
from pager.clock import Clock
from pager.domain import operations as ops
from pager.domain.model import STOP, Archived, Device, Session, State
from pager.domain.operations import DeviceRules
from pager.domain.rules import Limits
from pager.engine import Engine
from pager.store import Store, StoreUnavailable
from tests.conftest import Client, make_config

CONFIG = DeviceRules(Limits(0, 4095), frozenset(), False)


class HeldStore(Store):
    """A real store whose commits wait for `release` once `hold` is set, and whose next
    commit fails with `fail` if it is set; `batches` has the number of changes of every
    commit written."""

    hold = False
    fail: Exception | None = None

    async def commit(self, changes, receipts=()):
        self.started.set()
        if self.hold:
            await self.release.wait()
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        await super().commit(changes, receipts)
        self.batches.append(len(changes))


@pytest.fixture
async def held(db_path, manual_time):
    store = await HeldStore.open(db_path)
    store.started, store.release = asyncio.Event(), asyncio.Event()
    store.batches = []
    engine = await Engine.load(store, Clock(system=manual_time), CONFIG)
    store.started.clear()  # set by the load's own commit (the clear mark starts counting)
    store.batches.clear()
    yield engine
    store.release.set()
    await engine.close()
    await store.close()


def create(number):
    return lambda state, now: ops.create_or_update(
        state, number, ops.SessionPatch(), now, f"uuid-{number}", CONFIG
    )


def set_datetime(when):
    return lambda state, now: ops.update_settings(state, ops.SettingsPatch(datetime=when), now)


async def _queued(engine, count):
    """Until `count` changes wait behind the commit under way (a failing test, not a hang,
    if they never do)."""
    for _ in range(100_000):
        if len(engine._queue) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(engine._queue)} changes queued, not {count}")


async def test_the_changes_queued_while_a_commit_runs_are_written_in_one_commit(held):
    held.store.hold = True
    first = asyncio.create_task(held.run(create(1)))
    await held.store.started.wait()
    behind = [asyncio.create_task(held.run(create(n))) for n in range(2, 12)]
    await _queued(held, 10)
    held.store.release.set()
    await asyncio.gather(first, *behind)
    assert held.store.batches == [1, 10]
    assert sorted((await held.store.load()).active) == list(range(1, 12))


async def test_changes_queued_in_successive_turns_of_the_loop_share_a_commit(held):
    """What requests do: each computes its change a few turns of the loop after the last
    one (aiocoap's own steps), and the committer waits for them rather than commit each."""

    async def later(turns, number):
        for _ in range(turns):
            await asyncio.sleep(0)
        await held.run(create(number))

    await asyncio.gather(*(later(turns, 10 + turns) for turns in range(6)))
    assert held.store.batches == [6]


async def test_a_failed_commit_fails_what_queued_behind_it_and_the_clock_goes_back(
    held, manual_time
):
    before = held.clock.now()
    held.store.hold = True
    failing = asyncio.create_task(held.run(create(1)))
    await held.store.started.wait()
    behind = [
        asyncio.create_task(held.run(create(2))),
        asyncio.create_task(held.run(set_datetime(datetime(2031, 5, 6, 7, 8, 9)))),
        asyncio.create_task(held.run(create(3))),
    ]
    await _queued(held, 3)
    assert held.clock.now() == datetime(2031, 5, 6, 7, 8, 9)  # moved for the changes after it
    held.store.fail = StoreUnavailable("the disk is gone")
    held.store.release.set()
    results = await asyncio.gather(failing, *behind, return_exceptions=True)
    assert [str(r) for r in results] == ["the disk is gone"] * 4
    assert held.clock.now() == before
    assert held.state == held._pending == State(Device(clear_mark_since=before))
    assert held.store.batches == []

    await held.run(create(4))
    assert list((await held.store.load()).active) == [4]
    assert held.state.active[4].id == 1 and held.state.active[4].created == before


async def test_reset_waits_for_the_commit_under_way_and_nothing_computed_before_it_returns(held):
    held.store.hold = True
    first = asyncio.create_task(held.run(create(1)))
    await held.store.started.wait()  # its commit is under way, held
    reset = asyncio.create_task(held.reset())
    await asyncio.sleep(0.01)
    late = asyncio.create_task(held.run(create(2)))  # arrives while the reset waits
    await asyncio.sleep(0.01)
    assert not reset.done() and not late.done()
    held.store.hold = False
    held.store.release.set()
    await asyncio.gather(first, reset, late)
    # the first was committed before the reset and wiped by it; the late one came after it
    assert list(held.state.active) == [2]
    assert held.state.active[2].id == 1 and held.state.device.global_sequence == 1
    assert (await held.store.load()) == held.state


async def test_a_failed_commit_before_an_exclusive_operation_still_runs_it(held, db_path):
    held.store.hold = True
    failing = asyncio.create_task(held.run(create(1)))
    await held.store.started.wait()
    ran = []

    async def operation():
        ran.append(held.state.device.global_sequence)

    exclusive = asyncio.create_task(held.exclusive(operation))
    await asyncio.sleep(0.01)
    await held.store._conn.close()  # the commit under way fails
    held.store.release.set()
    with pytest.raises(ValueError, match="Connection closed"):  # aiosqlite's, on a closed one
        await failing
    await exclusive
    assert ran == [0]


async def test_close_during_a_commit_waits_for_it_and_the_change_is_on_disk(held, db_path):
    held.store.hold = True
    write = asyncio.create_task(held.run(create(7)))
    await held.store.started.wait()
    closing = asyncio.create_task(held.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    held.store.release.set()
    await closing
    assert write.done() and not write.cancelled()
    await held.store.close()
    reopened = await Store.open(db_path)
    try:
        assert list((await reopened.load()).active) == [7]
    finally:
        await reopened.close()


async def test_constructing_an_engine_starts_nothing_and_start_does(db_path, manual_time):
    store = await Store.open(db_path)
    try:
        moved = State(Device(clock_offset=3600))
        clock = Clock(system=manual_time)
        engine = Engine(store, moved, clock, CONFIG)
        tasks = asyncio.all_tasks()
        assert clock.now() == manual_time() and engine._committer is None
        await engine.start()
        assert clock.now() == manual_time() + timedelta(hours=1)
        assert len(asyncio.all_tasks() - tasks) == 1  # the committer
        await engine.close()
        assert engine._committer.done()
    finally:
        await store.close()


async def test_archiving_in_bulk_moves_the_next_session_id_in_memory_and_on_disk(held, db_path):
    t = datetime(2026, 3, 14, 10, 0, 0)
    await held.archive_in_bulk(
        Archived(Session(i, i, f"u-{i}", i, 2, 300, t, t, None), t, STOP) for i in (5, 9)
    )
    assert [a.session.id for a in (await held.store.history()).sessions] == [5, 9]
    await held.run(create(1))
    assert held.state.active[1].id == 10
    assert (await held.store.load()) == held.state


async def test_close_waits_for_the_commit_under_way(held, db_path):
    held.store.hold = True
    write = asyncio.create_task(held.run(create(5)))
    await held.store.started.wait()
    closing = asyncio.create_task(held.close())
    await asyncio.sleep(0.01)
    assert not closing.done()
    held.store.release.set()
    await closing
    await write  # committed, not cancelled
    assert list((await held.store.load()).active) == [5]


async def test_a_caller_that_stops_waiting_does_not_stop_the_exclusive_operation(held):
    held.store.hold = True
    write = asyncio.create_task(held.run(create(1)))
    await held.store.started.wait()
    ran = asyncio.Event()

    async def operation():
        ran.set()

    waiter = asyncio.create_task(held.exclusive(operation))
    await asyncio.sleep(0.01)
    waiter.cancel()
    held.store.release.set()
    await write
    await asyncio.wait_for(ran.wait(), 5)
    await held.run(create(2))  # the gate is open again


async def _hammer(client: Client, numbers: range, answers: list, stop: asyncio.Event):
    rng = random.Random(numbers.start)
    while not stop.is_set():
        number = rng.choice(numbers)
        if rng.random() < 0.5:
            r = await client.post("/v1/sessions", {"number": number, "action": "page"})
        else:
            r = await client.post("/v1/page", {"number": number})
        answers.append(r.code)


async def test_reset_racing_with_creates_and_pages_leaves_a_consistent_store(tmp_path):
    """Finding: changes computed before a reset committed after it (counters came back),
    transmission ids collided and every later page was 5.03, also after a restart."""
    db = tmp_path / "pager.db"
    contexts = [await aiocoap.Context.create_client_context() for _ in range(4)]
    try:
        async with Emulator(make_config(db)) as emu:
            answers: list[str] = []
            stop = asyncio.Event()
            clients = [
                asyncio.create_task(
                    _hammer(Client(c, emu.port), range(100 * i, 100 * i + 50), answers, stop)
                )
                for i, c in enumerate(contexts)
            ]

            async def memory_is_the_store():
                assert (await emu.engine.store.load()) == emu.engine.state

            try:
                for _ in range(5):
                    await asyncio.sleep(0.3)
                    await emu.reset()
                    await emu.engine.exclusive(memory_is_the_store)  # between two commits
                await asyncio.sleep(0.3)
            finally:
                stop.set()
                await asyncio.gather(*clients)
            state = emu.engine.state
            await memory_is_the_store()
            stored = await emu.engine.store.transmissions()
            ids = [t.id for t in stored]
            assert ids == sorted(set(ids)) and ids[-1] == state.device.next_transmission_id - 1
            assert state.device.counters.num_sessions <= len(answers)
        assert set(answers) <= {"2.01", "2.00", "2.04"}, sorted(set(answers))
        assert len(answers) > 100
        async with Emulator(make_config(db)) as emu:  # and after a restart
            client = Client(contexts[0], emu.port)
            assert (await client.post("/v1/page", {"number": 7})).code == "2.04"
            assert (
                await client.post("/v1/sessions", {"number": 4000, "action": "page"})
            ).code == "2.01"
    finally:
        for c in contexts:
            await c.shutdown()


async def test_the_session_list_after_a_reset_is_not_the_one_before(emulator, client):
    """Found by scripts/stateful.py: a reset starts the sequence again, so the same
    globalSessionSequence named two different lists; the second was served from the cached
    rendering of the first, and a client's ETag from before the reset validated (2.03)."""
    assert (await client.post("/v1/sessions", {"number": 1, "label": "before"})).code == "2.01"
    before = await client.get("/v1/sessions")
    await emulator.reset()
    assert (await client.post("/v1/sessions", {"number": 1, "label": "after"})).code == "2.01"
    after = await client.get("/v1/sessions")
    assert [s["label"] for s in after.json["sessions"]] == ["after"]
    assert after.message.opt.etag != before.message.opt.etag
    again = await client.get("/v1/sessions", etags=(before.message.opt.etag,))
    assert again.code == "2.05"


async def test_the_session_list_etag_after_a_reset_still_validates_after_a_restart(
    db_path, coap_context
):
    async with Emulator(make_config(db_path)) as emu:
        client = Client(coap_context, emu.port)
        await emu.reset()
        assert (await client.post("/v1/sessions", {"number": 1})).code == "2.01"
        etag = (await client.get("/v1/sessions")).message.opt.etag
    async with Emulator(make_config(db_path)) as emu:
        client = Client(coap_context, emu.port)
        assert (await client.get("/v1/sessions", etags=(etag,))).code == "2.03"
