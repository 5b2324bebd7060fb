"""Bounded block-wise state for aiocoap's resources.

For every large answer a client starts to fetch block by block (a session list, a long
history), aiocoap keeps the whole rendered answer for about 93 s (MAX_TRANSMIT_WAIT), and for
every block-wise upload the blocks so far; per client, without limit. Thousands of clients
that fetch the first block of `GET /v1/sessions/history` and never return would hold
thousands of copies of it. Here the answers of all pending transfers of one server share one
byte budget (`Block2Transfers`), an answer held by several transfers (one rendering shared
by every client fetching the same representation) counted once, and each resource keeps at
most `max_transfers` transfers of each kind; beyond either bound the least recently used
transfer is forgotten. A client whose transfer was forgotten gets 4.08 (Request Entity
Incomplete) for its next block and starts over, as after any server restart. Each transfer
goes on with the answer it started on, so its blocks never mix two renderings (RFC 7959).

aiocoap offers no setting for this; the seam's `install` replaces each resource's
`Block2Cache` (its one method, `extract_or_insert`) and the `TimeoutDict` of its
`Block1Spool`, and nothing else, for every resource added to the server's `Block2Transfers`.

Notifications too large for one block (RFC 7959 §2.6) are transfers of the same kind: aiocoap
sends observe payloads whole, so `Block2Transfers.first_block` cuts the first block of a
notification and holds the whole for the client's GETs of the rest, which `extract_or_insert`
then serves like any other transfer's. Its `ended` future tells the observation when the
client has fetched the last block (or the transfer was forgotten), so that the next
notification never overtakes the rest of this one; `fetching` gives it to another
observation of the same peer, whose later-block GETs would find the same transfer.

Some clients (node-coap) ask for those blocks with GET + Observe on the observation's own
token. aiocoap takes any request on a running request's token for a new registration and
ends the running one, so the observation would end at its first block-wise notification.
`answer_later_blocks_aside` makes aiocoap's token manager answer a later block on a running
observation's token on its own exchange, the observation left as it was: an observation is
of the whole resource, never of one block (RFC 7959 §2.6).
"""

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any

import aiocoap.blockwise
from aiocoap import Message, resource
from aiocoap.blockwise import IncompleteException
from aiocoap.numbers.constants import TransportTuning
from aiocoap.optiontypes import BlockOption
from aiocoap.pipe import Pipe
from aiocoap.util.asyncio.timeoutdict import TimeoutDict

TRANSFER_TIMEOUT = TransportTuning().MAX_TRANSMIT_WAIT  # aiocoap's own


class BoundedTimeoutDict(TimeoutDict[Hashable, Any]):
    def __init__(self, timeout: float, max_entries: int) -> None:
        super().__init__(timeout)
        self.max_entries = max_entries

    def __setitem__(self, key: Hashable, value: Any) -> None:
        # Re-inserting moves the key to the end, so the first key is the least recently
        # used: a transfer in progress (aiocoap stores it again on every block) stays.
        self._items.pop(key, None)
        if len(self._items) >= self.max_entries:
            del self._items[next(iter(self._items))]
        super().__setitem__(key, value)


@dataclass
class _Transfer:
    owner: "BoundedBlock2Cache"
    key: Hashable
    response: Message
    deadline: float
    ended: "asyncio.Future[None] | None" = None  # made by first_block, for the observation


def etag(payload: bytes) -> bytes:
    """The ETag of one representation: equal payloads, equal ETags; any change, another."""
    return hashlib.blake2b(payload, digest_size=8).digest()


