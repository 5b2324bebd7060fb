#!/usr/bin/env python3
"""Speed of the pager wall (issue 15): from commit to the change on screen, in a real browser.

Run from the repository root:

    .venv/bin/python scripts/bench_wall.py [--sessions 500] [--rate 50] [--seconds 30]
                                           [--max-p99 500]

What it does
------------
1. Starts the emulator as users run it, ``python -m pager serve --host 127.0.0.1 --port P
   --control-port 0 --db <tmp>/wall.db --log-level WARNING`` (its stderr goes to a file), and
   creates ``--sessions`` active sessions over CoAP (numbers 1.., labels ``s<n>``).
2. Launches Debian's headless Chromium under Playwright (``tests/browser/chromium.py``, as the
   browser tests do), opens the page at 1280x800 and waits until it is connected and shows
   every session.
3. Makes ``--rate`` changes a second over CoAP for ``--seconds``, each sent on schedule
   whatever the answers before it (an open loop, so a slow page cannot slow the load down),
   each carrying a token of its own: four in five a label change (``PUT /v1/sessions?number=N``
   with label ``c<k>``, shown in the session's waiting-list row), one in five a page with the
   message ``m<k>`` (shown on the pager's tile; it also adds a transmission).

How a change's time is measured
-------------------------------
*Commit*: a change is committed before the emulator answers it (docs/architecture.md), so the
commit time is taken as the arrival of the CoAP answer at this script, ``time.time()``. That
is later than the commit itself by the answer's trip over loopback, so it errs towards a
shorter figure by that trip only.

*On screen*: before the load starts, a MutationObserver on the document (child lists,
characters and attributes of the whole subtree) looks for the tokens in the text of every
node that was added or changed; the first time it sees a token it waits for the next
animation frame (``requestAnimationFrame``: the frame that paints the change) and records
``performance.timeOrigin + performance.now()`` for it. That is the browser's clock in
milliseconds since the epoch; its offset from this script's ``time.time()`` is measured
before the load (the middle of a round trip that reads it, the best of 20) and subtracted.
A change shown before its answer arrived (the stream can beat the ACK) counts as 0 ms.

Afterwards the script waits up to 5 s for the last changes, then prints the count, how many
were never shown, and p50 / p95 / p99 / max of commit-to-screen in milliseconds.

Exit status: 0 when every change was shown and p99 < ``--max-p99`` ms (default 500), 1
otherwise (each reason printed), 2 on a setup error or the deadline. The server is stopped
(terminated, then killed) in any case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiocoap

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.browser.chromium: the launch the browser tests use
sys.path.insert(0, str(REPO / "scripts"))  # bench: the server process and the deadline

import bench  # noqa: E402

from tests.browser import chromium  # noqa: E402

SCRIPT = "bench_wall.py"
SETTLE = 5.0  # seconds to wait for the last changes to show

# Runs in the page before the load: window.__shown[token] = epoch ms of the frame that showed it.
OBSERVER_JS = r"""
() => {
  window.__shown = {};
  const token = /\b[cm]\d+\b/g;
  const note = (text) => {
    if (!text) return;
    for (const t of text.match(token) || []) {
      if (t in window.__shown) continue;
      window.__shown[t] = null;
      requestAnimationFrame(() => {
        window.__shown[t] = performance.timeOrigin + performance.now();
      });
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "characterData") note(r.target.data);
      else if (r.type === "attributes") note(r.target.textContent);
      else for (const n of r.addedNodes) note(n.textContent);
    }
  }).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}
"""


class Load:
    """The changes sent and when each one's answer came."""

    def __init__(self, coap: aiocoap.Context, port: int, sessions: int) -> None:
        self.coap = coap
        self.base = f"coap://127.0.0.1:{port}"
        self.sessions = sessions
        self.committed: dict[str, float] = {}  # token -> time.time() of its answer
        self.failed: list[str] = []

    async def request(self, method: aiocoap.Code, path: str, body: dict[str, Any]) -> str:
        message = aiocoap.Message(
            code=method,
            uri=self.base + path,
            payload=json.dumps(body).encode(),
            content_format=50,
        )
        response = await asyncio.wait_for(self.coap.request(message).response, 20)
        return str(response.code.dotted)

    async def create_sessions(self) -> None:
        async def one(number: int) -> None:
            code = await self.request(
                aiocoap.POST, "/v1/sessions", {"number": number, "label": f"s{number}"}
            )
            if code != "2.01":
                raise bench.SetupError(f"creating session {number}: {code}")

        for start in range(1, self.sessions + 1, 50):
            await asyncio.gather(
                *(one(n) for n in range(start, min(start + 50, self.sessions + 1)))
            )

    async def change(self, k: int) -> None:
        number = k % self.sessions + 1
        if k % 5 == 4:
            token, path, body = f"m{k}", "/v1/page", {"number": number, "message": f"m{k}"}
            method, ok = aiocoap.POST, "2.04"
        else:
            token, path, body = f"c{k}", f"/v1/sessions?number={number}", {"label": f"c{k}"}
            method, ok = aiocoap.PUT, "2.04"
        try:
            code = await self.request(method, path, body)
        except TimeoutError:
            code = "timeout"
        if code == ok:
            self.committed[token] = time.time()
        else:
            self.failed.append(f"{token}: {code}")

    async def run(self, rate: float, seconds: float) -> None:
        count = int(rate * seconds)
        start = time.perf_counter()
        tasks = []
        for k in range(count):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.change(k)))
        await asyncio.gather(*tasks)


