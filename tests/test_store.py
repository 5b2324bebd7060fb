"""The store's SQLite settings: what its durability and its commit latency rest on; the
receipts' bounds; commits on the loop thread, and what they rely on in aiosqlite."""

import asyncio
import contextlib
import random
import sqlite3
import sys
import threading
import time
from datetime import datetime

import aiosqlite
import pytest

from pager import store as store_module
from pager.domain.model import Archived, Change, Device, Session
from pager.store import (
    BUSY_WAIT_SECONDS,
    WAL_CHECKPOINT_PAGES,
    Receipt,
    Store,
    StoreError,
    _Aiosqlite,
)


async def test_write_ahead_log_settings(tmp_path):
    store = await Store.open(tmp_path / "pager.db")
    try:

        async def pragma(name: str):
            return (await (await store._conn.execute(f"PRAGMA {name}")).fetchone())[0]

        assert await pragma("journal_mode") == "wal"
        assert await pragma("synchronous") == 1  # NORMAL: a killed process loses no commit
        # the store checkpoints every WAL_CHECKPOINT_PAGES itself, off the event loop
        assert await pragma("wal_autocheckpoint") == 0 and WAL_CHECKPOINT_PAGES == 10_000
    finally:
        await store.close()


# -- receipts: the answers that outlive a restart -------------------------------------------


class WallClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall(monkeypatch) -> WallClock:
    clock = WallClock()
    monkeypatch.setattr(store_module.time, "time", clock)
    return clock


def receipt(n: int, at: float) -> Receipt:
    return Receipt(at, "::ffff:127.0.0.1", 40000 + n % 1000, 0, n % 65536, b"answer %d" % n)


async def rows(store: Store) -> int:
    return (await (await store._conn.execute("SELECT count(*) FROM receipt")).fetchone())[0]


async def test_receipts_are_kept_newest_first_within_the_limit(tmp_path, wall):
    store = await Store.open(tmp_path / "pager.db", receipt_limit=300)
    try:
        change = Change(Device())
        for n in range(1000):
            await store.commit([change], [receipt(n, wall.now)])
        assert [r.datagram for r in await store.receipts()] == [
            b"answer %d" % n for n in range(700, 1000)
        ]
        assert await rows(store) == 300  # a ring of 300 slots, each written over in place
        # a batch of several, going round the ring's end
        await store.commit([change], [receipt(n, wall.now) for n in range(1000, 1010)])
        assert [r.mid for r in await store.receipts()] == list(range(710, 1010))
    finally:
        await store.close()


async def test_receipts_older_than_the_window_are_not_loaded(tmp_path, wall):
    store = await Store.open(tmp_path / "pager.db", receipt_window=49.0)
    try:
        change = Change(Device())
        for n in range(260):
            await store.commit([change], [receipt(n, wall.now)])
        wall.now += 30
        await store.commit([change], [receipt(9999, wall.now)])
        assert len(await store.receipts()) == 261
        wall.now += 20  # the first ones are now 50 s old, the last one 20 s
        assert [r.mid for r in await store.receipts()] == [9999]
    finally:
        await store.close()


async def test_receipts_are_read_back_after_a_reopen_and_go_on_round_the_ring(tmp_path, wall):
    path = tmp_path / "pager.db"
    store = await Store.open(path, receipt_limit=100)
    change = Change(Device())
    try:
        for n in range(150):
            await store.commit([change], [receipt(n, wall.now)])
    finally:
        await store.close()
    store = await Store.open(path, receipt_limit=100)
    try:
        assert [r.mid for r in await store.receipts()] == list(range(50, 150))
        await store.commit([change], [receipt(150, wall.now)])  # the next id: over 50's slot
        assert [r.mid for r in await store.receipts()] == list(range(51, 151))
        wall.now += 50
        await store.commit([change], [receipt(1, wall.now)])
        assert [r.datagram for r in await store.receipts()] == [b"answer 1"]
    finally:
        await store.close()


