"""OBSERVE /v1/notify (spec §8): one observer task per registration, fed by the hub.

Each notification is handed to aiocoap as a Confirmable response on the observation's pipe,
and the next one only once nothing waits behind it for that peer (`pager.coap.seam.backlog`):
aiocoap keeps at most one Confirmable message in flight per peer (NSTART = 1), so a healthy
observer gets every notification, in order, and one that acknowledges more slowly than
sessions change falls behind in its own bounded queue (`pager.hub.Observer`).

There is no public way to learn that a particular notification was acknowledged (aiocoap
issue #281), so "three pings in a row unacknowledged" is expressed through the
notifications' retransmission schedule: a notification that stays unacknowledged is given up
`LIVENESS_PINGS - 0.5` ping intervals after it was sent, that is once the third ping is due
behind it; aiocoap then drops the peer's exchanges and ends the observation.

A notification larger than one block (the session list of a `get_sessions` registration)
goes out as RFC 7959 §2.6 says: its first block, with Block2 and an ETag, and the whole held
for the client's GETs of the rest (`Block2Transfers.first_block`). The next notification
waits until the client has fetched the last block (or the transfer was forgotten): the
session notifications are changes to the list, so one that overtook the rest of the list
would leave the client with a list that mixes two states. For the same reason a notification
of another observation of the same peer waits for that transfer too
(`Block2Transfers.fetching`): the client's GETs of later blocks cannot tell the two apart.

When the transmitter goes away (`Hub.end_all`), every observation ends with a 5.03 and the
error body (RFC 7641 §3.2: a non-2.xx notification ends the observation; it carries no
Observe option), Confirmable with a short retransmission span of its own.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.constants import TransportTuning
from aiocoap.pipe import Pipe

from pager.coap.answers import response_format
from pager.coap.base import Api, ApiResource
from pager.coap.gate import Admission
from pager.coap.reading import query
from pager.coap.seam import Backlogs
from pager.domain.errors import Invalid
from pager.hub import Hub, Observer

LIVENESS_PINGS = 3
OBSERVE_MODULO = 1 << 24
GOING_AWAY = "the transmitter is shutting down; register again once it answers"


class FinalTuning(TransportTuning):
    """The final notification: retransmitted once, given up 1.5 s after it was sent, within
    the hub's END_WAIT."""

    reliability = True
    ACK_RANDOM_FACTOR = 1.0
    ACK_TIMEOUT = 0.5
    MAX_RETRANSMIT = 1


def notification_tuning(ping_interval: float) -> TransportTuning:
    """Retransmit for (LIVENESS_PINGS - 0.5) ping intervals in all, then give up."""

    class NotificationTuning(TransportTuning):
        reliability = True
        ACK_RANDOM_FACTOR = 1.0
        MAX_RETRANSMIT = 4
        # The retransmission span is ACK_TIMEOUT * (2 ** (MAX_RETRANSMIT + 1) - 1).
        ACK_TIMEOUT = (LIVENESS_PINGS - 0.5) * ping_interval / (2 ** (MAX_RETRANSMIT + 1) - 1)

    return NotificationTuning()


