"""LRSN attacked as an adversary would (issue 16): connection floods and drops, half-closed
and slow sockets, pipelining and splitting, a client that never reads, pages racing a power
cycle, a factory reset and a stop, login brute force, numbers at every edge, XML tricks.
Each test also holds the server's log to no traceback and no error."""

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from pager.app import Emulator
from pager.lrsn.server import WRITE_BUFFER_MAX
from tests.conftest import make_config
from tests.lrsn.conftest import LOGIN, Lrsn, connected, ret

SHORT = b'<PageRequest id="1" pager="2;123" message="Vibe1" />\n'
LONG = b'<PageRequest id="42"><Pager Type="Guest" ID="12" /><Message>11</Message></PageRequest>\n'


@pytest.fixture(autouse=True)
def no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def _count(rig) -> int:
    return len((await rig.http.get("/transmissions"))["transmissions"])


async def _drained(emu: Emulator, timeout: float = 10.0) -> None:
    """Wait until the server holds no connection."""
    assert emu._lrsn is not None
    deadline = time.monotonic() + timeout
    while emu._lrsn.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert emu._lrsn.connections == 0


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _all_of_them_can_log_in(address: tuple[str, int], n: int) -> None:
    conns = [await Lrsn.connect(address) for _ in range(n)]
    try:
        for conn in conns:
            assert await conn.login() == 0
            assert ret(await conn.ask(SHORT)) == 0
    finally:
        for conn in conns:
            await conn.close()


# ---- connections opened and dropped ----------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"lrsn_max_clients": 4}])
async def test_hundreds_of_connections_dropped_at_every_stage_leak_nothing(lrsn_rig):
    emu = lrsn_rig.emu
    address = emu.lrsn_address

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection(*address)
        stage = i % 6
        try:
            if stage == 0:  # before the greeting is read, reset
                _rst(writer)
                return
            if stage == 1:  # before the greeting is read, FIN
                writer.close()
                return
            await reader.readline()
            if stage == 2:  # a login sent, never read, reset
                writer.write(LOGIN)
                _rst(writer)
            elif stage == 3:  # mid-line
                writer.write(SHORT[:20])
                await writer.drain()
                writer.close()
            elif stage == 4:  # logged in, a page, gone before its answer
                writer.write(LOGIN + SHORT)
                await writer.drain()
                _rst(writer)
            else:  # logged in and out cleanly
                writer.write(LOGIN)
                await reader.readline()
                writer.close()
        except ConnectionError:
            writer.transport.abort()

    for start in range(0, 300, 50):
        await asyncio.gather(*(one(i) for i in range(start, start + 50)))
    await _drained(emu)
    await _all_of_them_can_log_in(address, 4)


@pytest.mark.parametrize("config_overrides", [{"lrsn_max_clients": 5}])
async def test_a_flood_past_max_clients_racing_each_other_never_leaks_the_count(lrsn_rig):
    emu = lrsn_rig.emu
    address = emu.lrsn_address

    async def one() -> bool:
        """Whether this connection was let in (no LoginAck 5 after the greeting)."""
        conn = await Lrsn.connect(address)
        try:
            conn.writer.write(LOGIN)
            answer = await conn.line()
            return ret(answer) == 0
        except ConnectionError:
            return False
        finally:
            await asyncio.sleep(0.2)  # every one held at once
            await conn.close()

    for _ in range(3):
        admitted = await asyncio.gather(*(one() for _ in range(80)))
        assert 1 <= sum(admitted) <= 5
        await _drained(emu)
    await _all_of_them_can_log_in(address, 5)


# ---- half-closed, slow, pipelined, split ---------------------------------------------------


async def test_a_half_closed_socket_gets_every_whole_message_answered(lrsn_rig):
    reader, writer = await asyncio.open_connection(*lrsn_rig.emu.lrsn_address)
    writer.write(LOGIN + SHORT + LONG + SHORT[:30])
    await writer.drain()
    writer.write_eof()  # shutdown(SHUT_WR) after a partial line
    data = await asyncio.wait_for(reader.read(), 10)
    lines = data.splitlines()
    assert lines[0].startswith(b"<LRSN ")
    assert [ret(line + b"\n") for line in lines[1:]] == [0, 0, 0]  # the partial line: nothing
    writer.close()
    await _drained(lrsn_rig.emu)
    assert await _count(lrsn_rig) == 2


