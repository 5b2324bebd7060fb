"""The fuzz seed corpus: valid requests as raw CoAP datagrams, and valid request bodies.

The files under `corpus/` are committed and are what the fuzzers read. This module wrote them
and can write them again after a change to the API:

    .venv/bin/python -m tests.fuzz.corpus          # (re)write tests/fuzz/corpus/

Files:
- `dgram-*.bin`: one CoAP datagram each (RFC 7252 framing), a valid request for every
  resource and method of spec §4, with the variants that reach other code: NON, CBOR bodies,
  Accept 60, ETag, Observe, Block2 and Block1 options, queries. Message id and token are
  placeholders; the fuzzer gives every datagram fresh ones before mutating it.
- `body-<target>-*.json` / `.cbor`: valid bodies for POST /v1/sessions (`sessions-post`),
  PUT /v1/sessions (`sessions-put`), POST /v1/page (`page`) and POST /v1/settings
  (`settings`), the raw material of the payload fuzzer's byte mutations.

A fuzz finding worth keeping can be added here by hand (a `dgram-` or `body-` file); the
loader takes every file, whether this module wrote it or not.
"""

import json
import sys
from pathlib import Path

import aiocoap
import cbor2
from aiocoap.numbers.types import Type
from aiocoap.optiontypes import BlockOption

CORPUS = Path(__file__).resolve().parent / "corpus"

TARGETS = ("sessions-post", "sessions-put", "page", "settings")

BODIES: dict[str, list[tuple[str, dict]]] = {
    "sessions-post": [
        ("create", {"number": 5}),
        ("full", {"number": 12, "goal": 600, "label": "Smith, 4", "partySize": 4}),
        (
            "create-and-page",
            {
                "number": 13,
                "action": "page",
                "pageMode": "Flash5Min",
                "message": "Your table is ready!\fF30Vv5",
            },
        ),
        ("clear", {"number": 5, "action": "clear"}),
        ("remove", {"number": 12, "action": "remove"}),
        ("label-null", {"number": 14, "label": None, "goal": 0, "partySize": 999}),
    ],
    "sessions-put": [
        ("page", {"action": "page"}),
        ("update", {"goal": 120, "label": "window seat", "partySize": 2}),
        ("page-staff", {"action": "page", "pageMode": "VibeBeep3", "message": "Kitchen"}),
        ("label-null", {"label": None}),
        ("number-matches", {"number": 5, "action": "clear"}),
    ],
    "page": [
        ("plain", {"number": 7}),
        ("full", {"number": 4095, "pageMode": "Beep3Times", "message": "Hi\fB3", "systemId": 255}),
        ("staff", {"number": 0, "pageMode": "Vibe2", "systemId": 0}),
    ],
    "settings": [
        ("datetime", {"datetime": "2026-03-15T12:00:00"}),
        (
            "all",
            {
                "datetime": "2026-03-15T11:55:20",
                "systemId": 17,
                "defaultTargetGoal": 900,
                "statisticsClearMark": 24,
            },
        ),
        ("goal", {"defaultTargetGoal": 300}),
    ],
}


def _request(
    code,
    path: str,
    query: tuple[str, ...] = (),
    body: dict | None = None,
    cbor: bool = False,
    non: bool = False,
    first: int | None = None,
    **options,
) -> bytes:
    """One request datagram; `first` keeps only that many bytes of the body (a Block1 block)."""
    payload = b""
    if body is not None:
        payload = cbor2.dumps(body) if cbor else json.dumps(body, separators=(",", ":")).encode()
        payload = payload[:first]
    msg = aiocoap.Message(
        code=code, payload=payload, uri_path=tuple(path.strip("/").split("/")), uri_query=query
    )
    if body is not None:
        msg.opt.content_format = 60 if cbor else 50
    for name, value in options.items():
        setattr(msg.opt, name, value)
    msg.mtype = Type.NON if non else Type.CON
    msg.mid, msg.token = 0x1234, b"\xa1\xb2\xc3\xd4"
    return msg.encode()


