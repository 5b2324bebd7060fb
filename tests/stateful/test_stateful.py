"""The model-based stateful test (issue 11), short version: a fixed, derandomized set of
examples, each a fresh emulator process driven through random concurrent requests and rig
actions and checked against the reference model after every step (tests/stateful/machine.py).

The long version: `scripts/stateful.py --minutes 30`.
"""

from hypothesis import HealthCheck, settings
from hypothesis.internal.conjecture import engine
from hypothesis.stateful import run_state_machine_as_test

from tests.stateful.machine import PagerMachine

SHORT = settings(max_examples=8, stateful_step_count=25, deadline=None, derandomize=True,
                 database=None, suppress_health_check=list(HealthCheck))


def test_the_emulator_behaves_like_the_model(monkeypatch):
    # a failure is shrunk, but within the suite's time: each example starts a process
    monkeypatch.setattr(engine, "MAX_SHRINKING_SECONDS", 60)
    run_state_machine_as_test(PagerMachine, settings=SHORT)
