"""What aiocoap still has to send to each peer, so notifications can wait for it.

aiocoap keeps at most one Confirmable message in flight per peer (NSTART = 1) and queues the
rest, without limit, in its message layer (`MessageManager._backlogs`). Handing every
notification to aiocoap as soon as it exists would let an observer that acknowledges more
slowly than sessions change pile up notifications there for as long as it keeps up at all:
gigabytes in a soak with observers at full speed (README, "What is bounded"), and every
queued message had already used one of aiocoap's 65,536 message ids.

So an observation hands aiocoap its next notification only when nothing is waiting for that
peer: aiocoap then has at most one message in flight and one behind it, and the rest wait in
the observer's own bounded queue (`pager.hub.Observer`), where the oldest can be dropped.

aiocoap has no public view of its backlog (nor an acknowledgement hook, its issue #281).
`Backlogs` replaces the manager's dict of
per-peer queues and behaves exactly like it for aiocoap, but wakes whoever waits for a peer
whenever that peer's queue shrinks or goes away (acknowledged, reset, or given up). The
seam's `install` puts it in place.
"""

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, SupportsIndex


class _Backlog(list[Any]):
    """One peer's waiting messages; aiocoap takes them with pop(0)."""

    def __init__(self, items: list[Any], moved: Callable[[], None]):
        super().__init__(items)
        self._moved = moved

    def pop(self, index: SupportsIndex = -1) -> Any:
        item = super().pop(index)
        self._moved()
        return item


class Backlogs(dict[Hashable, _Backlog]):
    """aiocoap's per-peer backlogs (remote → list), plus a way to wait until one is empty."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: dict[Hashable, list[asyncio.Future[None]]] = {}
        self.held: Callable[[Hashable], int] = _none
        """Messages for a peer that wait for a free message id (`seam.mids`), before aiocoap."""

    def __setitem__(self, remote: Hashable, messages: list[Any]) -> None:
        super().__setitem__(remote, _Backlog(messages, lambda: self._moved(remote)))

    def __delitem__(self, remote: Hashable) -> None:
        super().__delitem__(remote)
        self._moved(remote)

    def pop(self, remote: Hashable, *default: Any) -> Any:
        found = super().pop(remote, *default)
        self._moved(remote)
        return found

    def waiting(self, remote: Hashable) -> int:
        """Messages queued for `remote` behind the one in flight, or for a message id."""
        return len(self.get(remote, ())) + self.held(remote)

    async def drained(self, remote: Hashable) -> None:
        """Return once no message waits for `remote` (one may still be in flight)."""
        while self.waiting(remote):
            future = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(remote, []).append(future)
            await future

    def wake(self, remote: Hashable) -> None:
        """What waits for `remote` has moved on, outside aiocoap's queues."""
        self._moved(remote)

    def _moved(self, remote: Hashable) -> None:
        for future in self._waiters.pop(remote, ()):
            if not future.done():
                future.set_result(None)


def _none(remote: Hashable) -> int:
    return 0