class NotifyResource(ApiResource):
    """The gate has checked a registration like any other request; what is left is its
    `action`, the observer limit, and the observation itself."""

    rt = "t7470.notify"
    admission = Admission(queries={"GET": ("action",)})

    def __init__(self, api: Api, hub: Hub, backlogs: Backlogs) -> None:
        super().__init__(api)
        self.hub = hub
        self.backlogs = backlogs
        self.tuning = notification_tuning(hub.ping_interval)

    def get_link_description(self) -> dict[str, Any]:
        link: dict[str, Any] = super().get_link_description()  # type: ignore[no-untyped-call]
        return {**link, "obs": None}

    def _with_sessions(self, request: Message) -> bool:
        action = query(request).get("action")
        if action not in (None, "get_sessions"):
            raise Invalid("action must be get_sessions", "action")
        return action == "get_sessions"

    async def render_get(self, request: Message) -> Message:
        """A plain GET (no Observe) answers what a registration would get first."""
        if self._with_sessions(request):
            await self.engine.catch_up()
            return self.answers.respond(
                request,
                sessions=self.answers.active_sessions(),
                statistics=self.answers.statistics(),
            )
        return self.answers.respond(request, ping={})

    async def render_to_pipe(self, pipe: Pipe) -> None:
        request = pipe.request
        block2 = request.opt.block2
        later_block = block2 is not None and block2.block_number > 0  # of a plain GET's answer
        if request.opt.observe != 0 or request.code != Code.GET or later_block:
            await super().render_to_pipe(pipe)
            return
        try:
            with_sessions = self._with_sessions(request)
        except Invalid as e:
            pipe.add_response(
                self.answers.error(request, Code.BAD_REQUEST, e.message, e.field), True
            )
            return
        # the limit is checked once nothing is awaited before the subscription: registrations
        # waiting out a whole-state operation together would otherwise all pass it
        await self.engine.catch_up()
        if len(self.hub.observers) >= self.hub.max_observers:
            pipe.add_response(
                self.answers.error(
                    request,
                    Code.SERVICE_UNAVAILABLE,
                    f"too many observers (at most {self.hub.max_observers})",
                    None,
                ),
                True,
            )
            return
        ct = response_format(request)
        remote = request.remote
        # RFC 7959 §2.6: a block size asked for in the registration holds for every notification
        size_exponent = remote.maximum_block_size_exp
        if block2 is not None:
            size_exponent = min(size_exponent, block2.size_exponent)
        block_size = min(remote.maximum_payload_size, 2 ** (size_exponent + 4))
        observer = self.hub.subscribe(str(remote.hostinfo), with_sessions)
        why = "ended (deregistered, reset, or its notifications went unacknowledged)"
        try:
            sequence = 0
            while True:
                note = await observer.next()
                if note is None:
                    if observer.ending:
                        why = "told the transmitter goes away"
                        self._final(pipe, observer)
                    else:
                        why = "dropped in a power cycle"
                    return
                payload = note.payload(ct)
                fetched: Awaitable[None] | None = None
                if len(payload) <= block_size:
                    response = Message(code=Code.CONTENT, payload=payload, content_format=ct)
                else:
                    # another observation of this peer's list is being fetched: after it
                    while (other := self.api.block2.fetching(self, request)) is not None:
                        await _unless_leaving(observer, other)
                        if observer.leaving.is_set():
                            break
                    if observer.leaving.is_set():
                        continue
                    whole = Message(code=Code.CONTENT, payload=payload, content_format=ct)
                    response, fetched = self.api.block2.first_block(
                        self, request, whole, size_exponent
                    )
                response.opt.observe = sequence
                response.transport_tuning = self.tuning
                pipe.add_response(response, is_last=False)
                observer.sent += 1
                sequence = (sequence + 1) % OBSERVE_MODULO
                if fetched is not None:
                    await _unless_leaving(observer, fetched)
                if self.backlogs.waiting(remote):
                    await _unless_leaving(observer, self.backlogs.drained(remote))
        finally:
            self.hub.unsubscribe(observer, why)

    def _final(self, pipe: Pipe, observer: Observer) -> None:
        """Send the 5.03 that ends the observation; `observer.delivered` is done once it is
        acknowledged or given up. Nothing may be awaited after it: the pipe is over, and
        with it this task."""
        request = pipe.request
        final = self.answers.error(request, Code.SERVICE_UNAVAILABLE, GOING_AWAY, None)
        final.transport_tuning = FinalTuning()
        pipe.add_response(final, is_last=True)
        observer.delivered = asyncio.ensure_future(self.backlogs.idle(request.remote))


async def _unless_leaving(observer: Observer, waiting: Awaitable[None]) -> None:
    """Wait for `waiting`, or until the observer is forgotten or to be told the transmitter
    goes away: a client that never fetches the rest of a notification, or never
    acknowledges, must not hold that up."""
    work = asyncio.ensure_future(waiting)
    leaving = asyncio.ensure_future(observer.leaving.wait())
    try:
        await asyncio.wait((work, leaving), return_when=asyncio.FIRST_COMPLETED)
    finally:
        work.cancel()
        leaving.cancel()
