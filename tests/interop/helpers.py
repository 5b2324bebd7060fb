"""Run third-party CoAP clients (node-coap, libcoap's coap-client-notls) against the emulator.

The emulator under test runs in-process, in the same asyncio event loop as the test, so every
client runs through `asyncio.create_subprocess_exec` and is awaited with a timeout: a blocking
`subprocess.run` would freeze the loop, and with it the server the client is talking to.

Reading the response code from coap-client-notls
------------------------------------------------
At its default verbosity libcoap's client prints a 2.xx payload on stdout with no code at all
(2.00, 2.01, 2.04 and 2.05 look the same), and for any other class prints "<code> <payload>" on
stderr, with non-printable bytes replaced by '.'. Neither is enough, so the client is run with

    coap-client-notls -v 6 -o <file> -B <seconds> ...

* `-v 6` (LOG_INFO) makes libcoap log every PDU it sends or receives on stdout, one line each:
      v:1 t:ACK c:2.01 i:7e55 {01} [ Content-Format:application/json ] :: '...'
  The code of the response is the `c:` field of the last received line whose code is numeric
  (request lines carry `c:GET`, `c:POST`...; with Block2 there is one line per block, all
  with the final code). Options (ETag, Content-Format, Block2) are read from the same lines.
* `-o <file>` writes the 2.xx body, byte-exact (CBOR included, all Block2 blocks
  reassembled), to a file instead of mixing it into the log on stdout.
* A non-2.xx body never reaches the file; it is taken from the stderr line "<code> <body>",
  after checking that the code there agrees with the log. It is exact for the emulator's
  ASCII JSON error bodies.
* `-B` bounds libcoap's own wait; the asyncio timeout is the backstop.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import pytest

INTEROP = Path(__file__).resolve().parent
NODE_MODULES_COAP = INTEROP / "node_modules" / "coap" / "package.json"
COAP_CLIENT = "coap-client-notls"
NODE_COAP = "node-coap"

CLIENT_TIMEOUT = 15.0  # seconds, for any one client process (the asyncio backstop)
COAP_WAIT = 5  # seconds the client itself waits for an answer


def _under_ci() -> bool:
    # The brief's rule is CI == "true"; "1" is accepted too, as scripts/bootstrap.sh does.
    return os.environ.get("CI") in ("true", "1")


def require(client: str) -> str:
    """Return the executable for `client` ("node-coap" or "coap-client-notls").

    A missing client fails the test under CI (CI=true) and skips it elsewhere."""
    if client == NODE_COAP:
        node = shutil.which("node")
        if node is None:
            problem = "node is not on PATH"
        elif not NODE_MODULES_COAP.is_file():
            problem = f"node-coap is not installed ({NODE_MODULES_COAP} missing)"
        else:
            return node
    elif client == COAP_CLIENT:
        binary = shutil.which(COAP_CLIENT)
        if binary is not None:
            return binary
        problem = f"{COAP_CLIENT} (libcoap) is not on PATH"
    else:
        raise ValueError(f"unknown interop client {client!r}")
    message = (f"interop client {client} unavailable: {problem}; "
               "install it with `bash scripts/bootstrap.sh --test`")
    if _under_ci():
        pytest.fail(f"{message} (CI=true: a missing interop client is a failure)",
                    pytrace=False)
    pytest.skip(message)


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    def describe(self) -> str:
        return (f"{' '.join(self.argv)}\n exit {self.returncode}\n"
                f" stdout: {self.stdout.decode(errors='replace')[:3000]}\n"
                f" stderr: {self.stderr.decode(errors='replace')[:3000]}")


async def run(argv: list[str], *, timeout: float = CLIENT_TIMEOUT, cwd: Path = INTEROP,
              env: dict | None = None) -> Completed:
    """Run one client process without blocking the event loop; kill it on timeout."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=cwd, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(f"client timed out after {timeout} s: {' '.join(argv)}\n"
                    f" stdout: {out.decode(errors='replace')}\n"
                    f" stderr: {err.decode(errors='replace')}")
    return Completed(list(argv), proc.returncode, out, err)


# --------------------------------------------------------------------------- node-coap


@dataclass
class NodeReply:
    code: str
    payload: str
    content_format: int | None
    etag: str | None  # lowercase hex

    @property
    def json(self) -> Any:
        return json.loads(self.payload)


class NodeCoap:
    """tests/interop/coap_request.js and the vendor example scripts, run with node."""

    def __init__(self, node: str, port: int, host: str = "127.0.0.1"):
        self.node = node
        self.host = host
        self.port = port

    async def request(self, method: str, path: str, *, query: str | None = None,
                      payload: Any = None, content_format: str | int | None = None,
                      accept: str | int | None = None, etag: str | None = None) -> NodeReply:
        argv = [self.node, str(INTEROP / "coap_request.js"), "--host", self.host,
                "--port", str(self.port), "--method", method, "--path", path,
                "--timeout-ms", str(COAP_WAIT * 1000)]
        if query is not None:
            argv += ["--query", query]
        if payload is not None:
            text = payload if isinstance(payload, str) else json.dumps(payload,
                                                                        separators=(",", ":"))
            argv += ["--payload", text]
        if content_format is not None:
            argv += ["--content-format", str(content_format)]
        if accept is not None:
            argv += ["--accept", str(accept)]
        if etag is not None:
            argv += ["--etag", etag]
        done = await run(argv)
        assert done.returncode == 0, done.describe()
        lines = done.stdout.decode().splitlines()
        assert len(lines) == 1, done.describe()
        out = json.loads(lines[0])
        return NodeReply(out["code"], out["payload"], out["contentFormat"], out["etag"])

    async def vendor(self, script: str, *args: Any) -> str:
        """Run vendor_create.js / vendor_get.js; return its one line of output."""
        argv = [self.node, str(INTEROP / script), self.host, str(self.port),
                *(str(a) for a in args)]
        done = await run(argv, env={**os.environ, "COAP_TIMEOUT_MS": str(COAP_WAIT * 1000)})
        assert done.returncode == 0, done.describe()
        lines = done.stdout.decode().splitlines()
        assert len(lines) == 1, done.describe()
        return lines[0]


