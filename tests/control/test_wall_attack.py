"""The pager wall's routes attacked as an adversary would (issue 15): hostile device requests,
streams by the hundred, streams racing a reset, a power cycle and a stop, requests from other
web pages. Each test is an attack that once succeeded, or one that is checked to fail; over
real HTTP and CoAP against a real emulator."""

import asyncio
import contextlib
import socket

import aiohttp
import pytest

from pager.app import Emulator
from pager.control import wall_stream
from tests.conftest import make_config
from tests.control.conftest import Rig
from tests.control.wall import Events

SETTINGS = {"method": "GET", "path": "/v1/settings"}
TOKEN = "s3cret-token-0123456789"


async def _sessions(rig: Rig) -> list[int]:
    return [s["number"] for s in (await rig.coap.get("/v1/sessions")).json["sessions"]]


# -- POST /device-request -----------------------------------------------------------------


@pytest.mark.parametrize(
    "request_body",
    [
        {"method": "GET", "path": "/v1/sessions", "query": {"x": "y" * 70_000}},
        {"method": "GET", "path": "/v1/sessions", "query": {f"q{i}": i for i in range(20_000)}},
        {"method": "GET", "path": "/v1" + "/a" * 1100},
        {"method": "POST", "path": "/v1/sessions", "query": {"label": "é" * 600}, "body": {}},
    ],
)
async def test_a_request_too_big_to_send_is_400_and_the_next_one_is_sent(rig, request_body):
    """Once a query option over aiocoap's limit was a 500, and left the client context with
    a half-sent exchange: every device request after it was a 500 too, until a restart."""
    status, answer = await rig.http.request("POST", "/device-request", request_body)
    assert status == 400, answer
    assert answer["error"].startswith("path and query: at most 1024 bytes as CoAP options")
    assert (await rig.http.post("/device-request", SETTINGS))["code"] == "2.05"


async def test_a_long_path_segment_the_device_refuses_is_its_answer(rig):
    """Under the bound, what the device makes of it is shown, not judged here."""
    answer = await rig.http.post("/device-request", {"method": "GET", "path": "/v1/" + "a" * 300})
    assert answer["code"] == "4.02"


@pytest.mark.parametrize(
    "raw,error",
    [
        ('{"method": "GET", "path": "/v1/sessions", "query": {"number": "\\ud800"}}', "body: "),
        ('{"method": "POST", "path": "/v1/sessions", "body": {"label": "\\udfff"}}', "body: "),
        ('{"method": "POST", "path": "/v1/sessions", "body": ' + "[" * 5000 + "]" * 5000 + "}",
         "body: Invalid JSON: recursion limit"),
        ('{"method": "POST", "path": "/v1/sessions", "body": {"number": 1' + "0" * 5000 + "}}",
         "body: Invalid JSON: number out of range"),
        ('{"method": "GET", "path": "/v1/sessions", "query": {"number": true}}', "query.number"),
        ('{"method": "GET", "path": "/v1/sessions", "query": {"number": null}}', "query.number"),
        ('{"method": "GET", "path": "/v1/sessions", "query": {"number": 1.5}}', "query.number"),
        ('{"method": "GET", "path": "/v1/sessions", "query": []}', "query: "),
        ('{"method": "GET", "path": "/v1/sessions?number=1&x=2"}', "path: String should match"),
        ('{"method": "GET", "path": "/v1/%2e%2e/x"}', "path: String should match"),
        ('{"method": "GET", "path": "/v1/s\\u00e9ssions"}', "path: String should match"),
        ('{"method": "GET", "path": "/v1/sessions\\n"}', "path: String should match"),
        ('{"method": "GET ", "path": "/v1/sessions"}', "method: Input should be"),
        ('{"method": "GET", "path": "/v1/sessions"} trailing', "body: Invalid JSON"),
        ("[1, 2]", "body: Input should be an object"),
    ],
)  # fmt: skip
async def test_hostile_device_requests_are_400_and_change_nothing(frozen, raw, error):
    await frozen.coap.post("/v1/sessions", {"number": 12})
    status, answer = await frozen.http.request("POST", "/device-request", raw=raw)
    assert status == 400, answer
    assert answer["error"].startswith(error), answer
    assert await _sessions(frozen) == [12]


