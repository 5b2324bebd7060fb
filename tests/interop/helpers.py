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
import io
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

from tests.conftest import DecodedPayload, ManualTime

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
    message = (
        f"interop client {client} unavailable: {problem}; "
        "install it with `bash scripts/bootstrap.sh --test`"
    )
    if _under_ci():
        pytest.fail(f"{message} (CI=true: a missing interop client is a failure)", pytrace=False)
    pytest.skip(message)


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    def describe(self) -> str:
        return (
            f"{' '.join(self.argv)}\n exit {self.returncode}\n"
            f" stdout: {self.stdout.decode(errors='replace')[:3000]}\n"
            f" stderr: {self.stderr.decode(errors='replace')[:3000]}"
        )


async def run(
    argv: list[str],
    *,
    timeout: float = CLIENT_TIMEOUT,
    cwd: Path = INTEROP,
    env: dict | None = None,
) -> Completed:
    """Run one client process without blocking the event loop; kill it on timeout."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(
            f"client timed out after {timeout} s: {' '.join(argv)}\n"
            f" stdout: {out.decode(errors='replace')}\n"
            f" stderr: {err.decode(errors='replace')}"
        )
    return Completed(list(argv), proc.returncode, out, err)


class InteropClient:
    """A third-party client program aimed at one server; `executable` runs it."""

    JSON: str  # the name the client gives Content-Format 50 (application/json)

    def __init__(self, executable: str, port: int, host: str = "127.0.0.1"):
        self.executable = executable
        self.host = host
        self.port = port


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


class NodeCoap(InteropClient):
    """tests/interop/coap_request.js and the vendor example scripts, run with node."""

    JSON = "application/json"

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: str | None = None,
        payload: Any = None,
        content_format: str | int | None = None,
        accept: str | int | None = None,
        etag: str | None = None,
    ) -> NodeReply:
        argv = [
            self.executable,
            str(INTEROP / "coap_request.js"),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--method",
            method,
            "--path",
            path,
            "--timeout-ms",
            str(COAP_WAIT * 1000),
        ]
        if query is not None:
            argv += ["--query", query]
        if payload is not None:
            text = (
                payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            )
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

    def observe(
        self,
        *,
        query: str | None = None,
        count: int | None = None,
        timeout: float = CLIENT_TIMEOUT - 5,
    ) -> NodeObservation:
        """`node observe.js`: `async with node.observe(...) as obs:`, then `await obs.next()`
        for each notification as it arrives and `await obs.finish()` (see NodeObservation)."""
        argv = [
            self.executable,
            str(INTEROP / "observe.js"),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--timeout-ms",
            str(int(timeout * 1000)),
        ]
        if query is not None:
            argv += ["--query", query]
        if count is not None:
            argv += ["--count", str(count)]
        return NodeObservation(argv, timeout)

    async def vendor(self, script: str, *args: Any) -> str:
        """Run vendor_create.js / vendor_get.js; return its one line of output."""
        argv = [
            self.executable,
            str(INTEROP / script),
            self.host,
            str(self.port),
            *(str(a) for a in args),
        ]
        done = await run(argv, env={**os.environ, "COAP_TIMEOUT_MS": str(COAP_WAIT * 1000)})
        assert done.returncode == 0, done.describe()
        lines = done.stdout.decode().splitlines()
        assert len(lines) == 1, done.describe()
        return lines[0]


# --------------------------------------------------------------------- coap-client-notls

# One PDU logged by libcoap at -v 6 (coap_show_pdu): "v:1 t:ACK c:2.05 i:5b00 {01} [ ... ]".
PDU_LINE = re.compile(
    r"^v:1 t:(?P<type>CON|NON|ACK|RST) c:(?P<code>\S+) i:(?P<mid>[0-9a-f]+) "
    r"\{(?P<token>[0-9a-f]*)\} \[ ?(?P<options>.*?) ?\]"
)
RESPONSE_CODE = re.compile(r"^[0-7]\.\d\d$")


@dataclass
class LibcoapReply(DecodedPayload):
    code: str
    payload: bytes
    responses: list[dict] = field(default_factory=list)  # per received PDU: type, code, options
    completed: Completed | None = None

    def option(self, name: str) -> str | None:
        """The value of option `name` in the last received PDU that has it."""
        for pdu in reversed(self.responses):
            for opt in pdu["options"]:
                key, _, value = opt.partition(":")
                if key == name:
                    return value
        return None

    def options(self, name: str) -> list[str]:
        return [
            v
            for pdu in self.responses
            for o in pdu["options"]
            for k, _, v in [o.partition(":")]
            if k == name
        ]


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


class CoapClient(InteropClient):
    """libcoap's coap-client-notls aimed at one server."""

    JSON = "json"

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: str | None = None,
        payload: Any = None,
        content_format: str | None = None,
        accept: str | None = None,
        etag: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> LibcoapReply:
        uri = f"coap://{self.host}:{self.port}{path}" + (f"?{query}" if query else "")
        with tempfile.TemporaryDirectory(prefix="coap-client-") as tmp:
            body_file = Path(tmp) / "body"
            argv = [
                self.executable,
                "-v",
                "6",
                "-B",
                str(COAP_WAIT),
                "-o",
                str(body_file),
                "-m",
                method.lower(),
            ]
            if payload is not None:
                data = (
                    payload
                    if isinstance(payload, (bytes, str))
                    else json.dumps(payload, separators=(",", ":"))
                )
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

    def observe(
        self, seconds: int, *, query: str | None = None, accept: str | None = None
    ) -> LibcoapObservation:
        """`coap-client-notls -s SECONDS` (whole seconds: libcoap reads the value with atoi, so
        "2.5" means 2): `async with coap.observe(...) as obs:`, then
        `await obs.wait_for(n)` to sync with the n-th notification and `await obs.finish()`
        for all of them (see LibcoapObservation)."""
        uri = f"coap://{self.host}:{self.port}/v1/notify" + (f"?{query}" if query else "")
        options = ("-A", accept) if accept is not None else ()
        return LibcoapObservation(self.executable, uri, seconds, options)


