"""The store's SQLite settings: what its durability and its commit latency rest on."""

from pager.store import WAL_CHECKPOINT_PAGES, Store


async def test_write_ahead_log_settings(tmp_path):
    store = await Store.open(tmp_path / "pager.db")
    try:
        async def pragma(name: str):
            return (await (await store._conn.execute(f"PRAGMA {name}")).fetchone())[0]

        assert await pragma("journal_mode") == "wal"
        assert await pragma("synchronous") == 1  # NORMAL: a killed process loses no commit
        assert await pragma("wal_autocheckpoint") == WAL_CHECKPOINT_PAGES == 10_000
    finally:
        await store.close()
