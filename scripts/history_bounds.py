"""What half-finished history transfers cost the server, and what a history read costs a write.

Run by hand from the repository root, optionally against another checkout side by side:

    .venv/bin/python scripts/history_bounds.py [--sessions 5000] [--transfers 150]
                                               [--baseline DIR]

`--baseline DIR` runs the same measurements first on the emulator in DIR (for instance an
older commit unpacked with `git archive <commit> | tar -x -C DIR`), then on this checkout,
and prints both. Each scenario gets a fresh server (`python -m pager serve`, in its own
process, on 127.0.0.1) on a store prefilled with `--sessions` archived sessions:

* **same**: `--transfers` clients (one source port each) fetch block 0 of the whole
  `GET /v1/sessions/history` and never ask for block 1. Growth of the server's VmRSS and
  its CPU time per transfer.
* **after**: the same, but client i asks for `?after=i`, so that no two answers are alike
  (what an attacker would do against renderings shared between clients).
* **write**: `--writes` times, a client asks for block 0 of the whole history, and 5 ms
  later another client creates (then removes) a session; the latency of that create, from
  sending to its answer. Next to it, the same writes with no history read.

Every exchange has a deadline; the servers are stopped and the temporary directory removed
in a `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts/: bench
import bench
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import Type

HOST = "127.0.0.1"


class Socket(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data, addr) -> None:
        self.received.put_nowait(data)


async def open_socket(port: int) -> tuple[asyncio.DatagramTransport, Socket]:
    return await asyncio.get_running_loop().create_datagram_endpoint(
        Socket, remote_addr=(HOST, port)
    )


async def exchange(sock, message: Message, mid: int, timeout: float = 60) -> Message:
    transport, proto = sock
    message.mtype, message.mid, message.token = Type.CON, mid, mid.to_bytes(2, "big")
    transport.sendto(message.encode())
    while True:
        answer = Message.decode(await asyncio.wait_for(proto.received.get(), timeout))
        if answer.mtype == Type.ACK and answer.code == Code.EMPTY:
            continue  # the answer follows separately
        if answer.mtype == Type.CON:
            transport.sendto(Message(mtype=Type.ACK, mid=answer.mid, code=Code.EMPTY).encode())
        return answer


def history(query: str | None = None) -> Message:
    m = Message(code=Code.GET, uri_path=("v1", "sessions", "history"))
    if query:
        m.opt.uri_query = (query,)
    return m


def create(number: int) -> Message:
    return Message(
        code=Code.POST,
        uri_path=("v1", "sessions"),
        content_format=50,
        payload=json.dumps({"number": number}).encode(),
    )


def remove(number: int) -> Message:
    return Message(code=Code.DELETE, uri_path=("v1", "sessions"), uri_query=(f"number={number}",))


class Server:
    def __init__(self, tree: Path, workdir: Path, db: Path) -> None:
        self.tree, self.workdir, self.db = tree, workdir, db
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> Server:
        config = self.workdir / "history_bounds.toml"
        config.write_text(f"history_limit = {bench.HISTORY_LIMIT}\n")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pager",
            "serve",
            "--lrsn-port",
            "0",
            "--host",
            HOST,
            "--port",
            "0",
            "--db",
            str(self.db),
            "--no-control",
            "--config",
            str(config),
            "--log-level",
            "WARNING",
            cwd=self.tree,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(self.tree), "PYTHONUNBUFFERED": "1"},
        )
        line = (await asyncio.wait_for(self.process.stdout.readline(), 30)).decode()
        match = re.search(r"listening on udp .*:(\d+), store ", line)
        if not match:
            raise RuntimeError(f"the server in {self.tree} did not start: {line!r}")
        self.port = int(match.group(1))
        return self

    async def __aexit__(self, *exc) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def rss_mib(self) -> float:
        return bench.proc_memory(self.process.pid)["VmRSS"] / 1024

    def cpu(self) -> float:
        return bench.proc_cpu(self.process.pid)


async def half_transfers(server: Server, count: int, vary: bool) -> dict:
    probe = await open_socket(server.port)
    try:  # one whole-history answer first, so that what is measured is what the transfers hold
        first = await exchange(probe, history(), 1)
        assert first.code == Code.CONTENT and first.opt.block2.more, first
    finally:
        probe[0].close()
    await asyncio.sleep(1)
    rss0, cpu0 = server.rss_mib(), server.cpu()
    sockets = []
    try:
        for i in range(count):
            sock = await open_socket(server.port)
            sockets.append(sock)
            answer = await exchange(sock, history(f"after={i + 1}" if vary else None), 1)
            assert answer.code == Code.CONTENT and answer.opt.block2.block_number == 0, answer
        cpu1 = server.cpu()
        await asyncio.sleep(1)
        return {
            "rss_before": rss0,
            "rss_after": server.rss_mib(),
            "cpu_ms_each": (cpu1 - cpu0) / count * 1000,
        }
    finally:
        for transport, _ in sockets:
            transport.close()


async def write_latency(server: Server, writes: int) -> dict:
    reader, writer = await open_socket(server.port), await open_socket(server.port)
    alone, during = [], []
    try:
        mid = 1
        for i in range(writes):
            for samples, read in ((alone, False), (during, True)):
                mid += 3
                pending = None
                if read:
                    pending = asyncio.create_task(exchange(reader, history(), mid))
                    await asyncio.sleep(0.005)
                t0 = time.perf_counter()
                created = await exchange(writer, create(i % 4096), mid + 1)
                samples.append((time.perf_counter() - t0) * 1000)
                assert created.code == Code.CREATED, created
                assert (await exchange(writer, remove(i % 4096), mid + 2)).code == Code.DELETED
                if pending is not None:
                    assert (await pending).code == Code.CONTENT
    finally:
        reader[0].close()
        writer[0].close()
    return {
        "alone": statistics.median(alone),
        "during": statistics.median(during),
        "during_max": max(during),
    }


async def measure(tree: Path, args) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="history-bounds-") as tmp:
        workdir = Path(tmp)
        template = workdir / "template.db"
        await bench.prefill(template, args.sessions)
        for name, run in (
            ("same", lambda s: half_transfers(s, args.transfers, False)),
            ("after", lambda s: half_transfers(s, args.transfers, True)),
            ("write", lambda s: write_latency(s, args.writes)),
        ):
            db = workdir / f"{name}.db"
            db.write_bytes(template.read_bytes())
            async with Server(tree, workdir, db) as server:
                results[name] = await asyncio.wait_for(run(server), 600)
    return results


def report(label: str, r: dict, transfers: int) -> None:
    print(f"{label}:")
    for name in ("same", "after"):
        m = r[name]
        grown = m["rss_after"] - m["rss_before"]
        print(
            f"  {transfers} half transfers ({name:5}): RSS {m['rss_before']:.1f} -> "
            f"{m['rss_after']:.1f} MiB (+{grown:.1f}, {grown / transfers:.2f} per transfer), "
            f"CPU {m['cpu_ms_each']:.0f} ms per transfer"
        )
    w = r["write"]
    print(
        f"  write latency: {w['alone']:.1f} ms alone, {w['during']:.1f} ms median "
        f"({w['during_max']:.1f} max) during a whole-history read"
    )


async def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=5000)
    p.add_argument("--transfers", type=int, default=150)
    p.add_argument("--writes", type=int, default=10)
    p.add_argument("--baseline", type=Path, help="another checkout to measure first")
    args = p.parse_args(argv)
    trees = (
        [("baseline " + str(args.baseline), args.baseline.resolve())] if args.baseline else []
    ) + [("this checkout", bench.REPO)]
    results = [(label, await measure(tree, args)) for label, tree in trees]
    print(f"==== history_bounds.py: {args.sessions} archived sessions ====")
    for label, r in results:
        report(label, r, args.transfers)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
