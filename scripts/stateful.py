#!/usr/bin/env python3
"""The model-based stateful test (issue 11), the long version: random runs for a while.

Run from the repository root:

    .venv/bin/python scripts/stateful.py [--minutes 30] [--steps 40]

Each run (a Hypothesis example) starts a fresh emulator process on its own store and ports
and drives it through up to `--steps` random steps: concurrent device-API requests (valid
and invalid) from three raw CoAP clients, retransmissions of earlier message ids, POST
/reset racing with creates and pages, SIGKILL racing with requests and a restart on the same
store and port, power cycles, clock moves, error/drop/delay faults and a dead observer; after
every step the answers and the whole observable state are checked against the reference
model (tests/stateful/model.py, written from the spec). Runs continue until `--minutes`
have passed; the first failure is shrunk to a minimal sequence of steps and printed.
`STATEFUL_SKIP=reset,kill,...` (rule names or request kinds) leaves actions out, to explore
past a known bug.

Prints how many runs, steps, requests and serial orders (interleavings) were executed.
Exit status: 0 when no failure was found, 1 otherwise.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.stateful import machine


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--steps", type=int, default=40)
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.steps < 1:
        p.error("need positive --minutes and --steps")
    deadline = time.monotonic() + args.minutes * 60
    failure = None
    started = time.monotonic()
    while time.monotonic() < deadline and failure is None:
        config = settings(
            max_examples=10,
            stateful_step_count=args.steps,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=False,
        )
        try:  # batches of 10 random examples, so that progress is printed
            run_state_machine_as_test(machine.PagerMachine, settings=config)
        except Exception as e:  # the shrunk failure, with Hypothesis's reproduction
            failure = e
        f = machine.FIGURES
        print(
            f"{time.monotonic() - started:7.0f} s: {f.runs} runs, {f.steps} steps, "
            f"{f.requests} requests, {f.concurrent_steps} concurrent steps, "
            f"{f.interleavings} serial orders tried, {f.kills} kills, {f.resets} resets, "
            f"{f.retransmissions} retransmissions",
            flush=True,
        )
    f = machine.FIGURES
    print("==== stateful.py summary ====")
    print(f"runs (examples, incl. shrinking)  {f.runs}")
    print(f"steps                             {f.steps}")
    print(f"requests                          {f.requests}")
    print(f"concurrent steps / serial orders  {f.concurrent_steps} / {f.interleavings}")
    print(f"kills / resets / retransmissions  {f.kills} / {f.resets} / {f.retransmissions}")
    print(
        "steps per rule                    "
        + ", ".join(f"{k} {v}" for k, v in sorted(f.rules.items()))
    )
    print(f"elapsed                           {time.monotonic() - started:.0f} s")
    if failure is not None:
        print("FAILURE (shrunk):")
        pending = [failure]
        while pending:  # Hypothesis groups distinct or flaky failures
            e = pending.pop(0)
            print(f"{type(e).__name__}: {e}")
            pending += list(getattr(e, "exceptions", ()))
        return 1
    print("no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
