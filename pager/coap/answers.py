"""What the transmitter's answers look like: the envelope on a state, its sections, the error
body of every refusal and the format a request is answered in."""

from datetime import datetime
from typing import Any

from aiocoap import Message
from aiocoap.numbers.codes import Code

from pager import wire
from pager.domain.conditions import session_etag
from pager.domain.model import Archived, Session, State
from pager.engine import Engine

CODE_2_00 = Code(0x40)  # not registered in CoAP; the vendor's clients test for '2.00'


def response_format(request: Message) -> int:
    return wire.CBOR if request.opt.accept == wire.CBOR else wire.JSON


class Answers:
    """Answers show the committed state unless given the state a change left; each reads the
    clock once (unless given `now`), so its timestamp and sections agree."""

    def __init__(self, engine: Engine, identity: wire.Identity) -> None:
        self.engine = engine
        self.identity = identity

    def envelope(
        self, now: datetime | None = None, state: State | None = None, **sections: Any
    ) -> wire.Envelope:
        return wire.envelope_on(
            self.identity,
            state or self.engine.state,
            self.engine.clock.now() if now is None else now,
            **sections,
        )

    def respond(
        self,
        request: Message,
        code: Code | None = None,
        now: datetime | None = None,
        state: State | None = None,
        **sections: Any,
    ) -> Message:
        ct = response_format(request)
        return Message(
            code=code,
            payload=wire.encode(self.envelope(now, state, **sections), ct),
            content_format=ct,
        )

    def session(
        self,
        request: Message,
        item: Session | Archived,
        code: Code | None = None,
        now: datetime | None = None,
        state: State | None = None,
        statistics: bool = False,
    ) -> Message:
        """An answer showing one session, with its ETag: what a client names in If-Match to
        change the session only as it last saw it (RFC 7252 §5.10.8.1)."""
        sections: dict[str, Any] = {"sessions": [wire.session_out(item)]}
        if statistics:
            sections["statistics"] = self.statistics(state)
        response = self.respond(request, code, now, state, **sections)
        response.opt.etag = session_etag(item)
        return response

    def error(
        self,
        request: Message,
        code: Code,
        message: str,
        field: str | None,
        state: State | None = None,
    ) -> Message:
        """The error body (spec §2.2), in CBOR when asked for, else JSON: also when the Accept
        itself is what is refused."""
        ct = response_format(request) if request.opt.accept in wire.FORMATS else wire.JSON
        body = self.envelope(None, state, error=wire.error_out(code.dotted, message, field))
        return Message(code=code, payload=wire.encode(body, ct), content_format=ct)

    def active_sessions(self) -> list[wire.SessionOut]:
        return wire.active_sessions(self.engine.state)

    def statistics(self, state: State | None = None) -> wire.StatisticsOut:
        return wire.statistics_out((state or self.engine.state).device.counters)

    def settings(self, state: State | None = None) -> wire.SettingsOut:
        return wire.settings_out(
            (state or self.engine.state).device.settings, self.engine.clock.now()
        )
