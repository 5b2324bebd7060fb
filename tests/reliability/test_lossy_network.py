"""Lossy network (issue 6), short version: 100 requests through a relay that drops 20 % of
datagrams each way and reorders some, ~5 s.

The long version with figures: `scripts/lossy_network.py`. What is run and checked is
described in `tests/reliability/lossy.py` and `harness.py`.
"""

import asyncio

from tests.reliability import lossy

DEADLINE = 60  # seconds; a run normally takes 3 to 8


async def test_every_change_happens_exactly_once_through_a_lossy_network():
    report = await asyncio.wait_for(
        lossy.run(requests=100, loss=0.2, clients=4, seed=7470), DEADLINE
    )
    figures = "\n".join(report.lines())
    assert report.violations == [], figures
    stats = report.relay.stats
    assert report.relay.peers == 4, figures  # one upstream socket per client
    assert stats["up dropped"] > 0 and stats["down dropped"] > 0, figures
    # retransmissions reached the server: each client's first create at least (its first
    # answer is always dropped), and a stale duplicate of each client's second request
    assert report.duplicated_creates >= 4, figures
    assert stats["up stale duplicates"] >= 4, figures
    assert report.final.statistics["numSessions"] == report.creates_arrived, figures
    assert report.final.global_sequence == len(report.relay.arrivals), figures
    assert len(report.ledger.ops) == 100
    assert report.ledger.count("acked") == 100 - len(report.failures), figures
    assert report.elapsed < 30, figures


async def test_checks_catch_a_server_that_processes_duplicates():
    """Negative control: the relay gives every repeated request a new message id, so the
    server cannot recognise it as a duplicate; the checks must see it processed twice."""
    report = await asyncio.wait_for(
        lossy.run(requests=40, loss=0.2, clients=4, seed=7470, disguise_duplicates=True), DEADLINE
    )
    assert any("processed more than once" in v for v in report.violations), "\n".join(
        report.lines()
    )
