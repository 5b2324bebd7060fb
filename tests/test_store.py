"""The store's SQLite settings: what its durability and its commit latency rest on; the
receipts' bounds."""

import pytest

from pager import store as store_module
from pager.domain.model import Change, Device
from pager.store import RECEIPT_PRUNE_BATCH, WAL_CHECKPOINT_PAGES, Receipt, Store


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
        assert 300 <= await rows(store) < 300 + RECEIPT_PRUNE_BATCH
    finally:
        await store.close()


async def test_receipts_older_than_the_window_are_neither_loaded_nor_kept(tmp_path, wall):
    store = await Store.open(tmp_path / "pager.db", receipt_window=49.0)
    try:
        change = Change(Device())
        for n in range(RECEIPT_PRUNE_BATCH + 10):
            await store.commit([change], [receipt(n, wall.now)])
        wall.now += 30
        await store.commit([change], [receipt(9999, wall.now)])
        assert len(await store.receipts()) == RECEIPT_PRUNE_BATCH + 11
        wall.now += 20  # the first batch is now 50 s old, the last one 20 s
        assert [r.mid for r in await store.receipts()] == [9999]
        await store.commit([change])  # a commit without receipts deletes the expired ones
        assert await rows(store) == 1
    finally:
        await store.close()


async def test_receipts_are_read_back_after_a_reopen_and_pruned_there_too(tmp_path, wall):
    path = tmp_path / "pager.db"
    store = await Store.open(path)
    change = Change(Device())
    try:
        for n in range(RECEIPT_PRUNE_BATCH + 5):
            await store.commit([change], [receipt(n, wall.now)])
    finally:
        await store.close()
    store = await Store.open(path)
    try:
        assert [r.mid for r in await store.receipts()] == list(range(RECEIPT_PRUNE_BATCH + 5))
        wall.now += 50
        await store.commit([change], [receipt(1, wall.now)])
        assert await rows(store) == 1
        assert [r.datagram for r in await store.receipts()] == [b"answer 1"]
    finally:
        await store.close()
