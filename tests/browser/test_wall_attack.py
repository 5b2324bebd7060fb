"""The pager wall's page attacked through what it shows (issue 15): markup in a session's
label, a pager's message and a journal entry's path, and a clock at the ends of its range.
All of it must be shown as text, no script may run (the wall fixture fails a test on any
console error, the page's CSP refusing an inline handler included), and the layout holds."""

import aiocoap
from playwright.async_api import expect

from tests.browser.conftest import Rig, Wall, create

HOSTILE = [
    '<img src=x onerror="window.pwned=1">',
    "</script><script>window.pwned=2</script>",
    "\"'><svg onload=window.pwned=3>",
    "\u202eevil\u202c «Zoë» 😀👨‍👩‍👧",
    "&lt;b&gt;&amp;amp;",
]
INJECTED = "#waiting img, #wall img, #journal img, svg, script:not([src]), b, iframe"


async def _no_script_ran(wall: Wall) -> None:
    assert await wall.page.evaluate("() => window.pwned") is None
    assert await wall.page.locator(INJECTED).count() == 0


async def _layout_holds(wall: Wall) -> None:
    widths = await wall.page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


async def test_markup_in_labels_messages_and_journal_paths_is_text(rig: Rig, wall: Wall) -> None:
    ids = [await create(rig.coap, 10 + i, label=label) for i, label in enumerate(HOSTILE)]
    for i, message in enumerate(HOSTILE):
        reply = await rig.coap.post("/v1/page", {"number": 30 + i, "message": message})
        assert reply.code == "2.04", reply.json
    # a request the device refuses is still journaled, with its path as it came: markup, and
    # some 10 kB of it
    path = ("<img src=x onerror=window.pwned=4>", *["x" * 250] * 40)
    message = aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{rig.emu.port}")
    message.opt.uri_path = path
    await rig.coap.context.request(message).response
    await wall.open(rig.url)
    for sid, label in zip(ids, HOSTILE, strict=True):
        await expect(wall.field(wall.row(sid), "label")).to_have_text(label)
    for i, text in enumerate(HOSTILE):
        await expect(wall.field(wall.tile(30 + i), "message")).to_have_text(text)
    entry = wall.page.locator("#journal [data-entry]").first
    await expect(entry).to_contain_text("GET /<img src=x onerror=window.pwned=4>/xxx")
    # and as they come live, not only in the snapshot
    live = await create(rig.coap, 99, label=HOSTILE[0])
    await expect(wall.field(wall.row(live), "label")).to_have_text(HOSTILE[0])
    await _no_script_ran(wall)
    await _layout_holds(wall)


async def test_a_clock_at_either_end_of_its_range_is_shown(rig: Rig, wall: Wall) -> None:
    """A session made in 2000, the clock then set to the end of 2099: its waited time has
    hours by the hundred thousand; then back before it was made: nothing negative."""
    await rig.control("POST", "/clock/freeze")
    await rig.control("POST", "/clock/set", {"datetime": "2000-01-01T00:00:00"})
    sid = await create(rig.coap, 5, label="Ada")
    await wall.open(rig.url)
    now = wall.page.locator('#clock [data-field="now"]')
    await expect(now).to_contain_text("2000")
    await rig.control("POST", "/clock/set", {"datetime": "2099-12-31T23:59:59"})
    await expect(now).to_contain_text("2099")
    await expect(wall.field(wall.row(sid), "waited")).to_have_text("876599:59:59")
    await _layout_holds(wall)
    await rig.control("POST", "/clock/set", {"datetime": "2000-01-01T00:00:00"})
    await expect(now).to_contain_text("2000")
    await expect(wall.field(wall.row(sid), "waited")).to_have_text("0:00")
    await _layout_holds(wall)
