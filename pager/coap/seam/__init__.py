"""The one place where the emulator reaches into aiocoap's internals.

aiocoap 0.4.17 (pinned) serves the emulator well, but bounding its memory, pacing
notifications, refusing a shared port, injecting faults below its message layer and a few
costs on its request path need attributes it does not document. Every such use is here, and
listed in `HOOKS` (the README's table "What we change in aiocoap and why" is made from it).
Everything outside this package uses aiocoap's public API only.

Before the context exists: `ServerContext.create_exclusive` builds it (the exclusive bind and
the render-task name). Once it exists: `install` puts every other hook in place. Both check
first that each target is still what it was written for and raise one `SeamError`, naming
the aiocoap version and the hooks, before anything is changed.
"""

from collections.abc import Iterable

import aiocoap

from pager.coap.exchanges import Exchanges
from pager.coap.seam import blockwise as _blockwise
from pager.coap.seam import cycles, datagrams, dedup, mids, senderrors
from pager.coap.seam.backlog import Backlogs
from pager.coap.seam.blockwise import Block2Transfers
from pager.coap.seam.context import ServerContext
from pager.coap.seam.datagrams import LENGTHS as OPTION_LENGTHS
from pager.coap.seam.datagrams import DatagramFilter, unrecognised
from pager.coap.seam.dedup import WINDOW as DEDUP_WINDOW
from pager.coap.seam.dedup import receipt
from pager.coap.seam.hooks import HOOKS, Hook, SeamError, udp_stacks, verify
from pager.store import Receipt

__all__ = [
    "DEDUP_WINDOW",
    "HOOKS",
    "OPTION_LENGTHS",
    "Backlogs",
    "Block2Transfers",
    "DatagramFilter",
    "Hook",
    "SeamError",
    "ServerContext",
    "bound_port",
    "install",
    "receipt",
    "unrecognised",
]


def install(
    context: aiocoap.Context,
    *,
    dedup_max_entries: int,
    receipts: Iterable[Receipt],
    backlogs: Backlogs,
    blockwise: Block2Transfers,
    datagram_filter: DatagramFilter | None = None,
    exchanges: Exchanges | None = None,
) -> None:
    """Put every hook in place on a context that has served nothing yet.

    The duplicate table is bounded to `dedup_max_entries` and restored from `receipts`;
    `backlogs` takes the place of aiocoap's per-peer queues; message ids are numbered per
    peer; the resources added to
    `blockwise` get its bounded block-wise state; `datagram_filter` (fault injection), if
    any, sees every datagram, and the UTF-8 guard is always installed; `exchanges`, if any,
    is told of every request and its first answer (`pager.coap.exchanges`).
    """
    stacks = verify(context, blockwise.resources)
    receipts = list(receipts)
    for manager, udp in stacks:
        recent = dedup.install(manager, dedup_max_entries, receipts)
        manager._backlogs = backlogs
        mids.install(manager, mids.MessageIds(), backlogs)
        senderrors.install(udp)
        datagrams.install(udp, datagram_filter, exchanges, recent)
        cycles.install(manager.token_manager)  # first: the Block2 path's pipes have none
        _blockwise.answer_later_blocks_aside(manager.token_manager)
    for res in blockwise.resources:
        _blockwise.bound(res, blockwise)


def bound_port(context: aiocoap.Context) -> int:
    """The UDP port `context` bound, so that port 0 (any free port) can be reported."""
    udp = udp_stacks(context)[0][1]
    port: int = udp.transport.get_extra_info("socket").getsockname()[1]
    return port