async def test_a_body_that_is_not_utf8_is_400(frozen):
    body = b'{"method": "POST", "path": "/v1/sessions", "body": {"label": "\xff\xfe"}}'
    async with frozen.http.session.post(
        "/device-request", data=body, headers={"Content-Type": "application/json"}
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"].startswith("body: Invalid JSON")
    assert await _sessions(frozen) == []


@pytest.mark.parametrize(
    "query",
    [{"number": "12&number=13"}, {"number": "12=13"}, {"number": "12 13"}],
)
async def test_a_query_value_is_one_option_whatever_it_holds(frozen, query):
    """`&` and `=` in a value are not separators: the device gets the value whole and
    refuses it, it does not read a second parameter out of it."""
    await frozen.coap.post("/v1/sessions", {"number": 12})
    answer = await frozen.http.post(
        "/device-request",
        {"method": "PUT", "path": "/v1/sessions", "query": query, "body": {"action": "clear"}},
    )
    assert answer["code"].startswith("4."), answer
    assert await _sessions(frozen) == [12]


async def test_unicode_labels_go_through_whole(frozen):
    label = "😀 \u202eRTL\u202c «Ada» </script>"
    answer = await frozen.http.post(
        "/device-request",
        {"method": "POST", "path": "/v1/sessions", "body": {"number": 3, "label": label}},
    )
    assert answer["code"] == "2.01"
    assert (await frozen.coap.get("/v1/sessions")).json["sessions"][0]["label"] == label


async def test_a_hundred_device_requests_at_once_are_each_answered(frozen):
    requests = [
        {"method": "POST", "path": "/v1/sessions", "body": {"number": n}} for n in range(100)
    ]
    answers = await asyncio.gather(*(frozen.http.post("/device-request", r) for r in requests))
    assert [a["code"] for a in answers] == ["2.01"] * 100
    assert sorted(await _sessions(frozen)) == list(range(100))


async def test_a_request_through_a_short_power_cycle_is_answered_when_it_is_back(frozen):
    """Confirmable: the retransmission after the power is back gets the answer."""
    await frozen.http.post("/power-cycle", {"seconds": 0.5})
    assert (await frozen.http.post("/device-request", SETTINGS))["code"] == "2.05"


async def test_a_request_a_fault_drops_holds_no_request_after_it(frozen):
    """aiocoap's client sends one exchange at a time to a peer; the dropped request's went
    on retransmitting after its 504 (93 s), and every request after it was a 504 too."""
    await frozen.http.post("/faults", {"kind": "drop", "path": "/v1/settings"}, status=201)
    status, answer = await frozen.http.request("POST", "/device-request", SETTINGS)
    assert status == 504 and answer["error"].startswith("no answer from the transmitter")
    sessions = {"method": "GET", "path": "/v1/sessions"}
    async with asyncio.timeout(2):
        assert (await frozen.http.post("/device-request", sessions))["code"] == "2.05"


async def test_a_device_request_racing_stop_is_answered_or_503(rig):
    """Whichever comes first: answered over CoAP, or told the emulator is not running; never
    a 500, and the stop is not held."""
    emu = rig.emu
    calls = [rig.http.request("POST", "/device-request", SETTINGS) for _ in range(20)]
    results = asyncio.gather(*calls, return_exceptions=True)
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await emu.stop()
    for result in await results:
        if isinstance(result, BaseException):
            assert isinstance(result, aiohttp.ClientError), result  # the server went
        else:
            status, answer = result
            assert (status, answer.get("code")) in ((200, "2.05"), (503, None)), result


# -- GET /events by the hundred -----------------------------------------------------------


async def _raw_stream(port: int, rcvbuf: int = 4096) -> socket.socket:
    """A page that asks for the stream and never reads it: its window stays small and full."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    sock.send(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


async def _until(condition, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_streams_that_never_read_are_bounded_in_number(frozen):
    """Each stream holds its own snapshot until its page reads it: pages that never read
    held memory in proportion to their number, without a bound. Past the bound a stream is
    503; a stream closed makes room for one more; the CoAP API answers throughout."""
    emu, wall = frozen.emu, frozen.emu._wall
    for n in range(40):
        await frozen.coap.post("/v1/sessions", {"number": n, "label": "x" * 40})
    socks = [await _raw_stream(emu.control_port) for _ in range(wall_stream.STREAMS_MAX)]
    try:
        await _until(lambda: len(wall.subscribers) == wall_stream.STREAMS_MAX)
        for _ in range(3):
            status, answer = await frozen.http.request("GET", "/events")
            assert status == 503
            assert answer == {
                "error": f"{wall_stream.STREAMS_MAX} pager wall streams are open already; "
                "close one first"
            }
        assert (await frozen.coap.get("/v1/settings")).code == "2.05"
        socks.pop().close()
        await _until(lambda: len(wall.subscribers) < wall_stream.STREAMS_MAX)
        async with frozen.http.session.get("/events") as r:
            assert r.status == 200
            assert (await Events(r).next())[0] == "hello"
    finally:
        for sock in socks:
            sock.close()
    await _until(lambda: not wall.subscribers)
    assert emu._journal.watch is None


async def test_a_page_that_reads_nothing_is_cut_when_events_stop_coming(frozen, monkeypatch):
    """Its writes wait for a window that never opens. Once its queue was the only bound: a
    few events too few to fill it, and the stream stayed open for ever, holding its place."""
    monkeypatch.setattr(wall_stream, "WRITE_SECONDS", 0.5)
    emu, wall = frozen.emu, frozen.emu._wall
    sock = await _raw_stream(emu.control_port)
    try:
        await _until(lambda: len(wall.subscribers) == 1)
        (slow,) = wall.subscribers
        for i in range(1000):  # a faults event of 40 faults is some 15 kB
            await frozen.http.post("/faults", {"kind": "drop", "path": f"/v1/x{i}"}, status=201)
            if i >= 40:
                await frozen.http.delete(f"/faults/{i - 39}")
            if len(slow.queue) > 3:  # its writes are stuck
                break
        assert len(slow.queue) < wall_stream.QUEUE_EVENTS
        await _until(lambda: slow not in wall.subscribers, timeout=5)
        assert slow.cut
    finally:
        sock.close()


async def test_hundreds_of_streams_dropped_mid_hello_are_all_forgotten(frozen):
    """Opened and closed before their snapshot was read (some before it was even built):
    nothing is left subscribed, the journal's watch is taken off, CoAP answers meanwhile."""
    emu, wall = frozen.emu, frozen.emu._wall
    for n in range(100):
        await frozen.coap.post("/v1/sessions", {"number": n})

    async def open_and_drop(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.control_port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        if i % 2:
            await reader.read(100)  # the headers and a little of the snapshot
        writer.transport.abort()

    for _ in range(10):
        await asyncio.gather(*(open_and_drop(i) for i in range(30)))
        assert (await frozen.coap.get("/v1/settings")).code == "2.05"
    await _until(lambda: not wall.subscribers)
    assert emu._journal.watch is None and not wall._unanswered
    async with frozen.http.session.get("/events") as r:  # and the next page is served
        assert len((await Events(r).until("hello"))["sessions"]) == 100


async def test_every_open_stream_gets_every_change(frozen):
    streams = contextlib.AsyncExitStack()
    async with streams:
        opened = []
        for _ in range(wall_stream.STREAMS_MAX):
            r = await streams.enter_async_context(frozen.http.session.get("/events"))
            opened.append(Events(r))
            await opened[-1].until("hello")
        answer = await frozen.coap.post("/v1/sessions", {"number": 7})
        for stream in opened:
            assert (await stream.until("change"))["session"] == answer.json["sessions"][0]


# -- another web page, in the browser of someone on this machine --------------------------


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/reset", "{}"),
        ("POST", "/device-request", '{"method": "DELETE", "path": "/v1/sessions"}'),
        ("POST", "/power-cycle", '{"seconds": 60}'),
        ("GET", "/events", None),
        ("GET", "/device", None),
    ],
)
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
async def test_another_web_pages_requests_are_refused(frozen, method, path, body, origin):
    """A form post or a fetch() with a text/plain body needs no CORS preflight: any site the
    developer had open could reset the transmitter or clear its sessions (the body is read
    whatever its Content-Type). Without a token the Origin must be the API's own."""
    await frozen.coap.post("/v1/sessions", {"number": 12})
    headers = {"Origin": origin, "Content-Type": "text/plain"}
    async with frozen.http.session.request(method, path, data=body, headers=headers) as r:
        assert r.status == 403
        assert await r.json() == {
            "error": f"the control API answers no request from another web page (Origin {origin})"
        }
    assert await _sessions(frozen) == [12]
    assert (await frozen.http.get("/health"))["coap"] == "serving"


