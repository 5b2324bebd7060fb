"""The emulator as users run it: `python -m pager serve` in its own process."""

import asyncio
import signal
import sqlite3
import sys

import aiocoap

from tests.conftest import REPO, Client, ServerProcess


async def test_restart_continues_ids_sequences_and_clock(db_path, coap_context):
    server = await ServerProcess(db_path).start()
    assert f"store {db_path}" in server.banner and "127.0.0.1:" in server.banner
    c = Client(coap_context, server.port)
    await c.post("/v1/settings", {"datetime": "2031-05-06T07:08:09", "systemId": 9})
    await c.post("/v1/sessions", {"number": 1, "label": "A"})
    await c.post("/v1/sessions", {"number": 2, "action": "page"})
    await c.put("/v1/sessions", {"action": "clear"}, query="number=2")
    before = {p: (await c.get(p)).json for p in
              ("/v1/sessions", "/v1/sessions/history", "/v1/settings")}
    assert await server.stop(signal.SIGTERM) == 0

    server = await ServerProcess(db_path).start()
    c = Client(coap_context, server.port)
    after = {p: (await c.get(p)).json for p in before}
    for body in (*before.values(), *after.values()):
        body.pop("timestamp")
        body.get("settings", {}).pop("datetime", None)
    assert after == before
    clock = (await c.get("/v1/settings")).json["settings"]["datetime"]
    assert clock.startswith("2031-05-06T07:")  # the offset survived the restart
    r = await c.post("/v1/sessions", {"number": 3})
    assert r.json["sessions"][0]["id"] == 3
    assert r.json["globalSessionSequence"] == before["/v1/sessions"]["globalSessionSequence"] + 1
    assert await server.stop(signal.SIGINT) == 0


async def test_kill_9_loses_nothing_acknowledged(db_path, coap_context):
    server = await ServerProcess(db_path).start()
    c = Client(coap_context, server.port)
    for n in range(20):
        assert (await c.post("/v1/sessions", {"number": n, "action": "page"})).code == "2.01"
    await server.stop(signal.SIGKILL)
    server = await ServerProcess(db_path).start()
    c = Client(coap_context, server.port)
    body = (await c.get("/v1/sessions")).json
    assert [s["number"] for s in body["sessions"]] == list(range(20))
    assert body["globalSessionSequence"] == 20 and body["statistics"]["guestsServed"] == 20
    await server.stop()


async def _run_failing(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pager", "serve", "--host", "127.0.0.1", "--port", "0",
        "--control-port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode, (out + err).decode()


async def test_newer_schema_store_is_refused(db_path):
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    code, output = await _run_failing("--db", str(db_path))
    assert code == 1 and "schema version 99" in output


async def test_corrupt_store_is_refused(db_path):
    db_path.write_bytes(b"this is not a database" * 100)
    code, output = await _run_failing("--db", str(db_path))
    assert code == 1 and "not a usable pager store" in output
    assert db_path.read_bytes() == b"this is not a database" * 100


async def test_bad_config_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("strict = 'yes'\n")
    code, output = await _run_failing("--config", str(path))
    assert code == 2 and "invalid configuration" in output


async def test_console_script_serves(db_path, coap_context):
    exe = REPO / ".venv" / "bin" / "pager-emulator"
    proc = await asyncio.create_subprocess_exec(
        str(exe), "serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db_path),
        "--no-control", stdout=asyncio.subprocess.PIPE, cwd=REPO)
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    port = int(line.split(":")[1].split(",")[0])
    r = await Client(coap_context, port).get("/v1/sessions/statistics")
    assert r.code == "2.05"
    proc.terminate()
    assert await proc.wait() == 0
