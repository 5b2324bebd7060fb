"""Hostile datagrams (issue 6): a live emulator takes 100,000 malformed or mutated CoAP
datagrams and then 10,000 malformed request bodies on valid paths, and

- never answers 5.xx (5.03 included), but the 5.05 RFC 7252 §5.7.1 requires for a request
  that asks it to be a proxy (Proxy-Uri, Proxy-Scheme),
- logs no error and no unhandled exception (loggers "coap-server", "pager", "asyncio", and
  any other),
- stays up: its tasks are alive, and it answers valid probe requests correctly all through
  the datagram fuzzing and a create → get → page → clear sequence afterwards,
- keeps its statistics consistent: `numSessions` equals the creates of the payload fuzzing
  that were answered 2.01, counted from the answers.

How the inputs are made is in `harness.py`; the seed corpus is `corpus/` (see `corpus.py`).
The datagrams come from a seeded `random.Random` and the bodies from Hypothesis with
`derandomize=True`, so every run sends the same inputs. `scripts/fuzz.py` runs the same with
other counts and seeds and prints the figures.

Any error log record, traceback or other 5.xx answer fails this test; the bugs the fuzzing
found have their reproducers in test_findings.py.

Takes about 35 s on a 2-core machine (45 s with the rest of tests/fuzz).
"""

import asyncio
import json
import logging

import aiocoap
import cbor2
import pytest

from tests.fuzz import corpus, harness

DATAGRAMS = 100_000
PAYLOADS = 10_000
SEED = 7470
RATE = 5000.0  # datagrams per second at most
WINDOW = 100  # datagrams sent before a probe must be answered: at most this many in flight
LOGGERS = ("coap-server", "pager", "asyncio")


def test_corpus_is_valid_and_small():
    datagrams = corpus.load_datagrams()
    bodies = corpus.load_bodies()
    assert len(datagrams) >= 30 and all(bodies.values())
    methods = set()
    for name, data in datagrams.items():
        msg = aiocoap.Message.decode(data)
        assert msg.code.is_request() or name == "dgram-ping.bin", name
        methods.add((str(msg.code), "/".join(msg.opt.uri_path)))
    for path in (
        "v1/sessions",
        "v1/sessions/history",
        "v1/sessions/statistics",
        "v1/settings",
        "v1/page",
        "v1/notify",
        ".well-known/core",
    ):
        assert any(p == path for _, p in methods), path
    for target, items in bodies.items():
        for content_format, data in items:
            value = cbor2.loads(data) if content_format == 60 else json.loads(data)
            assert isinstance(value, dict), target
    size = sum(p.stat().st_size for p in corpus.CORPUS.iterdir())
    assert size < 100_000


class TriagedLogs:
    """caplog's records triaged as the run goes, then cleared: the troubling ones counted and
    the first 100 kept (formatted). Their tracebacks are dropped: pytest's report handler
    keeps every record of the test too, and tens of thousands of tracebacks hold on to their
    frames (hundreds of MB)."""

    FORMAT = logging.Formatter("%(levelname)s %(name)s: %(message)s")

    def __init__(self, caplog):
        self.caplog = caplog
        self.count = 0
        self.troubles: list[str] = []

    def triage(self, *_) -> None:
        records = self.caplog.records
        troubles = harness.triage_logs(records)
        self.count += len(troubles)
        self.troubles += [self.FORMAT.format(r) for r in troubles[: 100 - len(self.troubles)]]
        for r in records:
            r.exc_info = None
        self.caplog.clear()


# aiocoap itself builds its empty ACKs the deprecated way, some hundred times in a run
@pytest.mark.filterwarnings("ignore:Initializing messages with:DeprecationWarning")
async def test_hostile_datagrams_and_payloads(emulator, caplog):
    for name in LOGGERS:
        caplog.set_level(logging.WARNING, logger=name)
    logs = TriagedLogs(caplog)
    generation = harness.generate_in_background(PAYLOADS)  # Hypothesis, derandomized

    d = await harness.blast_datagrams(
        emulator.port, DATAGRAMS, SEED, rate=RATE, window=WINDOW, progress=logs.triage
    )
    cases = await asyncio.wrap_future(generation)
    p = await harness.fuzz_payloads(emulator.port, cases)
    wrong = await harness.check_service(emulator.port, p.created)
    logs.triage()

    print("\n" + harness.summary(d, p))

    assert d.sent == DATAGRAMS and p.sent == PAYLOADS
    assert d.kernel_drops <= DATAGRAMS // 100, "the receive buffers overflowed: lower RATE"
    assert not d.problems, d.problems.report()
    assert not p.problems, p.problems.report()
    assert not logs.troubles, f"{logs.count} troubling log records, the first:\n" + "\n\n".join(
        logs.troubles[:5]
    )
    assert not d.server_errors, f"{len(d.server_errors)} 5.xx answers:\n" + "\n".join(
        map(str, d.server_errors[:20])
    )
    assert not wrong, "\n".join(wrong)
    # still running: the committer and the time and ping tasks (private, read for this test)
    assert not emulator.engine._committer.done()
    assert emulator._tasks and not any(t.done() for t in emulator._tasks)
    assert p.created > 0  # the payload fuzz did reach the engine
