"""The seam to aiocoap: every hook listed, installed, and checked before it is installed.

A hook whose target a new aiocoap renamed or retyped must stop the emulator at startup with
a SeamError naming the hook and the aiocoap version, and leave nothing behind."""

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiocoap
import aiocoap.blockwise
import aiocoap.meta
import aiocoap.pipe
import pytest
from aiocoap import resource
from aiocoap.messagemanager import MessageManager
from aiocoap.tokenmanager import TokenManager
from aiocoap.transports.udp6 import MessageInterfaceUDP6, UDP6EndpointAddress
from aiocoap.util.asyncio.recvmsg import RecvmsgSelectorDatagramTransport

from pager.app import Emulator
from pager.coap import seam
from pager.coap.seam.blockwise import BoundedBlock2Cache, BoundedTimeoutDict
from pager.coap.seam.context import _ExclusiveUDP6
from pager.coap.seam.datagrams import Peer
from pager.coap.seam.dedup import RecentMessages
from tests.conftest import make_config
from tests.test_app import _free_udp_port, _serves, _tasks

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _stack(emulator: Emulator) -> tuple[Any, Any]:
    [(manager, udp)] = seam.hooks.udp_stacks(emulator._context)
    return manager, udp


def _bounded(emulator: Emulator, kind: type, attribute: Callable[[Any], Any]) -> bool:
    resources = emulator.api.block2.resources
    return len(resources) == 6 and all(isinstance(attribute(r), kind) for r in resources)


INSTALLED: dict[str, Callable[[Emulator], bool]] = {
    "exclusive-bind": lambda emu: isinstance(_stack(emu)[1], _ExclusiveUDP6),
    "udp-only-context": lambda emu: len(emu._context.request_interfaces) == 1,
    "render-task-name": lambda emu: (
        type(emu._context).render_to_pipe is not aiocoap.Context.render_to_pipe
    ),
    "udp-stack": lambda emu: seam.bound_port(emu._context) == emu.port,
    "dedup-table": lambda emu: isinstance(_stack(emu)[0]._recent_messages, RecentMessages),
    "dedup-timers": lambda emu: "dispatch_message" in vars(_stack(emu)[0]),
    "dedup-restore": lambda emu: isinstance(_stack(emu)[0]._recent_messages, RecentMessages),
    "backlog": lambda emu: _stack(emu)[0]._backlogs is emu.backlogs,
    "message-ids": lambda emu: "_next_message_id" in vars(_stack(emu)[0]),
    "send-errors": lambda emu: "sendmsg" in vars(_stack(emu)[1].transport),
    "datagram-in": lambda emu: "datagram_msg_received" in vars(_stack(emu)[1]),
    "peer-address-once": lambda emu: (
        issubclass(Peer, UDP6EndpointAddress) and "datagram_msg_received" in vars(_stack(emu)[1])
    ),
    "encode-once": lambda emu: isinstance(_stack(emu)[0]._recent_messages, RecentMessages),
    "datagram-out": lambda emu: "send" in vars(_stack(emu)[1]),
    "exchange-record": lambda emu: emu.config.journal and "send" in vars(_stack(emu)[1]),
    "block1-spool": lambda emu: _bounded(emu, BoundedTimeoutDict, lambda r: r._block1._assemblies),
    "block2-cache": lambda emu: _bounded(emu, BoundedBlock2Cache, lambda r: r._block2),
    "block2-observed-token": lambda emu: "process_request" in vars(_stack(emu)[0].token_manager),
    "request-cycle": lambda emu: _wraps(_stack(emu)[0].token_manager.process_request, "cycles"),
}


def _wraps(function: Any, module: str) -> bool:
    """Whether `function` is, or wraps (as a free variable), a function of seam's `module`."""
    inner = [function, *(c.cell_contents for c in function.__closure__ or ())]
    return any(getattr(f, "__module__", "") == f"pager.coap.seam.{module}" for f in inner)


