"""The emulator as users run it: `python -m pager serve` in its own process."""

import asyncio
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import tomllib

import aiohttp
import pytest

from pager.store import Store
from tests.conftest import REPO, Client, ServerProcess


async def test_restart_continues_ids_sequences_and_clock(db_path, coap_context):
    server = await ServerProcess(db_path).start()
    assert f"store {db_path}" in server.banner and "127.0.0.1:" in server.banner
    c = Client(coap_context, server.port)
    await c.post("/v1/settings", {"datetime": "2031-05-06T07:08:09", "systemId": 9})
    await c.post("/v1/sessions", {"number": 1, "label": "A"})
    await c.post("/v1/sessions", {"number": 2, "action": "page"})
    await c.put("/v1/sessions", {"action": "clear"}, query="number=2")
    before = {
        p: (await c.get(p)).json for p in ("/v1/sessions", "/v1/sessions/history", "/v1/settings")
    }
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


async def _run_failing(*args: str, prefix: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run `serve` with `args` (under the `prefix` command), expecting it to give up by
    itself: (exit status, output). One still running at the deadline is killed and the
    test fails.
    """
    with tempfile.TemporaryFile() as output:
        proc = await asyncio.create_subprocess_exec(
            *prefix,
            sys.executable,
            "-m",
            "pager",
            "serve",
            "--lrsn-port",
            "0",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--control-port",
            "0",
            *args,
            stdout=output,
            stderr=output,
            cwd=REPO,
        )
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            output.seek(0)
            raise AssertionError(
                f"serve {' '.join(args)} was still running after 20 s: {output.read().decode()!r}"
            ) from None
        output.seek(0)
        return proc.returncode, output.read().decode()


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
        str(exe),
        "serve",
        "--lrsn-port",
        "0",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db_path),
        "--no-control",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    port = int(line.split(":")[1].split(",")[0])
    r = await Client(coap_context, port).get("/v1/sessions/statistics")
    assert r.code == "2.05"
    proc.terminate()
    assert await proc.wait() == 0


def _sessions_in(db_path) -> list[tuple[int, int]]:
    """(id, number) of the open sessions, read straight from the file by another connection."""
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute("SELECT id, number FROM session ORDER BY id").fetchall()
    finally:
        conn.close()


async def _still_serving(first: ServerProcess, coap_context, numbers: list[int]) -> None:
    """`first` answers, its sessions are `numbers`, and it goes on giving out the next id."""
    c = Client(coap_context, first.port)
    body = (await c.get("/v1/sessions")).json
    assert [s["number"] for s in body["sessions"]] == numbers
    r = await c.post("/v1/sessions", {"number": 4000})
    assert r.code == "2.01" and r.json["sessions"][0]["id"] == len(numbers) + 1
    assert await asyncio.to_thread(_sessions_in, first.db_path) == [
        *((i + 1, n) for i, n in enumerate(numbers)),
        (len(numbers) + 1, 4000),
    ]


@pytest.mark.parametrize(
    "first_host, second_host",
    [("127.0.0.1", "127.0.0.1"), ("::", "::"), ("::", "127.0.0.1"), ("127.0.0.1", "::")],
)
async def test_a_taken_coap_port_is_refused(tmp_path, coap_context, first_host, second_host):
    first = await ServerProcess(tmp_path / "first.db", "--host", first_host).start()
    try:
        c = Client(coap_context, first.port)
        assert (await c.post("/v1/sessions", {"number": 1})).code == "2.01"
        code, output = await _run_failing(
            "--host", second_host, "--port", str(first.port), "--db", str(tmp_path / "second.db")
        )
        assert code == 1
        assert f"udp port {first.port}" in output and "already in use" in output
        assert "Traceback" not in output
        await _still_serving(first, coap_context, [1])
        for _ in range(6):  # every answer comes from the first, not one in two from another
            sessions = (await c.get("/v1/sessions")).json["sessions"]
            assert [s["number"] for s in sessions] == [1, 4000]
    finally:
        assert await first.stop() == 0


async def test_a_store_open_in_another_process_is_refused(db_path, coap_context):
    first = await ServerProcess(db_path).start()
    try:
        c = Client(coap_context, first.port)
        assert (await c.post("/v1/sessions", {"number": 1})).code == "2.01"
        before = db_path.read_bytes()
        code, output = await _run_failing("--db", str(db_path))
        assert code == 1
        assert f"store {db_path} is already open in another process" in output
        assert "Traceback" not in output
        assert db_path.read_bytes() == before
        await _still_serving(first, coap_context, [1])
    finally:
        assert await first.stop() == 0


async def test_a_killed_emulators_store_and_port_are_free_at_once(db_path, coap_context):
    first = await ServerProcess(db_path).start()
    assert (
        await Client(coap_context, first.port).post("/v1/sessions", {"number": 1})
    ).code == "2.01"
    await first.stop(signal.SIGKILL)
    second = await ServerProcess(db_path, "--port", str(first.port)).start()
    try:
        assert second.port == first.port
        await _still_serving(second, coap_context, [1])
    finally:
        assert await second.stop() == 0


async def test_a_taken_control_port_is_refused(tmp_path, coap_context):
    first = await ServerProcess(tmp_path / "first.db").start()
    try:
        control = int(re.search(r"control http://127\.0\.0\.1:(\d+)", first.banner).group(1))
        code, output = await _run_failing(
            "--control-port", str(control), "--db", str(tmp_path / "second.db")
        )
        assert code == 1
        assert f"control port {control}" in output and "already in use" in output
        assert "Traceback" not in output
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{control}/pagers") as resp:
                assert resp.status == 200
        await _still_serving(first, coap_context, [])
    finally:
        assert await first.stop() == 0


def _bound_by_permissions() -> tuple[str, ...]:
    """A command prefix under which file permission bits bind the server: root ignores them
    unless it runs without the capability to override them."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only file is writable")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