class Block2Transfers:
    """The whole answers of one server's pending Block2 transfers, within `max_bytes`.

    Bytes are those of the answers' payloads, each payload object counted once however many
    transfers hold it. An answer larger than the whole budget is still held, alone, so that
    one client can always fetch it: the bound is `max_bytes` or the largest answer, whichever
    is larger. A transfer is forgotten `timeout` seconds after its last block was asked for,
    and as soon as its last block was served.

    The resources whose transfers these are, each holding at most `max_transfers` of each
    kind, are added with `add` when they are made and bounded when the seam is installed,
    which checks first that aiocoap's block-wise state is what this replaces.
    """

    def __init__(
        self, max_bytes: int, max_transfers: int, timeout: float = TRANSFER_TIMEOUT
    ) -> None:
        self.max_bytes = max_bytes
        self.max_transfers = max_transfers
        self.resources: list[resource.Resource] = []
        self.timeout = timeout
        self.held_bytes = 0
        # least recently used first
        self._transfers: OrderedDict[tuple[BoundedBlock2Cache, Hashable], _Transfer] = OrderedDict()
        self._payloads: dict[int, tuple[bytes, int]] = {}  # id -> (payload, transfers on it)
        self._expiry: asyncio.TimerHandle | None = None

    def add(self, res: resource.Resource) -> None:
        """Bound `res`'s block-wise state once the seam is installed."""
        self.resources.append(res)

    def holds(self, payload: bytes) -> bool:
        held = self._payloads.get(id(payload))
        return held is not None and held[0] is payload

    def get(self, owner: "BoundedBlock2Cache", key: Hashable) -> Message | None:
        transfer = self._transfers.get((owner, key))
        return None if transfer is None else transfer.response

    def put(self, owner: "BoundedBlock2Cache", key: Hashable, response: Message) -> None:
        """Hold `response` for the transfer (again: it becomes the most recently used)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        transfer = self._transfers.get((owner, key))
        if transfer is not None and transfer.response is response:
            transfer.deadline = deadline
            self._transfers.move_to_end((owner, key))
            owner.keys.move_to_end(key)
        else:
            if transfer is not None:  # the client started over: a new answer
                self.forget(owner, key)
            if len(owner.keys) >= owner.max_transfers:
                self.forget(owner, next(iter(owner.keys)))
            self._transfers[(owner, key)] = _Transfer(owner, key, response, deadline)
            owner.keys[key] = None
            self._hold(response.payload)
            while self.held_bytes > self.max_bytes and len(self._transfers) > 1:
                oldest = next(iter(self._transfers.values()))
                self.forget(oldest.owner, oldest.key)
        if self._expiry is None:
            self._expiry = loop.call_at(deadline, self._expire)

    def first_block(
        self, res: resource.Resource, request: Message, whole: Message, size_exponent: int
    ) -> tuple[Message, "asyncio.Future[None]"]:
        """Block 0 of `whole`, a notification on the observation `request` made on `res`, and
        a future done once the client's transfer of the rest ends (last block served,
        forgotten, or replaced by a newer one).

        `whole` gets its ETag (RFC 7959 §2.6) and is held as the transfer a GET of a later
        block from that client finds, with or without Observe; the first block carries the
        ETag too.
        """
        owner = res._block2
        if not isinstance(owner, BoundedBlock2Cache):  # installed by the seam (hooks check)
            raise TypeError(f"{type(res).__name__} has no bounded Block2 cache")
        remote = request.remote
        if remote is None:  # as in extract_or_insert
            raise TypeError("a request without a remote")
        whole.opt.etag = etag(whole.payload)
        key = aiocoap.blockwise._extract_block_key(request)
        self.put(owner, key, whole)
        transfer = self._transfers[(owner, key)]
        ended = transfer.ended = asyncio.get_running_loop().create_future()
        block: Message = whole._extract_block(0, size_exponent, remote.maximum_payload_size)
        return block, ended

    def fetching(self, res: resource.Resource, request: Message) -> "asyncio.Future[None] | None":
        """The `ended` of a notification's transfer still under way to the peer of `request`
        on `res`, if any. A client's GETs of later blocks name the peer and the resource,
        not the observation (aiocoap and libcoap send them on tokens of their own), so two
        observations of one peer share one transfer: another notification's first block
        must wait until it ends, or it takes the place of the one being fetched."""
        key = aiocoap.blockwise._extract_block_key(request)
        transfer = self._transfers.get((res._block2, key))  # type: ignore[arg-type]
        if transfer is None or transfer.ended is None or transfer.ended.done():
            return None
        return transfer.ended

    def forget(self, owner: "BoundedBlock2Cache", key: Hashable) -> None:
        transfer = self._transfers.pop((owner, key), None)
        if transfer is None:
            return
        if transfer.ended is not None and not transfer.ended.done():
            transfer.ended.set_result(None)
        del owner.keys[key]
        payload = transfer.response.payload
        _, count = self._payloads[id(payload)]
        if count == 1:
            del self._payloads[id(payload)]
            self.held_bytes -= len(payload)
        else:
            self._payloads[id(payload)] = (payload, count - 1)

    def clear(self) -> None:
        """Forget every transfer, as a transmitter that loses power (or its sessions) does:
        each client's next block is 4.08, never a piece of what was before."""
        for transfer in list(self._transfers.values()):
            self.forget(transfer.owner, transfer.key)

    def _hold(self, payload: bytes) -> None:
        held = self._payloads.get(id(payload))
        if held is None:
            self._payloads[id(payload)] = (payload, 1)
            self.held_bytes += len(payload)
        else:
            self._payloads[id(payload)] = (payload, held[1] + 1)

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._expiry = None
        while self._transfers:
            oldest = next(iter(self._transfers.values()))  # deadlines come in this order
            if oldest.deadline > now:
                self._expiry = loop.call_at(oldest.deadline, self._expire)
                return
            self.forget(oldest.owner, oldest.key)