def _after_init(monkeypatch: pytest.MonkeyPatch, cls: type, spoil: Callable[[Any], None]) -> None:
    """Instances of `cls` made from now on are spoiled by `spoil` once initialised."""
    init = cls.__init__

    def spoiled(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        spoil(self)

    monkeypatch.setattr(cls, "__init__", spoiled)


def _no_socket(self: Any, name: str, default: Any = None) -> Any:
    return default


def _sends_unfiled(self: Any, message: Any, messageerror_monitor: Any = None) -> None:
    self._send_via_transport(message)


def _not_a_coroutine(self: Any, request: Any, builder: Any) -> None:
    return None


BREAK: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "exclusive-bind": lambda m: m.delattr(MessageInterfaceUDP6, "_create_transport_endpoint"),
    "udp-only-context": lambda m: m.delattr(
        aiocoap.Context, "_append_tokenmanaged_messagemanaged_transport"
    ),
    "render-task-name": lambda m: m.setattr(
        aiocoap.pipe, "run_driving_pipe", lambda pipe, coroutine: None
    ),
    "udp-stack": lambda m: m.setattr(
        RecvmsgSelectorDatagramTransport, "get_extra_info", _no_socket
    ),
    "dedup-table": lambda m: _after_init(
        m, MessageManager, lambda mm: setattr(mm, "_recent_messages", [])
    ),
    "dedup-timers": lambda m: _after_init(
        m, MessageManager, lambda mm: setattr(mm, "dispatch_message", None)
    ),
    "dedup-restore": lambda m: m.setattr(UDP6EndpointAddress, "__hash__", lambda self: 0),
    "backlog": lambda m: _after_init(m, MessageManager, lambda mm: setattr(mm, "_backlogs", [])),
    "message-ids": lambda m: _after_init(
        m, MessageManager, lambda mm: setattr(mm, "message_id", None)
    ),
    "send-errors": lambda m: _after_init(
        m, MessageInterfaceUDP6, lambda udp: setattr(udp, "_remote_being_sent_to", None)
    ),
    "datagram-in": lambda m: m.setattr(
        MessageInterfaceUDP6, "datagram_msg_received", lambda self, data: None
    ),
    "peer-address-once": lambda m: m.setattr(UDP6EndpointAddress, "is_multicast_locally", 0),
    "encode-once": lambda m: m.setattr(MessageManager, "_send_initially", _sends_unfiled),
    "datagram-out": lambda m: m.setattr(MessageInterfaceUDP6, "send", None),
    "exchange-record": lambda m: m.delattr(aiocoap.Message, "request"),
    "block1-spool": lambda m: _after_init(
        m, aiocoap.blockwise.Block1Spool, lambda spool: setattr(spool, "_assemblies", {})
    ),
    "block2-cache": lambda m: m.setattr(
        aiocoap.blockwise.Block2Cache, "extract_or_insert", _not_a_coroutine
    ),
    "block2-observed-token": lambda m: _after_init(
        m, TokenManager, lambda tm: setattr(tm, "context", None)
    ),
    "request-cycle": lambda m: m.setattr(TokenManager, "process_request", lambda self, r: None),
}

NAMES = [hook.name for hook in seam.HOOKS]


def test_every_hook_is_listed_with_its_reason_and_upstream_issue():
    assert len(set(NAMES)) == len(NAMES)
    assert set(INSTALLED) == set(BREAK) == set(NAMES)
    for hook in seam.HOOKS:
        assert hook.target and hook.changes and hook.reason
        assert hook.upstream == "none filed" or re.fullmatch(r"aiocoap #\d+", hook.upstream)


async def test_every_hook_is_installed_on_a_started_emulator(emulator):
    assert {name: INSTALLED[name](emulator) for name in NAMES} == dict.fromkeys(NAMES, True)


@pytest.mark.parametrize("name", NAMES)
async def test_a_broken_target_stops_startup_naming_hook_and_version(
    name, db_path, coap_context, monkeypatch
):
    port = _free_udp_port()
    before = _tasks()
    with monkeypatch.context() as m:
        BREAK[name](m)
        emulator = Emulator(make_config(db_path, port=port))
        with pytest.raises(seam.SeamError) as raised:
            await emulator.start()
    assert raised.value.hooks == [name]
    assert f"hook {name} " in str(raised.value)
    assert f"aiocoap {aiocoap.meta.version} " in str(raised.value)
    assert emulator._store is None and emulator._context is None
    await asyncio.sleep(0)
    assert _tasks() <= before
    await _serves(db_path, port, coap_context, 0)  # the port and the store are free