async def test_one_byte_every_10_ms(lrsn_rig):
    async with connected(lrsn_rig.emu.lrsn_address) as conn:
        sock = conn.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in LOGIN + SHORT:
            await conn.send(bytes([byte]))
            await asyncio.sleep(0.01)
        assert ret(await conn.line()) == 0
        assert ret(await conn.line()) == 0
    assert await _count(lrsn_rig) == 1


async def test_many_requests_in_one_segment_are_answered_in_order(lrsn_rig, logged_in):
    pages = b"".join(b'<PageRequest id="%d" pager="2;%d" />\n' % (i, i) for i in range(200))
    await logged_in.send(pages + b"<Foo />\n\n\n" + LONG)
    for i in range(200):
        assert await logged_in.line() == b'<PageRequestStatus id="%d" ret="0" />\n' % i
    assert await logged_in.line() == b'<Error ret="6" />\n'
    assert ret(await logged_in.line()) == 0
    assert await _count(lrsn_rig) == 201


async def test_a_line_split_at_every_byte_position(lrsn_rig, logged_in):
    sock = logged_in.writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for cut in range(1, len(LONG)):
        await logged_in.send(LONG[:cut])
        await asyncio.sleep(0.002)
        assert await logged_in.ask(LONG[cut:]) == b'<PageRequestStatus id="42" ret="0" />\n'
    assert await _count(lrsn_rig) == len(LONG) - 1


async def test_a_client_that_never_reads_while_it_floods_is_closed_and_others_served(lrsn_rig):
    emu = lrsn_rig.emu
    assert emu._lrsn is not None
    hog = await Lrsn.connect(emu.lrsn_address)
    hog.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.writer.write(LOGIN)
    flood = b"<Foo />\n" * 4000  # small requests, answered with as many bytes

    async def hog_floods() -> None:
        try:
            for _ in range(200):
                hog.writer.write(flood)
                await asyncio.wait_for(hog.writer.drain(), 10)
        except (ConnectionError, TimeoutError):
            pass

    flooding = asyncio.create_task(hog_floods())
    async with connected(emu.lrsn_address) as other:
        assert await other.login() == 0
        for _ in range(20):
            start = time.monotonic()
            assert ret(await other.ask(SHORT)) == 0
            assert time.monotonic() - start < 2
            held = [c.writer.transport.get_write_buffer_size() for c in emu._lrsn._connections]
            assert max(held) <= WRITE_BUFFER_MAX + len(b'<Error ret="6" />\n')
    await flooding
    assert await hog.closed(10)
    hog.writer.transport.abort()


# ---- pages racing a power cycle, a reset, a stop -----------------------------------------------


async def _pager_forever(
    address: tuple[str, int], answers: list[int], stop: asyncio.Event | None = None
) -> None:
    """Page as fast as answers come, pipelined 20 at a time, until the server closes (or
    `stop` is set: cancelling it could be lost in `wait_for` on Python 3.11)."""
    try:
        async with connected(address) as conn:
            assert await conn.login() == 0
            batch = b"".join(b'<PageRequest pager="2;%d" />\n' % i for i in range(20))
            while stop is None or not stop.is_set():
                await conn.send(batch)
                for _ in range(20):
                    line = await conn.line()
                    if not line:
                        return
                    answers.append(ret(line))
    except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
        return


async def test_pages_racing_a_power_cycle(lrsn_rig):
    address = lrsn_rig.emu.lrsn_address
    answers: list[int] = []
    pagers = [asyncio.create_task(_pager_forever(address, answers)) for _ in range(4)]
    while len(answers) < 100:
        await asyncio.sleep(0.01)
    await lrsn_rig.http.post("/power-cycle", {"seconds": 1.0})
    at_power_off = await _count(lrsn_rig)
    with pytest.raises(OSError):
        await asyncio.open_connection(*address)
    await asyncio.gather(*pagers)
    await asyncio.sleep(0.3)
    assert await _count(lrsn_rig) == at_power_off  # nothing recorded after the power-off
    assert set(answers) == {0} and len(answers) <= at_power_off
    await asyncio.sleep(1.0)
    async with connected(address) as again:
        assert await again.login() == 0
        assert ret(await again.ask(SHORT)) == 0
    assert await _count(lrsn_rig) == at_power_off + 1