@pytest.mark.parametrize("limit", [100, 120, 400])
async def test_a_store_reopened_with_another_limit_keeps_the_newest_within_it(
    tmp_path, wall, limit
):
    path = tmp_path / "pager.db"
    store = await Store.open(path, receipt_limit=300)
    change = Change(Device())
    try:
        for n in range(700):
            await store.commit([change], [receipt(n, wall.now)])
    finally:
        await store.close()
    store = await Store.open(path, receipt_limit=limit)
    try:
        kept = min(limit, 300)
        assert [r.mid for r in await store.receipts()] == list(range(700 - kept, 700))
        for n in range(700, 700 + limit):  # once round the ring: only the new ones stay
            await store.commit([change], [receipt(n, wall.now)])
        assert [r.mid for r in await store.receipts()] == list(range(700, 700 + limit))
        assert await rows(store) == limit
    finally:
        await store.close()


async def test_the_ring_keeps_the_newest_through_batches_and_limit_changes(tmp_path, wall):
    """Against a model of 'the newest `limit`': batches longer than the ring, reopenings with
    other limits."""

    rnd = random.Random(7)
    limit, kept, n = 5, [], 0
    store = await Store.open(tmp_path / "pager.db", receipt_limit=limit)
    try:
        for step in range(300):
            if rnd.random() < 0.15:
                await store.close()
                limit = rnd.choice([1, 2, 3, 5, 8, 13])
                kept = kept[-limit:]
                store = await Store.open(tmp_path / "pager.db", receipt_limit=limit)
            batch = [receipt(n + i, wall.now) for i in range(rnd.choice([0, 1, 1, 2, 7, 20]))]
            n += len(batch)
            if batch or rnd.random() < 0.5:
                await store.commit([Change(Device(global_sequence=step))], batch)
                kept = (kept + batch)[-limit:]
            assert await store.receipts() == kept, step
    finally:
        await store.close()


# -- commits on the loop thread, through what the store relies on in aiosqlite --------------


def test_the_aiosqlite_the_store_relies_on_is_the_pinned_one():
    assert aiosqlite.__version__ == "0.22.1"  # pyproject.toml pins it; see store._Aiosqlite
    assert _Aiosqlite.RELIES_ON == ("_running", "_connection", "_execute")


async def test_an_aiosqlite_without_what_the_store_relies_on_is_refused_at_open(
    db_path, monkeypatch
):
    monkeypatch.setattr(_Aiosqlite, "RELIES_ON", (*_Aiosqlite.RELIES_ON, "_gone"))
    with pytest.raises(StoreError, match=r"aiosqlite 0\.22\.1 lacks .*\(_gone\)"):
        await Store.open(db_path)
    monkeypatch.undo()
    store = await Store.open(db_path)  # the failed open let go of the store
    await store.close()


async def _commit_some(store: Store, count: int) -> None:
    for n in range(count):
        await store.commit([Change(Device(global_sequence=n))], [receipt(n, 1e9 + n)])
        await asyncio.sleep(0)  # as the loop does between requests: a checkpoint may start


async def _settled(store: Store) -> None:
    """The checkpoint under way done, and one commit after it: the one that starts the log
    again, and cuts it back, if it was copied whole. (Commits go on while a checkpoint copies
    the bulk of the log, so it may end longer than the checkpoint's bound.)"""
    if store._checkpointing is not None:
        await store._checkpointing
    await store.commit([Change(Device())])


async def test_commits_run_on_the_loop_thread_and_checkpoints_in_aiosqlites(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "WAL_CHECKPOINT_PAGES", 40)
    store = await Store.open(tmp_path / "pager.db")
    try:
        statements: list[tuple[int, str]] = []
        store._aio.sqlite().set_trace_callback(
            lambda sql: statements.append((threading.get_ident(), sql.split()[0]))
        )
        await _commit_some(store, 300)
        await _settled(store)
        loop = threading.get_ident()
        assert {t for t, sql in statements if sql in ("INSERT", "UPDATE", "COMMIT")} == {loop}
        checkpoints = [t for t, sql in statements if sql == "PRAGMA"]
        assert checkpoints and loop not in checkpoints
        # a log copied every 40 pages or so, and started again: it stays small
        wal = (tmp_path / "pager.db-wal").stat().st_size
        assert wal < 200 * (store_module.PAGE_SIZE + 24), wal
    finally:
        await store.close()


class HeldCheckpointer:
    """The checkpoint's own connection, its copy held until `release`."""

    def __init__(self, fails: bool = False):
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fails = fails
        self.closed = False

    @contextlib.asynccontextmanager
    async def execute(self, sql: str):
        assert sql == "PRAGMA wal_checkpoint(PASSIVE)"
        self.started.set()
        await self.release.wait()
        if self.fails:
            raise sqlite3.OperationalError("disk I/O error")
        yield self

    async def fetchone(self):
        return (0, 0, 0)

    async def close(self):
        self.closed = True


