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


class Exchange(Protocol):
    """One request the seam let through to aiocoap, waiting for its first answer."""

    def answered(self, datagram: bytes, held: float | None) -> None:
        """Its answer, as sent, leaves `held` seconds from now (0 at once, more when a fault
        holds it back; None: it is not sent at all, lost on its way out)."""
        ...


class Exchanges(Protocol):
    """Told of every request that reaches the server, on the loop, before aiocoap acts on it."""

    def arrived(
        self, datagram: bytes, peer: Any, duplicate: bool, cached: bytes | None
    ) -> Exchange:
        """A request came in from `peer` (its socket address). `duplicate`: a retransmission
        of one seen within the deduplication window, which aiocoap answers with `cached` (the
        answer sent before, or None while that is not ready: no answer), and which goes no
        further."""
        ...

    def lost(self, datagram: bytes, peer: Any) -> None:
        """A request came in and was dropped before aiocoap read it (a fault)."""
        ...

    def passed(self) -> None:
        """A message that is no exchange's answer (a notification, a re-sent answer) went
        past the datagram filter: a fault that acted on it marks no exchange."""
        ...