async def test_a_delayed_page_caught_by_a_power_cycle_is_not_recorded(lrsn_rig, logged_in):
    await lrsn_rig.http.post("/faults", {"kind": "delay", "seconds": 0.5, "count": 1}, status=201)
    await logged_in.send(SHORT)
    await asyncio.sleep(0.1)
    await lrsn_rig.http.post("/power-cycle", {"seconds": 0.5})
    assert await logged_in.closed(2)
    await asyncio.sleep(0.8)
    assert await _count(lrsn_rig) == 0


async def test_a_page_waiting_for_the_engine_when_the_power_goes_is_not_recorded(
    lrsn_rig, logged_in
):
    """The rig's power cycle runs in the engine's quiet moment, as here: a page read before
    it waits for the engine, and must find its connection gone when it is computed."""
    emu = lrsn_rig.emu
    assert emu._lrsn is not None
    server = emu._lrsn

    async def off() -> None:
        await asyncio.sleep(0.3)  # the page arrives meanwhile and waits
        await server.power_off(0.3)

    power = asyncio.create_task(emu.engine.exclusive(off))
    await asyncio.sleep(0.1)
    await logged_in.send(SHORT)
    await power
    assert await logged_in.closed(2)
    await asyncio.sleep(0.2)
    assert await _count(lrsn_rig) == 0


async def test_a_connection_accepted_just_before_a_power_off_is_not_served(lrsn_rig):
    """The loop may have accepted a connection whose handler starts only after the power
    went: it must be closed then, not greeted and served while the power is off."""
    emu = lrsn_rig.emu
    assert emu._lrsn is not None
    server = emu._lrsn
    for ticks in range(8):  # the power goes at every step of asyncio's accepting
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(emu.lrsn_address)
        for _ in range(ticks):
            await asyncio.sleep(0)
        await server.power_off(0.2)
        await asyncio.sleep(0.05)
        assert server.connections == 0, ticks
        sock.close()
        await asyncio.sleep(0.25)


async def test_power_cycles_one_upon_another(lrsn_rig):
    """A power-off while the port is being listened on again after the last one: the port
    stays shut for the new one, and opens once after it."""
    emu = lrsn_rig.emu
    assert emu._lrsn is not None
    server = emu._lrsn
    address = emu.lrsn_address
    for i in range(16):
        await server.power_off(0.02)
        await asyncio.sleep(0.019 + (i % 8) * 0.001)  # around the moment it listens again
        await server.power_off(0.3)
        await asyncio.sleep(0.05)
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)
        await asyncio.sleep(0.3)
        async with connected(address) as again:
            assert await again.login() == 0


async def test_a_stop_as_the_port_listens_again_lets_go_of_it(tmp_path):
    for i in range(16):
        emu = Emulator(make_config(tmp_path / f"{i}.db"))
        await emu.start()
        assert emu._lrsn is not None
        address = emu.lrsn_address
        await emu._lrsn.power_off(0.02)
        await asyncio.sleep(0.019 + (i % 8) * 0.001)  # around the moment it listens again
        await emu.stop()
        with pytest.raises(OSError):
            await asyncio.open_connection(*address)
        with socket.socket() as sock:  # the port is free
            sock.bind(address)


async def test_pages_racing_a_factory_reset(lrsn_rig):
    address = lrsn_rig.emu.lrsn_address
    answers: list[int] = []
    stop = asyncio.Event()
    pager = asyncio.create_task(_pager_forever(address, answers, stop))
    while len(answers) < 50:
        await asyncio.sleep(0.01)
    await lrsn_rig.http.post("/reset", {})
    after_reset = len(answers)
    while len(answers) < after_reset + 50:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(pager, 10)
    assert set(answers) == {0}
    count = await _count(lrsn_rig)
    # the reset emptied the record: only what was answered after it (and a batch in flight)
    assert len(answers) - after_reset <= count <= len(answers) - after_reset + 20


