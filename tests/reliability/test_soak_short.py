"""Soak (issue 6), short version: `scripts/soak.py --quick` runs end to end and finds nothing
wrong: 20 s of mixed load from 8 virtual users with 20 observers on /v1/notify, no unexpected
answer, no timeout, every observer's notifications gap-free and in order, no error in the
server's stderr, and pages over LRSN beside it, each answered ret 0. Memory is only
reported at this length, never judged, and no speed is asserted. Takes about 25 seconds.

The long version with figures: `scripts/soak.py --minutes 30`.
"""

from tests.conftest import run_script


def test_quick_soak_finds_nothing_wrong():
    code, out, err = run_script("soak.py", "--quick")
    summary = out[out.find("==== soak.py summary ====") :]
    assert code == 0, f"exit {code}\n{summary or out[-3000:]}\n{err[-3000:]}"
    assert "==== soak.py summary ====" in out, out[-3000:]
    assert "unexpected answers: 0 (RST 0); timeouts: 0 " in summary, summary
    assert "server stderr: 0 ERROR/CRITICAL/Traceback lines" in summary, summary
    assert "result: OK" in summary, summary
    pages = int(summary.split("lrsn: ", 1)[1].split()[0])  # LRSN beside it (issue 16)
    assert pages > 0, summary