def _wal_frames(tmp_path) -> int:
    return (tmp_path / "pager.db-wal").stat().st_size // (store_module.PAGE_SIZE + 24)


@pytest.mark.parametrize("fails", [False, True])
async def test_commits_go_on_while_the_bulk_of_a_checkpoint_is_copied(
    tmp_path, monkeypatch, caplog, fails
):
    monkeypatch.setattr(store_module, "WAL_CHECKPOINT_PAGES", 40)
    store = await Store.open(tmp_path / "pager.db")
    await store._checkpointer.close()
    store._checkpointer = held = HeldCheckpointer(fails)
    try:
        n = 0
        while not held.started.is_set():
            assert n < 1000, "no checkpoint began"
            await _commit_some(store, 1)
            n += 1
        for m in range(n, n + 100):  # not one waits for the copy held
            await asyncio.wait_for(store.commit([Change(Device(global_sequence=m))]), 1)
        assert (await store.load()).device.global_sequence == n + 99
        grown = _wal_frames(tmp_path)
        held.release.set()
        await store._checkpointing
        # the second step copied the log whole, with no commit meanwhile: the next commit
        # writes it from its beginning again
        await store.commit([Change(Device(global_sequence=0))])
        db = store._aio.sqlite()
        busy, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert grown > 100 and not busy and 0 < frames < 10, (grown, frames)
        assert ("checkpoint beside the commits failed" in caplog.text) is fails
    finally:
        await store.close()
    assert held.closed


async def test_a_commit_between_the_checkpoints_two_steps_does_not_stretch_its_interval(
    tmp_path, monkeypatch
):
    """Step 1 copies the whole log; a commit queued on the lock (behind a read holding it,
    as `_query` does) runs before step 2 and starts the log again; step 2 then sees a few
    frames and takes all the commits since the last checkpoint to have written only those."""
    monkeypatch.setattr(store_module, "WAL_CHECKPOINT_PAGES", 400)
    store = await Store.open(tmp_path / "pager.db")
    try:
        store._checkpoint_every = 10**9  # no checkpoint of its own while we fill the log
        await _commit_some(store, 100)
        commits, frames = store._since_checkpoint, _wal_frames(tmp_path)
        honest = (commits + 1) * 400 // frames  # what the log says about commits and pages
        await store._lock.acquire()  # a read under way on the main connection
        store._checkpointing = task = asyncio.create_task(store._checkpoint())
        commit = asyncio.create_task(store.commit([Change(Device(global_sequence=1))]))
        await asyncio.sleep(0.5)  # step 1 done: the log copied whole
        store._lock.release()
        await commit
        await task
        assert store._checkpoint_every <= 2 * honest, (store._checkpoint_every, honest)
    finally:
        await store.close()


async def test_a_commit_waits_for_another_processs_lock_without_holding_up_the_loop(db_path):
    store = await Store.open(db_path)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the sqlite3 shell, say, in the middle of a write
        commit = asyncio.create_task(store.commit([Change(Device(global_sequence=7))]))
        started = time.monotonic()
        for _ in range(20):
            await asyncio.sleep(0.01)
        # the loop turned on while the commit waited (a wait on it would take 5 s)
        assert time.monotonic() - started < BUSY_WAIT_SECONDS / 2 and not commit.done()
        other.execute("ROLLBACK")
        await asyncio.wait_for(commit, 5)
        assert (await store.load()).device.global_sequence == 7
        await store.commit([Change(Device(global_sequence=8))])  # and on the loop again
        assert (await store.load()).device.global_sequence == 8
    finally:
        other.close()
        await store.close()