# ------------------------------------------------------------------------------ shared

ENVELOPE = ["responseTypes", "globalSessionSequence", "timestamp", "deviceName", "firmwareVersion"]


def assert_envelope(body: dict, *sections: str) -> None:
    assert list(body) == ENVELOPE + list(sections)
    assert body["responseTypes"] == list(sections)
    assert body["deviceName"] == "T7470"
    assert body["firmwareVersion"] == "8.4.100.43"


async def fill_sessions(client, count: int, first: int = 100) -> None:
    """Create `count` labelled sessions through the aiocoap client fixture."""
    for n in range(first, first + count):
        r = await client.post(
            "/v1/sessions",
            {"number": n, "label": f"Guest party {n:04d}", "partySize": 4, "goal": 600},
        )
        assert r.code == "2.01", r.payload


async def session_lifecycle(
    client: InteropClient,
    manual_time: ManualTime,
    *,
    update: dict,
    updated: dict,
    page: tuple[float, str],
    clear: tuple[float, str],
) -> dict[str, Any]:
    """Session 66 through its life, every request sent by `client` (a CoapClient or NodeCoap).

    Create -> 2.01; create again on the same number with `update` -> raw 2.00, the same
    session, now with the fields `updated`; `page` = (seconds later, notified stamp): page via
    PUT ?number=N -> 2.04; GET ?number=N -> 2.05, sessions only; `clear` likewise: clear via
    PUT -> archived form; GET ?number=N -> 4.04, gone from the active API.

    Asserts what any client must see; returns the replies by step ("created", "updated",
    "paged", "got", "cleared", "gone") for the checks of one client's own."""
    replies: dict[str, Any] = {}

    async def send(step: str, method: str, code: str, **kw) -> Any:
        r = replies[step] = await client.request(method, "/v1/sessions", **kw)
        assert r.code == code, r
        return r.json

    async def put(step: str, action: str, after: tuple[float, str], state: str, field: str):
        seconds, stamp = after
        manual_time.advance(seconds)
        (s,) = (
            await send(
                step,
                "PUT",
                "2.04",
                query="number=66",
                content_format=client.JSON,
                payload={"action": action},
            )
        )["sessions"]
        assert s["state"] == state
        assert s[field] == stamp

    body = await send(
        "created",
        "POST",
        "2.01",
        content_format=client.JSON,
        payload={"number": 66, "goal": 60, "label": "Sarah", "partySize": 4},
    )
    assert_envelope(body, "sessions", "statistics")
    (s,) = body["sessions"]
    assert (s["number"], s["label"], s["partySize"], s["goalInSeconds"], s["state"]) == (
        66,
        "Sarah",
        4,
        60,
        "started",
    )
    assert s["created"] == s["started"] == "2026-03-15T11:55:20"
    assert "notified" not in s and "cleared" not in s
    assert body["statistics"]["numSessions"] == 1
    session_id = s["id"]

    body = await send(
        "updated", "POST", "2.00", content_format=client.JSON, payload={"number": 66, **update}
    )
    (s,) = body["sessions"]
    assert (s["id"], {name: s[name] for name in updated}) == (session_id, updated)
    assert body["statistics"]["numSessions"] == 1

    await put("paged", "page", page, "paged", "notified")
    body = await send("got", "GET", "2.05", query="number=66")
    assert_envelope(body, "sessions")
    (s,) = body["sessions"]
    assert (s["id"], s["state"]) == (session_id, "paged")

    await put("cleared", "clear", clear, "cleared", "cleared")
    body = await send("gone", "GET", "4.04", query="number=66")
    assert body["error"]["code"] == "4.04"
    return replies


