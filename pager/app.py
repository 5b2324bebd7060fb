"""Assembles clock, store, engine, site and server into one running emulator."""

import asyncio
import contextlib
import errno
import logging
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiocoap
from aiocoap.error import ResolutionError
from aiohttp import web
from yarl import URL

from pager import wire
from pager.clock import Clock
from pager.coap import seam
from pager.coap.base import Api
from pager.coap.site import build_site
from pager.config import Config
from pager.control import http as control_http
from pager.control.device_request import DeviceRequests
from pager.control.faults import FaultInjector
from pager.control.journal import Journal
from pager.control.rig import PagerBoard, RigControls, RigParts
from pager.control.wall_stream import WallStream
from pager.domain import operations as ops
from pager.domain.model import State
from pager.domain.operations import DeviceRules, SettingsPatch, update_settings
from pager.domain.pagemodes import Transmission
from pager.domain.rules import Limits
from pager.engine import Engine
from pager.hub import Hub
from pager.lrsn import server as lrsn
from pager.store import Store, StoreUnavailable

log = logging.getLogger("pager")

TICK_SECONDS = 1.0  # how often time-driven changes (auto-page, daily clear) are looked for


class StartupError(Exception):
    """An address the emulator must listen on is taken or unusable."""


def _cannot_listen(kind: str, host: str, port: int, error: Exception) -> str:
    if getattr(error, "errno", None) == errno.EADDRINUSE:
        return (
            f"{kind} port {port} on {host} is already in use (by another emulator or "
            "another program); one emulator per port"
        )
    reason = getattr(error, "strerror", None) or error
    return f"cannot listen on {kind} port {port} on {host}: {reason}"


