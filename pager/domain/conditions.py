"""Conditional requests on one session (RFC 7252 §5.10.8) and the ETag they compare.

A condition is checked inside the operation that changes the session, against the state the
change is computed on: the check and the change are one step, so of two requests made on the
same ETag the one computed second sees the first one's change and fails, even while the first
is still waiting for its commit.
"""

import struct
import zlib
from dataclasses import dataclass

from pager.domain.errors import PreconditionFailed
from pager.domain.model import Archived, Session


def session_etag(item: Session | Archived) -> bytes:
    """8 bytes: a CRC-32 of the session's uuid, then its sessionSequence.

    Every change of a session gives it the next global sequence number, so the ETag changes
    with each change and no two sessions, nor two states of one, share one. A factory reset
    starts the sequence again; the uuid part keeps an ETag from before it from matching a
    session created after it. The same in JSON and CBOR: it names the session's state, and
    a client may read in one format and change in the other."""
    s = item.session if isinstance(item, Archived) else item
    return struct.pack(">II", zlib.crc32(s.uuid.encode()), s.sequence & 0xFFFFFFFF)


@dataclass(frozen=True)
class Conditions:
    """`if_match`: the If-Match values, none when absent; an empty value means "the session
    exists". `if_none_match`: "only if there is no active session"."""

    if_match: tuple[bytes, ...] = ()
    if_none_match: bool = False

    def check(self, number: int, session: Session | None) -> None:
        if self.if_match:
            if session is None:
                raise PreconditionFailed(
                    f"If-Match: there is no active session for number {number}"
                )
            etag = session_etag(session)
            if b"" not in self.if_match and etag not in self.if_match:
                raise PreconditionFailed(
                    f"If-Match: the session for number {number} is at ETag {etag.hex()}, "
                    "which the request does not name: it has changed since"
                )
        if self.if_none_match and session is not None:
            raise PreconditionFailed(
                f"If-None-Match: number {number} has an active session "
                f"(ETag {session_etag(session).hex()})"
            )


UNCONDITIONAL = Conditions()