@pytest.mark.parametrize("host,origin", [("127.0.0.1", "127.0.0.1"), ("LOCALHOST", "localhost")])
async def test_a_request_from_the_page_itself_is_served(frozen, host, origin):
    port = frozen.emu.control_port
    answer = await frozen.http.post(
        "/device-request",
        {"method": "POST", "path": "/v1/sessions", "body": {"number": 5}},
        headers={"Origin": f"http://{origin}:{port}", "Host": f"{host}:{port}"},
    )
    assert answer["code"] == "2.01"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example"])
async def test_a_name_that_is_not_local_is_refused_without_a_token(frozen, host):
    """DNS rebinding: a site whose name resolves to 127.0.0.1 is its own origin, and its
    script could read every answer, the stream included. Only the Host tells it apart."""
    async with frozen.http.session.get("/events", headers={"Host": host}) as r:
        assert r.status == 403
        assert (await r.json())["error"].startswith(
            "the control API answers requests addressed to an IP address or localhost"
        )


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost", "wall.localhost"])
async def test_local_names_are_served(frozen, host):
    port = frozen.emu.control_port
    async with frozen.http.session.get("/device", headers={"Host": f"{host}:{port}"}) as r:
        assert r.status == 200


async def test_with_a_token_origin_and_host_are_not_asked(tmp_path):
    """The token is what keeps another page out then (it can neither send the header nor
    read the page's sessionStorage); a rig reaching the API by any name keeps working."""
    config = make_config(tmp_path / "p.db", control=True, control_port=0, control_token=TOKEN)
    async with Emulator(config) as emu:
        auth = f"Bearer {TOKEN}"
        headers = {"Host": "rig.example", "Origin": "http://other", "Authorization": auth}
        async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as session:
            async with session.get("/device", headers=headers) as r:
                assert r.status == 200
            async with session.get("/device", headers={**headers, "Authorization": ""}) as r:
                assert r.status == 401


