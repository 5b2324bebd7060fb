#!/usr/bin/env python3
"""Crash consistency, the long version (issue 6): SIGKILL at random moments under load.

Run from the repository root:

    .venv/bin/python scripts/crash_cycles.py [--cycles 20] [--seconds-per-cycle 2.0]
                                             [--clients 8] [--seed 7470] [--negative-control]
                                             [--rig-actions]

`--clients` workers (aiocoap, CON, one request at a time each, on disjoint pager-number
ranges) create, page, re-page, relabel, clear and remove sessions as fast as the server
answers. Each cycle lets the load run for a random 0.3-1.0 x `--seconds-per-cycle`, kills
`python -m pager serve` with SIGKILL, runs SQLite's integrity check on a copy of the store as
the kill left it, restarts the server on the same store and, with the load paused, reads the
whole store back (GET /v1/sessions, /v1/sessions/history, /v1/sessions/statistics) and checks
it against every change the clients saw answered 2.xx:

- every acknowledged change is there (its session, with the answered id and uuid, active or
  in history; paged if a page was acknowledged; in history as STOP / REMOVED if a clear /
  remove was), and nothing else happened to it;
- nothing is duplicated (ids, uuids, one active session per number) or invented;
- globalSessionSequence and ids never go back across restarts, no sessionSequence is
  acknowledged twice, new ids come after every id in the store at the restart;
- the statistics equal what the store holds (numSessions, guestsServed, percentOnTime,
  averageTimeServed; never cleared here), and numSessions, guestsServed and
  globalSessionSequence lie between what the acknowledged changes imply and that plus the
  requests in flight at a kill (whose answers were lost: committed or not, both accepted).

`--rig-actions` also races control-API actions with the load and the kill: a power cycle, or
a reset that the kill follows within 30 ms (after which the old state must not come back,
and a new ledger starts on an empty store; see `crash.py`).

The implementation is `tests/reliability/crash.py` (the suite runs it with 3 cycles).
`--negative-control` runs the same against `tests/reliability/broken_server.py`, an emulator
patched to answer before it commits: the run must then report violations.

Exit status: 0 when there was no violation, 1 otherwise.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability import crash
from tests.reliability.harness import log_line, script_arguments, summary


def main(argv: list[str] | None = None) -> int:
    p, args = script_arguments(
        __doc__,
        argv,
        {"--cycles": 20, "--seconds-per-cycle": 2.0, "--clients": 8},
        negative_control="run against an emulator that answers before committing",
        flags={"--rig-actions": "race POST /reset and /power-cycle with the load and the kill"},
    )
    if not 1 <= args.clients <= 64 or args.cycles < 0 or args.seconds_per_cycle <= 0:
        p.error("need 1-64 clients, cycles >= 0 and a positive cycle length")
    module = "tests.reliability.broken_server" if args.negative_control else "pager"
    report = asyncio.run(
        crash.run(
            args.cycles,
            args.seconds_per_cycle,
            args.clients,
            args.seed,
            log=log_line,
            server_module=module,
            rig_actions=args.rig_actions,
        )
    )
    note = "server answers before committing; violations expected"
    return summary("crash_cycles.py", report, note if args.negative_control else None)


if __name__ == "__main__":
    sys.exit(main())
