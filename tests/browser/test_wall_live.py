"""The pager wall follows the transmitter live, and what it sends goes through the device API
like any client's request (issue 15)."""

import asyncio
import re
import sys
import time
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Rig, Wall, create, until
from tests.coap.test_notify import Watch
from tests.conftest import REPO, Client

TOKEN = "browser-test-token-0123456789"


async def test_a_session_created_over_coap_appears_within_a_second(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    started = time.monotonic()
    sid = await create(rig.coap, 12, label="Ana", partySize=3, goal=600)
    row = wall.row(sid)
    await expect(row).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.0
    await expect(wall.field(row, "number")).to_have_text("12")
    await expect(wall.field(row, "label")).to_have_text("Ana")
    await expect(wall.field(row, "party")).to_have_text("3")
    await expect(wall.field(row, "goal")).to_contain_text("10")  # 600 s, however written
    await expect(row).to_have_attribute("data-late", "false")
    await expect(wall.tile(12)).to_have_attribute("data-alerting", "false")


async def test_paging_from_the_page_alerts_the_tile_and_notifies_a_coap_observer(
    rig: Rig, wall: Wall
) -> None:
    sid = await create(rig.coap, 7, label="Ben")
    watch = await Watch(rig.emu.port, "action=get_sessions").start()
    try:
        await wall.open(rig.url)
        row = wall.row(sid)
        await row.locator('select[name="mode"]').select_option("Glow5Min")
        await row.locator('input[name="message"]').fill("Table ready")
        await row.locator('button[data-action="page"]').click()
        tile = wall.tile(7)
        await expect(tile).to_have_attribute("data-alerting", "true")
        await expect(tile).to_have_attribute("data-mode", "Glow5Min")
        await expect(wall.field(tile, "message")).to_have_text("Table ready")

        def paged(w: Watch) -> bool:
            return any(
                s["number"] == 7 and s["state"] == "paged"
                for note in w.of("sessions")
                for s in note["sessions"]
            )

        await watch.until(paged, timeout=5)
    finally:
        await watch.stop()
    [transmission] = (await rig.control("GET", "/transmissions"))["transmissions"]
    assert (transmission["number"], transmission["pageMode"]) == (7, "Glow5Min")
    await expect(
        wall.page.locator('#transmissions [data-transmission][data-pager="7"]')
    ).to_have_count(1)
    await expect(wall.page.locator('#statistics [data-stat="guestsServed"]')).to_have_text("1")


async def test_a_standalone_page_over_coap_shows_its_override_codes(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    reply = await rig.coap.post("/v1/page", {"number": 30, "message": "Hi\fF30Vv5"})
    assert reply.code == "2.04", reply.json
    tile = wall.tile(30)
    await expect(tile).to_have_attribute("data-alerting", "true")
    await expect(tile).to_have_attribute("data-mode", "Flash30Sec")
    await expect(wall.field(tile, "message")).to_have_text("Hi")
    codes = wall.field(tile, "codes")
    for code in ("F30", "V", "v5"):
        await expect(codes).to_contain_text(code)
    assert (await rig.coap.post("/v1/page", {"number": 31})).code == "2.04"
    feed = wall.page.locator("#transmissions [data-transmission]")
    await expect(feed).to_have_count(2)
    await expect(feed.first).to_have_attribute("data-pager", "31")  # newest first


@pytest.mark.parametrize("rig_overrides", [{"staff_pagers": [40]}])
async def test_a_staff_pager_has_a_tile_of_its_own_kind(rig: Rig, wall: Wall) -> None:
    await create(rig.coap, 40)
    await create(rig.coap, 41)
    await wall.open(rig.url)
    await expect(wall.tile(40)).to_have_attribute("data-staff", "true")
    await expect(wall.tile(41)).to_have_attribute("data-staff", "false")


@pytest.mark.console_allows(r"net::ERR_", r"status of 50[23]")
async def test_the_page_reconnects_after_the_emulator_restarts(
    rig: Rig, wall: Wall, tmp_path: Path
) -> None:
    await create(rig.coap, 11)
    await wall.open(rig.url)
    numbers = wall.page.locator('#waiting [data-session] [data-field="number"]')
    await expect(numbers).to_have_text(["11"])
    await rig.stop()
    connection = wall.page.locator("#connection")
    await expect(connection).to_have_attribute("data-state", "disconnected")
    await expect(connection).to_contain_text(re.compile("disconnected", re.I))
    await rig.start(db=str(tmp_path / "after-the-restart.db"))
    await wall.connected(timeout=5000)  # backoff at most 2 s
    await expect(connection).to_contain_text(re.compile(r"\bconnected", re.I))
    await expect(numbers).to_have_count(0)  # the fresh store's state, not what it had shown
    await create(rig.coap, 22)
    await expect(numbers).to_have_text(["22"])


@pytest.mark.parametrize("rig_overrides", [{"control_token": TOKEN}])
@pytest.mark.console_allows(r"status of 401")
async def test_with_a_control_token_the_page_asks_once_then_works(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url, connected=False)
    form = wall.page.locator("#token-form")
    await expect(form).to_be_visible()
    await form.locator('input[name="token"]').fill(TOKEN)
    await form.locator('input[name="token"]').press("Enter")
    await wall.connected()
    await expect(form).to_be_hidden()
    sid = await create(rig.coap, 5)
    await expect(wall.row(sid)).to_be_visible()
    await wall.page.locator('#clock [data-action="freeze"]').click()  # a data call with the token
    await expect(wall.page.locator("#clock")).to_have_attribute("data-frozen", "true")
    assert (await rig.control("GET", "/clock"))["frozen"] is True
    await wall.page.reload()
    await wall.connected()
    await expect(form).to_be_hidden()  # kept for the tab: not asked again


async def _start_fleet(db: Path) -> tuple[asyncio.subprocess.Process, list[tuple[int, int]]]:
    """`pager-emulator serve --fleet 2` as users run it: its (CoAP port, control port)s."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pager", "serve", "--fleet", "2", "--host", "127.0.0.1",
        "--port", "0", "--control-port", "0", "--db", str(db),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert process.stdout
    ports = []
    for _ in range(2):
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        found = re.search(r":(\d+), store .*, control http://[^:]+:(\d+)", line)
        assert found, line
        ports.append((int(found[1]), int(found[2])))
    return process, ports


async def test_a_fleet_has_a_switcher_between_its_transmitters(
    rig: Rig, wall: Wall, tmp_path: Path
) -> None:
    await wall.open(rig.url)
    await expect(wall.page.locator("#fleet a[data-transmitter]")).to_have_count(0)
    process, [(_, control_1), (coap_2, control_2)] = await _start_fleet(tmp_path / "fleet.db")
    try:
        await wall.open(f"http://127.0.0.1:{control_1}/")
        links = wall.page.locator("#fleet a[data-transmitter]")
        await expect(links).to_have_count(2)
        await links.and_(wall.page.locator('[data-transmitter="2"]')).click()
        await until(lambda: f":{control_2}/" in wall.page.url)
        await wall.connected()
        sid = await create(Client(rig.coap.context, coap_2), 9)
        await expect(wall.row(sid)).to_be_visible()
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)


async def test_the_journal_tail_follows_requests_and_filters_them(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    await create(rig.coap, 50)
    assert (await rig.coap.get("/v1/sessions")).code == "2.05"
    rows = wall.page.locator("#journal [data-entry]:visible")
    await expect(rows).to_have_count(2)
    method = wall.page.locator('#journal-filter input[name="method"]')
    await method.fill("POST")
    await method.press("Enter")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("/v1/sessions")
    await method.fill("")
    await method.press("Enter")
    await expect(rows).to_have_count(2)


@pytest.mark.parametrize("rig_overrides", [{"journal": False}])
async def test_without_the_journal_the_page_has_no_journal(rig: Rig, wall: Wall) -> None:
    await wall.open(rig.url)
    await create(rig.coap, 51)
    await expect(wall.row(1)).to_be_visible()
    await expect(wall.page.locator("#journal")).to_have_count(0)