# -- streams racing a reset, a power cycle, a stop and a restart --------------------------


async def _hellos(rig: Rig, count: int) -> list[Events]:
    """`count` streams, their snapshots not read yet (some not built yet)."""
    streams = []
    for _ in range(count):
        response = await rig.http.session.get("/events")
        assert response.status == 200
        streams.append(Events(response))
    return streams


async def test_streams_racing_a_factory_reset_all_end_with_its_snapshot(frozen):
    """Whatever each stream had read, built or queued when the reset came, the last hello
    it gets is the factory state, and nothing of before comes after it."""
    for n in range(30):
        await frozen.coap.post("/v1/sessions", {"number": n})
    opening = asyncio.ensure_future(_hellos(frozen, 20))
    await asyncio.sleep(0.01)
    await frozen.http.post("/reset")
    streams = await opening
    try:
        for stream in streams:
            hello = await stream.until("hello", lambda d: d["sessions"] == [])
            assert hello["statistics"]["numSessions"] == 0
            assert hello["transmissions"] == [] and hello["journal"]["entries"] == []
        await frozen.coap.post("/v1/sessions", {"number": 99})
        for stream in streams:  # nothing of before the reset comes after its snapshot
            while (event := await stream.next())[0] != "change":
                name, data = event
                assert name in ("hello", "journal", "faults", "clock"), event
                assert name != "hello" or data["sessions"] == [], event
            assert event[1]["session"]["number"] == 99
    finally:
        for stream in streams:
            stream.response.close()