class BoundedBlock2Cache:
    """aiocoap's `Block2Cache` for one resource, its answers held in `Block2Transfers`.

    Behaves as aiocoap's: block 0 (or a request without Block2) renders the answer, a later
    block is cut from the answer the client's transfer holds, or is 4.08 without one.
    """

    def __init__(self, transfers: Block2Transfers, max_transfers: int) -> None:
        self.transfers = transfers
        self.max_transfers = max_transfers
        self.keys: OrderedDict[Hashable, None] = OrderedDict()  # this resource's transfers

    async def extract_or_insert(
        self, req: Message, response_builder: Callable[[], Awaitable[Message]]
    ) -> Message:
        key = aiocoap.blockwise._extract_block_key(req)
        block2 = req.opt.block2
        remote = req.remote
        if remote is None:  # every request aiocoap hands a resource came from somewhere
            raise TypeError("a request without a remote")
        held: Message | None
        if block2 is None or block2.block_number == 0:
            held = await response_builder()
        else:
            held = self.transfers.get(self, key)
            if held is None:
                raise IncompleteException from None
        assembled = held
        size = len(assembled.payload)
        if size <= remote.maximum_payload_size and (block2 is None or size <= block2.size):
            return assembled
        block2 = block2 or BlockOption.BlockwiseTuple(0, 0, remote.maximum_block_size_exp)
        block: Message = assembled._extract_block(
            block2.block_number, block2.size_exponent, remote.maximum_payload_size
        )
        if block.opt.block2.more:
            self.transfers.put(self, key, assembled)
        else:
            self.transfers.forget(self, key)
        return block


def bound(res: resource.Resource, transfers: Block2Transfers) -> None:
    old = res._block1._assemblies
    res._block1._assemblies = BoundedTimeoutDict(old.timeout, transfers.max_transfers)
    # duck-typed: aiocoap calls nothing of its Block2Cache but extract_or_insert (hooks check)
    res._block2 = BoundedBlock2Cache(transfers, transfers.max_transfers)  # type: ignore[assignment]


def answer_later_blocks_aside(token_manager: Any) -> None:
    """Serve a later block asked for on a running observation's token beside the observation.

    aiocoap's `TokenManager.process_request` stops whatever runs on the request's (token,
    remote) before it serves the new request. For a GET of block 1 or later that is not a
    deregistration (Observe 1), arriving on a token that has a running request, the request
    is served on a pipe of its own instead, its answer sent as aiocoap sends any answer, and
    the running one (the observation) goes on.
    """
    process_request = token_manager.process_request

    def process(request: Message) -> None:
        block2 = request.opt.block2
        remote = request.remote
        if (
            remote is None
            or block2 is None
            or block2.block_number == 0
            or request.opt.observe == 1
            or (request.token, request.remote) not in token_manager.incoming_requests
        ):
            process_request(request)
            return
        pipe = Pipe(request, token_manager.log)

        def on_event(event: Pipe.Event) -> bool:
            if event.message is not None:
                answer = event.message
                answer.token = request.token
                answer.remote = remote.as_response_address()
                answer.request = request
                token_manager.token_interface.send_message(answer, lambda: None)
            return not event.is_last

        pipe.on_event(on_event)
        token_manager.context.render_to_pipe(pipe)

    token_manager.process_request = process