async def test_pages_racing_the_emulators_stop(tmp_path):
    config = make_config(tmp_path / "pager.db")
    answers: list[int] = []
    emu = Emulator(config)
    await emu.start()
    try:
        pagers = [asyncio.create_task(_pager_forever(emu.lrsn_address, answers)) for _ in range(4)]
        while len(answers) < 100:
            await asyncio.sleep(0.01)
    finally:
        await emu.stop()
    await asyncio.wait_for(asyncio.gather(*pagers), 10)
    assert set(answers) == {0}


# ---- login brute force -------------------------------------------------------------------------


def _login(user: bytes, passwd: bytes) -> bytes:
    return b'<Login user="%s" passwd="%s" services="NetPage" />\n' % (user, passwd)


@pytest.mark.parametrize(
    "config_overrides", [{"lrsn_user": "ädmin", "lrsn_password": "pä§s\u20ac"}]
)
async def test_login_brute_force(lrsn_rig):
    async with connected(lrsn_rig.emu.lrsn_address) as conn:
        tries = b"".join(_login(b"admin", b"guess%d" % i) for i in range(300))
        await conn.send(tries)
        for _ in range(300):
            assert await conn.line() == b'<LoginAck ret="1" />\n'
        cases = [
            (_login(b"x" * 4000, b"y"), 1),
            (_login(b"x" * 4096, b"y"), 10),  # past 4096 bytes
            (_login("ädmin".encode(), b"p"), 1),
            (_login("ädmin".encode(), "pä§s€x".encode()), 1),
            (_login("ädmin".encode(), "pä§s".encode()), 1),  # a prefix
            (_login("ädmin".encode(), "pä§s€".encode("latin-1", "replace")), 10),
            (_login("ädmin".encode(), "pä§s€&#0;".encode()), 10),
            (_login("ädmin".encode(), "pä§s€\x00".encode()), 10),
            (_login("ädmin&#0;".encode(), "pä§s€".encode()), 10),
            (_login(b"ADMIN", "pä§s€".encode()), 1),
            (_login(b"adm&#228;in", "pä§s€".encode()), 1),
            (b'<Login user="\xc3\xa4dmin" services="NetPage" />\n', 1),
            (b'<Login passwd="p\xc3\xa4\xc2\xa7s\xe2\x82\xac" services="NetPage" />\n', 1),
            (LOGIN, 1),
        ]
        for message, expected in cases:
            assert ret(await conn.ask(message)) == expected, message[:60]
            assert ret(await conn.ask(SHORT)) == 1  # still not logged in
        assert await conn.login(_login(b"&#228;dmin", "pä§s€".encode())) == 0
        assert ret(await conn.ask(SHORT)) == 0
    assert await _count(lrsn_rig) == 1


# ---- numbers at and past every edge --------------------------------------------------------


def _short(pager: str, extra: str = "") -> bytes:
    return f'<PageRequest id="9" pager="{pager}"{extra} />\n'.encode()


def _long(number: str, extra: str = "", message: str = "") -> bytes:
    body = f"<Message>{message}</Message>" if message else ""
    pager = f'<Pager Type="Guest" ID="{number}"{extra} />'
    return f'<PageRequest id="9">{pager}{body}</PageRequest>\n'.encode()