def datagrams() -> dict[str, bytes]:
    G, P, U, D = aiocoap.GET, aiocoap.POST, aiocoap.PUT, aiocoap.DELETE
    S, H, ST = "/v1/sessions", "/v1/sessions/history", "/v1/sessions/statistics"
    posts, puts = dict(BODIES["sessions-post"]), dict(BODIES["sessions-put"])
    pages, settings = dict(BODIES["page"]), dict(BODIES["settings"])
    d = {
        "wkc-get": _request(G, "/.well-known/core"),
        "sessions-get": _request(G, S),
        "sessions-get-cbor": _request(G, S, accept=60),
        "sessions-get-etag": _request(G, S, etags=(b"\x00\x00\x00\x01\x00\x00\x2a\x00",)),
        "sessions-get-block2": _request(G, S, block2=BlockOption.BlockwiseTuple(1, False, 2)),
        "sessions-get-one": _request(G, S, ("number=5",)),
        "sessions-post-create": _request(P, S, body=posts["create"]),
        "sessions-post-create-non": _request(P, S, body=posts["create"], non=True),
        "sessions-post-full": _request(P, S, body=posts["full"]),
        "sessions-post-full-cbor": _request(P, S, body=posts["full"], cbor=True, accept=60),
        "sessions-post-page": _request(P, S, body=posts["create-and-page"]),
        "sessions-post-clear": _request(P, S, body=posts["clear"]),
        "sessions-post-block1": _request(
            P,
            S,
            body=posts["full"],
            first=16,
            block1=BlockOption.BlockwiseTuple(0, True, 0),
            size1=len(json.dumps(posts["full"], separators=(",", ":"))),
        ),
        "sessions-put-page": _request(U, S, ("number=5",), body=puts["page"]),
        "sessions-put-update": _request(U, S, ("number=12",), body=puts["update"]),
        "sessions-put-update-cbor": _request(U, S, ("number=12",), body=puts["update"], cbor=True),
        "sessions-put-clear": _request(U, S, ("number=5",), body=puts["number-matches"]),
        "sessions-delete-one": _request(D, S, ("number=5",)),
        "sessions-delete-all": _request(D, S),
        "history-get": _request(G, H),
        "history-get-paged": _request(G, H, ("limit=10", "after=3")),
        "history-delete": _request(D, H),
        "statistics-get": _request(G, ST),
        "statistics-get-cbor": _request(G, ST, accept=60),
        "statistics-delete": _request(D, ST),
        "settings-get": _request(G, "/v1/settings"),
        "settings-post": _request(P, "/v1/settings", body=settings["all"]),
        "settings-post-cbor": _request(P, "/v1/settings", body=settings["goal"], cbor=True),
        "page-post": _request(P, "/v1/page", body=pages["plain"]),
        "page-post-full": _request(P, "/v1/page", body=pages["full"]),
        "page-post-cbor": _request(P, "/v1/page", body=pages["staff"], cbor=True, accept=60),
        "notify-get": _request(G, "/v1/notify"),
        "notify-get-sessions": _request(G, "/v1/notify", ("action=get_sessions",)),
        "notify-observe": _request(G, "/v1/notify", observe=0),
        "notify-observe-sessions": _request(
            G, "/v1/notify", ("action=get_sessions",), observe=0, accept=60
        ),
        "settings-put-not-allowed": _request(U, "/v1/settings", body=settings["goal"]),
        "unknown-path": _request(G, "/v2/nothing"),
    }
    # An empty CON (a CoAP ping), which gets a RST.
    d["ping"] = bytes([0x40, 0x00, 0x12, 0x34])
    return d


def bodies() -> dict[str, bytes]:
    out = {}
    for target, items in BODIES.items():
        for name, body in items:
            out[f"body-{target}-{name}.json"] = json.dumps(body, separators=(",", ":")).encode()
            out[f"body-{target}-{name}.cbor"] = cbor2.dumps(body)
    return out


def write(directory: Path = CORPUS) -> list[Path]:
    directory.mkdir(exist_ok=True)
    written = []
    for name, data in sorted(datagrams().items()):
        written.append(directory / f"dgram-{name}.bin")
        written[-1].write_bytes(data)
    for name, data in bodies().items():
        written.append(directory / name)
        written[-1].write_bytes(data)
    return written


def load_datagrams(directory: Path = CORPUS) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("dgram-*.bin"))}


def load_bodies(directory: Path = CORPUS) -> dict[str, list[tuple[int, bytes]]]:
    """Bodies by target, each with the Content-Format its file extension names."""
    out: dict[str, list[tuple[int, bytes]]] = {t: [] for t in TARGETS}
    for p in sorted(directory.glob("body-*")):
        target = next((t for t in TARGETS if p.name.startswith(f"body-{t}-")), None)
        if target is not None:
            out[target].append((60 if p.suffix == ".cbor" else 50, p.read_bytes()))
    return out


if __name__ == "__main__":
    paths = write(Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS)
    print(f"wrote {len(paths)} files, {sum(p.stat().st_size for p in paths)} bytes")