async def clock_offset(page: Any) -> float:
    """The browser's epoch clock minus this script's, in ms (best round trip of 20)."""
    best: tuple[float, float] | None = None
    for _ in range(20):
        before = time.time() * 1000
        theirs = await page.evaluate("() => performance.timeOrigin + performance.now()")
        after = time.time() * 1000
        if best is None or after - before < best[0]:
            best = (after - before, theirs - (before + after) / 2)
    assert best is not None
    return best[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


async def main(args: argparse.Namespace) -> int:
    problem = chromium.missing()
    if problem:
        raise bench.SetupError(problem)
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="bench-wall-") as tmp:
        coap_port = bench.free_udp_port()
        server = bench.ServerProcess(
            "emulator",
            [
                sys.executable, "-m", "pager", "serve", "--host", "127.0.0.1",
                "--port", str(coap_port), "--control-port", "0",
                "--db", str(Path(tmp) / "wall.db"), "--log-level", "WARNING",
            ],
            Path(tmp) / "server.log",
            port_line=r"control http://[^:]+:(\d+)",
        )  # fmt: skip
        await server.start()
        coap = await aiocoap.Context.create_client_context()
        try:
            load = Load(coap, coap_port, args.sessions)
            await load.create_sessions()
            async with async_playwright() as pw:
                browser = await chromium.launch(pw)
                try:
                    return await measure(args, load, browser, f"http://127.0.0.1:{server.port}/")
                finally:
                    await browser.close()
        finally:
            await coap.shutdown()
            await server.stop()


async def measure(args: argparse.Namespace, load: Load, browser: Any, url: str) -> int:
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    opened = time.perf_counter()
    from playwright.async_api import Error as PlaywrightError

    try:
        await page.goto(url)
        await page.wait_for_selector('#connection[data-state="connected"]', timeout=30_000)
        await page.wait_for_function(
            f"() => document.querySelectorAll('#waiting [data-session]').length >= {args.sessions}",
            timeout=60_000,
        )
    except PlaywrightError as e:
        raise bench.SetupError(f"the page did not show the {args.sessions} sessions: {e}") from e
    print(f"page open with {args.sessions} sessions in {time.perf_counter() - opened:.2f} s")
    offset = await clock_offset(page)
    await page.evaluate(OBSERVER_JS)

    print(f"{args.rate:g} changes/s for {args.seconds:g} s ...")
    await load.run(args.rate, args.seconds)
    deadline = time.perf_counter() + SETTLE
    while True:
        shown: dict[str, float | None] = await page.evaluate("() => window.__shown")
        if all(shown.get(t) for t in load.committed) or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.2)

    latencies = [
        max(0.0, shown[t] - offset - at * 1000)  # type: ignore[operator]
        for t, at in load.committed.items()
        if shown.get(t)
    ]
    missing = [t for t in load.committed if not shown.get(t)]
    print("==== bench_wall.py summary ====")
    print(f"sessions {args.sessions}, {len(load.committed)} changes committed, "
          f"{len(load.failed)} failed, missing: {len(missing)}")  # fmt: skip
    reasons = []
    if latencies:
        p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
        print(
            f"commit to screen (ms): p50 {p50:.0f}  p95 {p95:.0f}  p99 {p99:.0f}  "
            f"max {max(latencies):.0f}  mean {statistics.fmean(latencies):.0f}"
        )
        if p99 >= args.max_p99:
            reasons.append(f"p99 {p99:.0f} ms is not under {args.max_p99:g} ms")
    else:
        reasons.append("no change was measured")
    if missing:
        reasons.append(f"{len(missing)} committed changes never shown, e.g. {missing[:5]}")
    if load.failed:
        reasons.append(f"{len(load.failed)} changes not answered as expected: {load.failed[:5]}")
    if errors:
        reasons.append(f"the page logged errors: {errors[:5]}")
    for reason in reasons:
        print(f"FAIL: {reason}")
    print("judgment: " + ("FAIL" if reasons else f"PASS (p99 < {args.max_p99:g} ms)"))
    return 1 if reasons else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=500, help="active sessions (default 500)")
    p.add_argument("--rate", type=float, default=50.0, help="changes per second (default 50)")
    p.add_argument("--seconds", type=float, default=30.0, help="load duration (default 30)")
    p.add_argument("--max-p99", type=float, default=500.0, help="judged p99 in ms (default 500)")
    args = p.parse_args(argv)
    if args.sessions < 1 or args.rate <= 0 or args.seconds <= 0:
        p.error("--sessions, --rate and --seconds must be positive")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(bench.run_to_exit(SCRIPT, main(arguments), 120 + 2 * arguments.seconds))
