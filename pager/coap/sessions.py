"""/v1/sessions and its history and statistics sub-resources (spec §4)."""

import asyncio
import struct
import uuid
import zlib
from datetime import datetime

from aiocoap import Message
from aiocoap.numbers.codes import Code

from pager import wire
from pager.coap import seam
from pager.coap.answers import CODE_2_00, response_format
from pager.coap.base import Api, ApiResource
from pager.coap.gate import Admission
from pager.coap.reading import query
from pager.domain import operations as ops
from pager.domain import rules
from pager.domain.conditions import Conditions
from pager.domain.errors import Invalid, NoActiveSession
from pager.domain.model import State
from pager.domain.operations import Outcome
from pager.domain.timefmt import fmt


class SessionsResource(ApiResource):
    rt = "t7470.sessions"
    admission = Admission(
        queries={"GET": ("number",), "PUT": ("number",), "DELETE": ("number",)},
        conditional={"POST": None, "PUT": None, "DELETE": "number"},
    )

    def __init__(self, api: Api) -> None:
        super().__init__(api)
        # The envelope's identity is part of the answer, so part of the ETag too.
        self._identity_tag = zlib.crc32(repr(api.answers.identity).encode()) & 0xFF
        self._last_list: tuple[tuple[bytes, str], Message] | None = None

    async def render_get(self, request: Message) -> Message:
        number = self.reader.optional_number(request)
        await self.engine.catch_up()
        state = self.engine.state
        if number is not None:
            session = state.active.get(number)
            if session is None:
                raise NoActiveSession(number)
            return self.answers.session(request, session)
        etag = self._etag(request)
        if etag in request.opt.etags:
            return Message(code=Code.VALID, etag=etag)
        return self._session_list(request, etag)

    def _session_list(self, request: Message, etag: bytes) -> Message:
        """The whole list, rendered once per ETag and second.

        The ETag covers everything in the answer but its timestamp, which has whole seconds,
        so the same key gives the same bytes. Rendering 50 sessions takes longer than a whole
        exchange of a small answer, and a client following the list block by block, or many
        clients polling it, would otherwise render it again and again.
        """
        now = self.engine.clock.now()
        key = (etag, fmt(now))
        if self._last_list is None or self._last_list[0] != key:
            response = self.answers.respond(
                request,
                now=now,
                sessions=self.answers.active_sessions(),
                statistics=self.answers.statistics(),
            )
            self._last_list = (key, response)
        cached = self._last_list[1]
        return Message(
            code=cached.code,
            payload=cached.payload,
            content_format=cached.opt.content_format,
            etag=etag,
        )

    def _etag(self, request: Message) -> bytes:
        """Changes with every session change, statistics clear and factory reset (which
        starts the sequence numbers again), never with the time alone."""
        engine = self.engine
        device = engine.state.device
        identity = (self._identity_tag + engine.store.resets) & 0xFF
        return struct.pack(
            ">IHBB",
            device.global_sequence & 0xFFFFFFFF,
            device.statistics_generation & 0xFFFF,
            identity,
            request.opt.accept or 0,
        )

    async def render_post(self, request: Message) -> Message:
        answers, config = self.answers, self.engine.config
        body = self.reader.body(request, wire.SessionBody, required=("number",))
        conditions = _conditions(request)
        return await self.changes.run(
            request,
            lambda state, now: ops.create_or_update(
                state, body.number, body.patch(), now, str(uuid.uuid4()), config, conditions
            ),
            lambda outcome, state, now: answers.session(
                request,
                outcome.acted_on,
                Code.CREATED if outcome.created else CODE_2_00,
                now,
                state,
                statistics=True,
            ),
        )

    async def render_put(self, request: Message) -> Message:
        answers, config = self.answers, self.engine.config
        number = self.reader.number(request)
        body = self.reader.body(request, wire.SessionBody)
        if "number" in body.model_fields_set and body.number != number:
            raise Invalid("number in the body must match the query", "number")
        conditions = _conditions(request)
        return await self.changes.run(
            request,
            lambda state, now: ops.update(state, number, body.patch(), now, config, conditions),
            lambda outcome, state, now: answers.session(
                request, outcome.acted_on, Code.CHANGED, now, state, statistics=True
            ),
        )

    async def render_delete(self, request: Message) -> Message:
        number = self.reader.optional_number(request)
        changes, config = self.changes, self.engine.config
        if number is None:
            return await changes.run(
                request, lambda state, now: ops.remove_all(state, now), _deleted
            )
        conditions = _conditions(request)
        return await changes.run(
            request,
            lambda state, now: ops.remove(state, number, now, config, conditions),
            _deleted,
        )


