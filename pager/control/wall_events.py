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
    from pager.control.rig import RigControls

HELLO_TAIL = 100  # transmissions and journal entries the snapshot carries


def encode(name: str, data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), default=str)
    return f"event: {name}\ndata: {text}\n\n".encode()


def changes(change: Change, now: datetime) -> Iterator[dict[str, Any]]:
    """A committed change as `change` events, in the order the hub notifies them: a
    statistics clear, each session changed (by sequence), the settings. Every one carries
    the statistics after the change."""
    statistics = wire.statistics_out(change.device.counters).model_dump(mode="json")
    if change.statistics_cleared:
        yield {"kind": "statistics", "statistics": statistics}
    for event in change.session_events:
        session = wire.session_out(event).model_dump(mode="json", exclude_unset=True)
        if isinstance(event, Archived):
            session["clearType"] = event.clear_type
        yield {"kind": "sessions", "session": session, "statistics": statistics}
    if change.settings_changed:
        settings = wire.settings_out(change.device.settings, now).model_dump(mode="json")
        yield {"kind": "settings", "settings": settings, "statistics": statistics}


def transmission(tx: Transmission, pager: PagerState) -> dict[str, Any]:
    data = wire.page_out(tx).model_dump(mode="json")
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
    rig: RigControls, device: dict[str, Any], journal: list[Entry] | None
) -> dict[str, Any]:
    """The snapshot every stream starts with: all the page shows. `journal`: its last
    entries, None when the journal is off."""
    engine = rig._rig.engine
    now = await engine.catch_up()
    state = engine.state
    after = max(0, state.device.next_transmission_id - 1 - HELLO_TAIL)
    recent = await rig.transmissions(after_id=after)  # ids run on without a gap
    state = engine.state  # committed meanwhile, if anything: the newer, the better
    return {
        "device": device,
        "clock": clock(rig.clock_status()),
        "settings": wire.settings_out(state.device.settings, now).model_dump(mode="json"),
        "statistics": wire.statistics_out(state.device.counters).model_dump(mode="json"),
        "sessions": [
            s.model_dump(mode="json", exclude_unset=True) for s in wire.active_sessions(state)
        ],
        "pagers": PagersOut(pagers=[pager_out(p) for p in rig.all_pagers()]).model_dump(
            mode="json"
        ),
        "transmissions": [wire.page_out(t).model_dump(mode="json") for t in recent],
        "faults": faults(rig.list_faults(), rig.unreachable),
        "journal": {
            "enabled": journal is not None,
            "entries": [journal_entry(e) for e in journal or []],
        },
    }
