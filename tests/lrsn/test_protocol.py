"""pager.lrsn.protocol without sockets: framing, parsing, the domain's page, answers."""

import pytest

from pager.domain.errors import Invalid
from pager.domain.pagemodes import ALERT_SECONDS
from pager.lrsn import protocol as lp
from pager.lrsn.protocol import Ret


def test_messages_are_cut_at_each_newline_across_reads():
    f = lp.Framer()
    assert f.feed(b"<a/>\n<b") == [b"<a/>"]
    assert f.feed(b"/>") == []
    assert f.feed(b"\n\n<c/>\n") == [b"<b/>", b"", b"<c/>"]
    assert f.buffered == 0


def test_a_message_of_exactly_the_bound_is_taken_one_byte_more_is_not():
    f = lp.Framer(limit=10)
    assert f.feed(b"x" * 10 + b"\n") == [b"x" * 10]
    assert f.feed(b"y" * 11 + b"\n") == [None]
    assert f.feed(b"<ok/>\n") == [b"<ok/>"]


def test_a_megabyte_without_a_newline_is_one_failure_and_nothing_kept():
    f = lp.Framer()
    out: list[bytes | None] = []
    for _ in range(256):
        out += f.feed(b"A" * 4096)
        assert f.buffered <= lp.MAX_MESSAGE
    assert out == [None]
    assert f.buffered == 0
    # the rest of the long message up to its newline is dropped; the next one is read
    assert f.feed(b'tail of it\n<Login services="NetPage"/>\n') == [b'<Login services="NetPage"/>']


def test_login_with_versions_and_credentials():
    req = lp.parse(b'<Login user="u" passwd="p" services="NetPage:2.0;Heartbeat:1.0;" />')
    assert req == lp.Login("u", "p", frozenset({"NetPage", "Heartbeat"}))


def test_short_and_long_page_requests():
    short = lp.parse(b'<PageRequest id="1" pager="2;123" message="Vibe1" system_id="4" />')
    assert short == lp.Page("1", False, 123, "Vibe1", 4)
    long = lp.parse(
        b'<PageRequest id="42"><Pager Type="Guest" ID="12" SystemID="4" power="3" color="R" />'
        b"<Message>11</Message></PageRequest>"
    )
    assert long == lp.Page("42", False, 12, "11", 4, 3, "R")
    alpha = lp.parse(
        b'<PageRequest><Pager Type="AlphaCoaster" ID="7" />'
        b"<Message>Table&#10;ready</Message></PageRequest>"
    )
    assert alpha == lp.Page(None, True, 7, "Table\nready", None)


def test_blank_lines_ask_nothing():
    assert lp.parse(b"") is None and lp.parse(b" \r") is None


@pytest.mark.parametrize(
    ("position", "mode"), [(1, "Flash1Sec"), (2, "Flash30Sec"), (11, "Vibe3"), (14, "VibeBeep3")]
)
def test_a_numeric_guest_message_is_a_position_in_the_page_mode_table(position, mode):
    page = lp.page_request(lp.Page(None, False, 5, str(position), None))
    assert (page.page_mode, page.message, page.source) == (mode, None, "lrsn")
    assert lp.PAGE_MODES == tuple(ALERT_SECONDS) and len(lp.PAGE_MODES) == 14


@pytest.mark.parametrize("message", ["0", "15", "-1"])
def test_a_position_outside_the_table_is_invalid(message):
    with pytest.raises(Invalid):
        lp.page_request(lp.Page(None, False, 5, message, None))


def test_power_and_colour_go_with_the_page():
    page = lp.page_request(lp.Page("1", False, 5, "2", None, 4, "B"))
    assert (page.power, page.color, page.page_mode) == (4, "B", "Flash30Sec")


def test_names_text_and_no_message():
    assert lp.page_request(lp.Page(None, False, 5, "Beep3Times", None)).page_mode == "Beep3Times"
    assert lp.page_request(lp.Page(None, False, 5, None, None)).page_mode is None
    alpha = lp.page_request(lp.Page(None, True, 5, "hi\fF3", 2))
    assert (alpha.page_mode, alpha.message, alpha.system_id) == (None, "hi\fF3", 2)


def test_login_result_with_and_without_credentials():
    anyone = lp.Login(None, None, frozenset({"NetPage"}))
    right = lp.Login("admin", "secret", frozenset())
    assert lp.login_result(anyone, None, None) == Ret.ESUCCESS
    assert lp.login_result(right, None, None) == Ret.ESUCCESS
    assert lp.login_result(right, "admin", "secret") == Ret.ESUCCESS
    assert lp.login_result(anyone, "admin", "secret") == Ret.ELOGIN
    assert lp.login_result(lp.Login("admin", "secreT", frozenset()), "admin", "secret") == 1
    assert lp.login_result(lp.Login("Admin", "secret", frozenset()), "admin", "secret") == 1


def test_answers_are_one_line_each_newline_a_character_reference():
    assert lp.page_status("4\n2", Ret.EINVAL) == b'<PageRequestStatus id="4&#10;2" ret="6" />\n'
    assert lp.page_status(None, Ret.ESUCCESS) == b'<PageRequestStatus ret="0" />\n'
    assert lp.element("X", a='<"&>') == b'<X a="&lt;&quot;&amp;&gt;" />\n'
    assert lp.heartbeat(60.0) == b'<Heartbeat interval="60" />\n'
    assert lp.greeting("T7470", "8.4", "20384", True) == (
        b'<LRSN services="NetPage:2.0;Heartbeat:1.0" device="T7470" swver="8.4" '
        b'serno="20384" login="required" />\n'
    )


def test_the_lrsn_layer_imports_neither_the_rig_nor_coap():
    """The rig reaches LRSN through `pager.lrsn.server.Faults` and `Requests`, as it reaches
    CoAP through the CoAP layer's own interfaces; and LRSN shares the domain, not CoAP."""
    import ast
    from pathlib import Path

    import pager

    root = Path(pager.__file__).parent
    offenders = []
    for path in sorted((root / "lrsn").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.startswith(("pager.control", "pager.coap"))
            ]
    assert offenders == []
