"""Smoke test of the benchmark: `scripts/bench.py --quick` runs end to end.

It checks only that the run completes and prints its summary, never any speed. It takes
about 25 seconds; deselect it with `-k "not bench_smoke"`.
"""

from tests.conftest import run_script


def test_bench_smoke_quick_run_completes_and_prints_summary():
    code, out, err = run_script("bench.py", "--quick")
    assert code == 0, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    assert "==== bench.py summary ====" in out
    assert "reference: bare aiocoap" in out
