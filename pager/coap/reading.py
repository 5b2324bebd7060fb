"""Reading a request: its body and query values, under the compact-JSON and unknown-name
rules that `strict` turns from warnings into refusals (spec §2)."""

import logging
from typing import TypeVar, cast

from aiocoap import Message

from pager import wire
from pager.domain import digits, rules
from pager.domain.errors import Invalid

log = logging.getLogger("pager.coap")

Body = TypeVar("Body", bound=wire._Body)


def query(request: Message) -> dict[str, str]:
    items: dict[str, str] = {}
    for q in request.opt.uri_query:
        name, sep, value = q.partition("=")
        if not sep or not name:
            raise Invalid(f"malformed query {q!r}: expected name=value", name or None)
        if name in items:
            raise Invalid(f"query {name} given twice", name)
        items[name] = value
    return items


class Reader:
    def __init__(self, limits: rules.Limits, strict: bool) -> None:
        self.limits = limits
        self.strict = strict

    def body(self, request: Message, model: type[Body], required: tuple[str, ...] = ()) -> Body:
        ct = request.opt.content_format
        if ct == wire.JSON or ct is None:
            if not wire.is_compact(request.payload):
                self.lenient("body is not compact JSON (tabs or newlines)", None)
        body = cast(Body, wire.decode(model, request.payload, ct, self.limits, required))
        for name in body.model_extra or {}:
            self.lenient(f"unknown field {name}", name)
        return body

    def query_int(self, query: dict[str, str], name: str, lo: int, hi: int) -> int | None:
        text = query.get(name)
        if text is None:
            return None
        value = digits.integer(text, lo, hi)
        if value is None:
            raise Invalid(rules.requirement(name, self.limits), name)
        return value

    def number(self, request: Message) -> int:
        number = self.optional_number(request)
        if number is None:
            raise Invalid("number is required in the query (number=<integer>)", "number")
        return number

    def optional_number(self, request: Message) -> int | None:
        limits = self.limits
        return self.query_int(query(request), "number", limits.number_min, limits.number_max)

    def lenient(self, what: str, field: str | None) -> None:
        """Something the vendor's clients should not send but the device accepts."""
        if self.strict:
            raise Invalid(what, field)
        log.warning("accepted a request with %s", what)
