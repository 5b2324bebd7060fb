"""Print the example exchanges of docs/device-api.md, taken from a running emulator.

    .venv/bin/python scripts/device_examples.py                           # print them
    .venv/bin/python scripts/device_examples.py --write docs/device-api.md  # update the page

Every example in the reference is one block printed here: the request as it was sent and the
answer as the emulator sent it, datagram for datagram (a raw UDP peer, so nothing is
reassembled or retried on the way). Each run of examples has an emulator of its own in this
process, on a fresh store with the clock frozen at 2026-01-15T18:00:00 and UUIDs drawn from
a generator seeded for that run, so that the output is the same every time. In the page,
each block follows a comment `<!-- example: NAME -->`; `--write` replaces every named block
with what the emulator sends now, and `tests/test_docs.py` checks that nothing is left to
replace. A new example is placed in the page by hand, once.
"""

import argparse
import asyncio
import random
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import cbor2
from aiocoap import Message
from aiocoap.numbers.codes import Code
from aiocoap.numbers.optionnumbers import OptionNumber
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption, OpaqueOption

from pager.app import Emulator
from pager.clock import Clock

FROZEN_AT = datetime(2026, 1, 15, 18, 0, 0)
FENCE = "```"
CBOR = 60
LONGEST_REQUEST = 120  # a longer request body is cut short; answers are shown whole
SHOWN_IN_THE_LINE = (OptionNumber.URI_PATH, OptionNumber.URI_QUERY)
HEX_OPTIONS = (OptionNumber.ETAG, OptionNumber.IF_MATCH)


def _seeded_uuids(seed: int) -> Callable[[], uuid.UUID]:
    rng = random.Random(seed)

    def uuid4() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    return uuid4


def _option_text(number: int, value: Any, raw: bytes) -> str:
    names = {int(member): member.name for member in OptionNumber.__members__.values()}
    name = names[number].title().replace("_", "-") if number in names else f"Option {number}"
    name = name.replace("Etag", "ETag")
    if number in (OptionNumber.BLOCK1, OptionNumber.BLOCK2):
        return f"{name}: {value.block_number}/{int(value.more)}/{value.size}"
    if number in HEX_OPTIONS:
        return f"{name}: 0x{raw.hex()}"
    if number == OptionNumber.ECHO:
        return f"{name}: ({len(raw)} bytes)"
    if number in (OptionNumber.CONTENT_FORMAT, OptionNumber.ACCEPT):
        return f"{name}: {int(value)}"
    if isinstance(value, bytes):
        return f"{name}: 0x{value.hex()}" if value else f"{name}: (empty)"
    return f"{name}: {value}"


def _lines(message: Message, longest: int) -> list[str]:
    lines = []
    for option in message.opt.option_list():
        if option.number in SHOWN_IN_THE_LINE:
            continue
        lines.append(_option_text(int(option.number), option.value, option.encode()))
    payload = message.payload
    if payload and message.opt.content_format == CBOR:
        lines.append(f"(CBOR, {len(payload)} bytes) {payload.hex()}")
    elif len(payload) > longest:
        lines.append(f"{payload[:longest].decode()}… ({len(payload)} bytes in all)")
    elif any(c in payload for c in b"\t\n\r"):
        lines.append(f"{payload!r} (as Python bytes: raw control characters)")
    elif payload:
        lines.append(payload.decode())
    return ["  " + line for line in lines]


def request_text(message: Message) -> str:
    target = "/" + "/".join(message.opt.uri_path)
    if message.opt.uri_query:
        target += "?" + "&".join(message.opt.uri_query)
    kind = "" if message.mtype == Type.CON else f" ({message.mtype.name})"
    return "\n".join([f"→ {message.code.name} {target}{kind}", *_lines(message, LONGEST_REQUEST)])


def answer_text(message: Message, arrow: str = "←") -> str:
    code = message.code
    head = "2.00" if code == Code(0x40) else str(code)
    return "\n".join([f"{arrow} {head}", *_lines(message, len(message.payload))])