# ------------------------------------------------------------------------------- observe
#
# An observing client runs for a while: its process is started, its stdout is read while it
# runs (so the test can act once the first notification is in), and it is waited for at the
# end. The `async with` block kills a client still running when the test fails.
#
# node-coap: tests/interop/observe.js prints one JSON line per notification,
#     {"payload": "<utf8>", "observe": N}, and, after deregistering, {"deregistered": "2.05"}.
#
# coap-client-notls: `-s SECONDS` observes for SECONDS, then deregisters (GET + Observe 1).
# Its notifications are read from two places, cross-checked:
# * `-v 7` (LOG_DEBUG) logs every PDU on stdout as it goes, each PDU line right after a line
#   "... : received N bytes" or "... : sent N bytes" (or "PDU presented by app" for a request
#   before it is sent). This gives, live, each notification's type, message ID, options and a
#   printable rendering of its payload (`:: '<text>'`, non-printable bytes as \xNN, a
#   backslash not escaped), and the client's own empty ACKs, which only -v 7 shows
#   (-v 6 logs received PDUs and requests but not the ACKs).
# * `-o FILE` appends every 2.xx notification body, byte-exact, to FILE with nothing between
#   them (without -o the bodies go to stdout, glued to the next log line). JSON bodies are
#   split again with JSONDecoder.raw_decode, CBOR ones by decoding one item after another.
# -B bounds the client's whole run, observing included, so it is set above -s.

OBSERVE_WAIT = 5.0  # seconds to wait for any one notification
LINE_LIMIT = 4 * 2**20  # one output line may carry a whole 500-session list, escaped


@dataclass
class Notification(DecodedPayload):
    payload: bytes
    observe: int | None
    type: str | None = None  # CON / NON / ACK where the client shows it (libcoap)
    mid: int | None = None
    code: str = "2.05"


class _ObserverProcess:
    def __init__(self, argv: list[str], timeout: float):
        self.argv = argv
        self.timeout = timeout  # how long the client may run in all
        self.proc: asyncio.subprocess.Process | None = None
        self.stdout_lines: list[str] = []

    async def __aenter__(self):
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=INTEROP,
            limit=LINE_LIMIT,
        )
        return self

    async def __aexit__(self, *exc):
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.communicate()

    async def _readline(self, timeout: float) -> str | None:
        """The next stdout line, or None at end of output."""
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            pytest.fail(
                f"no output from the observer within {timeout} s\n"
                f"{await self._kill_and_describe()}",
                pytrace=False,
            )
        if not raw:
            return None
        line = raw.decode(errors="replace").rstrip("\n")
        self.stdout_lines.append(line)
        return line

    async def _finish(self) -> Completed:
        try:
            rest, err = await asyncio.wait_for(self.proc.communicate(), self.timeout + COAP_WAIT)
        except TimeoutError:
            pytest.fail(
                f"observer still running after {self.timeout + COAP_WAIT} s\n"
                f"{await self._kill_and_describe()}",
                pytrace=False,
            )
        self.stdout_lines += rest.decode(errors="replace").splitlines()
        return Completed(
            self.argv, self.proc.returncode, "\n".join(self.stdout_lines).encode(), err
        )

    async def _kill_and_describe(self) -> str:
        if self.proc.returncode is None:
            self.proc.kill()
        rest, err = await self.proc.communicate()
        self.stdout_lines += rest.decode(errors="replace").splitlines()
        return Completed(
            self.argv, self.proc.returncode, "\n".join(self.stdout_lines).encode(), err
        ).describe()