async def test_a_snapshot_built_across_a_reset_is_of_one_moment(frozen, monkeypatch):
    """The snapshot's journal tail was read before its first wait and the sessions after
    it: a reset in that wait made a snapshot of no moment, the old journal beside no
    sessions."""
    emu = frozen.emu
    await frozen.coap.post("/v1/sessions", {"number": 12})
    transmissions = emu.transmissions

    async def reset_first(*args, **kwargs):
        monkeypatch.setattr(emu, "transmissions", transmissions)
        await emu.reset()
        return await transmissions(*args, **kwargs)

    monkeypatch.setattr(emu, "transmissions", reset_first)
    async with frozen.http.session.get("/events") as r:
        hello = await Events(r).until("hello")
    assert hello["sessions"] == []
    assert hello["journal"]["entries"] == []


async def test_streams_racing_a_power_cycle_end_and_the_next_ones_say_so(frozen):
    opening = asyncio.ensure_future(_hellos(frozen, 10))
    await asyncio.sleep(0.01)
    await frozen.http.post("/power-cycle", {"seconds": 1})
    streams = await opening
    try:
        for stream in streams:  # each ends with the power, or is told it is back
            with contextlib.suppress(EOFError):
                await stream.until("faults", lambda d: d["unreachable"] is False, timeout=5)
    finally:
        for stream in streams:
            stream.response.close()
    assert (await frozen.coap.get("/v1/settings")).code == "2.05"


async def test_streams_opened_while_the_emulator_stops_do_not_hold_the_stop(frozen):
    emu = frozen.emu
    streams = await _hellos(frozen, 10)

    async def keep_opening() -> None:
        with contextlib.suppress(aiohttp.ClientError, AssertionError):
            while True:
                streams.append((await _hellos(frozen, 1))[0])

    opener = asyncio.ensure_future(keep_opening())
    await asyncio.sleep(0.05)
    try:
        async with asyncio.timeout(wall_stream.END_GRACE + 4):
            await emu.stop()
        for stream in streams:
            with contextlib.suppress(aiohttp.ClientError):
                await stream.ended(timeout=5)
    finally:
        opener.cancel()
        for stream in streams:
            stream.response.close()
    assert not emu._wall.subscribers


async def test_a_stream_after_a_restart_on_the_same_port_is_the_new_emulators(frozen, tmp_path):
    emu = frozen.emu
    await frozen.coap.post("/v1/sessions", {"number": 12})
    (old,) = await _hellos(frozen, 1)
    assert len((await old.until("hello"))["sessions"]) == 1
    await emu.stop()
    assert await old.ended()
    config = emu.config.model_copy(
        update={"port": emu.port, "control_port": emu.control_port, "db": str(tmp_path / "b.db")}
    )
    async with Emulator(config) as again:
        async with frozen.http.session.get("/events") as r:
            hello = await Events(r).until("hello")
        assert hello["sessions"] == [] and hello["device"]["uri"] == again.uri
        answer = await frozen.http.post("/device-request", SETTINGS)
        assert answer["code"] == "2.05"


# -- the page's files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/static/%252e%252e%252fhttp.py",  # encoded twice
        "/static/%c0%ae%c0%ae%c0%afhttp.py",  # overlong UTF-8
        "/static/%ef%bc%8e%ef%bc%8e%ef%bc%8fhttp.py",  # fullwidth dots and slash
        "/static/.%2e/.%2e/pyproject.toml",
        "/static/..\\..\\http.py",
        "/static/wall.js/",
        "/static/wall.js;.html",
        "/static/wall.js%20",
        "/static/.wall.js",
        "/static/__init__.py",
        "/static/" + "a" * 2000 + ".js",
        "/static/%00",
        "/index.html/..",
        "/..%2fhttp.py",
    ],
)
async def test_no_file_but_the_pages_is_served_in_any_encoding(rig, path):
    url = f"http://127.0.0.1:{rig.emu.control_port}{path}"
    async with aiohttp.ClientSession() as session:
        async with session.get(aiohttp.client.URL(url, encoded=True)) as r:
            assert r.status == 404, path
            assert await r.json() == {"error": "Not Found"}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", ["/", "/static/wall.js"])
