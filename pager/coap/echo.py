"""Optional amplification protection with the Echo option (RFC 7252 §11.3, RFC 9175 §2.4).

A CoAP server answering spoofed requests can be used to flood their supposed sender with
answers much larger than the requests. When `amplification_protection` is on, a peer that
has not proven it receives at its address gets, for any request, only a 4.01 with an Echo
value (a few bytes, well under 3x any request) and nothing is processed; repeating the request
with that Echo proves the address for `VERIFIED_SECONDS`. Off by default: the device's
documented clients (node-coap) do not handle Echo. libcoap's coap-client and clients that
implement RFC 9175 repeat the request by themselves.

The Echo value is stateless (a timestamp and an HMAC of the peer's address), so unverified
peers cost no memory; proven addresses are kept in a bounded table.
"""

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable

ECHO_VALID_SECONDS = 60
VERIFIED_SECONDS = 300
MAX_VERIFIED = 10_000


class AddressCheck:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._secret = os.urandom(32)
        self._verified: dict[str, float] = {}  # peer -> proven until
        self.clock = clock

    def _mac(self, peer: str, stamp: int) -> bytes:
        return hmac.new(self._secret, f"{peer}|{stamp}".encode(), hashlib.sha256).digest()[:8]

    def challenge(self, peer: str) -> bytes:
        stamp = int(self.clock())
        return struct.pack(">I", stamp & 0xFFFFFFFF) + self._mac(peer, stamp)

    def admit(self, peer: str, echo: bytes | None) -> bool:
        """Whether `peer` has proven its address (now or recently)."""
        now = self.clock()
        if self._verified.get(peer, 0) > now:
            return True
        if echo is None or len(echo) != 12:
            return False
        (stamp,) = struct.unpack(">I", echo[:4])
        if not 0 <= now - stamp <= ECHO_VALID_SECONDS:
            return False
        if not hmac.compare_digest(echo[4:], self._mac(peer, stamp)):
            return False
        if len(self._verified) >= MAX_VERIFIED:
            del self._verified[next(iter(self._verified))]
        self._verified[peer] = now + VERIFIED_SECONDS
        return True