class NodeObservation(_ObserverProcess):
    """One `node observe.js` run (NodeCoap.observe)."""

    def __init__(self, argv: list[str], timeout: float):
        super().__init__(argv, timeout)
        self.notifications: list[Notification] = []

    @staticmethod
    def _parse(line: str) -> dict:
        try:
            return json.loads(line)
        except ValueError:
            pytest.fail(f"observe.js printed a line that is not JSON: {line!r}", pytrace=False)

    async def next(self, timeout: float = OBSERVE_WAIT) -> Notification:
        """The next notification, as soon as node-coap delivered it."""
        line = await self._readline(timeout)
        out = self._parse(line) if line is not None else {}
        if "payload" not in out or "code" in out:
            pytest.fail(
                f"observation over before the next notification\n{await self._kill_and_describe()}",
                pytrace=False,
            )
        note = Notification(out["payload"].encode(), out["observe"])
        self.notifications.append(note)
        return note

    async def finish(self) -> tuple[list[Notification], str | None]:
        """Wait for observe.js to end (after --count notifications, or its timeout).

        Returns the notifications not yet taken with next() and the code that answered the
        deregistration (None when none did). A non-zero exit fails the test."""
        done = await self._finish()
        assert done.returncode == 0, done.describe()
        rest: list[Notification] = []
        deregistered: Any = "missing"
        for line in self.stdout_lines[len(self.notifications) :]:
            out = self._parse(line)
            if "payload" in out:
                rest.append(Notification(out["payload"].encode(), out["observe"]))
            elif "deregistered" in out:
                deregistered = out["deregistered"]
        assert deregistered != "missing", done.describe()
        self.notifications += rest
        return rest, deregistered


# A "-v 7" line that says which way the PDU logged on the next line went.
LIBCOAP_DIRECTION = re.compile(r" : (?P<dir>received|sent) \d+ bytes$|PDU presented by app$")


@dataclass
class LoggedPdu:
    direction: str  # "received", "sent" or "presented" (a request not yet sent)
    type: str
    code: str
    mid: int
    token: str
    options: list[str]
    data: str | None  # the logged rendering of the payload (after " :: ")

    def option(self, name: str) -> str | None:
        for opt in self.options:
            key, _, value = opt.partition(":")
            if key == name:
                return value
        return None