class Peer(asyncio.DatagramProtocol):
    """A client that sends one datagram at a time and shows what came back, acknowledging
    Confirmable notifications as any observer must."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None
        self.mid = 0x7000
        self.token = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = Message.decode(data)
        if message.mtype == Type.CON:
            assert self.transport is not None
            ack = Message(code=Code.EMPTY)
            ack.mtype, ack.mid = Type.ACK, message.mid
            self.transport.sendto(ack.encode())
        if message.code != Code.EMPTY:
            self.queue.put_nowait(message)

    def send(self, message: Message) -> None:
        self.mid += 1
        self.token += 1
        if message.mtype is None:
            message.mtype = Type.CON
        message.mid = self.mid
        message.token = self.token.to_bytes(2, "big")
        assert self.transport is not None
        self.transport.sendto(message.encode())

    async def receive(self, timeout: float = 10) -> Message:
        return await asyncio.wait_for(self.queue.get(), timeout)


@dataclass
class Examples:
    emulator: Emulator
    peer: Peer
    blocks: list[tuple[str, str]] = field(default_factory=list)

    async def ask(self, name: str, message: Message) -> Message:
        self.peer.send(message)
        answer = await self.peer.receive()
        self.blocks.append((name, request_text(message) + "\n" + answer_text(answer)))
        return answer

    def note(self, name: str, text: str) -> None:
        self.blocks.append((name, text))


def msg(code: Code, path: str, body: bytes = b"", **options: Any) -> Message:
    query = None
    if "?" in path:
        path, query = path.split("?", 1)
    message = Message(code=code, payload=body, uri_path=tuple(path.strip("/").split("/")))
    if query:
        message.opt.uri_query = tuple(query.split("&"))
    if body and "content_format" not in options:
        message.opt.content_format = 50
    for name, value in options.items():
        setattr(message.opt, name, value)
    return message


async def started(**overrides: Any) -> Emulator:
    clock = Clock()
    clock.set(FROZEN_AT)
    clock.freeze()
    return await Emulator(clock=clock, **overrides).start()


async def peer_for(emulator: Emulator) -> Peer:
    loop = asyncio.get_running_loop()
    _, peer = await loop.create_datagram_endpoint(Peer, remote_addr=("127.0.0.1", emulator.port))
    return peer


async def main_examples(ex: Examples) -> None:
    GET, POST, PUT, DELETE = Code.GET, Code.POST, Code.PUT, Code.DELETE
    ask = ex.ask
    await ask("well-known-core", msg(GET, "/.well-known/core"))
    await ask("well-known-core-filter", msg(GET, "/.well-known/core?rt=t7470.notify"))
    # sessions
    await ask(
        "create",
        msg(POST, "/v1/sessions", b'{"number":66,"goal":600,"label":"Sarah","partySize":4}'),
    )
    await ask("create-existing", msg(POST, "/v1/sessions", b'{"number":66,"partySize":5}'))
    await ask("create-and-page", msg(POST, "/v1/sessions", b'{"number":12,"action":"page"}'))
    await ask("get-one", msg(GET, "/v1/sessions?number=66"))
    listing = await ask("get-all", msg(GET, "/v1/sessions"))
    await ask("get-all-valid", msg(GET, "/v1/sessions", etag=listing.opt.etag))
    await ex.emulator.advance(720)
    await ask(
        "page",
        msg(
            PUT,
            "/v1/sessions?number=66",
            b'{"action":"page","pageMode":"Vibe2","message":"Your table is ready!\\fF30Vv5"}',
        ),
    )
    await ask("update-label", msg(PUT, "/v1/sessions?number=66", b'{"label":null}'))
    await ask("clear", msg(PUT, "/v1/sessions?number=66", b'{"action":"clear"}'))
    ex.peer.send(msg(POST, "/v1/sessions", b'{"number":7}'))
    await ex.peer.receive()
    await ask("delete-one", msg(DELETE, "/v1/sessions?number=7"))
    ex.peer.send(msg(POST, "/v1/sessions", b'{"number":8}'))
    await ex.peer.receive()
    await ask("delete-all", msg(DELETE, "/v1/sessions"))
    await ask("history", msg(GET, "/v1/sessions/history?limit=2&after=1"))
    await ask("statistics", msg(GET, "/v1/sessions/statistics"))
    await ask("statistics-cbor", msg(GET, "/v1/sessions/statistics", accept=60))
    await ask("delete-statistics", msg(DELETE, "/v1/sessions/statistics"))
    await ask("delete-history", msg(DELETE, "/v1/sessions/history"))
    cbor_body = cbor2.dumps({"number": 21, "label": "Ana"})
    await ask("create-cbor", msg(POST, "/v1/sessions", cbor_body, content_format=CBOR))
    # settings
    await ask("settings", msg(GET, "/v1/settings"))
    await ask("settings-post", msg(POST, "/v1/settings", b'{"defaultTargetGoal":420}'))
    # standalone page
    await ask(
        "standalone-page",
        msg(POST, "/v1/page", b'{"number":200,"pageMode":"Beep3Times","message":"Call 4"}'),
    )
    # errors
    await ask("error-goal", msg(POST, "/v1/sessions", b'{"number":5,"goal":90000}'))
    await ask("error-type", msg(POST, "/v1/sessions", b'{"number":"5"}'))
    await ask("error-required", msg(POST, "/v1/sessions", b'{"goal":60}'))
    await ask("error-json", msg(POST, "/v1/sessions", b'{"number":5'))
    await ask("error-query", msg(PUT, "/v1/sessions", b'{"label":"x"}'))
    await ask(
        "error-override",
        msg(POST, "/v1/page", b'{"number":3,"message":"Hi\\f3"}'),
    )
    await ask("error-no-session", msg(PUT, "/v1/sessions?number=99", b'{"action":"page"}'))
    await ask("error-no-session-post", msg(POST, "/v1/sessions", b'{"number":99,"action":"clear"}'))
    await ask("error-notify-action", msg(GET, "/v1/notify?action=get_settings", observe=0))
    await ask("error-unknown-path", msg(GET, "/v1/tables"))
    await ask("error-method", msg(PUT, "/v1/settings", b'{"systemId":3}'))
    await ask("error-accept", msg(GET, "/v1/settings", accept=0))
    await ask("error-content-format", msg(POST, "/v1/settings", b"systemId=3", content_format=0))
    await ask(
        "error-too-large",
        msg(POST, "/v1/page", b'{"number":3,"message":"' + b"x" * 1010 + b'"}'),
    )
    unknown_critical = msg(GET, "/v1/settings")
    unknown_critical.opt.add_option(OpaqueOption(65001, b"\x01"))
    await ask("error-critical-option", unknown_critical)
    await ask("error-proxy", msg(GET, "/v1/settings", proxy_scheme="http"))
    await ask(
        "error-block1-gap",
        msg(
            POST,
            "/v1/sessions",
            b'"partySize":2}',
            block1=BlockOption.BlockwiseTuple(1, False, 0),
        ),
    )


async def conditional_examples(ex: Examples) -> None:
    """If-Match and If-None-Match: where they hold, where not, and where they are not acted on."""
    POST, PUT = Code.POST, Code.PUT
    created = await ex.ask(
        "conditional-create", msg(POST, "/v1/sessions", b'{"number":30}', if_none_match=True)
    )
    stale = created.opt.etag
    changed = await ex.ask(
        "conditional-put",
        msg(PUT, "/v1/sessions?number=30", b'{"label":"Kim"}', if_match=[stale]),
    )
    assert changed.opt.etag != stale
    await ex.ask(
        "conditional-stale",
        msg(PUT, "/v1/sessions?number=30", b'{"label":"Lee"}', if_match=[stale]),
    )
    await ex.ask(
        "conditional-exists",
        msg(POST, "/v1/sessions", b'{"number":30,"label":"Lee"}', if_none_match=True),
    )
    await ex.ask(
        "conditional-not-acted-on",
        msg(POST, "/v1/settings", b'{"systemId":3}', if_match=[changed.opt.etag]),
    )


async def block_examples(ex: Examples) -> None:
    """A list too long for one datagram, and a forgotten Block2 transfer."""
    for number in range(101, 106):
        body = f'{{"number":{number},"label":"Party of the table by the window {number}"}}'
        ex.peer.send(msg(Code.POST, "/v1/sessions", body.encode()))
        await ex.peer.receive()
    first = await ex.ask("block2-first", msg(Code.GET, "/v1/sessions"))
    assert first.opt.block2 is not None
    await ex.ask(
        "block2-next",
        msg(Code.GET, "/v1/sessions", block2=BlockOption.BlockwiseTuple(1, False, 6)),
    )
    await ex.ask(
        "block2-forgotten",
        msg(Code.GET, "/v1/settings", block2=BlockOption.BlockwiseTuple(3, False, 6)),
    )


async def notify_examples(ex: Examples) -> None:
    peer = ex.peer
    registration = msg(Code.GET, "/v1/notify", observe=0)
    first = await ex.ask("observe", registration)
    changes = [msg(Code.POST, "/v1/sessions", b'{"number":31,"partySize":2}')]
    changes.append(msg(Code.POST, "/v1/settings", b'{"systemId":9}'))
    for change in changes:
        peer.send(change)
        shown = [request_text(change)]
        for _ in range(2):  # the answer and the notification, in either order
            got = await peer.receive()
            shown.append(answer_text(got, "⇐" if got.token == registration.token else "←"))
        ex.note("notify-" + change.opt.uri_path[-1], "\n".join(shown))
    assert first.opt.observe is not None
    await ex.ask("deregister", msg(Code.GET, "/v1/notify", observe=1))
    await ex.ask("notify-plain-get", msg(Code.GET, "/v1/notify"))
    await ex.ask("observe-sessions", msg(Code.GET, "/v1/notify?action=get_sessions", observe=0))


async def ping_example(ex: Examples) -> None:
    registration = msg(Code.GET, "/v1/notify", observe=0)
    await ex.ask("ping-registration", registration)
    ping = await ex.peer.receive(5)
    ex.note("ping", answer_text(ping, "⇐"))


async def strict_example(ex: Examples) -> None:
    body = b'{"number":5,"table":"T4"}'
    await ex.ask("strict-unknown-field", msg(Code.POST, "/v1/sessions", body))
    await ex.ask("strict-not-compact", msg(Code.POST, "/v1/sessions", b'{"number":5,\n"goal":60}'))


async def echo_example(ex: Examples) -> None:
    challenge = await ex.ask("echo-challenge", msg(Code.GET, "/v1/settings"))
    await ex.ask("echo-repeat", msg(Code.GET, "/v1/settings", echo=challenge.opt.echo))


async def observer_limit_example(ex: Examples) -> None:
    ex.peer.send(msg(Code.GET, "/v1/notify", observe=0))
    await ex.peer.receive()
    other = await peer_for(ex.emulator)
    ex.peer = other
    await ex.ask("error-observers", msg(Code.GET, "/v1/notify", observe=0))


async def collect() -> list[tuple[str, str]]:
    blocks: list[tuple[str, str]] = []
    runs: list[tuple[dict[str, Any], Callable[[Examples], Awaitable[None]]]] = [
        ({}, main_examples),
        ({}, block_examples),
        ({}, notify_examples),
        ({"ping_interval": 0.5}, ping_example),
        ({"strict": True}, strict_example),
        ({"amplification_protection": True}, echo_example),
        ({"max_observers": 1}, observer_limit_example),
        ({}, conditional_examples),
    ]
    for seed, (overrides, run) in enumerate(runs):
        uuid.uuid4 = _seeded_uuids(seed)  # every session's uuid comes from uuid.uuid4
        emulator = await started(**overrides)
        try:
            ex = Examples(emulator, await peer_for(emulator))
            await run(ex)
            blocks += ex.blocks
        finally:
            await emulator.stop()
    return blocks


NAMED_BLOCK = re.compile(
    r"^<!-- example: (\S+) -->\n" + FENCE + r"coap\n(.*?)\n" + FENCE + "$", re.MULTILINE | re.DOTALL
)


def blocks_of(text: str) -> dict[str, str]:
    """The named example blocks of a page: name -> the text between the fences."""
    return {m.group(1): m.group(2) for m in NAMED_BLOCK.finditer(text)}


def write(path: Path, blocks: dict[str, str]) -> list[str]:
    """Replace every named block of the page at `path`; the names it has no block for."""
    text = path.read_text()

    def replaced(m: re.Match[str]) -> str:
        block = blocks.get(m.group(1), m.group(2))
        return f"<!-- example: {m.group(1)} -->\n{FENCE}coap\n{block}\n{FENCE}"

    path.write_text(NAMED_BLOCK.sub(replaced, text))
    return sorted(set(blocks) - set(blocks_of(text)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--write", type=Path, help="update the named blocks of this page")
    args = parser.parse_args()
    blocks = asyncio.run(collect())
    if args.write is None:
        for name, block in blocks:
            print(f"<!-- example: {name} -->\n{FENCE}coap\n{block}\n{FENCE}\n")
        return
    unplaced = write(args.write, dict(blocks))
    if unplaced:
        raise SystemExit(f"{args.write} has no place for the examples {', '.join(unplaced)}")


if __name__ == "__main__":
    main()