async def test_the_log_stays_small_while_history_is_read_without_pause(tmp_path, monkeypatch):
    # Every read of history holds a snapshot of the log; a checkpoint that meets one copies
    # only what is older, and SQLite starts a log again from its beginning only once it was
    # copied whole. Readers one after another would have the log grow with every commit.
    monkeypatch.setattr(store_module, "WAL_CHECKPOINT_PAGES", 40)
    store = await Store.open(tmp_path / "pager.db")
    try:
        now = datetime(2026, 1, 1)
        sessions = [Session(n, n, f"u{n}", n, 2, 300, now, None, "x" * 100) for n in range(1, 3001)]
        await store.bulk_archive([Archived(s, now, "manual") for s in sessions], Device())
        reading = True

        async def poll() -> int:
            reads = 0
            while reading:
                assert len((await store.history()).sessions) == 3000
                reads += 1
            return reads

        pollers = [asyncio.create_task(poll()) for _ in range(2)]
        await _commit_some(store, 2000)
        reading = False
        assert min(await asyncio.gather(*pollers)) > 2  # history was read all along
        await _settled(store)
        wal = (tmp_path / "pager.db-wal").stat().st_size
        # a few checkpoints apart, not 2000 commits
        assert wal < 400 * (store_module.PAGE_SIZE + 24), wal
    finally:
        await store.close()


async def test_a_long_read_elsewhere_does_not_have_every_commit_checkpoint(db_path, monkeypatch):
    # A log that another process's reader keeps is never copied whole: the pages it holds
    # are older than the commits since the last checkpoint, not theirs to be timed from.
    monkeypatch.setattr(store_module, "WAL_CHECKPOINT_PAGES", 40)
    store = await Store.open(db_path)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        await _commit_some(store, 100)
        other.execute("BEGIN")  # the sqlite3 shell, say, in the middle of a long read
        other.execute("SELECT count(*) FROM receipt").fetchone()
        checkpoints: list[str] = []
        store._aio.sqlite().set_trace_callback(
            lambda sql: sql.startswith("PRAGMA wal_checkpoint") and checkpoints.append(sql)
        )
        await _commit_some(store, 600)
        assert 0 < len(checkpoints) < 60, len(checkpoints)
    finally:
        other.close()
        await store.close()


async def test_a_log_grown_behind_a_read_is_cut_back_as_it_starts_again(db_path, monkeypatch):
    # The log grows past its bound while another process's reader keeps it; SQLite reuses
    # a log file from its beginning but never shortens it unless told how long it may stay.
    monkeypatch.setattr(store_module, "WAL_CHECKPOINT_PAGES", 40)
    store = await Store.open(db_path)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN")
        other.execute("SELECT count(*) FROM receipt").fetchone()
        await _commit_some(store, 600)
        grown = (db_path.parent / "pager.db-wal").stat().st_size
        other.execute("COMMIT")
        await _commit_some(store, 300)
        await _settled(store)
        wal = (db_path.parent / "pager.db-wal").stat().st_size
        frame = store_module.PAGE_SIZE + 24  # a page and its frame header
        assert grown > 400 * frame and wal < 200 * frame, (grown, wal)
    finally:
        other.close()
        await store.close()


# -- schema: migrations and the page size -----------------------------------------------------