class LibcoapObservation(_ObserverProcess):
    """One `coap-client-notls -s SECONDS` run (CoapClient.observe)."""

    def __init__(self, binary: str, uri: str, seconds: int, options: tuple[str, ...]):
        assert isinstance(seconds, int) and seconds > 0, "coap-client -s takes whole seconds"
        self._tmp = tempfile.TemporaryDirectory(prefix="coap-observe-")
        self.body_file = Path(self._tmp.name) / "bodies"
        argv = [
            binary,
            "-v",
            "7",
            "-B",
            str(int(seconds + COAP_WAIT)),
            "-s",
            str(seconds),
            "-o",
            str(self.body_file),
            *options,
            uri,
        ]
        super().__init__(argv, seconds)
        self.pdus: list[LoggedPdu] = []
        self._direction: str | None = None
        self.completed: Completed | None = None

    async def __aexit__(self, *exc):
        try:
            await super().__aexit__(*exc)
        finally:
            self._tmp.cleanup()

    def _feed(self, line: str) -> None:
        m = PDU_LINE.match(line)
        if m is None:
            d = LIBCOAP_DIRECTION.search(line)
            if d is not None:
                self._direction = d["dir"] or "presented"
            return
        tail = line[m.end() :]
        data = tail[len(" :: ") :] if tail.startswith(" :: ") else None
        options = [o.strip() for o in m["options"].split(", ")] if m["options"] else []
        direction = self._direction
        if direction is None:  # not expected at -v 7; a response can only be received
            direction = "received" if re.match(r"^[2-5]\.\d\d$", m["code"]) else "sent"
        self.pdus.append(
            LoggedPdu(direction, m["type"], m["code"], int(m["mid"], 16), m["token"], options, data)
        )
        self._direction = None

    def received(self) -> list[LoggedPdu]:
        """The responses received (registration answer and notifications), duplicates of
        a retransmitted CON dropped."""
        seen: set[tuple[str, int]] = set()
        out = []
        for pdu in self.pdus:
            if pdu.direction != "received" or pdu.code == "0.00":
                continue
            if (pdu.type, pdu.mid) in seen and pdu.type != "ACK":
                continue
            seen.add((pdu.type, pdu.mid))
            out.append(pdu)
        return out

    def sent(self, type_: str | None = None) -> list[LoggedPdu]:
        return [
            p for p in self.pdus if p.direction == "sent" and (type_ is None or p.type == type_)
        ]

    async def wait_for(self, count: int, timeout: float = OBSERVE_WAIT) -> None:
        """Return once `count` notifications (the registration's answer included) arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received()) < count:
            line = await self._readline(max(0.0, deadline - loop.time()))
            if line is None:
                pytest.fail(
                    f"coap-client ended after {len(self.received())} of {count} "
                    f"notifications\n{await self._kill_and_describe()}",
                    pytrace=False,
                )
            self._feed(line)

    async def finish(self) -> list[Notification]:
        """Wait for the client to end (-s), then return every notification it received."""
        before = len(self.stdout_lines)
        done = self.completed = await self._finish()
        for line in self.stdout_lines[before:]:
            self._feed(line)
        assert done.returncode == 0, done.describe()
        received = self.received()
        assert received, f"nothing received:\n{done.describe()}"
        bodies = self._bodies(received)
        good = [p for p in received if p.code.startswith("2.")]
        assert len(bodies) == len(good), (
            f"{len(good)} 2.xx notifications logged but {len(bodies)} bodies in -o file\n"
            f"{done.describe()}"
        )
        notes, it = [], iter(bodies)
        for pdu in received:
            payload = next(it) if pdu.code.startswith("2.") else b""
            if payload and pdu.data is not None and re.fullmatch(rb"[ -\[\]-~]*", payload):
                # printable ASCII without a backslash is logged verbatim
                assert pdu.data == f"'{payload.decode()}'", (pdu, payload)
            observe = pdu.option("Observe")
            notes.append(
                Notification(
                    payload, None if observe is None else int(observe), pdu.type, pdu.mid, pdu.code
                )
            )
        return notes

    async def representations(self) -> list[Any]:
        """Wait for the client to end (-s); every JSON body it handed its application (-o),
        in order: a block-wise notification reassembled into one, each block not counted."""
        done = self.completed = await self._finish()
        assert done.returncode == 0, done.describe()
        text = self.body_file.read_text() if self.body_file.exists() else ""
        bodies, pos, decoder = [], 0, json.JSONDecoder()
        while pos < len(text):
            body, pos = decoder.raw_decode(text, pos)
            bodies.append(body)
        return bodies

    def _bodies(self, received: list[LoggedPdu]) -> list[bytes]:
        data = self.body_file.read_bytes() if self.body_file.exists() else b""
        formats = {p.option("Content-Format") for p in received if p.code.startswith("2.")}
        bodies: list[bytes] = []
        if formats == {"application/cbor"}:
            stream = io.BytesIO(data)
            decoder = cbor2.CBORDecoder(stream)
            while stream.tell() < len(data):
                start = stream.tell()
                decoder.decode()
                bodies.append(data[start : stream.tell()])
        else:
            assert formats <= {"application/json"}, formats
            text, pos = data.decode(), 0
            decoder = json.JSONDecoder()
            while pos < len(text):
                _, end = decoder.raw_decode(text, pos)
                bodies.append(text[pos:end].encode())
                pos = end
        return bodies

    def acked(self) -> set[int]:
        """Message IDs of the empty ACKs the client sent."""
        return {p.mid for p in self.sent("ACK") if p.code == "0.00"}
