"""Smoke test of the benchmark: `scripts/bench.py --quick` runs end to end.

It checks only that the run completes and prints its summary, never any speed. It takes
about 25 seconds (and the journal's comparison, on one workload, about 10 more); deselect it
with `-k "not bench_smoke"`.
"""

from tests.conftest import run_script


def test_bench_smoke_quick_run_completes_and_prints_summary():
    code, out, err = run_script("bench.py", "--quick")
    assert code == 0, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    assert "==== bench.py summary ====" in out
    assert "reference: bare aiocoap" in out


def test_bench_smoke_journal_both_prints_on_beside_off():
    """`--journal both` runs each workload with the request journal on and off, side by side."""
    code, out, err = run_script(
        "bench.py", "--quick", "--skip-scaling", "--workloads", "a", "--concurrency", "1",
        "--journal", "both",
    )  # fmt: skip
    assert code == 0, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    table = out.split("request journal: on beside off", 1)[1]
    [row] = [line for line in table.splitlines() if line.startswith("(a) GET")]
    assert len(row.split()) == 9, row  # label (3 words), conc, on, off and the three ratios
    assert "journal off" in out.split("==== bench.py summary ====")[0]


def test_bench_lrsn_quick_run_prints_lrsn_beside_coap():
    """`scripts/bench_lrsn.py --quick`: both ways run on one emulator and are printed."""
    code, out, err = run_script("bench_lrsn.py", "--quick")
    assert code == 0, f"exit {code}\n{out[-3000:]}\n{err[-3000:]}"
    summary = out.split("==== bench_lrsn.py summary ====", 1)[1].strip().splitlines()
    assert [line.split(":")[0] for line in summary] == ["concurrency 1", "concurrency 4"]
    assert all("lrsn" in line and "coap" in line for line in summary)
