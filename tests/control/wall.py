"""A reader of the pager wall's stream (`GET /events`) for the tests: the server-sent events
parsed as the page parses them, with a deadline on every wait."""

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp


class Events:
    def __init__(self, response: aiohttp.ClientResponse):
        self.response = response
        self.comments: list[str] = []

    async def next(self, timeout: float = 5) -> tuple[str, Any]:
        """The next event (name, data); comments are kept in `comments`."""
        name, data = "message", []
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\n")
                if line == "":
                    if data:
                        return name, json.loads("\n".join(data))
                    continue
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))

    async def until(
        self, name: str, where: Callable[[Any], bool] = lambda d: True, timeout: float = 5
    ) -> Any:
        """The data of the first event `name` for which `where` holds, within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            got, data = await self.next(max(0.0, deadline - time.monotonic()))
            if got == name and where(data):
                return data

    async def ended(self, timeout: float = 5) -> bool:
        """Whether the stream ends (cleanly: the body's end, not an error) within `timeout`,
        whatever events come before."""
        async with asyncio.timeout(timeout):
            while await self.response.content.readline():
                pass
        return self.response.content.at_eof()
