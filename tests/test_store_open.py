"""Store.open: a store serves one emulator at a time, and can still be read by anyone."""

import sqlite3

import pytest

from pager.store import Store, StoreError


async def test_a_store_open_is_refused_a_second_time_until_closed(db_path):
    first = await Store.open(db_path)
    try:
        with pytest.raises(StoreError, match=f"store {db_path} is already open in another"):
            await Store.open(db_path)
    finally:
        await first.close()
    second = await Store.open(db_path)
    await second.close()


async def test_a_symbolic_link_to_an_open_store_is_refused(tmp_path, db_path):
    link = tmp_path / "elsewhere" / "link.db"
    link.parent.mkdir()
    link.symlink_to(db_path)
    first = await Store.open(db_path)
    try:
        with pytest.raises(StoreError, match="already open"):
            await Store.open(link)
    finally:
        await first.close()


async def test_an_open_store_can_be_read_by_another_connection(db_path):
    store = await Store.open(db_path)
    try:
        reader = sqlite3.connect(db_path)
        try:
            assert reader.execute("SELECT count(*) FROM session").fetchone() == (0,)
        finally:
            reader.close()
    finally:
        await store.close()


async def test_a_store_in_a_missing_folder_names_the_folder(tmp_path):
    folder = tmp_path / "missing"
    with pytest.raises(StoreError, match=f"the folder {folder} does not exist"):
        await Store.open(folder / "pager.db")
    assert not folder.exists()


async def test_a_folder_is_refused_as_a_store(tmp_path):
    with pytest.raises(StoreError, match="it is a folder, not a file"):
        await Store.open(tmp_path)
    assert list(tmp_path.parent.glob(f"{tmp_path.name}*")) == [tmp_path]  # no lock file
