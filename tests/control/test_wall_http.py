"""The pager wall's other routes: the page and its files (`GET /`, `GET /static/<file>`), and
`POST /device-request`, the device API over real CoAP from the control API; who may use
each (docs/control-api.md, "The pager wall")."""

import asyncio
from importlib.resources import files

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from pager.app import Emulator
from pager.control import device_request
from pager.control.http import build_app
from tests.conftest import make_config
from tests.control.test_access import Peer, _wrap
from tests.control.wall import Events

TOKEN = "s3cret-token-0123456789"


async def _get(rig, path: str, **kw) -> tuple[int, str, bytes]:
    async with rig.http.session.get(path, **kw) as r:
        return r.status, r.content_type, await r.read()


async def test_the_page_and_its_files_are_served(rig):
    status, kind, body = await _get(rig, "/")
    assert (status, kind) == (200, "text/html")
    assert body == (files("pager.control") / "static" / "index.html").read_bytes()
    for name, kind in [("wall.js", "text/javascript"), ("wall.css", "text/css")]:
        status, got, body = await _get(rig, f"/static/{name}")
        assert (status, got) == (200, kind), name
        assert body == (files("pager.control") / "static" / name).read_bytes()


def test_the_page_loads_nothing_from_elsewhere():
    """No URL outside the emulator in the page's files (the browser's CSP would refuse it)."""
    for item in (files("pager.control") / "static").iterdir():
        text = item.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, item


@pytest.mark.parametrize(
    "path",
    [
        "/static/../http.py",
        "/static/..%2Fhttp.py",
        "/static/%2e%2e%2fhttp.py",
        "/static/%2Fetc%2Fpasswd",
        "/static//etc/passwd",
        "/static/..%5Chttp.py",
        "/static/static_files.py",
        "/static/",
        "/static/wall.js%00.html",
        "/static/WALL.JS",
    ],
)
async def test_no_other_file_is_served(rig, path):
    url = f"http://127.0.0.1:{rig.emu.control_port}{path}"
    async with aiohttp.ClientSession() as session:
        async with session.get(aiohttp.client.URL(url, encoded=True)) as r:
            assert r.status == 404, path
            assert await r.json() == {"error": "Not Found"}


@pytest.fixture
async def guarded(tmp_path):
    config = make_config(tmp_path / "pager.db", control=True, control_port=0, control_token=TOKEN)
    async with Emulator(config) as emu:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as session:
            yield emu, session


async def test_with_a_token_the_page_needs_none_and_its_data_do(guarded):
    emu, session = guarded
    for path in ("/", "/static/wall.js", "/static/wall.css"):
        async with session.get(path) as r:
            assert r.status == 200, path
    async with session.get("/events") as r:
        assert r.status == 401
        assert await r.json() == {"error": "a valid Authorization: Bearer token is required"}
    request = {"method": "GET", "path": "/v1/settings"}
    async with session.post("/device-request", json=request) as r:
        assert r.status == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with session.get("/events", headers=auth) as r:
        assert r.status == 200
        assert (await Events(r).next())[0] == "hello"
    async with session.post("/device-request", json=request, headers=auth) as r:
        assert r.status == 200 and (await r.json())["code"] == "2.05"


async def _call(app, address: str, path: str):
    request = make_mocked_request("GET", path, app=app, transport=Peer(address))
    match = await app.router.resolve(request)
    request._match_info = match
    handler = match.handler
    for middleware in reversed(app.middlewares):
        handler = _wrap(middleware, handler)
    return await handler(request)


async def test_without_a_token_the_page_is_for_loopback_peers_only():
    async with Emulator() as emu:
        app = build_app(emu)
        for path in ("/", "/static/wall.js", "/events"):
            assert (await _call(app, "192.168.1.20", path=path)).status == 403, path
        assert (await _call(app, "127.0.0.1", path="/")).status == 200


# -- POST /device-request -----------------------------------------------------------------


async def test_a_device_request_is_a_real_coap_request(frozen):
    http, coap = frozen.http, frozen.coap
    body = {"method": "POST", "path": "/v1/sessions", "body": {"number": 12, "label": "Ada"}}
    answer = await http.post("/device-request", body)
    assert answer["code"] == "2.01"
    assert answer["body"]["sessions"][0]["label"] == "Ada"
    listed = await coap.get("/v1/sessions")
    assert [s["number"] for s in listed.json["sessions"]] == [12]
    paged = await http.post(
        "/device-request",
        {"method": "PUT", "path": "/v1/sessions", "query": {"number": 12},
         "body": {"action": "page", "pageMode": "Glow5Min"}},
    )  # fmt: skip
    assert paged["code"] == "2.04" and paged["body"]["sessions"][0]["state"] == "paged"
    assert (await http.get("/pagers/12"))["pageMode"] == "Glow5Min"
    gone = await http.post("/device-request", {"method": "DELETE", "path": "/v1/sessions"})
    assert gone == {"code": "2.02", "body": None}