def _store_at(path, version: int, page_size: int = 4096) -> sqlite3.Connection:
    """A store file as an emulator of schema `version` left it."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size={page_size}")
    db.execute("PRAGMA journal_mode=WAL")
    for v in range(version):
        db.executescript(
            f"BEGIN; {store_module.MIGRATIONS[v]}; PRAGMA user_version = {v + 1}; COMMIT;"
        )
    return db


SESSION_ROW = (7, 3, "6f9a1c1e-0000-4000-8000-000000000007", 42, 2, 300, "2026-12-01T10:00:00")


async def test_a_new_store_has_small_pages_and_no_index_of_pager_numbers(tmp_path):
    store = await Store.open(tmp_path / "pager.db")
    try:
        db = store._aio.sqlite()
        assert db.execute("PRAGMA page_size").fetchone()[0] == store_module.PAGE_SIZE == 1024
        assert db.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
        assert db.execute("PRAGMA index_list(session)").fetchall() == []
    finally:
        await store.close()


async def test_a_version_2_store_keeps_its_sessions_and_pages_and_loses_the_index(tmp_path):
    path = tmp_path / "pager.db"
    old = _store_at(path, 2)
    assert old.execute("PRAGMA index_list(session)").fetchall() != []  # what v3 drops
    old.execute(
        "INSERT INTO session (id, sequence, uuid, number, party_size, goal, created)"
        " VALUES (?,?,?,?,?,?,?)",
        SESSION_ROW,
    )
    old.close()
    store = await Store.open(path)
    try:
        state = await store.load()
        assert [(s.id, s.number, s.party_size) for s in state.active.values()] == [(7, 42, 2)]
        db = store._aio.sqlite()
        assert db.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
        assert db.execute("PRAGMA index_list(session)").fetchall() == []
        assert db.execute("PRAGMA page_size").fetchone()[0] == 4096  # a file keeps its pages
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        await store.close()


async def test_a_store_with_two_active_sessions_for_one_number_is_refused(tmp_path):
    path = tmp_path / "pager.db"
    db = _store_at(path, store_module.SCHEMA_VERSION)
    for sid in (7, 8):
        db.execute(
            "INSERT INTO session (id, sequence, uuid, number, party_size, goal, created)"
            " VALUES (?,?,?,?,?,?,?)",
            (sid, *SESSION_ROW[1:]),
        )
    db.close()
    store = await Store.open(path)
    try:
        with pytest.raises(StoreError, match="two active sessions for one number") as refused:
            await store.load()
        # what to look at to mend it
        assert str(refused.value).endswith(": number 42, session ids 7 and 8")
    finally:
        await store.close()


async def test_a_version_3_store_keeps_its_pages_as_pages_over_coap(tmp_path):
    path = tmp_path / "pager.db"
    old = _store_at(path, 3)
    old.execute(
        "INSERT INTO transmission VALUES (5, '2026-12-01T10:00:00', 42, 4, 'Flash30Sec',"
        " NULL, '[]', NULL)"
    )
    old.close()
    store = await Store.open(path)
    try:
        (tx,) = await store.transmissions()
        assert (tx.id, tx.number, tx.source) == (5, 42, "coap")
        db = store._aio.sqlite()
        assert db.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION
    finally:
        await store.close()


async def test_a_version_4_store_keeps_its_receipts_in_the_ring(tmp_path, wall):
    path = tmp_path / "pager.db"
    old = _store_at(path, 4)
    old.executemany(
        "INSERT INTO receipt VALUES (?,?,?,?,?,?,?)",
        [(n, *receipt(n, wall.now)) for n in range(1, 151)],
    )
    old.close()
    store = await Store.open(path, receipt_limit=100)
    try:
        assert [r.mid for r in await store.receipts()] == list(range(51, 151))
        await store.commit([Change(Device())], [receipt(151, wall.now)])
        assert [r.mid for r in await store.receipts()] == list(range(52, 152))
        db = store._aio.sqlite()
        assert db.execute("PRAGMA user_version").fetchone()[0] == store_module.SCHEMA_VERSION == 5
        assert db.execute("SELECT count(*) FROM receipt WHERE slot <> id % 100").fetchone() == (0,)
    finally:
        await store.close()


_COMMITTER = """
import asyncio, sys
from pager import store as store_module
from pager.domain.model import Change, Device
from pager.store import Receipt, Store

store_module.WAL_CHECKPOINT_PAGES = 40  # a checkpoint, both its steps, every few commits

async def main():
    store = await Store.open(sys.argv[1], receipt_limit=100)
    n = (await store.load()).device.global_sequence
    while True:
        n += 1
        await store.commit([Change(Device(global_sequence=n))],
                           [Receipt(1e12, "::1", 1, 0, n % 65536, b"answer %d" % n)])
        print(n, flush=True)  # acknowledged: committed
        await asyncio.sleep(0)

asyncio.run(main())
"""


@pytest.mark.parametrize("round_", range(3))
async def test_kill_9_among_checkpoints_loses_no_commit_nor_receipt(tmp_path, round_):
    """A committer killed at a random moment, checkpoints running beside it or holding it:
    every commit it acknowledged is in the store, and the receipts are the newest 100 of
    them, in their ring, after each of several kills."""
    path = tmp_path / "pager.db"
    acknowledged = 0
    for kill in range(3):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _COMMITTER, str(path), stdout=asyncio.subprocess.PIPE
        )
        assert proc.stdout is not None
        lines = 0
        while lines < 300 + 97 * round_ + 31 * kill:  # past many checkpoints, off their beat
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, "the committer died"
            acknowledged, lines = int(line), lines + 1
        proc.kill()
        await proc.wait()
        store = await Store.open(path, receipt_limit=100)
        try:
            last = (await store.load()).device.global_sequence
            assert last >= acknowledged  # a commit under way at the kill may be in, or not
            assert [r.mid for r in await store.receipts()] == list(range(last - 99, last + 1))
            db = store._aio.sqlite()
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            await store.close()