class Emulator(RigControls):
    """One emulated transmitter with its test-rig controls.

    `async with Emulator() as emu:` starts one for a test: 127.0.0.1, ephemeral ports (CoAP
    and LRSN, `emu.lrsn_address`), a store in a temporary directory, no HTTP control server
    (the controls are methods here); keyword arguments override those settings. Pass a
    `Config` for anything else, and a `Clock` to control time from the test.
    """

    def __init__(
        self, config: Config | None = None, clock: Clock | None = None, **overrides: Any
    ) -> None:
        super().__init__()
        # Made by `start` (a constructor creates nothing), removed by `stop`.
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._temporary_store = config is None and "db" not in overrides
        if config is None:
            config = Config(
                **{"host": "127.0.0.1", "port": 0, "lrsn_port": 0, "control": False, **overrides}
            )
        elif overrides:
            config = config.model_copy(update=overrides)
        self.config = config
        self.clock = clock or Clock()
        self.engine: Engine | None = None
        self.hub: Hub | None = None
        self.faults = FaultInjector()
        self._journal = Journal(self.clock, config.journal_limit, config.journal_bytes)
        if config.journal:
            self.faults.acted = self._journal.acted
        self.pagers = PagerBoard({})
        self._wall = WallStream(self, self._journal if config.journal else None)
        self.faults.changed = self._wall.faults_changed
        self._device_requests = DeviceRequests()
        self.port: int | None = None
        self.control_port: int | None = None
        self._store: Store | None = None
        self._context: aiocoap.Context | None = None
        self.api: Api | None = None
        self._control: web.AppRunner | None = None
        self._lrsn: lrsn.LrsnServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def db_path(self) -> Path:
        return Path(self.config.db).resolve()

    @property
    def uri(self) -> str:
        # yarl writes an IPv6 host in brackets, which aiocoap needs ("coap://[::1]:5683")
        return str(URL.build(scheme="coap", host=self.config.host, port=self.port))

    @property
    def _control_uri(self) -> str | None:
        if self.control_port is None:
            return None
        return str(URL.build(scheme="http", host=self.config.control_host, port=self.control_port))

    async def start(self) -> "Emulator":
        """Start serving. A start that fails at any step is undone before the error is
        raised: no store left open, no port bound, no task running."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start(self) -> None:
        if self._temporary_store:
            self._tempdir = tempfile.TemporaryDirectory(prefix="pager-emulator-")
            db = str(Path(self._tempdir.name) / "pager.db")
            self.config = self.config.model_copy(update={"db": db})
        c = self.config
        self._store = store = await Store.open(
            self.db_path, c.history_limit, seam.DEDUP_WINDOW, c.dedup_max_entries
        )
        device = DeviceRules(
            Limits(c.number_min, c.number_max), frozenset(c.staff_pagers), c.auto_page_at_goal
        )
        self.engine = await Engine.load(store, self.clock, device)
        if store.created and c.system_id is not None:
            patch = SettingsPatch(system_id=c.system_id)
            await self.engine.run(lambda st, now: update_settings(st, patch, now))
        self.pagers.latest.update(await store.latest_transmissions())
        self.engine.listeners.append(self.pagers.on_change)
        identity = wire.Identity(c.device_name, c.firmware_version)
        self.hub = Hub(
            self.engine, identity, c.ping_interval, c.max_observers, c.observer_queue_limit
        )
        self.engine.listeners.append(self.hub.publish)
        self.engine.listeners.append(self._wall.on_change)
        receipts = await store.receipts()
        self.backlogs = backlogs = seam.Backlogs()
        self.api = Api.create(
            self.engine, identity, c.strict, c.max_block_transfers, c.max_block_transfer_bytes
        )
        site = build_site(self.api, self.hub, backlogs, self.faults, c.amplification_protection)
        try:
            self._context = await seam.ServerContext.create_exclusive(site, (c.host, c.port))
        except (OSError, ResolutionError) as e:
            raise StartupError(_cannot_listen("udp", c.host, c.port, e)) from e
        seam.install(
            self._context,
            dedup_max_entries=c.dedup_max_entries,
            receipts=receipts,
            backlogs=backlogs,
            blockwise=self.api.block2,
            datagram_filter=self.faults,
            exchanges=self._journal if c.journal else None,
        )
        self.port = seam.bound_port(self._context)
        if c.lrsn:
            await self._start_lrsn(self.engine)
        self._tasks = [asyncio.create_task(self._tick()), asyncio.create_task(self.hub.run_pings())]
        self._attach(
            RigParts(
                self.engine,
                self.hub,
                self.faults,
                self.pagers,
                self.api.block2,
                self._journal,
                self._wall,
                self._device_requests,
                self._lrsn,
            )
        )
        if c.control:
            try:
                await self._start_control()
            except OSError as e:
                raise StartupError(
                    _cannot_listen("control", c.control_host, c.control_port, e)
                ) from e

    async def _start_lrsn(self, engine: Engine) -> None:
        c = self.config
        host = c.host if c.lrsn_host is None else c.lrsn_host

        async def page(request: ops.PageRequest, wanted: Callable[[], bool]) -> Transmission:
            def operation(st: State, now: datetime) -> ops.Outcome:
                if not wanted():
                    raise lrsn.Gone
                return ops.page(st, request, now, engine.config)

            outcome = await engine.run(operation)
            return outcome.transmitted

        settings = lrsn.Settings(
            host=host,
            port=c.lrsn_port,
            device=c.device_name,
            swver=c.firmware_version,
            serno=c.lrsn_serial,
            user=c.lrsn_user,
            passwd=c.lrsn_password,
            max_clients=c.lrsn_max_clients,
            heartbeat_interval=c.lrsn_heartbeat_interval,
        )
        journal = self._journal if c.journal else None
        server = lrsn.LrsnServer(settings, page, self.faults, journal)
        try:
            await server.start()
        except OSError as e:
            raise StartupError(_cannot_listen("lrsn tcp", host, c.lrsn_port, e)) from e
        self._lrsn = server

    async def _start_control(self) -> None:
        self._control = control_http.runner(self, self.config.control_token)
        await self._control.setup()
        site = web.TCPSite(self._control, self.config.control_host, self.config.control_port)
        await site.start()
        self.control_port = self._control.addresses[0][1]

    async def stop(self) -> None:
        """Stop serving and let go of the ports and the store; this also undoes a partial
        start, and stopping again does nothing. Every observer gets its final notification
        first (within `hub.END_WAIT`), and every rig waiting for a page is told it stopped."""
        self.pagers.end()
        self._wall.end()
        if self._control is not None:
            await self._wall.ended()
            await self._control.cleanup()
            self._control = None
        await self._device_requests.close()
        self._attach(None)
        if self._lrsn is not None:
            await self._lrsn.close()
            self._lrsn = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._context is not None:
            if self.hub is not None:  # spec §8: observers are told before the transport closes
                await self.hub.end_all()
            self.faults.close()  # nothing held may leave on the closed transport
            await self._context.shutdown()
            self._context = None
        if self._store is not None:
            if self.engine is not None:
                await self.engine.close()
            await self._store.close()
            self._store = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    async def __aenter__(self) -> "Emulator":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self._rig.engine.catch_up()
            except StoreUnavailable as e:
                log.warning("time-driven update failed, will retry: %s", e)
            except Exception:
                log.exception("time-driven update failed; will retry")
