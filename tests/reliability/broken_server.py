"""A deliberately broken emulator, the negative control of the crash-consistency checks.

`python -m tests.reliability.broken_server serve ...` runs the real emulator with one change
made here, not in `pager/`: a request is answered as soon as its change is queued, without
waiting for the commit, and each commit is held back for 50 ms. A SIGKILL then loses changes
that were already acknowledged, and the checks of `tests/reliability/crash.py` must say so.
"""

import asyncio
import sys

from pager import engine, store
from pager.cli import main

COMMIT_DELAY = 0.05

_commit = store.Store.commit


async def _late_commit(self, changes, receipts=()):
    await asyncio.sleep(COMMIT_DELAY)
    await _commit(self, changes, receipts)


async def _answer_before_commit(self, operation, answer=None):
    now = self.clock.now()
    self._maintain(now)
    outcome = operation(self._pending, now)
    if outcome.change is not None:
        self._enqueue(outcome.change).done.add_done_callback(
            lambda fut: fut.cancelled() or fut.exception()
        )
    if answer is not None:
        answer(outcome, self._pending, now)
    return outcome


store.Store.commit = _late_commit
engine.Engine.run = _answer_before_commit

if __name__ == "__main__":
    sys.exit(main())
