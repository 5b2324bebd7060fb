"""Assembles clock, store, engine, site and server into one running emulator."""

import asyncio
import contextlib
import logging
from pathlib import Path

import aiocoap

from pager import wire
from pager.clock import Clock
from pager.coap.base import Api
from pager.coap.dedup import bound_deduplication
from pager.coap.site import build_site
from pager.config import Config
from pager.domain.operations import DeviceConfig
from pager.domain.rules import Limits
from pager.engine import Engine
from pager.notify import Hub
from pager.store import Store

log = logging.getLogger("pager")

TICK_SECONDS = 1.0  # how often time-driven changes (auto-page, daily clear) are looked for


class Emulator:
    """One emulated transmitter: `async with Emulator(config) as emu:` or start()/stop()."""

    def __init__(self, config: Config, clock: Clock | None = None):
        self.config = config
        self.clock = clock or Clock()
        self.engine: Engine | None = None
        self.port: int | None = None
        self._context: aiocoap.Context | None = None
        self.hub: Hub | None = None
        self._tasks: list[asyncio.Task] = []

    @property
    def db_path(self) -> Path:
        return Path(self.config.db).resolve()

    async def start(self) -> "Emulator":
        c = self.config
        store = await Store.open(self.db_path, c.history_limit)
        try:
            device = DeviceConfig(Limits(c.number_min, c.number_max), frozenset(c.staff_pagers),
                                  c.auto_page_at_goal)
            self.engine = await Engine.load(store, self.clock, device)
            identity = wire.Identity(c.device_name, c.firmware_version)
            self.hub = Hub(self.engine, identity, c.ping_interval)
            self._context = await aiocoap.Context.create_server_context(
                build_site(Api(self.engine, identity, c.strict), self.hub),
                bind=(c.host, c.port), transports=["udp6"],
            )
        except BaseException:
            await store.close()
            raise
        bound_deduplication(self._context, c.dedup_max_entries)
        self.port = _bound_port(self._context) or c.port
        self._tasks = [asyncio.create_task(self._tick()), asyncio.create_task(self.hub.run_pings())]
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._context is not None:
            await self._context.shutdown()
        if self.engine is not None:
            await self.engine.close()
            await self.engine.store.close()

    async def __aenter__(self) -> "Emulator":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.engine.catch_up()
            except Exception:
                log.exception("time-driven update failed; will retry")


def _bound_port(context: aiocoap.Context) -> int | None:
    """The UDP port actually bound, so that port 0 (any free port) can be reported.

    aiocoap has no public accessor for it; this walks its transport stack.
    """
    for interface in context.request_interfaces:
        transport = getattr(getattr(getattr(interface, "token_interface", None),
                                    "message_interface", None), "transport", None)
        if transport is not None:
            return transport.get_extra_info("socket").getsockname()[1]
    return None
