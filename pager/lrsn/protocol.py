"""LRSN, the T7470's XML-over-TCP interface (docs/lrsn.md), without any I/O.

Bytes go in and parsed requests come out; answers go in and bytes come out, as h11 does for
HTTP: the framing, the parsing and every refusal are tested without a socket, and the TCP
server (`pager.lrsn.server`) only moves bytes and runs what a request asks for.
"""

import enum
import hmac
import re
from dataclasses import dataclass
from typing import Final, Literal
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from pager.domain.errors import Invalid
from pager.domain.operations import PageRequest
from pager.domain.pagemodes import ALERT_SECONDS

MAX_MESSAGE: Final = 4096
"""The most bytes a message may take before its newline; beyond it the message cannot be
one the device would take, and holding more would let one client fill the memory."""

SERVICES: Final = {"NetPage": "2.0", "Heartbeat": "1.0"}
"""The services the emulator implements, with the versions its greeting names."""

ID_MAX = 64  # the longest request id echoed back [E]
PAGE_MODES: Final = tuple(ALERT_SECONDS)
"""The CoAP spec §9 table in its order: a numeric message for a guest pager is a position in
it, 1 for the first [E]."""

COLORS: Final = frozenset("RBGYOPW")
POWER = (0, 5)


class Ret(enum.IntEnum):
    """The result codes of the vendor documentation."""

    ESUCCESS = 0
    ELOGIN = 1
    ELICEXCEED = 2
    ELICEXPIRE = 3
    ESERVDOWN = 4
    EMAXCLIENTS = 5
    EINVAL = 6
    EOPFAIL = 7
    EDUP = 8
    EINPROGRESS = 9
    EFAIL = 10


class Framer:
    """Cuts a byte stream into messages at each newline.

    A message that grows past `limit` bytes without its newline is given up at once (its
    bytes dropped, one `None` in its place), and what follows it up to the next newline is
    dropped too: the rest of a too-long message is not a message of its own.
    """

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._skipping = False

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            if self._skipping:
                self._skipping = False
            elif len(self._buffer) + len(piece) > self.limit:
                out.append(None)
            else:
                self._buffer += piece
                out.append(bytes(self._buffer))
            self._buffer.clear()
            start = end + 1
        if not self._skipping:
            rest = len(data) - start
            if len(self._buffer) + rest > self.limit:
                out.append(None)
                self._buffer.clear()
                self._skipping = True
            else:
                self._buffer += data[start:]
        return out


# ---- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    user: str | None
    passwd: str | None
    services: frozenset[str]  # names, versions taken off


@dataclass(frozen=True)
class Page:
    """A PageRequest in either form, its values checked for type, not yet for range."""

    id: str | None
    alphanumeric: bool  # the message is text, not a page mode
    number: int
    message: str | None
    system_id: int | None
    power: int | None = None
    color: str | None = None


Answer = Literal["LoginAck", "PageRequestStatus", "Error"]


@dataclass(frozen=True)
class Bad:
    """A message refused as it is read: answered with `ret` in an `answer` element."""

    ret: Ret
    answer: Answer
    reason: str
    id: str | None = None


Request = Login | Page


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# A form feed starts a message's alert override codes (CoAP spec §9), but XML 1.0 has no form
# feed, raw or as a reference, so a parser refuses both. `&#12;` (or `&#xC;`) is taken for one
# [E, unverified]: carried through the parser as a private-use character, then put back.
_FORM_FEED_REF = re.compile(r"&#(?:0*12|[xX]0*[cC]);")
_FORM_FEED_STAND_IN = "\ue00c"

_DECLARED_ENCODING = re.compile(r"\ufeff?<\?xml\s[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")

_INT = re.compile(r"-?[0-9]{1,10}")
_VERSION = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})*")
# short form `pager` types: 0 alphanumeric POCSAG, 1 numeric POCSAG, 2 LRS guest, 3 Star staff
# pager, 4 vibe-only POCSAG; only 0 takes text
SHORT_TYPES: Final = {0: True, 1: False, 2: False, 3: False, 4: False}
LONG_TYPES: Final = {"Guest": False, "AlphaCoaster": True}


