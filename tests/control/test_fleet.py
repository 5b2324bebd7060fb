"""`python -m pager serve --fleet 3`: three independent transmitters in one process, each with
its own CoAP port, control port, store and system id."""

import asyncio
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import aiocoap
import aiohttp

from tests.conftest import REPO, Client

BANNER = re.compile(
    r"pager-emulator listening on udp 127\.0\.0\.1:(\d+), store (\S+), "
    r"control http://127\.0\.0\.1:(\d+), lrsn tcp 127\.0\.0\.1:(\d+)"
)


def _count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


async def test_fleet_of_three_with_separate_state(tmp_path):
    db = tmp_path / "p.db"
    with open(tmp_path / "stderr.log", "wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pager",
            "serve",
            "--lrsn-port",
            "0",
            "--fleet",
            "3",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--control-port",
            "0",
            "--db",
            str(db),
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    context = await aiocoap.Context.create_client_context()
    try:
        lines = [
            (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip() for _ in range(3)
        ]
        matches = [BANNER.fullmatch(line) for line in lines]
        assert all(matches), (lines, (tmp_path / "stderr.log").read_text())
        ports = [int(m.group(1)) for m in matches]
        stores = [Path(m.group(2).rstrip(",")) for m in matches]
        controls = [int(m.group(3)) for m in matches]
        lrsn_ports = [int(m.group(4)) for m in matches]
        assert len(set(ports)) == 3 and len(set(controls)) == 3 and len(set(lrsn_ports)) == 3
        assert len(set(stores)) == 3 and all(s.parent == tmp_path.resolve() for s in stores)
        assert all(s.exists() for s in stores)

        coap = [Client(context, port) for port in ports]
        r = await coap[0].post("/v1/sessions", {"number": 12, "label": "first only"})
        assert r.code == "2.01"
        sessions = [(await c.get("/v1/sessions")).json["sessions"] for c in coap]
        assert [[s["number"] for s in ss] for ss in sessions] == [[12], [], []]
        system_ids = [(await c.get("/v1/settings")).json["settings"]["systemId"] for c in coap]
        assert system_ids == [1, 2, 3]

        # each control API drives its own transmitter only
        page = (await coap[1].post("/v1/page", {"number": 5})).json["page"]
        assert page["systemId"] == 2
        async with aiohttp.ClientSession() as http:

            async def get(i: int, path: str):
                async with http.get(f"http://127.0.0.1:{controls[i]}{path}") as resp:
                    assert resp.status == 200
                    return await resp.json()

            pagers = [[p["number"] for p in (await get(i, "/pagers"))["pagers"]] for i in range(3)]
            assert pagers == [[], [5], []]
            transmissions = [(await get(i, "/transmissions"))["transmissions"] for i in range(3)]
            assert transmissions == [[], [page], []]
            async with http.post(f"http://127.0.0.1:{controls[2]}/clock/freeze") as resp:
                assert resp.status == 200
            assert [(await get(i, "/clock"))["frozen"] for i in range(3)] == [False, False, True]
    finally:
        await context.shutdown()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    assert code == 0
    rest = (await proc.stdout.read()).decode()
    assert "pager-emulator stopped" in rest
    counts = await asyncio.to_thread(lambda: [_count(s, "session") for s in stores])
    assert counts == [1, 0, 0]
    counts = await asyncio.to_thread(lambda: [_count(s, "transmission") for s in stores])
    assert counts == [0, 1, 0]
