"""The checks themselves (harness.Ledger), against an in-memory stand-in for the transmitter:
a consistent store passes, whichever way an unanswered request went; each kind of damage to
the store is reported."""

import copy
import random

import pytest

from tests.reliability.harness import Answer, Ledger, Snapshot, Workload, number_ranges

T = "2026-03-15T12:00:00"


class FakeTransmitter:
    """Applies the load's requests the way the emulator does (spec §3-§5), in memory."""

    def __init__(self):
        self.sequence = 0
        self.next_id = 1
        self.active: dict[int, dict] = {}  # by number
        self.history: list[dict] = []

    def apply(self, op) -> Answer:
        self.sequence += 1
        b = op.body or {}
        if op.kind == "create":
            s = {
                "id": self.next_id,
                "sessionSequence": self.sequence,
                "uuid": f"uuid-{self.next_id}",
                "number": b["number"],
                "partySize": b["partySize"],
                "goalInSeconds": b.get("goal", 300),
                "created": T,
                "started": T,
                "label": b.get("label"),
                "state": "started",
            }
            self.next_id += 1
            if b.get("action") == "page":
                s.update(notified=T, state="paged")
            self.active[s["number"]] = s
            return self._answer("2.01", s)
        s = self.active[op.session.number]
        s["sessionSequence"] = self.sequence
        if op.kind == "page":
            s.setdefault("notified", T)
            s["state"] = "paged"
        elif op.kind == "label":
            s["label"] = b["label"]
        else:
            del self.active[s["number"]]
            archived = {k: v for k, v in s.items() if k != "sessionSequence"}
            archived.update(
                cleared=T, state="cleared", clearType="STOP" if op.kind == "clear" else "REMOVED"
            )
            self.history.append(archived)
            if op.kind == "remove":
                return Answer("2.02", None)
            return self._answer("2.04", {**s, "cleared": T, "state": "cleared"})
        return self._answer("2.04", s)

    def _answer(self, code: str, s: dict) -> Answer:
        return Answer(code, {"globalSessionSequence": self.sequence, "sessions": [dict(s)]})

    def snapshot(self) -> Snapshot:
        sessions = list(self.active.values()) + self.history
        served = sum(1 for s in sessions if "notified" in s)
        stats = {
            "guestsServed": served,
            "percentLate": 0,
            "percentOnTime": 100 if served else 0,
            "averageTimeServed": 0,
            "numSessions": len(sessions),
        }
        return Snapshot(
            sorted((dict(s) for s in self.active.values()), key=lambda s: s["id"]),
            sorted((dict(s) for s in self.history), key=lambda s: s["id"]),
            dict(stats),
            dict(stats),
            self.sequence,
        )


def drive(requests: int, seed: int, unknown_every: int = 0) -> tuple[Ledger, FakeTransmitter]:
    """Two workers; every `unknown_every`-th request goes unanswered, applied or not."""
    rng = random.Random(seed)
    ledger, fake = Ledger(), FakeTransmitter()
    workloads = [
        Workload(i, r, random.Random(seed + i)) for i, r in enumerate(number_ranges(2, 50))
    ]
    for n in range(requests):
        w = workloads[n % 2]
        op = w.next_op(ledger.new_serial())
        ledger.sent(op)
        if unknown_every and n % unknown_every == unknown_every - 1:
            if rng.random() < 0.5:
                fake.apply(op)
            ledger.unknown(op)
        else:
            ledger.answered(op, fake.apply(op))
        w.settle(op)
    return ledger, fake


@pytest.mark.parametrize("unknown_every", [0, 7])
@pytest.mark.parametrize("seed", range(5))
def test_a_consistent_store_passes(seed, unknown_every):
    ledger, fake = drive(300, seed, unknown_every)
    assert ledger.count("unknown") == (300 // unknown_every if unknown_every else 0)
    assert ledger.verify(fake.snapshot(), "check") == []
    assert ledger.violations == []


def damaged(ledger: Ledger, fake: FakeTransmitter, damage) -> list[str]:
    snap = copy.deepcopy(fake.snapshot())
    damage(snap)
    return ledger.verify(snap, "check")


def test_a_lost_acknowledged_session_is_reported():
    ledger, fake = drive(200, 1)
    found = damaged(ledger, fake, lambda s: s.history.pop(3))
    assert any("is missing" in v for v in found)


def test_a_lost_acknowledged_clear_is_reported():
    ledger, fake = drive(200, 1)

    def unclear(snap):
        s = next(s for s in snap.history if s["clearType"] == "STOP")
        snap.history.remove(s)
        del s["cleared"], s["clearType"]
        s["state"] = "paged" if "notified" in s else "started"
        s["sessionSequence"] = 0
        snap.active.append(s)

    assert any("acknowledged as ended with STOP" in v for v in damaged(ledger, fake, unclear))


def test_a_lost_acknowledged_page_is_reported():
    ledger, fake = drive(200, 2)

    def unpage(snap):
        s = next(s for s in snap.history if "notified" in s)
        del s["notified"]
        snap.statistics["guestsServed"] -= 1
        snap.listed_statistics["guestsServed"] -= 1

    assert any("a page was acknowledged" in v for v in damaged(ledger, fake, unpage))


def test_a_duplicated_session_is_reported():
    ledger, fake = drive(200, 3)

    def duplicate(snap):
        twin = dict(snap.history[0], id=fake.next_id)
        snap.history.append(twin)

    found = damaged(ledger, fake, duplicate)
    assert any("appears 2 times" in v for v in found)
    assert any("matches no create request" in v for v in found)


def test_statistics_that_disagree_with_the_store_are_reported():
    ledger, fake = drive(200, 4)

    def miscount(snap):
        snap.statistics["numSessions"] += 1

    found = damaged(ledger, fake, miscount)
    assert any("are not those of the sessions in the store" in v for v in found)
    assert any("outside" in v for v in found)


def test_a_sequence_number_going_back_is_reported():
    ledger, fake = drive(200, 5)
    snap = fake.snapshot()
    snap.global_sequence -= 1
    ledger.check_restart(snap, "restart")
    assert any("below" in v for v in ledger.violations)


def test_an_unexpected_answer_is_reported_once_and_its_session_judged_leniently():
    ledger, fake = drive(50, 6)
    w = Workload(9, range(4000, 4001), random.Random(0))
    op = w.next_op(ledger.new_serial())
    ledger.sent(op)
    answer = fake.apply(op)
    answer.code = "2.00"  # as if a create had been processed a second time
    ledger.answered(op, answer)
    assert len(ledger.violations) == 1 and "instead of 2.01" in ledger.violations[0]
    assert ledger.verify(fake.snapshot(), "check") == []