def parse(line: bytes) -> Request | Bad | None:
    """One message (without its newline): a request, a refusal, or None for a blank line,
    which asks nothing [E]."""
    if line.strip(b" \t\r") == b"":
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Bad(Ret.EFAIL, "Error", "not UTF-8")
    # expat reads a line that starts `\0<` as UTF-16 whatever it is told, and takes a
    # declaration's encoding on trust: a NUL (no XML character) or a declared encoding other
    # than UTF-8 is refused before it parses
    if "\0" in text:
        return Bad(Ret.EFAIL, "Error", "not UTF-8: a NUL byte")
    declared = _DECLARED_ENCODING.match(text)
    if declared is not None and declared.group(1).lower() not in ("utf-8", "utf8"):
        return Bad(Ret.EFAIL, "Error", f"not UTF-8: declared {declared.group(1)!r}")
    try:
        text = _FORM_FEED_REF.sub(_FORM_FEED_STAND_IN, text)
        root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        return Bad(Ret.EFAIL, "Error", f"refused: {type(e).__name__}")
    except (SafeET.ParseError, ValueError) as e:
        return Bad(Ret.EFAIL, "Error", f"not XML: {e}")
    if root.tag == "Login":
        try:
            return _login(root)
        except _Refused as e:
            return Bad(Ret.EINVAL, "LoginAck", e.reason)
    if root.tag == "PageRequest":
        rid = root.get("id")
        if rid is not None and len(rid) > ID_MAX:
            return Bad(Ret.EINVAL, "PageRequestStatus", f"id longer than {ID_MAX} characters")
        try:
            return _page(root, rid)
        except _Refused as e:
            return Bad(Ret.EINVAL, "PageRequestStatus", e.reason, rid)
    return Bad(Ret.EINVAL, "Error", f"unknown element {root.tag!r}")


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace(_FORM_FEED_STAND_IN, "\f")


def _only(el: Element, allowed: frozenset[str], children: bool = False) -> None:
    extra = sorted(set(el.attrib) - allowed)
    if extra:
        raise _Refused(f"{el.tag}: unknown attribute {extra[0]!r}")
    if not children and len(el):
        raise _Refused(f"{el.tag}: unexpected element {el[0].tag!r}")
    if not children and (el.text or "").strip():
        raise _Refused(f"{el.tag}: unexpected text")
    if (el.tail or "").strip():
        raise _Refused(f"{el.tag}: unexpected text after it")


def _int(el: Element, name: str, required: bool = False) -> int | None:
    value = el.get(name)
    if value is None:
        if required:
            raise _Refused(f"{el.tag}: {name} is missing")
        return None
    if not _INT.fullmatch(value):
        raise _Refused(f"{el.tag}: {name} must be an integer")
    return int(value)


def _login(el: Element) -> Login:
    _only(el, frozenset({"user", "passwd", "services"}))
    listed = el.get("services")
    if listed is None:
        raise _Refused("Login: services is missing")
    names = set()
    for item in filter(None, (s.strip() for s in listed.split(";"))):
        name, _, version = item.partition(":")
        if not name or (version and not _VERSION.fullmatch(version)):
            raise _Refused(f"Login: {item!r} is not a service, or a service:version")
        names.add(name)
    return Login(el.get("user"), el.get("passwd"), frozenset(names))


