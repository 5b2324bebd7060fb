"""Bounded block-wise state for aiocoap's resources.

For every large answer a client starts to fetch block by block (a session list, a long
history), aiocoap keeps the whole rendered answer for about 93 s (MAX_TRANSMIT_WAIT), and for
every block-wise upload the blocks so far; per client, without limit. Thousands of clients
that fetch the first block of `GET /v1/sessions` and never return would hold thousands of
copies. Here each resource keeps at most `max_transfers` of each, the oldest forgotten
first; a client whose transfer was forgotten gets 4.08 (Request Entity Incomplete) for its
next block and starts over, as after any server restart.

aiocoap offers no setting for this; this module reaches into its `Block1Spool` and
`Block2Cache` (their `TimeoutDict`s) and nothing else.
"""

from aiocoap import resource
from aiocoap.util.asyncio.timeoutdict import TimeoutDict


class BoundedTimeoutDict(TimeoutDict):
    def __init__(self, timeout: float, max_entries: int):
        super().__init__(timeout)
        self.max_entries = max_entries

    def __setitem__(self, key, value) -> None:
        # Re-inserting moves the key to the end, so the first key is the least recently
        # used: a transfer in progress (aiocoap stores it again on every block) stays.
        self._items.pop(key, None)
        if len(self._items) >= self.max_entries:
            del self._items[next(iter(self._items))]
        super().__setitem__(key, value)


def bound_blockwise(res: resource.Resource, max_transfers: int) -> None:
    for spool, attribute in ((res._block1, "_assemblies"), (res._block2, "_completes")):
        old = getattr(spool, attribute)
        setattr(spool, attribute, BoundedTimeoutDict(old.timeout, max_transfers))
