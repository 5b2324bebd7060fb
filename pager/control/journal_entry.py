"""One recorded CoAP exchange, as the request journal keeps it and every rig tool reads it.

The journal (`GET /journal`), verification (`POST /journal/verify`), the Python API and
`pager-emulator replay` all read this one shape, so its JSON names are the control API's and
a journal written as JSON Lines reads back into the same entries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

MessageType = Literal["CON", "NON"]
Transport = Literal["coap", "lrsn"]
FaultKind = str  # a `pager.control.faults` kind


@dataclass(frozen=True)
class FaultMark:
    """The fault that acted on an exchange."""

    id: int
    kind: FaultKind


@dataclass(frozen=True)
class Entry:
    """One exchange: a request and the answer the emulator gave it (or none).

    `time` is wall time (ISO 8601, UTC, microseconds); `device_time` the transmitter's clock
    (its own format, local, whole seconds), which a rig may have moved. `body` and `answer`
    are the decoded payloads (JSON or CBOR, as JSON values; None for an empty payload); a
    payload that does not decode is kept as base64 in `body_base64` / `answer_base64` with
    the decoded field None. `number` is the pager number the request names (its `number=`
    query, else its body's `number`), for filtering. `block1` / `block2` are the block
    numbers a block-wise request carried (`block2`: or its answer's, for the first block
    of an answer that went block-wise). `code` is None for a request that got no answer
    (a dropped one); `latency_ms` from the request's arrival to its answer leaving, None
    when none left (the answer lost on its way out: its `code` is what was answered).
    `duplicate`: answered from the deduplication cache (a retransmission); `fault`: the
    fault that acted on it; `observe`: the request's Observe value (0 registers, 1 ends).

    `transport`: `lrsn` for a request over LRSN (docs/lrsn.md). It has no CoAP message:
    `type`, `mid` and `token` are None, `method` is `LRSN`, `path` `/lrsn/` and its element
    (`/lrsn/PageRequest`; `/lrsn/` alone for what is not XML), `body` and `answer` the
    messages as text (`body_base64` for one that is not UTF-8), `code` the answer's result
    code (`"0"`, `"6"`; None: no answer).
    """

    id: int
    time: str
    device_time: str
    peer: str
    type: MessageType | None  # None: LRSN
    mid: int | None
    token: str | None  # hex
    method: str  # GET, POST, PUT, DELETE, FETCH, PATCH, iPATCH, or the dotted code
    path: str
    query: tuple[str, ...] = ()
    content_format: int | None = None
    body: Any = None
    body_base64: str | None = None
    observe: int | None = None
    block1: int | None = None
    block2: int | None = None
    number: int | None = None
    code: str | None = None
    answer_content_format: int | None = None
    answer: Any = None
    answer_base64: str | None = None
    latency_ms: float | None = None
    duplicate: bool = False
    fault: FaultMark | None = None
    transport: Transport = "coap"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["query"] = list(self.query)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        """An entry from its JSON (a line of `GET /journal?format=jsonl`); unknown names are
        refused, so that a journal of another version is not misread."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown journal entry fields: {', '.join(unknown)}")
        values = dict(data)
        values["query"] = tuple(values.get("query", ()))
        fault = values.get("fault")
        if fault is not None:
            values["fault"] = FaultMark(int(fault["id"]), str(fault["kind"]))
        return cls(**values)
