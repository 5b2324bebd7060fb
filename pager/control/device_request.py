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
from aiocoap.numbers.contentformat import ContentFormat

TIMEOUT = 10.0  # seconds for an answer: a dropped request retransmits within it, twice
BODY_MAX = 64 * 1024  # bytes of JSON; the device refuses far less (4.13), which is shown
_LOOPBACK = {"::": "::1", "0.0.0.0": "127.0.0.1", "": "127.0.0.1"}


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
        host = _LOOPBACK.get(host, host)
        message = aiocoap.Message(
            code=getattr(aiocoap.Code, method),
            uri=f"coap://{'[' + host + ']' if ':' in host else host}:{port}",
            payload=payload,
        )
        message.opt.uri_path = tuple(path.split("/")[1:])
        message.opt.uri_query = tuple(options)
        if payload:
            message.opt.content_format = ContentFormat.JSON
        context = await self._client()
        request = context.request(message)
        try:
            answer = await asyncio.wait_for(request.response, TIMEOUT)
        except TimeoutError:
            raise DeviceTimeout(
                f"no answer from the transmitter within {TIMEOUT:g} s to {method} {path}"
            ) from None
        return answer.code.dotted, _decoded(answer.payload)

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
