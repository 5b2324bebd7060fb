"""Fuzz a live emulator with hostile datagrams and malformed bodies; print the figures.

The long version of tests/fuzz/test_fuzz.py (issue 6, "Hostile datagrams"). Run from the
repository root:

    .venv/bin/python scripts/fuzz.py [--datagrams N] [--payloads N] [--seed S]
                                     [--rate R] [--window W] [--sockets K]

Defaults are the test's: 100,000 datagrams, 10,000 payloads, about a minute. It starts an
emulator in this process (127.0.0.1, an ephemeral port, a store in a temporary directory,
the real clock), then:

1. sends N mutated and malformed CoAP datagrams made from the seed corpus (tests/fuzz/corpus)
   by a `random.Random(S)`, at most R a second from K source sockets, with a valid probe
   request every W datagrams that must be answered 2.05 before more are sent;
2. sends the payload cases Hypothesis drew (seed S with --seed, else derandomized; drawn in
   another process during step 1) to POST/PUT /v1/sessions, POST /v1/page and POST
   /v1/settings as Content-Format 50 and 60, checking every answer;
3. checks the statistics against the creates answered 2.01 in step 2 and runs a valid
   create → get → page → clear sequence.

It prints what was sent, the answers by code, the log records by logger and level, the 5.xx
answers and anything else that went wrong, and exits 1 if anything did: any error log record,
traceback or 5.xx answer is a failure.
"""

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pager.app import Emulator  # noqa: E402
from tests.fuzz import harness  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datagrams", type=int, default=100_000, help="mutated datagrams to send")
    p.add_argument("--payloads", type=int, default=10_000, help="malformed bodies to send")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the datagram mutator and of Hypothesis (default: the test's "
        "datagram seed 7470 and a derandomized Hypothesis)",
    )
    p.add_argument("--rate", type=float, default=5000.0, help="datagrams per second at most")
    p.add_argument(
        "--window",
        type=int,
        default=100,
        help="datagrams sent before a probe must be answered (the in-flight bound)",
    )
    p.add_argument("--sockets", type=int, default=8, help="source sockets for the datagrams")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    triage = harness.TriageHandler()
    root = logging.getLogger()
    root.addHandler(triage)
    root.setLevel(logging.WARNING)
    for name in ("coap-server", "pager", "asyncio"):
        logging.getLogger(name).setLevel(logging.WARNING)

    seed = 7470 if args.seed is None else args.seed
    t0 = time.monotonic()
    generation = harness.generate_in_background(args.payloads, args.seed) if args.payloads else None
    d = p = None
    wrong: list[str] = []
    async with Emulator() as emu:
        print(
            f"emulator on {emu.uri}; {args.datagrams} datagrams (seed {seed}), "
            f"{args.payloads} payloads (Hypothesis "
            f"{'seed ' + str(args.seed) if args.seed is not None else 'derandomized'})",
            flush=True,
        )

        def progress(r: harness.DatagramReport) -> None:
            print(
                f"  {r.sent} datagrams, {r.answered} answers, "
                f"{len(r.server_errors)} 5.xx, {triage.trouble_count} error log records",
                flush=True,
            )

        if args.datagrams:
            d = await harness.blast_datagrams(
                emu.port,
                args.datagrams,
                seed,
                rate=args.rate,
                window=args.window,
                sockets=args.sockets,
                progress=progress,
            )
        if generation is not None:
            t_wait = time.monotonic()
            cases = await asyncio.wrap_future(generation)
            waited = time.monotonic() - t_wait
            if waited > 1:
                print(f"  (waited {waited:.1f} s for Hypothesis to draw the payloads)")
            p = await harness.fuzz_payloads(emu.port, cases)
        wrong = await harness.check_service(emu.port, p.created if p else None)
        alive = not emu.engine._committer.done() and not any(t.done() for t in emu._tasks)
        observers = len(emu.hub.observers)
    duration = time.monotonic() - t0
    root.removeHandler(triage)

    print("\n==== fuzz.py summary ====")
    print(harness.summary(d, p))
    print(
        "log records (WARNING and above): "
        + (", ".join(f"{k} {v}" for k, v in sorted(triage.counts.items())) or "none")
    )
    server_errors = d.server_errors if d else []
    print(
        f"5.xx answers: {len(server_errors)}; error/exception log records: {triage.trouble_count}"
    )
    print(f"server alive afterwards: {alive}; observers left: {observers}")
    print(f"after-fuzz check: {'ok' if not wrong else 'FAILED'}")
    print(f"duration: {duration:.1f} s")

    failures = []
    if d is not None and d.problems:
        failures.append("datagram fuzzing:\n" + d.problems.report())
    if server_errors:
        failures.append(
            f"{len(server_errors)} 5.xx answers:\n"
            + "\n".join(f"- {e}" for e in server_errors[:20])
        )
    if p is not None and p.problems:
        failures.append("payload fuzzing:\n" + p.problems.report())
    if triage.trouble_count:
        fmt = logging.Formatter("%(levelname)s %(name)s: %(message)s")
        failures.append(
            f"{triage.trouble_count} error/exception log records, the first:\n"
            + "\n\n".join(fmt.format(r) for r in triage.troubles[:5])
        )
    if wrong:
        failures.append("after fuzzing:\n" + "\n".join(f"- {w}" for w in wrong))
    if not alive:
        failures.append("a server task has ended")
    for f in failures:
        print("\n" + f)
    print("\nresult: " + ("FAILED" if failures else "ok"))
    return 1 if failures else 0


def main(argv=None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