NUMBERS = [
    (_short("2;0"), 0),
    (_short("2;4095"), 0),
    (_short("2;4096"), 6),
    (_short("2;-1"), 6),
    (_short("2;-0"), 0),
    (_short("2;00000000000000000012"), 6),  # past 10 digits
    (_short("2;0000000012"), 0),
    (_short("2;99999999999"), 6),
    (_short("2;9999999999"), 6),
    (_short("2;1e3"), 6),
    (_short("2;0x10"), 6),
    (_short("2; 12"), 6),
    (_short("2;12 "), 6),
    (_short("2;12&#10;"), 6),
    (_short("2;+12"), 6),
    (_short("2;１２"), 6),  # fullwidth digits
    (_short("2;12;3"), 6),
    (_short("5;12"), 6),
    (_short("-1;12"), 6),
    (_short(";12"), 6),
    (_short("2;"), 6),
    (_short("2;12", ' system_id="255"'), 0),
    (_short("2;12", ' system_id="256"'), 6),
    (_short("2;12", ' system_id="-1"'), 6),
    (_short("2;12", ' system_id=""'), 6),
    (_long("0"), 0),
    (_long("4095"), 0),
    (_long("4096"), 6),
    (_long("-1"), 6),
    (_long("1e3"), 6),
    (_long("0x1F"), 6),
    (_long(" 1"), 6),
    (_long("1.0"), 6),
    (_long("1", ' power="0"'), 0),
    (_long("1", ' power="5"'), 0),
    (_long("1", ' power="6"'), 6),
    (_long("1", ' power="-1"'), 6),
    (_long("1", ' color="RR"'), 6),
    (_long("1", ' color="r"'), 6),
    (_long("1", message="1"), 0),
    (_long("1", message="14"), 0),
    (_long("1", message="15"), 6),
    (_long("1", message="0"), 6),
    (_long("1", message="-1"), 6),
    (_long("1", message="99999999999"), 6),
    (_long("1", message=" 14 "), 0),
]


@pytest.mark.parametrize(("message", "expected"), NUMBERS)
async def test_numbers_at_and_past_every_edge(lrsn_rig, logged_in, message, expected):
    assert await logged_in.ask(message) == b'<PageRequestStatus id="9" ret="%d" />\n' % expected
    assert await _count(lrsn_rig) == (1 if expected == 0 else 0)


IDS = [
    (b'<PageRequest id="%s" pager="2;1" />\n' % (b"9" * 64), b' id="' + b"9" * 64 + b'"', 0),
    (b'<PageRequest id="%s" pager="2;1" />\n' % (b"9" * 65), b"", 6),
    (
        b'<PageRequest id="%s" pager="2;1" />\n' % ("é" * 64).encode(),
        b' id="' + ("é" * 64).encode() + b'"',
        0,
    ),
    (b'<PageRequest id="&lt;&amp;&quot;&#10;" pager="2;1" />\n', b' id="&lt;&amp;&quot;&#10;"', 0),
    (b'<PageRequest id="" pager="2;1" />\n', b' id=""', 0),
    (b'<PageRequest id="1" id="2" pager="2;1" />\n', None, 10),
]


@pytest.mark.parametrize(("message", "echoed", "expected"), IDS)
async def test_ids_huge_strange_and_repeated(lrsn_rig, logged_in, message, echoed, expected):
    answer = await logged_in.ask(message)
    if echoed is None:
        assert answer == b'<Error ret="%d" />\n' % expected
    else:
        assert answer == b'<PageRequestStatus%s ret="%d" />\n' % (echoed, expected)


async def test_the_same_id_repeated_pages_each_time(lrsn_rig, logged_in):
    for _ in range(3):
        assert ret(await logged_in.ask(SHORT)) == 0
    assert await _count(lrsn_rig) == 3


# ---- XML tricks ----------------------------------------------------------------------------

