"""`pager.rig.RemoteEmulator`: every member of `Emulator` has a twin of the same signature;
each, called through the control API of a real emulator, gives what the same call gives on
a twin emulator in process; the pytest plugin with `--pager-emulator-url`; tokens; a remote
that stops or goes silent mid-test; URLs that are not a control API's."""

import asyncio
import copy
import inspect
import os
import re
import socket
import threading
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiocoap
import pytest
from aiohttp import web
from yarl import URL

from pager.app import Emulator
from pager.control.rig import NotRunning
from pager.rig import RemoteEmulator, Unreachable
from pager.testing import FROZEN_AT, TOKEN_ENV, Request, _frozen_clock
from tests.conftest import REPO, Client
from tests.test_testing import _pytest_in, _python_blocks, _readme_test

T = TypeVar("T")
SETTINGS = {"number_max": 999}  # not the default: the remote's own limits are read
TOKEN = "0123456789abcdef-remote"


class Elsewhere:
    """An emulator with its control API, serving on a loop of its own thread as one in
    another process would: a plain control of a RemoteEmulator blocks its caller until the
    answer comes, so the emulator it asks must not run on the caller's loop."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emu: Emulator | None = None

    async def run(self, call: Coroutine[Any, Any, T]) -> T:
        """`call` on the emulator's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call, self.loop))

    async def start(self) -> "Elsewhere":
        async def start() -> Emulator:
            emu = Emulator(clock=_frozen_clock(), control=True, control_port=0, **self.settings)
            return await emu.start()

        self.emu = await self.run(start())
        return self

    @property
    def url(self) -> str:
        assert self.emu is not None
        return f"http://127.0.0.1:{self.emu.control_port}"

    async def stop(self) -> None:
        if self.emu is not None:
            await self.run(self.emu.stop())

    async def close(self) -> None:
        await self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join)
        self.loop.close()


@pytest.fixture
async def elsewhere():
    made: list[Elsewhere] = []

    async def make(**settings: Any) -> Elsewhere:
        side = Elsewhere(**settings)
        made.append(side)
        return await side.start()

    yield make
    for side in made:
        await side.close()


@pytest.fixture
async def twins(elsewhere):
    """(an emulator in process, a RemoteEmulator of one elsewhere): configured alike, both
    clocks frozen at FROZEN_AT."""
    side = await elsewhere(**SETTINGS)
    async with Emulator(clock=_frozen_clock(), **SETTINGS) as twin:
        async with RemoteEmulator(side.url) as remote:
            yield twin, remote


# ---- every member has a twin of the same shape --------------------------------------------

NOT_REMOTE = {"db_path": "the store is a file on the remote machine"}
"""Members of Emulator a RemoteEmulator cannot have, each with why (docs/python.md)."""


def _public(cls: type) -> list[str]:
    """The public methods and properties of `cls`, as its class (and bases) define them."""
    return sorted(name for name in dir(cls) if not name.startswith("_"))


def _shape(cls: type, name: str) -> object:
    """What a caller relies on: property or method, awaited or not, the parameters (names,
    kinds, defaults, types) and the type returned ("self": the class defining it)."""
    member = inspect.getattr_static(cls, name)
    if isinstance(member, property):
        assert member.fget is not None
        return "property", typing.get_type_hints(member.fget).get("return")
    signature = inspect.signature(member, eval_str=True)
    params = [
        (p.name, p.kind, p.default, p.annotation) for p in list(signature.parameters.values())[1:]
    ]
    returned = signature.return_annotation
    if isinstance(returned, type) and returned.__qualname__ == member.__qualname__.split(".")[0]:
        returned = "self"  # the class that defines it: Emulator.start, RemoteEmulator.start
    kind = "async" if inspect.iscoroutinefunction(member) else "plain"
    return kind, params, returned


def _untwinned(cls: type) -> list[str]:
    """Every public member of `cls` (an Emulator) that RemoteEmulator lacks or has in
    another shape, with what differs."""
    wrong = []
    for name in _public(cls):
        if name in NOT_REMOTE:
            continue
        if not hasattr(RemoteEmulator, name):
            wrong.append(f"{name}: missing")
        elif (want := _shape(cls, name)) != (got := _shape(RemoteEmulator, name)):
            wrong.append(f"{name}: {got} is not {want}")
    return wrong