async def test_the_files_take_get_and_head_only(rig, method, path):
    """A 405 names the methods there are (Allow), as HTTP asks of it."""
    async with rig.http.session.request(method, path) as r:
        assert r.status == 405
        assert r.headers["Allow"] == "GET,HEAD"
        assert await r.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("path", ["/", "/static/wall.js", "/static/wall.css"])
async def test_head_of_a_file_is_its_headers_alone(rig, path):
    async with rig.http.session.get(path) as r:
        whole = await r.read()
        got = dict(r.headers)
    async with rig.http.session.head(path) as r:
        assert r.status == 200
        assert await r.read() == b""
        assert r.headers["Content-Length"] == str(len(whole))
        for name in ("Content-Type", "Content-Security-Policy", "X-Content-Type-Options"):
            assert r.headers[name] == got[name]


async def test_head_of_the_files_needs_no_token_and_of_data_it_is_not_there(tmp_path):
    config = make_config(tmp_path / "p.db", control=True, control_port=0, control_token=TOKEN)
    async with Emulator(config) as emu:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as session:
            for path in ("/", "/static/wall.js"):
                async with session.head(path) as r:
                    assert r.status == 200, path
            async with session.head("/events") as r:  # no stream for a HEAD
                assert r.status == 401
            async with session.head("/events", headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 405


# -- the cost with no page open -----------------------------------------------------------


async def test_with_no_page_open_no_event_is_built_for_any_kind_of_change(frozen, monkeypatch):
    """Every kind of change the stream tells of, with no stream open: the listeners are
    called (they are registered) and return before reading or building anything."""
    emu = frozen.emu
    calls: dict[str, int] = {}

    def count(owner, name):
        real = getattr(owner, name)

        def counted(*args, **kwargs):
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)

    for name in ("changes", "transmission", "clock", "faults", "journal_entry", "encode"):
        count(wall_stream.wall_events, name)
    for name in ("pager", "list_faults"):
        count(emu, name)
    listeners = emu.engine.listeners
    on_change = listeners.index(emu._wall.on_change)

    def told(change):
        calls["on_change"] = calls.get("on_change", 0) + 1
        emu._wall.on_change(change)

    listeners[on_change] = told  # the emulator is stopped after the test, and dropped
    http, coap = frozen.http, frozen.coap
    await coap.post("/v1/sessions", {"number": 12})
    await coap.put("/v1/sessions", {"action": "page"}, query="number=12")
    await coap.post("/v1/page", {"number": 40, "message": "hi"})
    await coap.post("/v1/settings", {"defaultTargetGoal": 90})
    await coap.delete("/v1/sessions/statistics")
    await http.post("/clock/advance", {"seconds": 60})
    await http.post("/clock/speed", {"factor": 2})
    await http.post("/faults", {"kind": "error", "path": "/v1/settings", "count": 1}, status=201)
    await coap.get("/v1/settings")  # spends it
    await http.post("/power-cycle", {"seconds": 0.2})
    await asyncio.sleep(0.4)  # the power is back
    await http.post("/reset")
    await coap.post("/v1/sessions", {"number": 13})
    assert calls.pop("on_change") >= 6
    assert calls == {}
    assert emu._journal.watch is None and not emu._wall._unanswered


@pytest.mark.parametrize("config_overrides", [{"amplification_protection": True}])
async def test_with_amplification_protection_the_walls_requests_prove_their_address(frozen):
    """The protection answers an unproven peer 4.01 with an Echo value and does nothing: every
    page, clear and remove from the wall was that 4.01. The request is repeated with the
    value, once, as libcoap's client does."""
    answer = await frozen.http.post(
        "/device-request", {"method": "POST", "path": "/v1/sessions", "body": {"number": 8}}
    )
    assert answer["code"] == "2.01"
    assert (await frozen.http.post("/device-request", SETTINGS))["code"] == "2.05"
    entries = (await frozen.http.get("/journal", params={"path": "/v1/sessions"}))["entries"]
    assert [e["code"] for e in entries] == ["4.01", "2.01"]  # one session, made once