PAD = 4096 - len(b'<PageRequest id="" pager="2;1" />')
XML = [
    (
        b'<PageRequest id="9"><Pager Type="Guest" ID="1" />'
        b"<Message><![CDATA[11]]></Message></PageRequest>",
        0,
    ),
    (
        b'<PageRequest id="9"><Pager Type="Guest" ID="1" />'
        b"<Message><![CDATA[<x/>]]></Message></PageRequest>",
        6,
    ),
    (b'<PageRequest id="9"><!-- c --><Pager Type="Guest" ID="1" /></PageRequest>', 0),
    (b'<!-- c --><PageRequest id="9" pager="2;1" />', 0),
    (b'<?xml version="1.0"?><PageRequest id="9" pager="2;1" />', 0),
    (b'<?xml version="1.0" encoding="UTF-16"?><PageRequest id="9" pager="2;1" />', 10),
    (b'<?pi x?><PageRequest id="9" pager="2;1" />', 0),
    (b'<PageRequest id="9" pager="2;1" /><?pi x?>', 0),
    (b'<PageRequest xmlns="urn:x" id="9" pager="2;1" />', 6),
    (b'<a:PageRequest xmlns:a="urn:x" id="9" pager="2;1" />', 6),
    (b'<PageRequest xmlns:a="urn:x" id="9" a:pager="2;1" />', 6),
    (b'<PageRequest id="9" pager="2;1" pager="2;2" />', 10),
    (b'<PageRequest id="9"><Pager Type="Guest" ID="1" ID="2" /></PageRequest>', 10),
    (b'\xef\xbb\xbf<PageRequest id="9" pager="2;1" />', 0),  # XML allows UTF-8 its BOM
    (
        b'<?xml version="1.0" encoding="ISO-8859-1"?>'
        b'<PageRequest id="9" pager="0;1" message="\xc3\xa4" />',
        10,
    ),
    (b"<?xml version='1.0' encoding='utf-8'?><PageRequest id=\"9\" pager=\"2;1\" />", 0),
    ('<PageRequest id="9" pager="2;1" />'.encode("utf-16"), 10),
    ('<PageRequest id="9" pager="2;1" />'.encode("utf-16-be"), 10),
    (b'<PageRequest id="9" pager="2;1" message="&#0;" />', 10),
    (b'<PageRequest id="9" pager="0;1" message="&#xD800;" />', 10),
    (b'<PageRequest id="9" pager="0;1" message="\xed\xa0\x80" />', 10),
    (b'<PageRequest id="9" pager="0;1" message="&#x10FFFF;" />', 0),
    (b'<PageRequest id="9" pager="0;1" message="&#x110000;" />', 10),
    (b'<PageRequest id="9" pager="0;1" message="&#12;&#12;" />', 6),
    (b'<PageRequest id="9" pager="0;1" message="%s" />' % (b"a" * 240), 0),
    (b'<PageRequest id="9" pager="0;1" message="%s" />' % (b"a" * 241), 6),
    (b'<PageRequest id="9" pager="0;1" message="%s" />' % ("€" * 240).encode(), 0),
    (b'<PageRequest id="" pager="2;1" />' + b" " * PAD, 0),  # 4096 bytes exactly
    (b'<PageRequest id="" pager="2;1" />' + b" " * (PAD + 1), 10),  # 4097
    (b'<PageRequest id="9" pager="2;1" />\r', 0),
    (b'<PageRequest id="9" pager="2;1"></PageRequest>', 0),
    (b'<PageRequest id="9" pager="2;1">x</PageRequest>', 6),
    (b'<PageRequest id="9" pager="2;1"><Pager Type="Guest" ID="1" /></PageRequest>', 6),
    (b'<PageRequest id="9" pager="2;1" /><PageRequest id="9" pager="2;1" />', 10),
    (b'<PageRequest id="9" pager="2;1" />trailing', 10),
    (b"<PageRequest", 10),
]


@pytest.mark.parametrize(("message", "expected"), XML)
async def test_xml_tricks(lrsn_rig, logged_in, message, expected):
    answer = await logged_in.ask(message + b"\n")
    if b"\n" in message:  # UTF-16's newline is cut in two
        await asyncio.sleep(0.2)
    assert ret(answer) == expected, answer
    assert await _count(lrsn_rig) == (1 if expected == 0 else 0)
    assert ret(await logged_in.ask(SHORT)) == 0  # the connection still serves


# ---- the same page over CoAP and LRSN at once ------------------------------------------------


async def test_the_same_page_over_coap_and_lrsn_at_once(lrsn_rig, logged_in):
    async def over_lrsn() -> list[int]:
        await logged_in.send(_short("2;77") * 30)
        return [ret(await logged_in.line()) for _ in range(30)]

    async def over_coap() -> list[str]:
        rs = await asyncio.gather(
            *(
                lrsn_rig.coap.post("/v1/page", {"number": 77, "pageMode": "Flash30Sec"})
                for _ in range(30)
            )
        )
        return [r.code for r in rs]

    lrsn_answers, coap_answers = await asyncio.gather(over_lrsn(), over_coap())
    assert lrsn_answers == [0] * 30 and coap_answers == ["2.04"] * 30
    txs = (await lrsn_rig.http.get("/transmissions"))["transmissions"]
    assert sorted(t["source"] for t in txs) == ["coap"] * 30 + ["lrsn"] * 30
    assert {t["number"] for t in txs} == {77}
    assert [t["id"] for t in txs] == list(range(1, 61))