def test_every_member_of_emulator_has_a_twin_of_the_same_signature():
    assert _untwinned(Emulator) == []
    assert not hasattr(RemoteEmulator, "db_path")


def test_a_member_added_later_without_a_twin_is_named():
    class Later(Emulator):
        def snapshot(self, limit: int = 100) -> list[dict[str, Any]]:
            return []

        async def reset(self, keep_snapshot: bool = False) -> None:
            pass

    reset, snapshot = _untwinned(Later)
    assert snapshot == "snapshot: missing"
    assert reset.startswith("reset: ") and "keep_snapshot" in reset


def test_every_member_has_a_parity_case():
    assert sorted(CASES) == [n for n in _public(Emulator) if n not in NOT_REMOTE]


def test_what_a_remote_lacks_is_documented():
    doc = (REPO / "docs" / "python.md").read_text()
    remote = doc[doc.index("## `RemoteEmulator`") :]
    for name in NOT_REMOTE:
        assert f"`{name}`" in remote


# ---- parity: each call through the control API gives what it gives in process -----------

Case = Callable[[Any, Client], Awaitable[Any]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(script: Case) -> Case:
        CASES[name] = script
        return script

    return register


async def attempt(call: Callable[[], Any]) -> Any:
    """What `call` returns (awaited if it must be), or the exception it raises."""
    try:
        result = call()
        return (await result) if inspect.isawaitable(result) else result
    except Exception as e:
        return e


def same(got: Any, want: Any) -> bool:
    """`got` (remote) is what `want` (in process) is: equal values of the same type (an int
    and a float of one value alike: JSON has one kind of number), and an exception of the
    class raised in process (or a subclass)."""
    if isinstance(want, Exception):
        return isinstance(got, type(want))
    if isinstance(want, list | tuple):
        return (
            type(got) is type(want)
            and len(got) == len(want)
            and all(same(g, w) for g, w in zip(got, want, strict=True))
        )
    if isinstance(want, dict):
        return (
            type(got) is dict
            and got.keys() == want.keys()
            and all(same(got[k], want[k]) for k in want)
        )
    numbers = {int, float}
    return got == want and (type(got) is type(want) or {type(got), type(want)} <= numbers)


async def page(c: Client, number: int, message: str = "Table ready\fF30V") -> None:
    reply = await c.post("/v1/page", {"number": number, "message": message})
    assert reply.code == "2.04", reply.payload


@case("start")
async def _start(emu: Any, c: Client) -> Any:
    return (await emu.start()) is emu, emu.health()


@case("stop")
async def _stop(emu: Any, c: Client) -> Any:
    await emu.stop()
    await emu.stop()  # again: nothing
    health = {k: v for k, v in emu.health().items() if k != "error"}  # a remote says why
    return (
        health,
        await attempt(emu.clock_status),
        await attempt(lambda: emu.advance(1.0)),
        await attempt(emu.list_faults),
    )


@case("health")
async def _health(emu: Any, c: Client) -> Any:
    return emu.health()


@case("limits")
async def _limits(emu: Any, c: Client) -> Any:
    return emu.limits


@case("uri")
async def _uri(emu: Any, c: Client) -> Any:
    uri = URL(emu.uri)
    get = aiocoap.Message(code=aiocoap.GET, uri=f"{emu.uri}/v1/settings")
    answer = await asyncio.wait_for(c.context.request(get).response, 20)
    return uri.scheme, uri.host, uri.port == emu.port, str(answer.code)


@case("lrsn_address")
async def _lrsn_address(emu: Any, c: Client) -> Any:
    host, port = emu.lrsn_address
    reader, writer = await asyncio.open_connection(host, port)
    greeting = await asyncio.wait_for(reader.readline(), 20)
    writer.close()
    return host, greeting.startswith(b"<LRSN ")


@case("clock_status")
async def _clock_status(emu: Any, c: Client) -> Any:
    return emu.clock_status()


@case("set_clock")
async def _set_clock(emu: Any, c: Client) -> Any:
    return (
        await emu.set_clock(datetime(2026, 2, 1, 9, 30)),
        await attempt(lambda: emu.set_clock(datetime(1999, 1, 1))),
        emu.clock_status(),
    )


@case("advance")
async def _advance(emu: Any, c: Client) -> Any:
    return await emu.advance(90), await emu.advance(-30.5), await attempt(lambda: emu.advance(1e10))


@case("freeze")
async def _freeze(emu: Any, c: Client) -> Any:
    await emu.unfreeze()
    return await emu.freeze(), emu.clock_status()


@case("unfreeze")
async def _unfreeze(emu: Any, c: Client) -> Any:
    status = await emu.unfreeze()
    return status["frozen"], status["speed"], emu.clock_status()["frozen"]


@case("set_speed")
async def _set_speed(emu: Any, c: Client) -> Any:
    return await emu.set_speed(60), await attempt(lambda: emu.set_speed(0))


@case("transmissions")
async def _transmissions(emu: Any, c: Client) -> Any:
    await page(c, 12)
    await emu.advance(60)
    await page(c, 13, "Go\fV2")
    later = FROZEN_AT + timedelta(seconds=60)
    return (
        await emu.transmissions(),
        await emu.transmissions(number=12),
        await emu.transmissions(since=later),
        await emu.transmissions(after_id=1),
        await emu.transmissions(13, FROZEN_AT, 0),
    )


@case("pager")
async def _pager(emu: Any, c: Client) -> Any:
    await page(c, 12)
    alerting, idle = emu.pager(12), emu.pager(7)
    await emu.advance(31)  # Flash30Sec alerts for 30 seconds
    return alerting, idle, emu.pager(12)


@case("all_pagers")
async def _all_pagers(emu: Any, c: Client) -> Any:
    await page(c, 12)
    await page(c, 5, "Ready")
    return emu.all_pagers()


@case("wait_for_page")
async def _wait_for_page(emu: Any, c: Client) -> Any:
    acted = emu.clock_status()["now"]
    await page(c, 12)
    return (
        await emu.wait_for_page(12, timeout=5, since=acted),
        await emu.wait_for_page(12, 5.0, 0),
        await emu.wait_for_page(7, timeout=0.1),
        await emu.wait_for_page(12, timeout=0.1, after_id=1),
    )


@case("add_fault")
async def _add_fault(emu: Any, c: Client) -> Any:
    # a copy: in process, the Fault returned is the one that counts its hits from then on
    fault = copy.copy(emu.add_fault("error", path="/v1/settings", count=2, code="4.03"))
    answered = (await c.get("/v1/settings")).code
    return (
        fault,
        answered,
        emu.list_faults(),
        emu.add_fault("delay", seconds=0.5),
        await attempt(lambda: emu.add_fault("bogus")),
        await attempt(lambda: emu.add_fault("drop", count=0)),
        await attempt(lambda: emu.add_fault("error", code="2.05")),
        emu.add_fault("drop", direction="answer", probability=0.5, seed=3),
        emu.add_fault("delay", distribution="lognormal", median=0.01, sigma=0.5),
        emu.add_fault("reorder", window=3, seconds=0.1),
        await attempt(lambda: emu.add_fault("drop", window=2)),
        await attempt(lambda: emu.add_fault("delay", distribution="uniform", min=1)),
    )


@case("remove_fault")
async def _remove_fault(emu: Any, c: Client) -> Any:
    fault = emu.add_fault("drop", path="/nowhere")
    return emu.remove_fault(fault.id), emu.remove_fault(fault.id), emu.list_faults()


@case("clear_faults")
async def _clear_faults(emu: Any, c: Client) -> Any:
    emu.add_fault("drop", path="/nowhere")
    emu.add_fault("error")
    return emu.clear_faults(), emu.list_faults(), (await c.get("/v1/settings")).code


@case("list_faults")
async def _list_faults(emu: Any, c: Client) -> Any:
    empty = emu.list_faults()
    emu.add_fault("drop", path="/nowhere", count=3)
    emu.add_fault("error", path="/v1/settings", count=2, code="5.00")
    await c.get("/v1/settings")
    return empty, emu.list_faults()


@case("unreachable")
async def _unreachable(emu: Any, c: Client) -> Any:
    before = emu.unreachable
    await emu.power_cycle(2)
    return before, emu.unreachable


@case("power_cycle")
async def _power_cycle(emu: Any, c: Client) -> Any:
    done = await emu.power_cycle(1.0)
    dark = emu.health()
    await asyncio.sleep(1.2)
    return done, dark, emu.health()


def _requests(entries: list[Any]) -> list[tuple[Any, ...]]:
    """What a journal entry says of the request, without what differs between two
    emulators (times, ports, message ids, tokens, latency)."""
    return [(e.id, e.method, e.path, e.query, e.body, e.code, e.answer) for e in entries]


async def _failure(call: Callable[[], Any]) -> Any:
    raised = await attempt(call)
    return type(raised), str(raised)


@case("verify")
async def _verify(emu: Any, c: Client) -> Any:
    await page(c, 12)
    await page(c, 13, "Go\fV2")
    return (
        _requests(emu.verify("POST", "/v1/page", body={"number": 12}, contains=True)),
        _requests(emu.verify(path="/v1/page", query={}, exactly=2, after=0)),
        _requests(emu.verify(code="2.04", at_most=2, after=1)),
        await _failure(lambda: emu.verify("POST", "/v1/page", body={"number": 14})),
        await _failure(lambda: emu.verify(path="/v1/page", at_most=1)),
        await _failure(lambda: emu.verify(exactly=1, at_least=1)),
        await _failure(lambda: emu.verify(method="GET /")),
    )


@case("verify_in_order")
async def _verify_in_order(emu: Any, c: Client) -> Any:
    await page(c, 12)
    await page(c, 13, "Go\fV2")
    first, second = Request(body={"number": 12}, contains=True), Request(code="2.04")
    return (
        _requests(emu.verify_in_order(first, second)),
        _requests(emu.verify_in_order(second, after=1)),
        await _failure(lambda: emu.verify_in_order(second, second, second)),
        await _failure(lambda: emu.verify_in_order(Request(body={"number": 13}), first)),
        await _failure(lambda: emu.verify_in_order()),
        await _failure(lambda: emu.verify_in_order({"method": "GET"})),
    )


@case("reset")
async def _reset(emu: Any, c: Client) -> Any:
    await page(c, 12)
    emu.add_fault("drop", path="/nowhere")
    await emu.set_speed(5)
    done = await emu.reset()
    clock = emu.clock_status()
    return done, await emu.transmissions(), emu.list_faults(), emu.all_pagers(), clock["speed"]


def _exchanges(entries: list[Any]) -> list[tuple[Any, ...]]:
    """What two emulators sent the same requests record alike (not times, ports, ids)."""
    return [
        (e.id, e.method, e.path, e.query, e.body, e.number, e.code, e.duplicate, e.fault)
        for e in entries
    ]


@case("journal")
async def _journal(emu: Any, c: Client) -> Any:
    await c.post("/v1/sessions", {"number": 12, "label": "Café"})
    await c.get("/v1/sessions", query="number=12")
    await c.get("/v1/nowhere")
    emu.add_fault("error", path="/v1/settings", count=1)
    await c.get("/v1/settings")
    since = datetime.now().astimezone()
    return (
        _exchanges(emu.journal()),
        _exchanges(emu.journal(method="GET", path="/v1/sessions", number=12, code="2.05")),
        _exchanges(emu.journal(after=1, limit=2)),
        emu.journal(since=since),
        await attempt(lambda: emu.journal(code="2.5")),
        await attempt(lambda: emu.journal(since=datetime(2026, 1, 15))),  # no offset
    )


@case("clear_journal")
async def _clear_journal(emu: Any, c: Client) -> Any:
    await c.get("/v1/settings")
    cleared = emu.clear_journal()
    await c.get("/v1/settings")
    return cleared, _exchanges(emu.journal())


@pytest.mark.parametrize("name", sorted(CASES))
async def test_each_call_through_the_control_api_is_the_call_in_process(name, twins, coap_context):
    twin, remote = twins
    want = await CASES[name](twin, Client(coap_context, twin.port))
    got = await CASES[name](remote, Client(coap_context, remote.port))
    assert same(got, want), f"remote: {got!r}\nin process: {want!r}"


def test_same_is_no_rubber_stamp():
    assert not same(ValueError("x"), NotRunning("x"))
    assert not same([1.5], (1.5,))
    assert not same({"now": FROZEN_AT}, {"now": FROZEN_AT.isoformat()})
    assert not same(1, True) and same(60.0, 60)


async def test_errors_carry_the_control_apis_message(twins):
    twin, remote = twins
    kinds = "'drop', 'delay', 'error', 'duplicate' or 'reorder'"
    with pytest.raises(ValueError, match=rf"^kind: Input should be {kinds}$"):
        remote.add_fault("bogus")
    with pytest.raises(ValueError, match="^datetime must be a local time written"):
        await remote.set_clock(datetime(1999, 1, 1))
    with pytest.raises(ValueError, match=r"^the pager number must be an integer from 0 to 999"):
        remote.pager(1000)  # the control API checks what the Python method takes as given


# ---- the pytest plugin with --pager-emulator-url ------------------------------------------

REMOTE_TESTS = """
import aiocoap

from pager.rig import RemoteEmulator
from pager.testing import FROZEN_AT


async def test_a_remote_is_given(pager_emulator):
    assert isinstance(pager_emulator, RemoteEmulator)
    pager_emulator.add_fault("drop", path="/nowhere")
    await pager_emulator.advance(3600)


async def test_each_test_finds_it_reset_and_frozen(pager_emulator):
    assert pager_emulator.list_faults() == []
    assert pager_emulator.clock_status() == {"now": FROZEN_AT, "frozen": True, "speed": 1.0}
    assert await pager_emulator.transmissions() == []
    context = await aiocoap.Context.create_client_context()
    try:
        page = aiocoap.Message(
            code=aiocoap.POST,
            uri=f"{pager_emulator.uri}/v1/page",
            payload=b'{"number":99}',
            content_format=50,
        )
        assert (await context.request(page).response).code == aiocoap.CHANGED
    finally:
        await context.shutdown()
"""


@pytest.mark.parametrize("token_in", ["option", "environment"])
async def test_the_plugin_gives_tests_the_remote_emulator(tmp_path, elsewhere, token_in):
    """The README's and docs/python.md's examples, and tests that need a fresh transmitter
    each, run against an emulator elsewhere, its token given either way."""
    side = await elsewhere(control_token=TOKEN)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_readme.py").write_text(_readme_test())
    examples = [
        b for b in _python_blocks((REPO / "docs/python.md").read_text()) if "def test_" in b
    ]
    for i, example in enumerate(examples):
        (tmp_path / f"test_docs_{i}.py").write_text(example)
    (tmp_path / "test_remote.py").write_text(REMOTE_TESTS)
    args = ["--pager-emulator-url", side.url]
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token_in == "option":
        args += ["--pager-emulator-token", TOKEN]
    else:
        env[TOKEN_ENV] = TOKEN
    out = await _pytest_in(tmp_path, *args, env=env)
    assert re.search(rf"^{len(examples) + 3} passed in [0-9.]+s$", out, re.M), out
    assert side.emu is not None
    assert [t.number for t in await side.run(side.emu.transmissions())] == [99]


# ---- tokens, a remote that stops or goes silent, URLs that are not a control API's --------


async def test_without_the_token_or_with_another_every_call_is_refused(elsewhere):
    side = await elsewhere(control_token=TOKEN)
    for token in (None, "not-the-token-0123456789"):
        async with RemoteEmulator(side.url, token) as remote:
            refused = "^a valid Authorization: Bearer token is required$"
            with pytest.raises(PermissionError, match=refused):
                remote.clock_status()
            with pytest.raises(PermissionError, match=refused):
                await remote.reset()
            with pytest.raises(PermissionError, match=refused):
                remote.health()  # not "stopped": it answers, and refuses
    async with RemoteEmulator(side.url, TOKEN) as remote:
        assert remote.health()["ready"] is True
        assert remote.clock_status()["now"] == FROZEN_AT


async def test_a_remote_that_stops_mid_test_fails_the_call_at_once(elsewhere):
    side = await elsewhere()
    assert side.emu is not None
    async with RemoteEmulator(side.url) as remote:
        waiting = asyncio.ensure_future(remote.wait_for_page(5, timeout=60))
        for _ in range(200):  # until the long poll waits on the remote
            if side.emu.pagers._waiters:
                break
            await asyncio.sleep(0.05)
        began = time.monotonic()
        await side.stop()
        assert time.monotonic() - began < 5  # the wait does not hold the stop
        with pytest.raises(
            NotRunning, match="^the emulator stopped while waiting for a page to 5$"
        ):
            await asyncio.wait_for(waiting, 5)
        with pytest.raises(Unreachable, match=rf"^GET {side.url}/pagers/1: Cannot connect"):
            remote.pager(1)
        with pytest.raises(NotRunning, match=rf"^POST {side.url}/clock/advance: Cannot connect"):
            await remote.advance(1)
        health = remote.health()
        assert (health["ready"], health["coap"], health["store"]) == (False, "stopped", "closed")
        assert health["error"].startswith(f"GET {side.url}/health: Cannot connect")
        assert time.monotonic() - began < 10


async def test_closing_the_session_ends_a_call_in_flight_at_once(elsewhere):
    side = await elsewhere()
    assert side.emu is not None
    remote = await RemoteEmulator(side.url).start()
    numbers = range(1, 9)
    waiting = [asyncio.ensure_future(remote.wait_for_page(n, timeout=60)) for n in numbers]
    for _ in range(200):
        if len(side.emu.pagers._waiters) == len(numbers):
            break
        await asyncio.sleep(0.05)
    await remote.stop()
    ended = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 5)
    for n, error in zip(numbers, ended, strict=True):
        assert isinstance(error, NotRunning)
        assert str(error).endswith(
            f"/pagers/{n}/wait: the session was closed (stop) during the call"
        )


