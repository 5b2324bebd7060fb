"""Smoke test of the benchmarks: `scripts/bench.py --quick` and a short
`scripts/bench_wall.py` run end to end.

It checks only that the run completes and prints its summary, never any speed. It takes
about 25 seconds (and the journal's comparison, on one workload, about 10 more; the pager
wall's, in Chromium, about 5); deselect it with `-k "not bench_smoke"`.
"""

import re

import pytest

from tests.browser import chromium
from tests.conftest import run_script


def test_bench_smoke_quick_run_completes_and_prints_summary():
    code, out, err = run_script("bench.py", "--quick")
    assert code == 0, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    assert "==== bench.py summary ====" in out
    assert "reference: bare aiocoap" in out


def test_bench_smoke_journal_both_prints_on_beside_off():
    """`--journal both --pairs 2` runs each workload with the request journal on and off, in
    two pairs of alternating order, and prints the median ratios with their ranges."""
    code, out, err = run_script(
        "bench.py", "--quick", "--skip-scaling", "--workloads", "a", "--concurrency", "1",
        "--journal", "both", "--pairs", "2",
    )  # fmt: skip
    assert code == 0, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    runs, summary = out.split("==== bench.py summary ====")
    order = re.findall(r"journal (on|off) \(pair (\d)\)", runs)
    assert order == [("on", "1"), ("off", "1"), ("off", "2"), ("on", "2")], order
    table = summary.split("request journal: on beside off", 1)[1]
    assert "the median of 2 pairs" in table.splitlines()[0]
    [row] = [line for line in table.splitlines() if line.startswith("(a) GET")]
    # label (3 words), conc, on and off req/s, then req/s, CPU, p50 and p99 on / off, each a
    # median and its [low-high] range
    ratios = re.findall(r"(\d+\.\d{3}) \[(\d+\.\d{3})-(\d+\.\d{3})\]", row)
    assert len(row.split()) == 14 and len(ratios) == 4, row
    assert all(float(lo) <= float(mid) <= float(hi) for mid, lo, hi in ratios), row


def test_bench_refuses_a_pairs_count_below_one():
    code, out, err = run_script("bench.py", "--journal", "both", "--pairs", "0")
    assert code == 2 and "--pairs takes a number of 1 or more" in err, (code, out, err)


def test_bench_smoke_wall_measures_commit_to_screen():
    """A few seconds of `bench_wall.py` on a smaller wall: every change reaches the screen and
    the percentiles are printed; whether p99 meets its bound is not judged here (a loaded
    machine), but nothing else may fail."""
    problem = chromium.missing()
    if problem:
        if chromium.in_ci():
            pytest.fail(f"CI=true and bench_wall.py cannot run: {problem}")
        pytest.skip(problem)
    code, out, err = run_script(
        "bench_wall.py", "--sessions", "100", "--rate", "20", "--seconds", "3"
    )
    assert code in (0, 1), f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    summary = out.split("==== bench_wall.py summary ====", 1)[1]
    assert "missing: 0" in summary and ", 0 failed" in summary, summary
    assert re.search(r"p50 \d+ +p95 \d+ +p99 \d+", summary), summary
    assert [x for x in summary.splitlines() if x.startswith("FAIL") and "p99" not in x] == []


def test_bench_lrsn_quick_run_prints_lrsn_beside_coap():
    """`scripts/bench_lrsn.py --quick`: both ways run on one emulator and are printed."""
    code, out, err = run_script("bench_lrsn.py", "--quick")
    assert code == 0, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    summary = out.split("==== bench_lrsn.py summary ====", 1)[1].strip().splitlines()
    assert [line.split(":")[0] for line in summary] == ["concurrency 1", "concurrency 4"]
    assert all("lrsn" in line and "coap" in line for line in summary)
