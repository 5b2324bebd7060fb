"""Something told of each exchange a client starts: the CoAP layer's side of a request journal.

The CoAP layer must not know the test rig (`pager.control`), yet the rig's journal must see
every request as it came and every answer as it left, the ones no resource ever saw
included: a retransmission answered from the deduplication cache, a request a fault dropped,
an answer a fault held back. Only the seam sees all of those, at the datagram, so it tells an
`Exchanges` of each, and the app hands it the journal.

What the seam hands over is what it has at hand anyway: the datagram as received (the bytes
aiocoap decodes), the peer's socket address, and the answer's datagram as it was sent. Nothing
is decoded, formatted or copied for this on the way; whoever keeps them does that when asked.
Notifications are not exchanges a client started and are not reported; a datagram the seam
refuses as malformed (`seam.datagrams.admit`) never became a request and is not either.
"""

from typing import Any, Protocol


class Exchanges(Protocol):
    """Told of every request that reaches the server, on the loop, before aiocoap acts on it,
    and of its first answer. What `arrived` gives back is that request's exchange, for the
    seam to hand back with the answer: the seam keeps it and knows nothing of it."""

    def arrived(self, datagram: bytes, peer: Any, duplicate: bool, mark: object) -> Any:
        """A request from `peer` (its socket address) is read into aiocoap. `duplicate`: a
        retransmission of one seen within the deduplication window, which goes no further:
        its answer is the one sent before, sent again at once, or none (not ready yet, or a
        NON). `mark`: what `undelivered` gave for it, if the filter held it back."""
        ...

    def answered(self, exchange: Any, datagram: bytes, leaving: bool) -> None:
        """The exchange's first answer, as aiocoap sends it; `leaving`: it leaves now, else
        it may yet be held back or lost (`left` tells when it leaves)."""
        ...

    def left(self, exchange: Any) -> None:
        """That answer leaves now (told again for a copy of it: the first time counts)."""
        ...

    def marked(self, exchange: Any) -> None:
        """A fault may have acted on the exchange's answer just handed to the datagram
        filter."""
        ...

    def undelivered(self, datagram: bytes, peer: Any) -> object:
        """A request came in that the datagram filter did not deliver at once: lost (a fault
        dropped it, or a power cycle), or held back, to be delivered later; what to hand to
        `arrived` then."""
        ...

    def passed(self) -> None:
        """A message that is no exchange's (a notification, a re-sent answer, no request at
        all) went past the datagram filter: a fault that acted on it marks no exchange."""
        ...
