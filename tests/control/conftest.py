"""Shared by the control tests: an emulator with its HTTP control API on (127.0.0.1, ephemeral
ports, its own store), a real HTTP client for that API and a real aiocoap client."""

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiocoap
import aiohttp
import pytest

from pager.app import Emulator
from tests.conftest import Client, make_config

T0 = datetime(2026, 3, 15, 11, 55, 20)


def ts(t: datetime | float = 0) -> str:
    """The transmitter's text for `t`, or for T0 plus `t` seconds."""
    if not isinstance(t, datetime):
        t = T0 + timedelta(seconds=t)
    return t.isoformat(timespec="seconds")


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")


class Http:
    """The control API over real HTTP; every answer must be JSON."""

    def __init__(self, session: aiohttp.ClientSession):
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | None = None,
        params: dict | None = None,
        headers: dict | None = None,
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if raw is not None:
            kwargs["data"] = raw.encode("utf-8", "surrogatepass")
            kwargs["headers"]["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, path, params=params, **kwargs) as r:
            text = await r.text()
            assert r.content_type == "application/json", (r.status, r.content_type, text)
            return r.status, json.loads(text)

    async def _ok(self, method: str, path: str, body: Any = None, status: int = 200, **kw) -> Any:
        got, answer = await self.request(method, path, body, **kw)
        assert got == status, (method, path, got, answer)
        return answer

    async def get(self, path: str, **kw) -> Any:
        return await self._ok("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw) -> Any:
        return await self._ok("POST", path, body, **kw)

    async def delete(self, path: str, **kw) -> Any:
        return await self._ok("DELETE", path, **kw)


@dataclass
class Rig:
    emu: Emulator
    http: Http
    coap: Client


@pytest.fixture
async def rig(tmp_path, config_overrides) -> Rig:
    config = make_config(tmp_path / "pager.db", control=True, control_port=0, **config_overrides)
    async with Emulator(config) as emu:
        assert emu.control_port
        context = await aiocoap.Context.create_client_context()
        try:
            async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as session:
                yield Rig(emu, Http(session), Client(context, emu.port))
        finally:
            await context.shutdown()


@pytest.fixture
async def frozen(rig) -> Rig:
    """The rig with its clock frozen at T0, through the control API."""
    await rig.http.post("/clock/freeze")
    assert await rig.http.post("/clock/set", {"datetime": ts()}) == {
        "now": ts(),
        "frozen": True,
        "speed": 1.0,
    }
    return rig


async def no_answer(port: int, path: str, timeout: float = 0.5, method=aiocoap.GET) -> bool:
    """Whether a NON request to `path` goes unanswered for `timeout` seconds (own context)."""
    context = await aiocoap.Context.create_client_context()
    try:
        msg = aiocoap.Message(
            code=method, uri=f"coap://127.0.0.1:{port}{path}", transport_tuning=aiocoap.Unreliable
        )
        try:
            await asyncio.wait_for(context.request(msg).response, timeout)
        except TimeoutError:
            return True
        return False
    finally:
        await context.shutdown()
