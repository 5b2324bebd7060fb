"""Pages per second over LRSN beside CoAP `POST /v1/page`, in one run on one emulator.

Run by hand from the repository root:

    .venv/bin/python scripts/bench_lrsn.py [--pages 2000] [--concurrency 1,8] [--quick]

It starts the emulator as users run it (`python -m pager serve --host 127.0.0.1 --port 0
--lrsn-port 0 --no-control`, its own process, journal on as by default), reads both ports
from its startup line, and for each concurrency C sends `--pages` standalone pages each way:

- LRSN: C TCP connections, each logged in, each sending a short-form `PageRequest` and
  waiting for its `PageRequestStatus` before the next (the vendor client's pace);
- CoAP: one aiocoap client context, C requesters, each a confirmable `POST /v1/page` and its
  2.04 before the next.

Both pass the same domain operation and group-commit engine, so the difference is the
transport and its parsing. It prints pages per second and the median and 99th-percentile
round trip of each, and a summary line per concurrency. Figures belong in the README's
measured sections, taken on a quiet machine.
"""

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiocoap

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BANNER = re.compile(r"udp 127\.0\.0\.1:(\d+), .*lrsn tcp 127\.0\.0\.1:(\d+)")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _lrsn(port: int, pages: int, concurrency: int) -> tuple[float, list[float]]:
    times: list[float] = []

    async def one(share: int, base: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        await reader.readline()
        writer.write(b'<Login services="NetPage" />\n')
        await writer.drain()
        assert b'ret="0"' in await reader.readline()
        for i in range(share):
            number = (base + i) % 4096
            start = time.perf_counter()
            writer.write(b'<PageRequest id="%d" pager="2;%d" />\n' % (i, number))
            answer = await reader.readline()
            times.append(time.perf_counter() - start)
            if b'ret="0"' not in answer:
                raise RuntimeError(f"LRSN page refused: {answer!r}")
        writer.close()

    shares = [pages // concurrency] * concurrency
    started = time.perf_counter()
    await asyncio.gather(*(one(s, k * 1000) for k, s in enumerate(shares)))
    return time.perf_counter() - started, times


async def _coap(port: int, pages: int, concurrency: int) -> tuple[float, list[float]]:
    context = await aiocoap.Context.create_client_context()
    times: list[float] = []

    async def one(share: int, base: int) -> None:
        for i in range(share):
            body = json.dumps({"number": (base + i) % 4096}).encode()
            msg = aiocoap.Message(
                code=aiocoap.POST, uri=f"coap://{HOST}:{port}/v1/page", payload=body,
                content_format=50,
            )  # fmt: skip
            start = time.perf_counter()
            answer = await context.request(msg).response
            times.append(time.perf_counter() - start)
            if str(answer.code) != "2.04 Changed":
                raise RuntimeError(f"CoAP page refused: {answer.code} {answer.payload!r}")

    shares = [pages // concurrency] * concurrency
    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(s, k * 1000) for k, s in enumerate(shares)))
        return time.perf_counter() - started, times
    finally:
        await context.shutdown()


def _row(name: str, elapsed: float, times: list[float]) -> str:
    rate = len(times) / elapsed
    p50, p99 = statistics.median(times) * 1e3, _percentile(times, 0.99) * 1e3
    return (
        f"{name:6} {len(times):7d} pages {rate:9.0f} pages/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
    )


async def _run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-lrsn-") as folder:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pager", "serve", "--host", HOST, "--port", "0",
            "--lrsn-port", "0", "--no-control", "--db", str(Path(folder) / "p.db"),
            "--log-level", "WARNING", cwd=REPO, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            match = BANNER.search(line)
            if not match:
                raise SystemExit(f"bench_lrsn.py: no startup line: {line!r}")
            udp, tcp = int(match.group(1)), int(match.group(2))
            summary = []
            for concurrency in args.concurrency:
                await _lrsn(tcp, max(concurrency, args.pages // 10), concurrency)  # warm-up
                await _coap(udp, max(concurrency, args.pages // 10), concurrency)
                lrsn_t, lrsn_times = await _lrsn(tcp, args.pages, concurrency)
                coap_t, coap_times = await _coap(udp, args.pages, concurrency)
                print(f"-- concurrency {concurrency}")
                print(_row("lrsn", lrsn_t, lrsn_times))
                print(_row("coap", coap_t, coap_times))
                lrsn_rate, coap_rate = len(lrsn_times) / lrsn_t, len(coap_times) / coap_t
                summary.append(
                    f"concurrency {concurrency}: lrsn {lrsn_rate:.0f} pages/s, coap "
                    f"{coap_rate:.0f} pages/s, lrsn/coap {lrsn_rate / coap_rate:.2f}"
                )
            print("==== bench_lrsn.py summary ====")
            print("\n".join(summary))
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)


def _concurrency(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a list of positive integers, such as 1,8")
    return values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pages", type=int, default=2000, help="pages each way per concurrency")
    p.add_argument("--concurrency", type=_concurrency, default=[1, 8], help="e.g. 1,8")
    p.add_argument("--quick", action="store_true", help="200 pages, concurrency 1 and 4")
    args = p.parse_args()
    if args.quick:
        args.pages, args.concurrency = 200, [1, 4]
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