async def test_a_read_only_store_is_refused(db_path):
    store = await Store.open(db_path)
    await store.close()
    db_path.chmod(0o444)
    before = db_path.read_bytes(), db_path.stat().st_mtime_ns
    code, output = await _run_failing("--db", str(db_path), prefix=_bound_by_permissions())
    assert code == 1
    assert f"store {db_path} is read-only" in output and "Traceback" not in output
    assert (db_path.read_bytes(), db_path.stat().st_mtime_ns) == before


async def test_a_store_in_a_missing_folder_is_refused_naming_the_folder(tmp_path):
    folder = tmp_path / "no such folder"
    code, output = await _run_failing("--db", str(folder / "pager.db"))
    assert code == 1
    assert f"folder {folder} does not exist" in output
    assert "stopped" not in output and "Traceback" not in output
    assert not folder.exists()


@pytest.mark.parametrize("count", ["0", "-1", "-5"])
async def test_a_fleet_of_no_transmitters_is_a_configuration_error(tmp_path, count):
    code, output = await _run_failing("--fleet", count, "--db", str(tmp_path / "pager.db"))
    assert code == 2
    assert f"--fleet {count}" in output and "at least 1" in output
    assert list(tmp_path.iterdir()) == []


async def test_a_fleet_stops_the_started_transmitters_when_one_cannot_start(tmp_path):
    """Transmitter 2's store is held open here; transmitter 1 starts, is stopped again, and
    the process exits 1."""
    held = await Store.open(tmp_path / "two.db")
    try:
        config = tmp_path / "fleet.toml"
        config.write_text(
            f'[[transmitter]]\ndb = "{tmp_path / "one.db"}"\n'
            f'[[transmitter]]\ndb = "{tmp_path / "two.db"}"\n'
        )
        code, output = await _run_failing("--config", str(config), "--fleet", "2")
        assert code == 1
        assert f"store {tmp_path / 'one.db'}" in output  # transmitter 1 had started
        assert f"store {tmp_path / 'two.db'} is already open in another process" in output
        assert "pager-emulator stopped" in output and "Traceback" not in output
    finally:
        await held.close()
    store = await Store.open(tmp_path / "one.db")  # transmitter 1 let go of its store
    await store.close()


@pytest.mark.parametrize("how", ["console script", "python -m pager"])
async def test_version_names_the_package_and_aiocoap(how):
    exe = [str(REPO / ".venv" / "bin" / "pager-emulator")]
    if how == "python -m pager":
        exe = [sys.executable, "-m", "pager"]
    proc = await asyncio.create_subprocess_exec(
        *exe, "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (proc.returncode, err) == (0, b"")
    assert out.decode().startswith(f"pager-emulator {project['version']} (aiocoap 0.4.17, Python ")
