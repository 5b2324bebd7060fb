"""The pytest plugin's fixture, used exactly as the README shows."""

import asyncio
import json
import re
import socket
import sys
from pathlib import Path

import aiocoap
import pytest

from pager.app import Emulator, StartupError
from pager.store import Store
from pager.testing import Fleet
from tests.conftest import REPO, Client


async def test_a_party_paged_ten_minutes_late(pager_emulator):
    context = await aiocoap.Context.create_client_context()
    try:
        create = aiocoap.Message(
            code=aiocoap.POST,
            uri=f"{pager_emulator.uri}/v1/sessions",
            payload=b'{"number":12,"goal":300}',
            content_format=50,
        )
        assert (await context.request(create).response).code == aiocoap.CREATED

        await pager_emulator.advance(600)  # ten minutes later, without waiting
        page = aiocoap.Message(
            code=aiocoap.PUT,
            uri=f"{pager_emulator.uri}/v1/sessions?number=12",
            payload=b'{"action":"page"}',
            content_format=50,
        )
        body = json.loads((await context.request(page).response).payload)
        assert body["statistics"]["percentLate"] == 100
        assert body["sessions"][0]["notified"] == "2026-01-15T18:10:00"

        pager = pager_emulator.pager(12)
        assert pager.alerting and pager.last_transmission.page_mode == "Flash30Sec"
    finally:
        await context.shutdown()


# ---- the plugin in a new project ---------------------------------------------------------

FLEET_AND_INDIRECT = """
import pytest
import pytest_asyncio


@pytest_asyncio.fixture
async def transmitter(pager_emulator):
    await pager_emulator.advance(60)
    return pager_emulator


async def test_through_a_fixture_of_the_project(transmitter):
    assert transmitter.clock_status()["now"].isoformat() == "2026-01-15T18:01:00"


async def test_a_fleet(pager_fleet):
    fleet = await pager_fleet(3)
    assert len({emu.port for emu in fleet}) == 3
    assert len({emu.db_path for emu in fleet}) == 3
"""


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


def _readme_test() -> str:
    readme = (REPO / "README.md").read_text()
    return _python_blocks(readme[readme.index("A complete test") :])[0]


@pytest.mark.parametrize("ini", ["", "asyncio_mode = strict\n", "asyncio_mode = auto\n"])
async def test_the_documented_examples_pass_in_a_new_project(tmp_path, ini):
    """The README's and docs/python.md's, in pytest-asyncio's default (strict) mode too: a
    project needs no setting."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n" + ini)
    (tmp_path / "test_readme.py").write_text(_readme_test())
    (tmp_path / "test_more.py").write_text(FLEET_AND_INDIRECT)
    examples = [
        b for b in _python_blocks((REPO / "docs/python.md").read_text()) if "def test_" in b
    ]
    assert len(examples) == 2
    for i, example in enumerate(examples):
        (tmp_path / f"test_docs_{i}.py").write_text(example)
    out = await _pytest_in(tmp_path)
    # and nothing else in the summary: no skip, no warning from a test
    assert re.search(r"^5 passed in [0-9.]+s$", out, re.M), out


LOOP_SCOPES = """
import asyncio

import aiocoap
import pytest


async def exchange(emulator):
    context = await aiocoap.Context.create_client_context()
    try:
        get = aiocoap.Message(code=aiocoap.GET, uri=f"{emulator.uri}/v1/settings")
        return (await asyncio.wait_for(context.request(get).response, 5)).code
    finally:
        await context.shutdown()


@pytest.mark.asyncio(loop_scope="session")
async def test_on_the_sessions_loop(pager_emulator):
    assert await exchange(pager_emulator) == aiocoap.CONTENT


@pytest.mark.asyncio(loop_scope="module")
async def test_a_fleet_on_the_modules_loop(pager_fleet):
    for emulator in await pager_fleet(2):
        assert await exchange(emulator) == aiocoap.CONTENT


async def test_on_the_default_loop(pager_emulator):
    assert await exchange(pager_emulator) == aiocoap.CONTENT
"""


@pytest.mark.parametrize(
    "ini",
    [
        "",
        "asyncio_mode = auto\n",
        "asyncio_default_test_loop_scope = session\n",
        "asyncio_default_fixture_loop_scope = session\n",
    ],
)
async def test_the_fixtures_run_on_the_loop_of_the_test_that_uses_them(tmp_path, ini):
    """A test on a wider loop than its function's (a session-scoped loop that shares a
    client between tests, say) got an emulator serving on a loop that was not running while
    it ran: every request went unanswered."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n" + ini)
    (tmp_path / "test_loops.py").write_text(LOOP_SCOPES)
    out = await _pytest_in(tmp_path)
    assert re.search(r"^3 passed in [0-9.]+s$", out, re.M), out


# ---- pager_fleet -------------------------------------------------------------------------

_LAST_FLEET: list[tuple[int, object]] = []  # (port, store) of the fleet the test below made


async def test_pager_fleet_gives_independent_transmitters(pager_fleet, coap_context):
    fleet = await pager_fleet(3, control=True)
    assert len({e.port for e in fleet}) == len({e.control_port for e in fleet}) == 3
    assert len({e.db_path for e in fleet}) == 3
    for system_id, emu in enumerate(fleet, 1):
        c = Client(coap_context, emu.port)
        settings = (await c.get("/v1/settings")).json["settings"]
        assert (settings["systemId"], settings["datetime"]) == (system_id, "2026-01-15T18:00:00")
    await fleet[0].advance(60)  # each has its own clock
    assert [e.clock_status()["now"].minute for e in fleet] == [1, 0, 0]
    await Client(coap_context, fleet[1].port).post("/v1/page", {"number": 7})
    assert [len(await e.transmissions()) for e in fleet] == [0, 1, 0]
    _LAST_FLEET[:] = [(e.port, e.db_path) for e in fleet + await pager_fleet(1)]


async def test_pager_fleet_stopped_every_transmitter_at_teardown():
    """Every port and store of the test above can be taken again by a new emulator."""
    assert len(_LAST_FLEET) == 4
    for port, db in _LAST_FLEET:
        async with Emulator(db=str(db), port=port) as emu:
            assert emu.port == port


async def test_a_fleet_that_cannot_start_leaves_nothing_bound_or_open(tmp_path):
    """The second of three transmitters finds its port taken: the call fails with the
    emulator's StartupError, and once the fleet is closed (the fixture's teardown) no socket
    or file of the first is left open and every store can be opened again."""

    def open_files() -> set[str]:
        fds = Path("/proc/self/fd")
        return {str(fd.readlink()) for fd in fds.iterdir() if fd.exists()}

    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    before = open_files()
    fleet = Fleet(tmp_path)
    try:
        tables = [{"port": 0}, {"port": taken.getsockname()[1]}, {"port": 0}]
        with pytest.raises(StartupError, match="already in use"):
            await fleet(3, transmitter=tables)
    finally:
        await fleet.close()
        taken.close()
    assert open_files() - before == set()
    stores = sorted(tmp_path.rglob("*.db"))
    assert [s.name for s in stores] == ["pager-1.db", "pager-2.db"]  # the third never began
    for db in stores:
        await (await Store.open(db)).close()


async def _pytest_in(project, *args: str, env: dict[str, str] | None = None) -> str:
    """pytest run in a new project of its own (with `args`, in `env`); its output, once it
    passed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *args,
        cwd=project,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out = (await asyncio.wait_for(proc.communicate(), 120))[0].decode()
    assert proc.returncode == 0, out
    return out