async def test_an_emulator_stopped_while_a_test_waits_for_a_page_ends_the_wait():
    async with Emulator() as emu:
        waiting = asyncio.ensure_future(emu.wait_for_page(5, timeout=60))
        await asyncio.sleep(0.1)
        await emu.stop()
        with pytest.raises(NotRunning, match="stopped while waiting for a page to 5"):
            await asyncio.wait_for(waiting, 5)


async def test_a_remote_that_goes_silent_times_out():
    """A machine that accepts connections and never answers (a hung process)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        async with RemoteEmulator(url, timeout=0.5) as remote:
            began = time.monotonic()
            with pytest.raises(Unreachable, match=r"^GET .*/clock: no answer within 0.5 s$"):
                remote.clock_status()
            with pytest.raises(Unreachable, match=r"^POST .*/reset: no answer within 0.5 s$"):
                await remote.reset()
            assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    "url",
    ["not a url", "ftp://127.0.0.1:8080", "http://", "http://127.0.0.1:99999", "127.0.0.1:8080"],
)
def test_a_url_that_is_not_one_is_refused_at_once(url):
    with pytest.raises(ValueError, match="must be written http://HOST:PORT"):
        RemoteEmulator(url)


async def test_a_url_where_nothing_listens():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with RemoteEmulator(f"http://127.0.0.1:{port}") as remote:
        with pytest.raises(
            Unreachable, match=f"^GET http://127.0.0.1:{port}/clock: Cannot connect"
        ):
            remote.clock_status()
        assert remote.health()["ready"] is False


async def test_a_url_that_is_not_a_control_api(elsewhere):
    side = await elsewhere()
    async with RemoteEmulator(side.url + "/elsewhere") as remote:
        with pytest.raises(RuntimeError, match=r"/elsewhere/clock answered 404: Not Found$"):
            remote.clock_status()

    async def page_of_html(request: web.Request) -> web.Response:
        return web.Response(text="<html>a router's login page</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page_of_html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        async with RemoteEmulator(f"http://127.0.0.1:{runner.addresses[0][1]}") as remote:
            with pytest.raises(RuntimeError, match="not the JSON of a pager-emulator control API"):
                await remote.reset()  # awaited: the server runs on this test's loop
    finally:
        await runner.cleanup()


async def test_before_start_and_after_stop_the_controls_refuse():
    remote = RemoteEmulator("http://127.0.0.1:9")
    with pytest.raises(NotRunning, match="start it first"):
        remote.clock_status()
    with pytest.raises(NotRunning, match="start it first"):
        await remote.reset()
    assert remote.health()["coap"] == "stopped"
    async with remote:
        pass
    with pytest.raises(NotRunning, match="start it first"):
        remote.list_faults()
