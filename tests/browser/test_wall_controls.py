"""The pager wall's rig controls: the clock, faults, power cycle, factory reset, and what the
page shows when the control API or the device refuses what was typed (issue 15)."""

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Rig, Wall, create, until
from tests.control.conftest import no_answer

T0 = "2026-01-15T18:00:00"


def seconds(waited: str) -> int:
    """`m:ss` or `h:mm:ss` as seconds."""
    assert re.fullmatch(r"\d+:\d\d(:\d\d)?", waited), waited
    total = 0
    for part in waited.split(":"):
        total = total * 60 + int(part)
    return total


async def submit(wall: Wall, form: str, values: dict[str, str]) -> None:
    """Fill `form`'s controls by name and submit it by Enter in its last text field, as a
    person at the keyboard does."""
    last = None
    for name, value in values.items():
        control = wall.page.locator(f'{form} [name="{name}"]')
        if await control.evaluate("e => e.tagName") == "SELECT":
            await control.select_option(value)
        else:
            await control.fill(value)
            last = control
    assert last is not None, "a form with a field to press Enter in"
    await last.press("Enter")


async def frozen_at_t0(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    await wall.page.locator('#clock [data-action="freeze"]').click()
    await expect(wall.page.locator("#clock")).to_have_attribute("data-frozen", "true")
    await submit(wall, "#clock-set", {"when": T0})
    await expect(wall.page.locator('#clock [data-field="now"]')).to_contain_text("18:00")
    assert await rig.control("GET", "/clock") == {"now": T0, "frozen": True, "speed": 1.0}


async def test_advancing_the_clock_from_the_page_changes_the_time_waited(
    rig: Rig, wall: Wall
) -> None:
    await frozen_at_t0(rig, wall)
    sid = await create(rig.coap, 3, goal=300)
    waited = wall.field(wall.row(sid), "waited")
    await expect(waited).to_have_text("0:00")
    await submit(wall, "#clock-advance", {"seconds": "125"})
    await expect(waited).to_have_text("2:05")
    await expect(wall.row(sid)).to_have_attribute("data-late", "false")
    await submit(wall, "#clock-advance", {"seconds": "3600"})
    await expect(waited).to_have_text("1:02:05")
    await expect(wall.row(sid)).to_have_attribute("data-late", "true")


async def test_a_frozen_clock_stands_still_and_a_fast_one_runs_fast(rig: Rig, wall: Wall) -> None:
    await frozen_at_t0(rig, wall)
    sid = await create(rig.coap, 4, goal=3600)
    waited = wall.field(wall.row(sid), "waited")
    await expect(waited).to_have_text("0:00")
    await wall.page.wait_for_timeout(1500)
    await expect(waited).to_have_text("0:00")  # frozen: no tick

    await submit(wall, "#clock-speed", {"factor": "60"})
    await expect(wall.page.locator("#clock")).to_have_attribute("data-speed", re.compile(r"^60"))
    await wall.page.locator('#clock [data-action="unfreeze"]').click()
    await expect(wall.page.locator("#clock")).to_have_attribute("data-frozen", "false")
    first = seconds(await waited.inner_text())
    await wall.page.wait_for_timeout(2000)
    shown = seconds(await waited.inner_text())
    clock = await rig.control("GET", "/clock")
    truth = (int(clock["now"][11:13]) - 18) * 3600 + int(clock["now"][14:16]) * 60
    truth += int(clock["now"][17:19])
    # a minute a second: two real seconds are about two minutes waited
    assert 60 <= shown - first <= 240, (first, shown)
    # and what the page shows is the emulator's time, within a second and a half of it
    assert abs(truth - shown) <= 90, (truth, shown)


async def test_a_fault_added_from_the_page_drops_the_next_coap_request(
    rig: Rig, wall: Wall
) -> None:
    await wall.open(rig.url)
    await submit(wall, "#fault-add", {"kind": "drop", "path": "/v1/sessions", "count": "1"})
    rows = wall.page.locator("#faults [data-fault]")
    await expect(rows).to_have_count(1)
    [fault] = (await rig.control("GET", "/faults"))["faults"]
    assert (fault["kind"], fault["path"], fault["remaining"]) == ("drop", "/v1/sessions", 1)
    assert await no_answer(rig.emu.port, "/v1/sessions", timeout=1.0)
    assert (await rig.coap.get("/v1/sessions")).code == "2.05"  # the fault is used up
    await expect(rows).to_have_count(0)


async def test_a_fault_is_removed_from_its_row(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    await submit(wall, "#fault-add", {"kind": "drop", "path": "/v1/settings", "count": "5"})
    row = wall.page.locator("#faults [data-fault]")
    await expect(row).to_have_count(1)
    await row.locator('button[data-action="remove-fault"]').click()
    await expect(row).to_have_count(0)
    assert (await rig.control("GET", "/faults"))["faults"] == []


async def test_a_power_cycle_from_the_page_makes_the_transmitter_unreachable(
    rig: Rig, wall: Wall
) -> None:
    await wall.open(rig.url)
    await submit(wall, "#power-cycle", {"seconds": "2"})

    async def unreachable() -> bool:
        return bool((await rig.control("GET", "/faults"))["unreachable"])

    await until(unreachable, timeout=2)
    assert await no_answer(rig.emu.port, "/v1/settings", timeout=0.5)
    await expect(wall.error).to_have_text("")


# What each form sends when given bad input, and the control API's / device's words for it.
BAD_INPUT = {
    "clock set": ("#clock-set", {"when": "2101-01-01T00:00:00"}, "2000-01-01T00:00:00"),
    "clock advance": ("#clock-advance", {"seconds": "400000000"}, "315360000"),
    "clock speed": ("#clock-speed", {"factor": "0"}, "greater than 0"),
    "fault": ("#fault-add", {"kind": "drop", "count": "0"}, "count"),
    "power cycle": ("#power-cycle", {"seconds": "4000"}, "3600"),
}


async def rig_state(rig: Rig) -> dict[str, Any]:
    sessions = (await rig.coap.get("/v1/sessions")).json
    return {
        "clock": await rig.control("GET", "/clock"),
        "faults": await rig.control("GET", "/faults"),
        "transmissions": await rig.control("GET", "/transmissions"),
        "sessions": sessions["sessions"],
        "sequence": sessions["globalSessionSequence"],
    }


@pytest.mark.parametrize("case", BAD_INPUT)
@pytest.mark.console_allows(r"status of 400")
async def test_bad_input_shows_the_control_apis_error_and_changes_nothing(
    rig: Rig, wall: Wall, case: str
) -> None:
    form, values, words = BAD_INPUT[case]
    await frozen_at_t0(rig, wall)
    await create(rig.coap, 8)
    before = await rig_state(rig)
    await submit(wall, form, values)
    await expect(wall.error).to_contain_text(words)
    await expect(wall.error).to_be_visible()
    await expect(wall.page.locator("#wall")).to_be_visible()  # the page is still there
    assert await rig_state(rig) == before


@pytest.mark.console_allows(r"status of 400")
async def test_the_error_is_cleared_by_the_next_success(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    await submit(wall, "#clock-speed", {"factor": "20000"})
    await expect(wall.error).to_contain_text("10000")
    await submit(wall, "#clock-speed", {"factor": "2"})
    await expect(wall.page.locator("#clock")).to_have_attribute("data-speed", re.compile(r"^2"))
    await expect(wall.error).to_have_text("")


async def test_a_page_message_too_long_shows_the_devices_error(rig: Rig, wall: Wall) -> None:
    await frozen_at_t0(rig, wall)
    sid = await create(rig.coap, 6)
    before = await rig_state(rig)
    row = wall.row(sid)
    await row.locator('input[name="message"]').fill("x" * 241)
    await row.locator('button[data-action="page"]').click()
    await expect(wall.error).to_contain_text("4.00")
    await expect(wall.error).to_contain_text("at most 240 characters")
    await expect(wall.tile(6)).to_have_attribute("data-alerting", "false")
    assert await rig_state(rig) == before


async def test_factory_reset_needs_the_confirmation(rig: Rig, wall: Wall) -> None:
    sid = await create(rig.coap, 15)
    await wall.open(rig.url)
    dialog = wall.page.locator("dialog#confirm-reset")
    await wall.page.locator('button[data-action="reset"]').click()
    await expect(dialog).to_be_visible()
    await dialog.locator('[data-action="cancel"]').click()
    await expect(dialog).to_be_hidden()
    await expect(wall.row(sid)).to_be_visible()
    assert len((await rig.coap.get("/v1/sessions")).json["sessions"]) == 1

    await wall.page.locator('button[data-action="reset"]').click()
    await dialog.locator('[data-action="confirm"]').click()
    await expect(dialog).to_be_hidden()
    await expect(wall.page.locator("#waiting [data-session]")).to_have_count(0)
    assert (await rig.coap.get("/v1/sessions")).json["sessions"] == []
    await wall.connected()