# --------------------------------------------------------------------- coap-client-notls

# One PDU logged by libcoap at -v 6 (coap_show_pdu): "v:1 t:ACK c:2.05 i:5b00 {01} [ ... ]".
PDU_LINE = re.compile(
    r"^v:1 t:(?P<type>CON|NON|ACK|RST) c:(?P<code>\S+) i:[0-9a-f]+ \{[0-9a-f]*\} "
    r"\[ ?(?P<options>.*?) ?\]")
RESPONSE_CODE = re.compile(r"^[0-7]\.\d\d$")


@dataclass
class LibcoapReply:
    code: str
    payload: bytes
    responses: list[dict] = field(default_factory=list)  # per received PDU: type, code, options
    completed: Completed | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def cbor(self) -> Any:
        return cbor2.loads(self.payload)

    def option(self, name: str) -> str | None:
        """The value of option `name` in the last received PDU that has it."""
        for pdu in reversed(self.responses):
            for opt in pdu["options"]:
                key, _, value = opt.partition(":")
                if key == name:
                    return value
        return None

    def options(self, name: str) -> list[str]:
        return [v for pdu in self.responses for o in pdu["options"]
                for k, _, v in [o.partition(":")] if k == name]


def parse_libcoap(done: Completed, body_file: Path) -> LibcoapReply:
    responses = []
    for line in done.stdout.decode(errors="replace").splitlines():
        m = PDU_LINE.match(line)
        if m and RESPONSE_CODE.match(m["code"]):
            options = [o.strip() for o in m["options"].split(", ")] if m["options"] else []
            responses.append({"type": m["type"], "code": m["code"], "options": options})
    assert responses, f"no response logged by coap-client:\n{done.describe()}"
    code = responses[-1]["code"]
    if code.startswith("2."):
        payload = body_file.read_bytes() if body_file.exists() else b""
    else:
        # "<code> <body>\n" (or "<code>\n" with no body) on stderr.
        err = done.stderr.decode(errors="replace")
        m = re.search(rf"^{re.escape(code)}(?: (?P<body>.*))?$", err, re.MULTILINE)
        assert m, f"stderr does not confirm code {code}:\n{done.describe()}"
        payload = (m["body"] or "").encode()
    return LibcoapReply(code, payload, responses, done)


class CoapClient:
    """libcoap's coap-client-notls aimed at one server."""

    def __init__(self, binary: str, port: int, host: str = "127.0.0.1"):
        self.binary = binary
        self.host = host
        self.port = port

    async def request(self, method: str, path: str, *, query: str | None = None,
                      payload: Any = None, content_format: str | None = None,
                      accept: str | None = None, etag: str | None = None,
                      extra: tuple[str, ...] = ()) -> LibcoapReply:
        uri = f"coap://{self.host}:{self.port}{path}" + (f"?{query}" if query else "")
        with tempfile.TemporaryDirectory(prefix="coap-client-") as tmp:
            body_file = Path(tmp) / "body"
            argv = [self.binary, "-v", "6", "-B", str(COAP_WAIT), "-o", str(body_file),
                    "-m", method.lower()]
            if payload is not None:
                data = payload if isinstance(payload, (bytes, str)) else json.dumps(
                    payload, separators=(",", ":"))
                # -f sends the file as-is; -e would percent-decode the text.
                request_file = Path(tmp) / "request"
                request_file.write_bytes(data.encode() if isinstance(data, str) else data)
                argv += ["-f", str(request_file)]
            if content_format is not None:
                argv += ["-t", content_format]
            if accept is not None:
                argv += ["-A", accept]
            if etag is not None:
                argv += ["-O", f"4,0x{etag}"]  # option 4 = ETag
            argv += [*extra, uri]
            done = await run(argv)
            assert done.returncode == 0, done.describe()
            return parse_libcoap(done, body_file)


# ------------------------------------------------------------------------------ shared

ENVELOPE = ["responseTypes", "globalSessionSequence", "timestamp", "deviceName",
            "firmwareVersion"]


def assert_envelope(body: dict, *sections: str) -> None:
    assert list(body) == ENVELOPE + list(sections)
    assert body["responseTypes"] == list(sections)
    assert body["deviceName"] == "T7470"
    assert body["firmwareVersion"] == "8.4.100.43"


async def fill_sessions(client, count: int, first: int = 100) -> None:
    """Create `count` labelled sessions through the aiocoap client fixture."""
    for n in range(first, first + count):
        r = await client.post("/v1/sessions", {"number": n, "label": f"Guest party {n:04d}",
                                               "partySize": 4, "goal": 600})
        assert r.code == "2.01", r.payload
