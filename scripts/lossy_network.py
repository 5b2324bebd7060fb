#!/usr/bin/env python3
"""Lossy network, the long version (issue 6): every change exactly once through loss.

Run from the repository root:

    .venv/bin/python scripts/lossy_network.py [--requests 1000] [--loss 0.2] [--clients 4]
                                              [--reorder 0.15] [--seed 7470]
                                              [--negative-control]

`python -m pager serve` runs behind a UDP relay in this process (127.0.0.1 only) that drops
each datagram with probability `--loss` in each direction, delays a fraction `--reorder` of
the others by 5-100 ms (so later datagrams overtake them), always drops the first answer to
each client and holds back each client's second request for 0.3 s (so that every run has
retransmitted creates and stale duplicates). It keeps one upstream socket per client, so the
server sees each client as a peer of its own. `--clients` aiocoap clients send `--requests`
CON requests in all (create, page, re-page, relabel, clear, remove; numbers reused as soon
as a session ends), retransmitted by aiocoap with the same message id (first timeout
0.06-0.09 s, doubling, 6 retransmissions; a request that gets no answer at all is counted
as failed, and its effect is then accepted either way).

Checked: every acknowledged change is in the final store and the store is exactly what the
acknowledged history implies (see tests/reliability/harness.py); a request that reached the
server several times was answered with byte-identical datagrams every time (answered from
the deduplication cache, never processed again); numSessions equals the number of distinct
create requests that reached the server, and globalSessionSequence the number of distinct
requests (each one session change).

The implementation is `tests/reliability/lossy.py` (the suite runs it with 100 requests).
`--negative-control` makes the relay give each repeated request a fresh message id, so that
the server cannot recognise duplicates: the run must then report violations.

Exit status: 0 when there was no violation, 1 otherwise.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.reliability import lossy
from tests.reliability.harness import log_line, script_arguments, summary


def main(argv: list[str] | None = None) -> int:
    p, args = script_arguments(
        __doc__,
        argv,
        {"--requests": 1000, "--loss": 0.2, "--clients": 4, "--reorder": 0.15},
        negative_control="disguise retransmissions as new messages; violations expected",
    )
    if not 0 <= args.loss < 0.9 or not 0 <= args.reorder <= 1:
        p.error("--loss must be in [0, 0.9) and --reorder in [0, 1]")
    if not 1 <= args.clients <= 64 or not 1 <= args.requests <= 50_000 * args.clients:
        p.error("need 1-64 clients and 1 to 50,000 requests per client")
    report = asyncio.run(
        lossy.run(
            args.requests,
            args.loss,
            args.clients,
            args.seed,
            args.reorder,
            disguise_duplicates=args.negative_control,
            log=log_line,
        )
    )
    note = "duplicates disguised as new requests; violations expected"
    return summary("lossy_network.py", report, note if args.negative_control else None)


if __name__ == "__main__":
    sys.exit(main())
