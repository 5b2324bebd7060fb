"""The control API describes itself: an OpenAPI 3.1 document at GET /openapi.json and an
index at GET /api, both made from the table the app is built from, and both checked here
against the app's router and against real answers."""

from unittest.mock import patch

import jsonschema
import pytest
from aiohttp import web
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from pager.control import device_request
from pager.control.http import ROUTES, build_app
from tests.control.conftest import ts


def _served(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route of the app, as aiohttp's router holds them."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"  # aiohttp's own, beside every GET
    }


def _documented(doc: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


async def test_every_route_is_in_the_openapi_document(rig):
    doc = await rig.http.get("/openapi.json")
    app = build_app(rig.emu)
    assert _served(app) - _documented(doc) == set()
    assert _documented(doc) == _served(app)

    # and a route added beside the table is found missing
    async def beside(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/beside", beside)
    assert _served(app) - _documented(doc) == {("GET", "/beside")}


async def test_the_document_is_valid_openapi_3_1(rig):
    doc = await rig.http.get("/openapi.json")
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)
    numbers = doc["paths"]["/pagers/{number}"]["get"]["parameters"][0]["schema"]
    assert (numbers["minimum"], numbers["maximum"]) == (0, 4095)  # this transmitter's range


async def test_a_broken_document_is_refused_by_the_validator(rig):
    """The validator is no rubber stamp: an answer without a description is caught."""
    doc = await rig.http.get("/openapi.json")
    del doc["paths"]["/clock"]["get"]["responses"]["200"]["description"]
    with pytest.raises(Exception, match="description"):
        validate(doc, cls=OpenAPIV31SpecValidator)


async def test_the_index_lists_every_endpoint(rig):
    index = await rig.http.get("/api")
    listed = {(e["method"], e["path"]) for e in index["endpoints"]}
    assert listed == _served(build_app(rig.emu))
    assert all(e["summary"] for e in index["endpoints"])
    assert index["openapi"] == "/openapi.json"
    async with rig.http.session.get("/") as r:  # the pager wall
        assert (r.status, r.content_type) == (200, "text/html")


async def test_real_answers_match_the_published_schemas(frozen):
    http, coap = frozen.http, frozen.coap
    doc = await http.get("/openapi.json")
    seen: set[tuple[str, str, int]] = set()

    async def check(method: str, path: str, route: str, body=None, **kw):
        status, answer = await http.request(method, path, body, **kw)
        operation = doc["paths"][route][method.lower()]
        assert str(status) in operation["responses"], (method, path, status, answer)
        media = operation["responses"][str(status)]["content"]["application/json"]
        schema = {**media["schema"], "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(answer)
        seen.add((method, route, status))
        return answer

    await coap.post("/v1/page", {"number": 12, "message": "Table ready\fF30V"})
    await check("GET", "/api", "/api")
    await check("GET", "/device", "/device")
    await check("GET", "/clock", "/clock")
    await check("POST", "/clock/set", "/clock/set", {"datetime": ts()})
    await check("POST", "/clock/advance", "/clock/advance", {"seconds": 1})
    await check("POST", "/clock/freeze", "/clock/freeze")
    await check("POST", "/clock/unfreeze", "/clock/unfreeze")
    await check("POST", "/clock/speed", "/clock/speed", {"factor": 2})
    await check("POST", "/clock/speed", "/clock/speed", {"factor": 0})  # 400
    await check("GET", "/transmissions", "/transmissions", params={"number": "12"})
    await check("GET", "/transmissions", "/transmissions", params={"number": "x"})  # 400
    await check("GET", "/pagers", "/pagers")
    assert (await check("GET", "/pagers/12", "/pagers/{number}"))["state"] == "alerting"
    await check("GET", "/pagers/13", "/pagers/{number}")
    await check("GET", "/pagers/12/wait", "/pagers/{number}/wait", params={"after": "0"})
    await check("GET", "/pagers/13/wait", "/pagers/{number}/wait", params={"timeout": "0"})
    fault = await check("POST", "/faults", "/faults", {"kind": "error", "path": "/v1/x"})
    await check("GET", "/faults", "/faults")
    await check("DELETE", f"/faults/{fault['id']}", "/faults/{id}")
    await check("DELETE", f"/faults/{fault['id']}", "/faults/{id}")  # 404
    await check("DELETE", "/faults", "/faults")
    entries = (await check("GET", "/journal", "/journal"))["entries"]
    assert entries and entries[0]["path"] == "/v1/page"
    await check("GET", "/journal", "/journal", params={"code": "x"})  # 400
    verify, sequence = "/journal/verify", "/journal/verify-sequence"
    hit = await check("POST", verify, verify, {"path": "/v1/page", "code": "2.04", "exactly": 1})
    assert hit["holds"] and hit["matches"][0]["path"] == "/v1/page"
    miss = await check("POST", verify, verify, {"method": "POST", "body": {"number": 13}})
    assert miss["near_misses"][0]["differences"][0]["part"] == "body.number"  # 409
    await check("POST", verify, verify, {"exactly": -1})  # 400
    await check("POST", sequence, sequence, {"patterns": [{"path": "/v1/page"}]})
    out_of_order = {"patterns": [{"path": "/v1/page"}, {"method": "POST"}]}
    assert (await check("POST", sequence, sequence, out_of_order))["unmatched"]["earlier"] == []
    await check("POST", sequence, sequence, {"patterns": []})  # 400
    await check("DELETE", "/journal", "/journal")
    await check("GET", "/health", "/health")
    await check("POST", "/power-cycle", "/power-cycle", {"seconds": 0.1})
    assert (await check("GET", "/health", "/health"))["coap"] == "powered off"  # 503
    await check("POST", "/reset", "/reset")
    request = {"method": "POST", "path": "/v1/sessions", "body": {"number": 3}}
    assert (await check("POST", "/device-request", "/device-request", request))["code"] == "2.01"
    await check("POST", "/device-request", "/device-request", {"method": "x", "path": "/v1"})
    await check("POST", "/faults", "/faults", {"kind": "drop", "path": "/v1/settings"})
    timeout = {"method": "GET", "path": "/v1/settings"}
    with patch.object(device_request, "TIMEOUT", 0.2):
        await check("POST", "/device-request", "/device-request", timeout)  # 504
    for path, route, media in [
        ("/", "/", "text/html"),
        ("/static/wall.js", "/static/{file}", "*/*"),
        ("/events", "/events", "text/event-stream"),
    ]:
        async with http.session.get(path) as r:
            assert r.status == 200 and str(r.status) in doc["paths"][route]["get"]["responses"]
            assert media in doc["paths"][route]["get"]["responses"]["200"]["content"]
            seen.add(("GET", route, r.status))
    await check("GET", "/static/nothing.js", "/static/{file}")  # 404
    assert {s for _, _, s in seen} == {200, 201, 400, 404, 408, 409, 503, 504}
    assert {(m, r) for m, r, _ in seen} | {("GET", "/openapi.json")} == _documented(doc)


def test_every_endpoint_has_a_section_in_docs_control_api():
    from pager.control.http import ROUTES
    from tests.conftest import REPO

    doc = (REPO / "docs" / "control-api.md").read_text()
    headings = [line for line in doc.splitlines() if line.startswith("#")]
    missing = [
        f"{r.method} {r.path}"
        for r in ROUTES
        if r.path not in ("/api", "/openapi.json")  # described at the top
        and not any(r.method in h and (r.path + "," in h or h.endswith(r.path)) for h in headings)
    ]
    assert missing == []


async def test_a_body_too_large_is_answered_as_documented(rig):
    """aiohttp refuses a body over its limit (1 MiB) itself, with 413: every route that
    reads a body says so, with the error body it sends."""
    doc = await rig.http.get("/openapi.json")
    too_large = "{" + " " * (1024 * 1024) + "}"
    routes = [r for r in ROUTES if r.body is not None]
    assert routes
    for route in routes:
        status, answer = await rig.http.request(route.method, route.path, raw=too_large)
        assert status == 413, (route.path, status, answer)
        documented = doc["paths"][route.path][route.method.lower()]["responses"]
        assert "413" in documented, route.path
        media = documented["413"]["content"]["application/json"]
        schema = {**media["schema"], "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(answer)