def _page(el: Element, rid: str | None) -> Page:
    if "pager" in el.attrib:
        _only(el, frozenset({"id", "pager", "message", "system_id"}))
        short_type, sep, short_number = el.attrib["pager"].partition(";")
        if not sep or not _INT.fullmatch(short_type) or not _INT.fullmatch(short_number):
            raise _Refused("PageRequest: pager must be type;number")
        if int(short_type) not in SHORT_TYPES:
            raise _Refused(f"PageRequest: pager type must be one of {sorted(SHORT_TYPES)}")
        alphanumeric = SHORT_TYPES[int(short_type)]
        system_id = _int(el, "system_id")
        message = _text(el.get("message"))
        return Page(rid, alphanumeric, int(short_number), message, system_id)
    _only(el, frozenset({"id"}), children=True)
    if (el.text or "").strip():
        raise _Refused("PageRequest: unexpected text")
    pagers = [c for c in el if c.tag == "Pager"]
    messages = [c for c in el if c.tag == "Message"]
    others = [c.tag for c in el if c.tag not in ("Pager", "Message")]
    if others:
        raise _Refused(f"PageRequest: unexpected element {others[0]!r}")
    if len(pagers) != 1 or len(messages) > 1:
        raise _Refused("PageRequest: one Pager and at most one Message, or the pager attribute")
    (pager,) = pagers
    _only(pager, frozenset({"Type", "ID", "SystemID", "power", "color"}))
    kind = pager.get("Type")
    if kind not in LONG_TYPES:
        raise _Refused(f"Pager: Type must be one of {', '.join(LONG_TYPES)}")
    number = _int(pager, "ID", required=True)
    assert number is not None
    power = _int(pager, "power")
    if power is not None and not POWER[0] <= power <= POWER[1]:
        raise _Refused(f"Pager: power must be an integer from {POWER[0]} to {POWER[1]}")
    color = pager.get("color")
    if color is not None and color not in COLORS:
        raise _Refused(f"Pager: color must be one of {' '.join(sorted(COLORS))}")
    message = None
    if messages:
        if len(messages[0]) or messages[0].attrib:
            raise _Refused("Message: text only")
        message = _text(messages[0].text or "")
    return Page(rid, LONG_TYPES[kind], number, message, _int(pager, "SystemID"), power, color)


def login_result(login: Login, user: str | None, passwd: str | None) -> Ret:
    """A login's result code: with credentials configured, both must match (compared in
    constant time); without, any login succeeds, whatever it carries [E]."""
    if user is None and passwd is None:
        return Ret.ESUCCESS
    same_user = hmac.compare_digest((login.user or "").encode(), (user or "").encode())
    same_passwd = hmac.compare_digest((login.passwd or "").encode(), (passwd or "").encode())
    present = login.user is not None and login.passwd is not None
    return Ret.ESUCCESS if same_user and same_passwd and present else Ret.ELOGIN


def page_request(page: Page) -> PageRequest:
    """The domain's page for an LRSN one; the domain checks every range, as for CoAP.

    A pager that is not alphanumeric takes a page mode: by name, or by its position in the
    table (`PAGE_MODES`); no message is its default mode."""
    if page.alphanumeric:
        return PageRequest(
            page.number, None, page.message, page.system_id, "lrsn", page.power, page.color
        )
    mode = page.message.strip() if page.message is not None else ""
    if _INT.fullmatch(mode):
        position = int(mode)
        if not 1 <= position <= len(PAGE_MODES):
            raise Invalid(
                f"a numeric message is a page mode's position, 1 to {len(PAGE_MODES)}",
                "message",
            )
        mode = PAGE_MODES[position - 1]
    return PageRequest(
        page.number, mode or None, None, page.system_id, "lrsn", page.power, page.color
    )


# ---- answers -------------------------------------------------------------------------------

_ATTRIBUTE = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def element(tag: str, **attributes: str | int) -> bytes:
    """One message: an empty element, every attribute escaped (a newline as `&#10;`, never
    raw), and its newline."""
    attrs = "".join(f' {k}="{escape(str(v), _ATTRIBUTE)}"' for k, v in attributes.items())
    return f"<{tag}{attrs} />\n".encode()


def greeting(device: str, swver: str, serno: str, login_required: bool) -> bytes:
    services = ";".join(f"{name}:{version}" for name, version in SERVICES.items())
    login = "required" if login_required else "none"
    return element("LRSN", services=services, device=device, swver=swver, serno=serno, login=login)


def login_ack(ret: Ret) -> bytes:
    return element("LoginAck", ret=int(ret))


def page_status(rid: str | None, ret: Ret) -> bytes:
    if rid is None:
        return element("PageRequestStatus", ret=int(ret))
    return element("PageRequestStatus", id=rid, ret=int(ret))


def error(ret: Ret) -> bytes:
    return element("Error", ret=int(ret))


def heartbeat(interval: float) -> bytes:
    return element("Heartbeat", interval=f"{interval:g}")


def refusal(bad: Bad) -> bytes:
    if bad.answer == "LoginAck":
        return login_ack(bad.ret)
    if bad.answer == "PageRequestStatus":
        return page_status(bad.id, bad.ret)
    return error(bad.ret)
