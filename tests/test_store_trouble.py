"""Disk trouble while serving: a full disk answers 5.03 with the error body, keeps nothing of
the failed change, and the emulator recovers as soon as the disk does."""

import logging


async def _page_count(emulator) -> int:
    conn = emulator.engine.store._conn  # the test plays the disk: it caps the file's size
    return (await (await conn.execute("PRAGMA page_count")).fetchone())[0]


async def _cap(emulator, pages: int) -> None:
    await emulator.engine.store._conn.execute(f"PRAGMA max_page_count = {pages}")


async def test_disk_full_answers_503_keeps_nothing_and_recovers(emulator, client, caplog):
    caplog.set_level(logging.WARNING)
    assert (await client.post("/v1/sessions", {"number": 1})).code == "2.01"
    await _cap(emulator, await _page_count(emulator))
    failed = None
    for n in range(2, 2000):  # fill what is left of the capped file
        r = await client.post("/v1/sessions", {"number": n % 4096, "label": "x" * 64})
        if r.code != "2.01":
            failed = (n, r)
            break
    assert failed is not None, "the capped store never filled up"
    n, r = failed
    assert r.code == "5.03"
    body = r.json
    assert body["responseTypes"] == ["error"] and body["error"]["code"] == "5.03"
    assert "full" in body["error"]["message"]
    before = (await client.get("/v1/sessions")).json
    assert all(s["number"] != n for s in before["sessions"])  # nothing of it was kept
    assert (await client.get("/v1/sessions", query=f"number={n}")).code == "4.04"
    assert before["globalSessionSequence"] == n - 1
    assert before["statistics"]["numSessions"] == n - 1
    # reads keep working while the disk is full
    assert (await client.get("/v1/sessions/statistics")).code == "2.05"

    await _cap(emulator, 1_000_000)  # the disk has room again
    r = await client.post("/v1/sessions", {"number": n})
    assert r.code == "2.01"
    assert r.json["sessions"][0]["id"] == n and r.json["globalSessionSequence"] == n
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


async def test_history_read_failure_is_503(emulator, client):
    await emulator.engine.store._conn.execute("DROP TABLE history")  # a broken store file
    r = await client.get("/v1/sessions/history")
    assert r.code == "5.03" and r.json["error"]["code"] == "5.03"
    assert (await client.get("/v1/sessions/statistics")).code == "2.05"
