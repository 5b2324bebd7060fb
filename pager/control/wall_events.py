"""The data of each pager-wall event (`GET /events`), in the shapes the control API's other
answers have, so that the page reads one shape whether it came from the stream or a call.

Every event is `event: <name>` and `data: <one JSON object on one line>` (server-sent events);
`encode` writes it. What each event holds is in docs/control-api.md, "The pager wall".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pager import wire
from pager.control.http import (
    FaultsOut,
    PagersOut,
    clock_out,
    fault_out,
    pager_out,
)
from pager.control.journal_entry import Entry
from pager.control.rig import PagerState
from pager.domain.model import Archived, Change
from pager.domain.pagemodes import Transmission

if TYPE_CHECKING:
    from pager.control.faults import Fault
    from pager.control.journal import Journal
    from pager.control.rig import RigControls

HELLO_TAIL = 100  # transmissions and journal entries the snapshot carries


def encode(name: str, data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {name}\ndata: {text}\n\n".encode()


def changes(change: Change, now: datetime) -> Iterator[dict[str, Any]]:
    """A committed change as `change` events, in the order the hub notifies them: a
    statistics clear, each session changed (by sequence), the settings. Every one carries
    the statistics after the change."""
    statistics = wire.statistics_out(change.device.counters)
    if change.statistics_cleared:
        yield {"kind": "statistics", "statistics": statistics}
    for event in change.session_events:
        session = wire.session_out(event)  # a dict of its own, made for this event
        if isinstance(event, Archived):
            session["clearType"] = event.clear_type
        yield {"kind": "sessions", "session": session, "statistics": statistics}
    if change.settings_changed:
        settings = wire.settings_out(change.device.settings, now)
        yield {"kind": "settings", "settings": settings, "statistics": statistics}


def transmission(tx: Transmission, pager: PagerState) -> dict[str, Any]:
    data: dict[str, Any] = {**wire.page_out(tx)}
    data["pager"] = pager_out(pager).model_dump(mode="json")
    return data


def clock(status: dict[str, Any]) -> dict[str, Any]:
    return clock_out(status).model_dump(mode="json")


def faults(current: list[Fault], unreachable: bool) -> dict[str, Any]:
    out = FaultsOut(faults=[fault_out(f) for f in current], unreachable=unreachable)
    return out.model_dump(mode="json")


def journal_entry(entry: Entry) -> dict[str, Any]:
    return entry.to_json()


async def hello(
    rig: RigControls, device: dict[str, Any], journal: Journal | None
) -> dict[str, Any]:
    """The snapshot every stream starts with: all the page shows (`journal`: None when it
    is off). Every part is read after the last wait, at one moment: a journal tail read
    before it, with a factory reset in the wait, showed the journal before the reset beside
    the sessions after it."""
    engine = rig._rig.engine
    now = await engine.catch_up()
    state = engine.state
    after = max(0, state.device.next_transmission_id - 1 - HELLO_TAIL)
    recent = await rig.transmissions(after_id=after)  # ids run on without a gap
    state = engine.state  # committed meanwhile, if anything: the newer, the better
    tail = None if journal is None else list(journal.tail(HELLO_TAIL))
    return {
        "device": device,
        "clock": clock(rig.clock_status()),
        "settings": wire.settings_out(state.device.settings, now),
        "statistics": wire.statistics_out(state.device.counters),
        "sessions": wire.active_sessions(state),
        "pagers": PagersOut(pagers=[pager_out(p) for p in rig.all_pagers()]).model_dump(
            mode="json"
        ),
        "transmissions": [wire.page_out(t) for t in recent],
        "faults": faults(rig.list_faults(), rig.unreachable),
        "journal": {
            "enabled": tail is not None,
            "entries": [journal_entry(e) for e in tail or []],
        },
    }
