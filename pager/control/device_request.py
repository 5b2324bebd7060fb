"""Requests to the device API sent by the control API itself, over CoAP (`POST /device-request`).

The pager wall's page, clear and remove buttons must act as a client of the transmitter
does, so that what they do is committed, notified to observers, journaled and subject to
the faults set, like any client's request: a shortcut into the engine would skip all of
that. So they go out as real Confirmable requests from an aiocoap client context of the
emulator's own, to its own CoAP endpoint. The context is made at the first request (most
emulators never get one) and closed when the emulator stops.
"""

import asyncio
import json
from typing import Any

import aiocoap
from aiocoap.error import NetworkError
from aiocoap.numbers import TransportTuning
from aiocoap.numbers.contentformat import ContentFormat

TIMEOUT = 10.0  # seconds for an answer: a dropped request retransmits within it, twice
BODY_MAX = 64 * 1024  # bytes of JSON; the device refuses far less (4.13), which is shown
# bytes of path and query as CoAP options: they are repeated in every block of a block-wise
# request and must fit in one datagram with it (RFC 7252 4.6: 1152 bytes when nothing is
# known of the path); what is over aiocoap cannot send, and its client context is left
# unusable for every request after it
OPTIONS_MAX = 1024
_LOOPBACK = {"::": "::1", "0.0.0.0": "127.0.0.1", "": "127.0.0.1"}


class _Retransmissions(TransportTuning):
    """A request's retransmissions end before `TIMEOUT` (within 9.8 s, not the default's
    93 s). aiocoap's client has one exchange at a time with a peer (NSTART 1), and giving up
    on the answer does not end its exchange: one request a fault dropped held every request
    after it, each a 504 in turn, until its retransmissions ran out."""

    ACK_TIMEOUT = 1.0
    ACK_RANDOM_FACTOR = 1.4
    MAX_RETRANSMIT = 2


class DeviceTimeout(Exception):
    """The transmitter sent no answer in time (powered off, a fault dropped it)."""


class BadDeviceRequest(ValueError):
    pass


class DeviceRequests:
    def __init__(self) -> None:
        self._context: aiocoap.Context | None = None
        self._starting: asyncio.Lock = asyncio.Lock()

    async def _client(self) -> aiocoap.Context:
        async with self._starting:
            if self._context is None:
                self._context = await aiocoap.Context.create_client_context()
            return self._context

    async def send(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        query: dict[str, str | int] | None,
        body: Any,
    ) -> tuple[str, Any]:
        """(the answer's dotted code, its payload as JSON or None)."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        if len(payload) > BODY_MAX:
            raise BadDeviceRequest(f"body: at most {BODY_MAX} bytes of JSON, not {len(payload)}")
        options = []
        for name, value in (query or {}).items():
            if not name or "=" in name:
                raise BadDeviceRequest(f"query: {name!r} is not a query parameter name")
            options.append(f"{name}={value}")
        segments = path.split("/")[1:]
        size = sum(len(o.encode()) for o in (*segments, *options))
        if size > OPTIONS_MAX:
            raise BadDeviceRequest(
                f"path and query: at most {OPTIONS_MAX} bytes as CoAP options, not {size}"
            )
        host = _LOOPBACK.get(host, host)
        uri = f"coap://{'[' + host + ']' if ':' in host else host}:{port}"

        def message(echo: bytes | None = None) -> aiocoap.Message:
            request = aiocoap.Message(
                code=getattr(aiocoap.Code, method),
                uri=uri,
                payload=payload,
                transport_tuning=_Retransmissions(),
            )
            request.opt.uri_path = tuple(segments)
            request.opt.uri_query = tuple(options)
            if payload:
                request.opt.content_format = ContentFormat.JSON
            request.opt.echo = echo
            return request

        answer = await self._exchange(message(), method, path)
        if answer.code == aiocoap.UNAUTHORIZED and answer.opt.echo is not None:
            # amplification protection (RFC 9175 2.4): nothing was done; the same request
            # with the Echo value proves the address, as libcoap's client does by itself
            answer = await self._exchange(message(answer.opt.echo), method, path)
        assert answer.code is not None  # an answer always has one
        return answer.code.dotted, _decoded(answer.payload)

    async def _exchange(self, message: aiocoap.Message, method: str, path: str) -> aiocoap.Message:
        context = await self._client()
        try:
            return await asyncio.wait_for(context.request(message).response, TIMEOUT)
        except (TimeoutError, NetworkError):  # NetworkError: aiocoap gave up retransmitting
            raise DeviceTimeout(
                f"no answer from the transmitter within {TIMEOUT:g} s to {method} {path}"
            ) from None

    async def close(self) -> None:
        async with self._starting:
            if self._context is not None:
                await self._context.shutdown()
                self._context = None


def _decoded(payload: bytes) -> Any:
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None