async def test_a_device_request_is_journaled_from_a_loopback_peer(frozen):
    await frozen.http.delete("/journal")
    await frozen.http.post("/device-request", {"method": "GET", "path": "/v1/settings"})
    (entry,) = (await frozen.http.get("/journal"))["entries"]
    assert (entry["method"], entry["path"], entry["type"], entry["code"]) == (
        "GET",
        "/v1/settings",
        "CON",
        "2.05",
    )
    assert entry["peer"].startswith("127.0.0.1:")


async def test_a_coap_error_is_passed_through(frozen):
    http = frozen.http
    missing = await http.post(
        "/device-request",
        {"method": "PUT", "path": "/v1/sessions", "query": {"number": 77},
         "body": {"action": "clear"}},
    )  # fmt: skip
    assert missing["code"] == "4.04"
    assert missing["body"]["error"]["code"] == "4.04"
    bad = await http.post(
        "/device-request", {"method": "POST", "path": "/v1/sessions", "body": {"number": "x"}}
    )
    assert bad["code"] == "4.00"
    assert bad["body"]["error"]["field"] == "number"
    too_big = await http.post(
        "/device-request",
        {"method": "POST", "path": "/v1/sessions", "body": {"number": 1, "label": "x" * 2000}},
    )
    assert too_big["code"] == "4.13"
    unknown = await http.post("/device-request", {"method": "GET", "path": "/v1/nothing"})
    assert unknown == {"code": "4.04", "body": None}


@pytest.mark.parametrize(
    "request_body,error",
    [
        ({"method": "PATCH", "path": "/v1/sessions"}, "method: Input should be"),
        ({"method": "get", "path": "/v1/sessions"}, "method: Input should be"),
        ({"path": "/v1/sessions"}, "method: Field required"),
        ({"method": "GET", "path": "/v2/sessions"}, "path: String should match pattern"),
        ({"method": "GET", "path": "v1/sessions"}, "path: String should match pattern"),
        ({"method": "GET", "path": "/v1/../x"}, "path: String should match pattern"),
        ({"method": "GET", "path": "/v1//sessions"}, "path: String should match pattern"),
        ({"method": "GET", "path": "/v1/sessions?number=1"}, "path: String should match"),
        ({"method": "GET", "path": "/v1/sessions", "query": {"number": [1]}}, "query.number"),
        ({"method": "GET", "path": "/v1/sessions", "query": {"": 1}}, "query: '' is not"),
        ({"method": "GET", "path": "/v1/sessions", "x": 1}, "x: Extra inputs"),
        (
            {"method": "POST", "path": "/v1/sessions", "body": {"label": "x" * 70_000}},
            "body: at most 65536 bytes of JSON",
        ),
    ],
)
async def test_bad_device_requests_are_400_naming_the_fault(rig, request_body, error):
    status, answer = await rig.http.request("POST", "/device-request", request_body)
    assert status == 400, answer
    assert answer["error"].startswith(error), answer


async def test_a_device_request_that_is_not_json_is_400(rig):
    status, answer = await rig.http.request("POST", "/device-request", raw="not json")
    assert status == 400 and answer["error"].startswith("body: Invalid JSON")


async def test_no_answer_in_time_is_504(frozen, monkeypatch):
    monkeypatch.setattr(device_request, "TIMEOUT", 0.5)
    await frozen.http.post("/faults", {"kind": "drop", "path": "/v1/settings"}, status=201)
    status, answer = await frozen.http.request(
        "POST", "/device-request", {"method": "GET", "path": "/v1/settings"}
    )
    assert status == 504
    assert answer == {"error": "no answer from the transmitter within 0.5 s to GET /v1/settings"}


async def test_the_client_context_is_made_once_and_closed_at_stop(frozen):
    emu = frozen.emu
    assert emu._device_requests._context is None  # none until asked
    requests = [{"method": "GET", "path": "/v1/settings"}] * 5
    answers = await asyncio.gather(*(frozen.http.post("/device-request", r) for r in requests))
    assert {a["code"] for a in answers} == {"2.05"}
    context = emu._device_requests._context
    assert context is not None
    await emu.stop()
    assert emu._device_requests._context is None
