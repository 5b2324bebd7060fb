"""The documentation in the repo says what the code does, and links only into the repo.

The device reference (docs/device-api.md) is checked against the code from two sides: every
error code the CoAP layer can answer with, found in the code itself rather than listed here,
has its row in the reference's table of codes; and every example exchange in it is what a
running emulator sends (`scripts/device_examples.py` prints them).
"""

import ast
import re
import sys
from pathlib import Path

import aiocoap.blockwise
import aiocoap.error
import pytest
from aiocoap.numbers.codes import Code

from pager.domain import errors
from tests.conftest import REPO, run_script

DEVICE_API = REPO / "docs" / "device-api.md"
CODE_ROW = re.compile(r"^\| ([245]\.\d\d) ", re.MULTILINE)
CODE = re.compile(r"^```.*?^```|`[^`\n]*`", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]*)[^)]*\)|<(https?://[^>]*)>|\b(https?://\S+)")

sys.path.insert(0, str(REPO / "scripts"))
import device_examples  # noqa: E402


def _sources() -> list[Path]:
    """Where the device API decides what to answer: the CoAP layer and the domain's
    refusals (the CoAP layer maps those; their docstrings name the code)."""
    return sorted((REPO / "pager" / "coap").rglob("*.py")) + [REPO / "pager/domain/errors.py"]


def _codes_named_in(tree: ast.AST) -> set[Code]:
    """`Code.NAME`, `Code(<int>)` and aiocoap's renderable errors (each carries its code)."""
    members = Code.__members__
    exceptions = {**vars(aiocoap.error), **vars(aiocoap.blockwise)}
    found: set[Code] = set()
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.Name):
            name = node.id
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "Code"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, int)
        ):
            found.add(Code(node.args[0].value))
        if name is None:
            continue
        if isinstance(node, ast.Attribute) and name in members:
            found.add(members[name])
        renderable = exceptions.get(name)
        if isinstance(renderable, type) and issubclass(renderable, aiocoap.error.RenderableError):
            code = getattr(renderable, "code", None)
            if code is not None:
                found.add(code)
    return found


def device_error_codes() -> set[str]:
    codes: set[Code] = set()
    for path in _sources():
        codes |= _codes_named_in(ast.parse(path.read_text(), str(path)))
    dotted = {c.dotted for c in codes if c.is_response() and not c.is_successful()}
    for refusal in (errors.Refused, *errors.Refused.__subclasses__()):
        dotted |= set(re.findall(r"\((\d\.\d\d)\)", refusal.__doc__ or ""))
    return dotted


def documented_codes(text: str) -> set[str]:
    """The codes with a row in the reference's table of response codes."""
    section = text.split("\n## Response codes", 1)[1].split("\n## ", 1)[0]
    return set(CODE_ROW.findall(section))


def test_the_code_scan_finds_what_each_refusal_is_answered_with():
    """The scan is the test's premise: it must see the codes known to be there, each
    reached a different way (an attribute, an aiocoap exception, a refusal's docstring)."""
    found = device_error_codes()
    assert {"4.00", "4.02", "4.04", "4.05", "4.06", "4.08", "4.13", "4.15", "5.03", "5.05"} <= found
    assert not {c for c in found if c.startswith("2.")}


def test_every_error_code_of_the_device_api_is_documented():
    missing = device_error_codes() - documented_codes(DEVICE_API.read_text())
    assert not missing, f"docs/device-api.md's table of response codes lacks {sorted(missing)}"


def test_a_code_left_out_of_the_reference_is_caught():
    text = DEVICE_API.read_text()
    without = re.sub(r"^\| 4\.13 .*\n", "", text, flags=re.MULTILINE)
    assert without != text
    assert "4.13" in device_error_codes() - documented_codes(without)


def _markdown_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def links_outside(path: Path, text: str | None = None) -> list[str]:
    """Every link of a Markdown file (or of `text` written there) that leaves the repo or
    leads nowhere."""
    bad = []
    text = path.read_text() if text is None else text
    if "../shared" in text:
        bad.append("../shared")
    prose = CODE.sub("", text)  # an address in code is an example to type, not a link
    for match in LINK.finditer(prose):
        target = match.group(1)
        if target is None:
            bad.append(match.group(2) or match.group(3))
            continue
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # a scheme: http, mailto, file...
            bad.append(target)
            continue
        file, _, anchor = target.partition("#")
        if not file:
            if anchor not in anchors(text):
                bad.append(target)
            continue
        resolved = (path.parent / file).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            bad.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text()):
            bad.append(target)
    return bad


def anchors(markdown: str) -> set[str]:
    """The anchors a renderer gives the headings of a Markdown text (GitHub's rule)."""
    headings = re.findall(r"^#+ (.*)$", CODE.sub("", markdown), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_markdown_links_stay_in_the_repo(path):
    assert links_outside(path) == []


def test_a_link_outside_the_repo_is_caught():
    text = (
        "# Here\n[spec](../shared/spec/x.md) [up](../../etc/passwd) [web](https://example.com) "
        "<http://example.org> see https://example.net [gone](missing.md) [ok](#here) "
        "[readme](../README.md#running-it) `curl http://127.0.0.1:7470`\n```\nhttp://x\n```\n"
        "[nowhere](device-api.md#no-such-heading)"
    )
    bad = links_outside(REPO / "docs" / "page.md", text)
    assert bad == [
        "../shared",
        "../shared/spec/x.md",
        "../../etc/passwd",
        "https://example.com",
        "http://example.org",
        "https://example.net",
        "missing.md",
        "device-api.md#no-such-heading",
    ]


def test_the_examples_are_what_the_emulator_sends():
    status, out, err = run_script("device_examples.py")
    assert status == 0, err
    printed = device_examples.blocks_of(out)
    assert len(printed) > 40
    shown = device_examples.blocks_of(DEVICE_API.read_text())
    stale = sorted(name for name in printed if shown.get(name) != printed[name])
    assert not stale, (
        f"docs/device-api.md shows other exchanges than the emulator's in {stale}: run "
        "scripts/device_examples.py --write docs/device-api.md (and place new ones by hand)"
    )
    assert set(shown) == set(printed), "docs/device-api.md shows an example no run prints"
    assert DEVICE_API.read_text().count("```coap") == len(shown), "an example without a name"
