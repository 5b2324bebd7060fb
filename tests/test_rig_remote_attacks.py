"""RemoteEmulator and the plugin's --pager-emulator-url used wrongly: a plain method called
on the loop that serves the control API it calls, and a session started with a URL where no
emulator answers (or one that refuses the token). Each must fail at once and say why."""

import asyncio
import inspect
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from pager.app import Emulator
from pager.rig import RemoteEmulator, SameLoop
from pager.testing import FROZEN_AT, TOKEN_ENV, Request
from tests import test_rig_remote
from tests.test_rig_remote import TOKEN, Elsewhere

elsewhere = test_rig_remote.elsewhere  # the fixture: an emulator on a loop of its own


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_plain_call_on_the_loop_serving_its_api_fails_at_once(host):
    async with Emulator(control=True, control_port=0) as emu:
        url = f"http://{host}:{emu.control_port}"
        async with RemoteEmulator(url, timeout=5) as remote:
            began = time.monotonic()
            with pytest.raises(SameLoop, match="served on the event loop of the thread"):
                remote.list_faults()
            with pytest.raises(SameLoop):
                remote.add_fault("drop", count=1)
            assert time.monotonic() - began < 1  # not the timeout, then "no answer"
            assert emu.list_faults() == []  # nothing was sent
            await remote.reset()  # awaited, the same loop serves it
            # from another thread, the plain call is fine
            assert await asyncio.to_thread(remote.list_faults) == []


async def test_a_plain_call_to_an_emulator_elsewhere_is_not_taken_for_one(elsewhere):
    side = await elsewhere()
    async with RemoteEmulator(side.url) as remote:
        assert remote.list_faults() == []


async def _session(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """A pytest session of three tests that use pager_emulator, with `args`; its output."""
    (project / "pytest.ini").write_text("[pytest]\n")
    tests = "".join(
        f"async def test_{i}(pager_emulator):\n    await pager_emulator.reset()\n\n"
        for i in range(3)
    )
    (project / "test_three.py").write_text(tests)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args,
        cwd=project, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await asyncio.wait_for(proc.communicate(), 120))[0].decode()
    assert proc.returncode == 4, out  # pytest's usage error: no test ran
    return out


def _closed_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return int(closed.getsockname()[1])


async def test_the_plugin_with_a_url_where_nothing_answers_stops_at_the_start(tmp_path):
    port = _closed_port()
    out = await _session(tmp_path, "--pager-emulator-url", f"http://127.0.0.1:{port}")
    assert f"--pager-emulator-url http://127.0.0.1:{port}: GET" in out, out
    assert "Cannot connect" in out, out
    assert "test_0" not in out and "errors" not in out, out  # no test ran to fail on it


async def test_the_plugin_with_a_url_that_is_not_one_stops_at_the_start(tmp_path):
    out = await _session(tmp_path, "--pager-emulator-url", "127.0.0.1:7470")
    assert "--pager-emulator-url 127.0.0.1:7470: the control API's URL must be written" in out


async def test_the_plugin_with_a_token_refused_stops_at_the_start(tmp_path, elsewhere):
    side = await elsewhere(control_token=TOKEN)
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    args = ("--pager-emulator-url", side.url, "--pager-emulator-token", "wrong")
    out = await _session(tmp_path, *args, env=env)
    assert f"--pager-emulator-url {side.url}: a valid Authorization: Bearer token" in out, out


# ---- a server that answers 200 with JSON of another shape ---------------------------------

READING = {  # every member that reads something out of its answer, with its arguments
    "uri": None,
    "port": None,
    "limits": None,
    "health": (),
    "clock_status": (),
    "set_clock": (FROZEN_AT,),
    "advance": (1,),
    "freeze": (),
    "unfreeze": (),
    "set_speed": (2,),
    "transmissions": (),
    "pager": (12,),
    "all_pagers": (),
    "wait_for_page": (12, 0.1),
    "list_faults": (),
    "unreachable": None,
    "journal": (),
    "verify": (),
    "verify_in_order": (Request(method="GET"),),
}


@pytest.fixture
async def misshapen() -> AsyncIterator[Callable[[str], str]]:
    """A server answering every request 200 with the JSON it is set to: its URL."""
    answer = ["{}"]

    async def reply(request: web.Request) -> web.Response:
        return web.Response(text=answer[0], content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", reply)
    side = Elsewhere()
    runner = web.AppRunner(app)
    await side.run(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await side.run(site.start())

    def answering(text: str) -> str:
        answer[0] = text
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield answering
    await side.run(runner.cleanup())
    await side.close()


@pytest.mark.parametrize("answer", ["{}", "[]", '"text"', '{"faults": 3, "entries": [{}]}'])
@pytest.mark.parametrize("name", READING)
async def test_an_answer_of_another_shape_is_named_not_a_key_error(misshapen, name, answer):
    async with RemoteEmulator(misshapen(answer), timeout=5) as remote:
        with pytest.raises(RuntimeError, match="answered 200") as raised:
            value = getattr(remote, name)
            if READING[name] is not None:
                value = value(*READING[name])
                if inspect.isawaitable(value):
                    await value
        assert type(raised.value) is RuntimeError  # not a KeyError, a TypeError