def _conditions(request: Message) -> Conditions:
    """Checked in the operation, on the state its change is computed on (see
    `pager.domain.conditions`), not here on the committed one."""
    return Conditions(tuple(request.opt.if_match), bool(request.opt.if_none_match))


class HistoryResource(ApiResource):
    """Archived sessions: a whole history is a large answer, fetched block by block.

    One rendering serves every client asking for the same representation (the store's
    version, the query, the format, the second of the timestamp)
    while some Block2 transfer still holds it, so that many clients fetching the same history
    hold one copy, which the byte budget counts once. Renderings are made one at a time: each
    holds the history's sessions while it is made. The encoding goes a piece at a time, the
    event loop serving other requests between pieces.
    """

    rt = "t7470.session_history"
    admission = Admission(queries={"GET": ("limit", "after")})
    SESSIONS_PER_PIECE = 100

    def __init__(self, api: Api) -> None:
        super().__init__(api)
        # payloads some transfer holds (see Block2Transfers.holds), and the latest
        self._renderings: dict[tuple[object, ...], bytes] = {}
        self._rendering = asyncio.Lock()

    async def render_get(self, request: Message) -> Message:
        params = query(request)
        limit = self.reader.query_int(params, "limit", *rules.HISTORY_LIMIT)
        after = self.reader.query_int(params, "after", 0, 2**63 - 1)
        now = await self.engine.catch_up()
        ct = response_format(request)
        block2 = self.api.block2
        async with self._rendering:
            self._renderings = {k: p for k, p in self._renderings.items() if block2.holds(p)}
            store = self.engine.store
            version = await store.history_version()
            key = (version, after, limit, ct, fmt(now))
            payload = self._renderings.get(key)
            if payload is None:
                sequence, archived = await store.history(after, limit)
                pieces = []
                for piece in wire.history_pieces(
                    self.answers.identity, sequence, now, archived, ct, self.SESSIONS_PER_PIECE
                ):
                    pieces.append(piece)
                    await asyncio.sleep(0)
                payload = b"".join(pieces)
                if await store.history_version() == version:  # no commit since: rows of key
                    self._renderings[key] = payload
        return Message(payload=payload, content_format=ct)

    async def render_delete(self, request: Message) -> Message:
        """Deleting history is no change of the sessions, but a change all the same: its
        answer is kept with it for a retransmission after a restart."""
        response = Message(code=Code.DELETED)
        receipt = seam.receipt(request, response)
        store = self.engine.store
        await self.engine.exclusive(
            lambda: store.delete_history(() if receipt is None else (receipt,))
        )
        return response


class StatisticsResource(ApiResource):
    rt = "t7470.statistics"

    async def render_get(self, request: Message) -> Message:
        await self.engine.catch_up()
        return self.answers.respond(request, statistics=self.answers.statistics())

    async def render_delete(self, request: Message) -> Message:
        return await self.changes.run(
            request, lambda state, now: ops.clear_statistics(state, now), _deleted
        )


def _deleted(outcome: Outcome, state: State, now: datetime) -> Message:
    return Message(code=Code.DELETED)
