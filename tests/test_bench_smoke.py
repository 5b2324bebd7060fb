"""Smoke test of the benchmark: `scripts/bench.py --quick` runs end to end.

It checks only that the run completes and prints its summary, never any speed. It takes
about 25 seconds; deselect it with `-k "not bench_smoke"`.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120


def test_bench_smoke_quick_run_completes_and_prints_summary():
    # A session of its own, so that on a timeout the benchmark's servers go with it.
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--quick"], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        raise AssertionError(f"bench.py --quick took over {TIMEOUT} s\n{out[-3000:]}\n{err[-3000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    assert "==== bench.py summary ====" in out
    assert "reference: bare aiocoap" in out
