"""The curl examples of docs/control-api.md, replayed against a running emulator whose pager
12's session was paged "Table ready" (flashing 30 s) at 2026-01-15T18:00:00, as the page
describes it: a page that no test read would go on showing answers of an older shape."""

import json
import re
import shlex

import aiohttp

from pager.app import Emulator
from pager.clock import Clock
from pager.testing import FROZEN_AT
from tests.conftest import REPO, Client, ManualTime, make_config

DOC = REPO / "docs" / "control-api.md"
Exchange = tuple[str, str, str | None, int | None, object]  # method, path, body, status, answer


def blocks() -> list[list[Exchange]]:
    found = []
    for block in re.findall(r"^```\n(.*?)^```", DOC.read_text(), re.M | re.S):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("$ curl"):
            continue
        exchanges: list[Exchange] = []
        for command, answer in zip(lines[::2], lines[1::2], strict=True):
            args = shlex.split(command[2:])
            method, body = "GET", None
            if "-X" in args:
                method = args[args.index("-X") + 1]
            if "-d" in args:
                body = args[args.index("-d") + 1]
            (url,) = [a for a in args if a.startswith("$C/")]
            if "..." in answer:  # shortened in the page
                continue
            status = re.search(r"\((\d{3})\)\s*$", answer)
            text = answer[: status.start()] if status else answer
            exchanges.append(
                (method, url[2:], body, int(status[1]) if status else None, json.loads(text))
            )
        if exchanges:
            found.append(exchanges)
    return found


BLOCKS = blocks()


def test_the_page_has_examples_to_replay():
    assert len(BLOCKS) >= 10 and sum(map(len, BLOCKS)) >= 30


async def test_every_example_is_what_the_emulator_answers(tmp_path, coap_context):
    """In the page's order, on one transmitter (the faults set in one example are listed in
    the next), its clock put back before each block, as each shows it from there."""
    config = make_config(tmp_path / "pager.db", control=True, control_port=0)
    async with Emulator(config, Clock(system=ManualTime(FROZEN_AT))) as emu:
        coap = Client(coap_context, emu.port)
        assert (await coap.post("/v1/sessions", {"number": 12})).code == "2.01"
        page = {"action": "page", "message": "Table ready\fF30"}
        paged = await coap.put("/v1/sessions", page, query="number=12")
        assert paged.code.startswith("2."), paged.payload
        async with aiohttp.ClientSession(f"http://127.0.0.1:{emu.control_port}") as http:
            for exchanges in BLOCKS:
                await emu.set_speed(1)
                await emu.set_clock(FROZEN_AT)
                await emu.freeze()
                for method, path, body, status, answer in exchanges:
                    async with http.request(method, path, data=body) as response:
                        got = await response.json()
                        assert (got, response.status) == (answer, status or response.status), (
                            method,
                            path,
                            body,
                        )
