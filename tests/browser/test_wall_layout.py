"""The pager wall at tablet width, from the keyboard, and the picture the README shows
(issue 15)."""

import struct

import pytest
from playwright.async_api import expect

from tests.browser.conftest import ARTIFACTS, Rig, Wall, create
from tests.conftest import REPO

README_PICTURE = REPO / "docs" / "pager-wall.png"


@pytest.mark.parametrize("viewport", [{"width": 768, "height": 1024}])
async def test_at_tablet_width_the_body_does_not_scroll_sideways(rig: Rig, wall: Wall) -> None:
    for number, label in [(101, "Fernández-Oyelaran party"), (102, "B"), (4095, None)]:
        await create(rig.coap, number, label=label, partySize=12)
    await rig.coap.post("/v1/page", {"number": 4000, "message": "A long message " * 8})
    await wall.open(rig.url)
    await expect(wall.page.locator("#waiting [data-session]")).to_have_count(3)
    await expect(wall.tile(4000)).to_have_attribute("data-alerting", "true")
    widths = await wall.page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"
    button = wall.page.locator('#waiting button[data-action="page"]').first
    await expect(button).to_be_in_viewport()
    await button.click()
    await expect(wall.tile(101)).to_have_attribute("data-alerting", "true")


async def test_tab_reaches_the_page_button_and_enter_pages(rig: Rig, wall: Wall) -> None:
    sid = await create(rig.coap, 21)
    await wall.open(rig.url)
    button = wall.row(sid).locator('button[data-action="page"]')
    await expect(button).to_be_visible()
    for _ in range(200):
        await wall.page.keyboard.press("Tab")
        if await button.evaluate("b => b === document.activeElement"):
            break
    else:
        raise AssertionError("200 presses of Tab never reached the row's page button")
    await wall.page.keyboard.press("Enter")
    await expect(wall.tile(21)).to_have_attribute("data-alerting", "true")


async def test_every_form_control_has_a_label(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    await create(rig.coap, 22)
    await expect(wall.page.locator("#waiting [data-session]")).to_have_count(1)
    unlabelled = await wall.page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && e.labels.length === 0
                    && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
            .map(e => e.outerHTML)"""
    )
    assert unlabelled == []


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_readme_picture_of_the_wall(rig: Rig, wall: Wall) -> None:
    """Draws the wall as the README shows it (a few sessions, an alerting pager) into the
    artifacts; docs/pager-wall.png is a copy of it, checked here to be a 1280x800 PNG the
    README shows."""
    await rig.control("POST", "/clock/freeze")
    await rig.control("POST", "/clock/set", {"datetime": "2026-03-14T19:02:00"})
    for number, label, party, later in [
        (12, "Sarah", 4, 740),
        (17, "Okafor", 2, 300),
        (23, "Lindqvist", 6, 95),
        (31, "Patio", 3, 20),
    ]:
        await create(rig.coap, number, label=label, partySize=party, goal=600)
        await rig.control("POST", "/clock/advance", {"seconds": later})
    reply = await rig.coap.put(
        "/v1/sessions", {"action": "page", "message": "Table ready!\fF30"}, query="number=12"
    )
    assert reply.code == "2.04", reply.json
    await rig.coap.post("/v1/page", {"number": 900, "pageMode": "Vibe3", "message": "Kitchen"})
    await wall.open(rig.url)
    await expect(wall.tile(12)).to_have_attribute("data-alerting", "true")
    await wall.page.wait_for_timeout(300)  # let the alert's animation show
    await wall.page.screenshot(path=ARTIFACTS / "pager-wall.png")
    assert png_size((ARTIFACTS / "pager-wall.png").read_bytes()) == (1280, 800)
    assert png_size(README_PICTURE.read_bytes()) == (1280, 800)
    assert "](docs/pager-wall.png)" in (REPO / "README.md").read_text()
