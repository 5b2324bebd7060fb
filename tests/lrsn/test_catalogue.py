"""Malformed and hostile LRSN messages, each on a logged-in connection: the answer the spec
(§6) and docs/lrsn.md give it, nothing transmitted, and the connection still served."""

import pytest

from tests.lrsn.conftest import Lrsn

E = b'<Error ret="10" />\n'  # cannot be parsed at all
UNKNOWN = b'<Error ret="6" />\n'


def status(ret: int, rid: bytes | None = b"1") -> bytes:
    if rid is None:
        return b'<PageRequestStatus ret="%d" />\n' % ret
    return b'<PageRequestStatus id="%s" ret="%d" />\n' % (rid, ret)


def guest(attrs: bytes, message: bytes = b"") -> bytes:
    body = b"<Message>" + message + b"</Message>" if message else b""
    return b'<PageRequest id="1"><Pager ' + attrs + b" />" + body + b"</PageRequest>\n"


def short(attrs: bytes) -> bytes:
    return b'<PageRequest id="1" ' + attrs + b" />\n"


LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 9)
    )
    + b']><PageRequest id="1" pager="0;1" message="&lol8;" />\n'
)

CATALOGUE: list[tuple[str, bytes, list[bytes]]] = [
    # cannot be parsed: EFAIL, in an Error element
    ("unclosed tag", b'<PageRequest id="1" pager="2;1"\n', [E]),
    ("not XML", b"page 12 please\n", [E]),
    ("mismatched tags", b"<a></b>\n", [E]),
    ("two elements on a line", b'<Login services="NetPage"/><Login services="NetPage"/>\n', [E]),
    ("undefined entity", b'<PageRequest id="1" pager="0;1" message="&foo;" />\n', [E]),
    ("billion laughs", LAUGHS, [E]),
    (
        "external entity",
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<PageRequest id="1" pager="0;1" message="&x;" />\n',
        [E],
    ),
    (
        "external DTD",
        b'<!DOCTYPE PageRequest SYSTEM "http://127.0.0.1:9/x.dtd">'
        b'<PageRequest id="1" pager="2;1" />\n',
        [E],
    ),
    ("any DTD", b'<!DOCTYPE PageRequest><PageRequest id="1" pager="2;1" />\n', [E]),
    ("not UTF-8", b'<PageRequest id="1" pager="0;1" message="caf\xe9" />\n', [E]),
    ("lone continuation byte", b'<PageRequest id="1" pager="0;1" message="\x80" />\n', [E]),
    ("NUL byte", b'<PageRequest id="1" pager="0;1" message="a\x00" />\n', [E]),
    ("raw form feed", b'<PageRequest id="1" pager="0;1" message="a\x0cF" />\n', [E]),
    ("1 MB without a newline", b"A" * 2**20 + b"\n", [E]),
    ("4097 bytes", b'<Login services="' + b"N" * 4080 + b'" />\n', [E]),
    # a raw newline cuts the message in two, neither of them XML
    ("raw newline inside", b'<PageRequest id="1" pager="0;1" message="a\nb" />\n', [E, E]),
    # not a request the emulator knows: EINVAL
    ("unknown element", b"<Foo />\n", [UNKNOWN]),
    ("a heartbeat from the client", b'<Heartbeat interval="60" />\n', [UNKNOWN]),
    ("element in the wrong case", b'<pagerequest id="1" pager="2;1" />\n', [UNKNOWN]),
    (
        "element in a namespace",
        b'<x:PageRequest xmlns:x="urn:a" id="1" pager="2;1" />\n',
        [UNKNOWN],
    ),  # fmt: skip
    # a PageRequest with a bad value: EINVAL, with its id
    ("no pager at all", b'<PageRequest id="1" />\n', [status(6)]),
    ("missing ID", guest(b'Type="Guest"'), [status(6)]),
    ("missing Type", guest(b'ID="3"'), [status(6)]),
    ("unknown Type", guest(b'Type="Staff" ID="3"'), [status(6)]),
    ("ID not a number", guest(b'Type="Guest" ID="abc"'), [status(6)]),
    ("ID a fraction", guest(b'Type="Guest" ID="12.5"'), [status(6)]),
    ("ID above the range", guest(b'Type="Guest" ID="4096"'), [status(6)]),
    ("ID negative", guest(b'Type="Guest" ID="-1"'), [status(6)]),
    ("ID huge", guest(b'Type="Guest" ID="99999999999999999999"'), [status(6)]),
    ("SystemID above 255", guest(b'Type="Guest" ID="3" SystemID="256"'), [status(6)]),
    ("SystemID not a number", guest(b'Type="Guest" ID="3" SystemID="x"'), [status(6)]),
    ("power above 5", guest(b'Type="Guest" ID="3" power="6"'), [status(6)]),
    ("unknown color", guest(b'Type="Guest" ID="3" color="Z"'), [status(6)]),
    ("unknown page mode", guest(b'Type="Guest" ID="3"', b"Blink"), [status(6)]),
    ("page mode position 0", guest(b'Type="Guest" ID="3"', b"0"), [status(6)]),
    ("page mode position 15", guest(b'Type="Guest" ID="3"', b"15"), [status(6)]),
    ("alpha text too long", guest(b'Type="AlphaCoaster" ID="3"', b"x" * 241), [status(6)]),
    ("bad override code", guest(b'Type="AlphaCoaster" ID="3"', b"hi&#12; 5"), [status(6)]),
    ("unknown attribute", short(b'pager="2;1" colour="R"'), [status(6)]),
    (
        "two Pagers",
        b'<PageRequest id="1"><Pager Type="Guest" ID="1" /><Pager Type="Guest" '
        b'ID="2" /></PageRequest>\n',
        [status(6)],
    ),  # fmt: skip
    (
        "unknown child, no id",
        b'<PageRequest><Pager Type="Guest" ID="1" /><Foo /></PageRequest>\n',
        [status(6, None)],
    ),  # fmt: skip
    ("text in a short form", b'<PageRequest id="1" pager="2;1">now</PageRequest>\n', [status(6)]),
    ("short pager without a type", short(b'pager="12"'), [status(6)]),
    ("short pager type 9", short(b'pager="9;1"'), [status(6)]),
    ("short pager not numbers", short(b'pager="a;b"'), [status(6)]),
    ("short system_id negative", short(b'pager="2;1" system_id="-5"'), [status(6)]),
    (
        "id too long to echo",
        b'<PageRequest id="' + b"7" * 65 + b'" pager="2;1" />\n',
        [status(6, None)],
    ),  # fmt: skip
    # a Login with a bad value: EINVAL in a LoginAck; the login before it holds
    ("Login without services", b"<Login />\n", [b'<LoginAck ret="6" />\n']),
    (
        "Login with a bad version",
        b'<Login services="NetPage:two" />\n',
        [b'<LoginAck ret="6" />\n'],
    ),  # fmt: skip
]


def test_the_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 30
    assert len({name for name, _, _ in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize(("name", "message", "answers"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
async def test_refused_and_nothing_changed(lrsn_rig, logged_in: Lrsn, name, message, answers):
    await logged_in.send(message)
    assert [await logged_in.line() for _ in answers] == answers
    # still logged in and served: the next answer is this page's, and nothing else came
    assert await logged_in.ask(b'<PageRequest id="ok" pager="2;5" />\n') == status(0, b"ok")
    txs = (await lrsn_rig.http.get("/transmissions"))["transmissions"]
    assert [(t["id"], t["number"]) for t in txs] == [(1, 5)]