def test_the_suite_runs_against_the_pinned_aiocoap():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    [pin] = [d for d in dependencies if d.startswith("aiocoap")]
    assert pin == f"aiocoap=={aiocoap.meta.version}" == "aiocoap==0.4.17"


async def test_install_on_a_fresh_context_passes_every_check():
    context = await seam.ServerContext.create_exclusive(resource.Site(), ("127.0.0.1", 0))
    try:
        blockwise = seam.Block2Transfers(1000, 10)
        blockwise.add(resource.Resource())
        seam.install(
            context,
            dedup_max_entries=100,
            receipts=(),
            backlogs=seam.Backlogs(),
            blockwise=blockwise,
        )
        [(_, udp)] = seam.hooks.udp_stacks(context)
        assert "datagram_msg_received" in vars(udp)  # the UTF-8 guard, with no filter
        assert "send" not in vars(udp)
        assert seam.bound_port(context) > 0
    finally:
        await context.shutdown()


async def test_bound_port_of_a_plain_aiocoap_server_context():
    """As scripts/bench.py's reference server reports its port."""
    port = _free_udp_port()
    context = await aiocoap.Context.create_server_context(
        resource.Site(), bind=("127.0.0.1", port), transports=["udp6"]
    )
    try:
        assert seam.bound_port(context) == port
    finally:
        await context.shutdown()


def test_the_readme_table_is_made_from_hooks():
    readme = (PYPROJECT.parent / "README.md").read_text()
    section = readme.split("## What we change in aiocoap and why\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows == [
        f"| `{h.name}` | `{h.target}`: {h.changes} | {h.reason} | {h.upstream} |"
        for h in seam.HOOKS
    ]


_DEAF_AFTER_ICMP = """
import asyncio, sys
import aiocoap, uvloop
from aiocoap.numbers.types import Type
from pager.app import Emulator

class Datagrams(asyncio.DatagramProtocol):
    def __init__(self):
        self.received = asyncio.Queue()
    def datagram_received(self, data, addr):
        self.received.put_nowait(data)

async def main():
    async with Emulator() as emu:
        loop = asyncio.get_running_loop()
        gone, proto = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
        register = aiocoap.Message(code=aiocoap.GET, uri_path=("v1", "notify"), observe=0)
        register.mtype, register.mid, register.token = Type.CON, 1, b"dead"
        gone.sendto(register.encode(), ("127.0.0.1", emu.port))
        await asyncio.wait_for(proto.received.get(), 5)
        gone.close()  # its port answers the next notification with ICMP port unreachable
        client = await aiocoap.Context.create_client_context()
        uri = emu.uri + "/v1/sessions/statistics"
        first = await client.request(aiocoap.Message(code=aiocoap.DELETE, uri=uri)).response
        await asyncio.sleep(0.5)  # the notification went out, the ICMP error came back
        second = aiocoap.Message(code=aiocoap.GET, uri=uri)
        answer = await asyncio.wait_for(client.request(second).response, 10)
        print(type(loop).__module__, first.code.dotted, answer.code.dotted)
        await client.shutdown()

uvloop.run(main())
"""


def test_on_uvloop_an_icmp_error_does_not_leave_the_server_deaf(tmp_path):
    """libuv stops polling a socket that reports an error; aiocoap asks for ICMP errors on
    its socket, so the first vanished observer made an emulator on uvloop answer nothing
    more (the stateful test found it once uvloop was installed)."""
    if importlib.util.find_spec("uvloop") is None:
        if os.environ.get("CI") in ("true", "1"):
            pytest.fail("uvloop (the fast extra, which make test installs) is missing")
        pytest.skip("uvloop is not installed")
    script = tmp_path / "deaf.py"
    script.write_text(_DEAF_AFTER_ICMP)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["uvloop", "2.02", "2.05"]
