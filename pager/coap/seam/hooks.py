"""Everything the emulator changes in aiocoap, and the checks that aiocoap still is what is
changed.

aiocoap documents none of these attributes; a release may rename or retype any of them. A
hook whose target is gone would otherwise fail quietly (fault injection, the UTF-8 guard
and the bounds on memory would just stop working) or deep inside a request. So every target
is checked before anything is changed, and one `SeamError` names each broken hook and the
aiocoap version at startup instead.
"""

import inspect
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiocoap
import aiocoap.blockwise
import aiocoap.meta
import aiocoap.pipe
from aiocoap import resource
from aiocoap.numbers import constants
from aiocoap.transports.udp6 import MessageInterfaceUDP6, UDP6EndpointAddress
from aiocoap.util.asyncio.timeoutdict import TimeoutDict

from pager.coap.seam import cycles, datagrams, dedup


@dataclass(frozen=True)
class Hook:
    name: str
    target: str  # in aiocoap
    changes: str
    reason: str
    upstream: str  # the aiocoap issue, or "none filed"


HOOKS: list[Hook] = [
    Hook(
        "exclusive-bind",
        "transports.udp6.MessageInterfaceUDP6._create_transport_endpoint (overridden)",
        "the server socket is bound again without SO_REUSEPORT before anything reads from it; "
        "on uvloop it asks for no ICMP errors (IP_RECVERR off)",
        "with SO_REUSEPORT a second emulator binds the same port and the kernel splits the "
        "datagrams between the two; libuv stops polling a socket that reports an ICMP error, "
        "leaving the server deaf",
        "none filed",
    ),
    Hook(
        "udp-only-context",
        "Context._append_tokenmanaged_messagemanaged_transport (called)",
        "the context is built with the exclusive UDP transport as its only transport",
        "create_server_context takes no transport class; a failed bind then leaves nothing to "
        "shut down",
        "none filed",
    ),
    Hook(
        "render-task-name",
        "Context._render_to_pipe, pipe.run_driving_pipe, pipe.error_to_message "
        "(render_to_pipe overridden)",
        "the task rendering a request is named 'CoAP request'",
        "aiocoap formats the name from repr(request) for every request, parsing the peer's "
        "address, though no log line shows it",
        "none filed",
    ),
    Hook(
        "udp-stack",
        "Context.request_interfaces[].token_interface.message_interface.transport (read)",
        "nothing: the way to the message manager, the UDP interface and the bound port",
        "aiocoap has no public way to the transport or the port it bound (port 0)",
        "none filed",
    ),
    Hook(
        "dedup-table",
        "messagemanager.MessageManager._recent_messages (replaced)",
        "duplicates are remembered 49 s and at most dedup_max_entries, as encoded datagrams, "
        "restored from the store's receipts at startup",
        "aiocoap remembers every request and answer for 247 s: gigabytes and long "
        "garbage-collector pauses at full speed; and forgets them all on a restart",
        "aiocoap #183",
    ),
    Hook(
        "dedup-timers",
        "MessageManager.dispatch_message (wrapped), Message.transport_tuning",
        "incoming requests carry an EXCHANGE_LIFETIME of 0, so aiocoap's expiry timer for "
        "each fires at once (the table expires itself)",
        "a timer per request living 247 s is garbage the collector walks again and again",
        "aiocoap #183",
    ),
    Hook(
        "dedup-restore",
        "transports.udp6.UDP6EndpointAddress (equality and hash by sockaddr, read by send)",
        "a peer known only from a receipt stands in for aiocoap's address of it",
        "an answer committed before a restart is found by the retransmission that reaches the "
        "restarted emulator, and sent to its peer",
        "none filed",
    ),
    Hook(
        "backlog",
        "MessageManager._backlogs (replaced)",
        "the per-peer queues wake whoever waits for a peer's queue to empty",
        "notifications are handed to aiocoap one at a time per peer; aiocoap has no public "
        "view of that queue nor an acknowledgement hook",
        "aiocoap #281",
    ),
    Hook(
        "message-ids",
        "MessageManager._next_message_id (replaced), .send_message, ._send_initially and "
        ".shutdown (wrapped)",
        "message ids are numbered per peer and not given to a peer again within "
        "EXCHANGE_LIFETIME; a peer sent every id within it waits for one",
        "aiocoap numbers all peers' messages from one 16-bit counter: above about 265 "
        "messages a second in all a peer is sent an id again within 247 s, and a client "
        "that deduplicates drops the new notification as a duplicate",
        "none filed",
    ),
    Hook(
        "send-errors",
        "MessageInterfaceUDP6.transport.sendmsg (replaced), ._remote_being_sent_to, ._ctx",
        "a send failing with another peer's pending ICMP error is tried again; a send that "
        "fails twice is reported to its own peer at the loop's next turn",
        "one vanished observer's 'port unreachable' would otherwise end a healthy peer's "
        "exchanges, and fail inside aiocoap with 'Task exception was never retrieved'",
        "none filed",
    ),
    Hook(
        "datagram-in",
        "MessageInterfaceUDP6.datagram_msg_received (replaced), ._ctx.dispatch_message, "
        "transport.max_size, UDP6EndpointAddress(sockaddr, interface, pktinfo=)",
        "every datagram is read whole and checked before aiocoap decodes it: a message-format "
        "violation gets a Reset if Confirmable and is dropped; an option of a length out of "
        "its range is taken out (a critical one is then answered 4.02); a text option that "
        "is not UTF-8 drops the datagram with one log line; the datagram filter (fault "
        "injection) may drop, duplicate, hold back or reorder a request",
        "aiocoap answers malformed requests as if they were valid (a payload marker with no "
        "payload, a token length of 9 to 15), drops others without the Reset RFC 7252 §4.2 "
        "asks for, cuts datagrams off at 4,096 bytes, and lets the UnicodeDecodeError out "
        "with a traceback per datagram; a drop above the message layer would still be "
        "acknowledged",
        "aiocoap #176",
    ),
    Hook(
        "peer-address-once",
        "transports.udp6.UDP6EndpointAddress.is_multicast_locally and __hash__ (overridden "
        "in a subclass), .pktinfo",
        "whether a request came to a multicast address is worked out once per local address, "
        "and a peer's hash once",
        "aiocoap parses the local address of a request again for every answer it sends, and "
        "hashes the peer's address again for each of its tables",
        "none filed",
    ),
    Hook(
        "encode-once",
        "Message.encode (shadowed on an answer as it is filed), "
        "MessageManager._send_initially (files, then sends)",
        "an answer is encoded once: for its receipt, the deduplication table and the wire",
        "aiocoap encodes a piggybacked answer again to send it right after filing it; the "
        "receipt needs the same datagram earlier",
        "none filed",
    ),
    Hook(
        "datagram-out",
        "MessageInterfaceUDP6.send (wrapped)",
        "the datagram filter (fault injection) may hold back, drop, duplicate or reorder an "
        "outgoing message",
        "a delay, loss or power cycle must act on datagrams, retransmissions and cached answers "
        "included",
        "none filed",
    ),
    Hook(
        "exchange-record",
        "Message.request (read on each outgoing message), MessageManager._recent_messages "
        "(read by datagram-in)",
        "the request journal is told of each request as it arrives, whether aiocoap takes it "
        "for a duplicate (and the cached answer it re-sends), and of its first answer as it "
        "leaves, read by its encode (for a piggybacked one, the datagram dedup-table kept)",
        "aiocoap answers duplicates, and faults drop or hold datagrams, below anything its "
        "public API shows; the journal must see those too, at no cost a benchmark notices",
        "none filed",
    ),
    Hook(
        "block1-spool",
        "interfaces.Resource._block1._assemblies, a util.asyncio.timeoutdict.TimeoutDict "
        "(replaced)",
        "at most max_block_transfers block-wise uploads per resource, the oldest forgotten",
        "aiocoap keeps every upload's blocks so far, per client, without limit",
        "none filed",
    ),
    Hook(
        "block2-cache",
        "interfaces.Resource._block2.extract_or_insert (replaced), "
        "blockwise._extract_block_key, Message._extract_block",
        "the answers of pending Block2 transfers share one byte budget, max_block_transfers "
        "per resource, one copy per answer; a notification too large for one block goes out "
        "as its first block with an ETag, the whole held as such a transfer",
        "aiocoap keeps every started transfer's whole answer per client for about 93 s, and "
        "sends observe payloads whole, without Block2",
        "none filed",
    ),
    Hook(
        "block2-observed-token",
        "tokenmanager.TokenManager.process_request (wrapped), .incoming_requests, "
        ".token_interface.send_message, .context.render_to_pipe",
        "a GET of a later block on a running observation's token is answered on its own, "
        "and the observation goes on",
        "aiocoap ends the running request on a token that a new request reuses; node-coap "
        "asks for the rest of a block-wise notification on the observation's token",
        "none filed",
    ),
    Hook(
        "request-cycle",
        "tokenmanager.TokenManager.process_request (wrapped; its on_event closure's stop "
        "cell emptied), .incoming_requests, pipe.Pipe.on_interest_end",
        "a request's objects are freed by reference counting once its exchange has ended",
        "aiocoap ties every request, its pipe and options into a reference cycle that only "
        "the garbage collector frees: under load its full passes stalled every request",
        "none filed",
    ),
]

BY_NAME = {hook.name: hook for hook in HOOKS}


class SeamError(Exception):
    """The installed aiocoap is not what a hook was written for."""

    def __init__(self, broken: dict[str, str]) -> None:
        self.version = aiocoap.meta.version
        self.hooks = list(broken)
        found = "; ".join(
            f"hook {name} ({BY_NAME[name].target}): {why}" for name, why in broken.items()
        )
        super().__init__(
            f"aiocoap {self.version} is not the aiocoap the emulator's hooks were written for "
            f"(pinned in pyproject.toml): {found}"
        )


class _Broken(Exception):
    pass


def _need(ok: object, what: str) -> None:
    if not ok:
        raise _Broken(what)


def _parameters(function: Any) -> list[str]:
    return [p for p in inspect.signature(function).parameters if p != "self"]


def _exclusive_bind() -> None:
    found = inspect.getattr_static(MessageInterfaceUDP6, "_create_transport_endpoint", None)
    _need(isinstance(found, classmethod), "not a classmethod of MessageInterfaceUDP6")
    params = _parameters(MessageInterfaceUDP6._create_transport_endpoint)
    _need(params[:5] == ["sock", "ctx", "log", "loop", "multicast"], f"parameters {params}")


def _udp_only_context() -> None:
    append = getattr(aiocoap.Context, "_append_tokenmanaged_messagemanaged_transport", None)
    _need(inspect.iscoroutinefunction(append), "not a coroutine function of Context")
    params = _parameters(append)
    _need(len(params) == 1, f"parameters {params}")


def _render_task_name() -> None:
    render = getattr(aiocoap.Context, "_render_to_pipe", None)
    _need(inspect.iscoroutinefunction(render), "Context._render_to_pipe is no coroutine function")
    run = getattr(aiocoap.pipe, "run_driving_pipe", None)
    _need(callable(run), "pipe.run_driving_pipe is gone")
    _need("name" in _parameters(run), "pipe.run_driving_pipe takes no name")
    _need(callable(getattr(aiocoap.pipe, "error_to_message", None)), "no pipe.error_to_message")


CLASS_CHECKS: dict[str, Callable[[], None]] = {
    "exclusive-bind": _exclusive_bind,
    "udp-only-context": _udp_only_context,
    "render-task-name": _render_task_name,
}


def udp_stacks(context: aiocoap.Context) -> list[tuple[Any, MessageInterfaceUDP6]]:
    """Each (message manager, UDP interface) of `context`."""
    try:
        return _udp_stacks(context)
    except _Broken as e:
        raise SeamError({"udp-stack": str(e)}) from None


def _udp_stacks(context: aiocoap.Context) -> list[tuple[Any, MessageInterfaceUDP6]]:
    interfaces = getattr(context, "request_interfaces", None)
    _need(isinstance(interfaces, list), "Context.request_interfaces is not a list")
    stacks = []
    for interface in interfaces or ():
        manager = getattr(interface, "token_interface", None)
        udp = getattr(manager, "message_interface", None)
        if isinstance(udp, MessageInterfaceUDP6):
            stacks.append((manager, udp))
    _need(stacks, "no MessageInterfaceUDP6 at request_interfaces[].token_interface")
    for _, udp in stacks:
        transport = getattr(udp, "transport", None)
        get_extra_info = getattr(transport, "get_extra_info", None)
        _need(callable(get_extra_info), "the UDP interface has no transport")
        _need(
            isinstance(get_extra_info("socket"), socket.socket),  # type: ignore[misc]
            "its transport has no socket",
        )
    return stacks


def _dedup_table(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for manager in managers:
        _need(isinstance(getattr(manager, "_recent_messages", None), dict), "not a dict")


def _dedup_timers(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for manager in managers:
        dispatch = getattr(manager, "dispatch_message", None)
        _need(callable(dispatch), "MessageManager.dispatch_message is not callable")
        _need(len(_parameters(dispatch)) == 1, "dispatch_message takes not one message")
    lifetime = getattr(constants.TransportTuning(), "EXCHANGE_LIFETIME", None)
    _need(isinstance(lifetime, (int, float)), "TransportTuning has no EXCHANGE_LIFETIME")
    _need(hasattr(aiocoap.Message(), "transport_tuning"), "Message has no transport_tuning")


def _dedup_restore(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    sockaddr = ("::ffff:127.0.0.1", 5683, 0, 0)
    address = UDP6EndpointAddress(sockaddr, udps[0])
    peer = dedup._Peer(*sockaddr[:3])
    _need(getattr(address, "sockaddr", None) == sockaddr, "no sockaddr on UDP6EndpointAddress")
    _need(hasattr(address, "pktinfo"), "no pktinfo on UDP6EndpointAddress")
    _need(address == peer and hash(address) == hash(peer), "not equal to a restored peer")


def _backlog(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for manager in managers:
        _need(isinstance(getattr(manager, "_backlogs", None), dict), "not a dict")


def _message_ids(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for manager in managers:
        next_id = getattr(manager, "_next_message_id", None)
        _need(callable(next_id) and not _parameters(next_id), "no _next_message_id()")
        _need(isinstance(getattr(manager, "message_id", None), int), "no shared message_id")
        send = getattr(manager, "send_message", None)
        _need(callable(send) and len(_parameters(send)) == 2, "no send_message(message, monitor)")
        first = getattr(manager, "_send_initially", None)
        _need(callable(first), "no _send_initially")
        _need(_parameters(first) == ["message", "messageerror_monitor"], "_send_initially")
        shutdown = getattr(manager, "shutdown", None)
        _need(inspect.iscoroutinefunction(shutdown) and not _parameters(shutdown), "shutdown()")


def _send_errors(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for udp in udps:
        _need(callable(getattr(udp.transport, "sendmsg", None)), "the transport has no sendmsg")
        being_sent_to = getattr(udp, "_remote_being_sent_to", None)
        _need(callable(getattr(being_sent_to, "get", None)), "_remote_being_sent_to has no get")
        ctx = getattr(udp, "_ctx", None)
        _need(callable(getattr(ctx, "dispatch_error", None)), "_ctx has no dispatch_error")


def _datagram_in(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for udp in udps:
        received = getattr(udp, "datagram_msg_received", None)
        _need(callable(received), "not callable")
        params = _parameters(received)
        _need(len(params) == 4, f"parameters {params}")
        _need(any(getattr(udp, "_ctx", None) is m for m in managers), "_ctx is no manager")
        max_size = getattr(udp.transport, "max_size", None)
        _need(isinstance(max_size, int), "the transport has no max_size")
    _need("pktinfo" in _parameters(UDP6EndpointAddress), "UDP6EndpointAddress takes no pktinfo")
    _need(callable(getattr(aiocoap.Message, "decode", None)), "no Message.decode")


def _peer_address_once(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    found = inspect.getattr_static(UDP6EndpointAddress, "is_multicast_locally", None)
    _need(isinstance(found, property), "not a property of UDP6EndpointAddress")
    _need(callable(getattr(UDP6EndpointAddress, "as_response_address", None)), "no answer address")
    address = datagrams.Peer(("::ffff:127.0.0.1", 5683, 0, 0), udps[0], pktinfo=_PKTINFO)
    _need(address.pktinfo == _PKTINFO, "no pktinfo on UDP6EndpointAddress")
    _need(address.is_multicast_locally is False, "a unicast local address reads as multicast")
    plain = UDP6EndpointAddress(("::ffff:127.0.0.1", 5683, 0, 0), udps[0])
    _need(hash(address) == hash(plain) and address == plain, "hashed unlike aiocoap's address")


_PKTINFO = socket.inet_pton(socket.AF_INET6, "::ffff:127.0.0.1") + bytes(4)


def _encode_once(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    message = aiocoap.Message()
    _need(not hasattr(type(message), "__slots__"), "Message has slots: encode cannot be shadowed")
    for manager in managers:
        first = getattr(type(manager), "_send_initially", None)
        _need(callable(first), "no MessageManager._send_initially")
        code = inspect.getsource(first) if callable(first) else ""
        filed = code.find("self._store_response_for_duplicates(message)")
        sent = code.find("self._send_via_transport(message)")
        _need(0 <= filed < sent, "_send_initially does not file a message, then send it")
        _need(code[filed:sent].count("\n") <= 2, "_send_initially changes it in between")


def _datagram_out(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for udp in udps:
        send = getattr(udp, "send", None)
        _need(callable(send), "not callable")
        _need(len(_parameters(send)) == 1, "send takes not one message")


def _exchange_record(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    # the table itself is dedup-table's (checked there, and ours once installed)
    _need(hasattr(aiocoap.Message(), "request"), "Message has no request")


def _block1_spool(managers: list[Any], udps: list[Any], res: list[resource.Resource]) -> None:
    for r in res:
        assemblies = getattr(getattr(r, "_block1", None), "_assemblies", None)
        _need(isinstance(assemblies, TimeoutDict), f"not a TimeoutDict on {type(r).__name__}")
        _need(isinstance(getattr(assemblies, "timeout", None), (int, float)), "no timeout")
        _need(isinstance(getattr(assemblies, "_items", None), dict), "its _items is no dict")


def _block2_cache(managers: list[Any], udps: list[Any], res: list[resource.Resource]) -> None:
    for r in res:
        extract = getattr(getattr(r, "_block2", None), "extract_or_insert", None)
        _need(inspect.iscoroutinefunction(extract), f"no extract_or_insert on {type(r).__name__}")
        _need(len(_parameters(extract)) == 2, "extract_or_insert takes not (req, builder)")
    _need(callable(getattr(aiocoap.blockwise, "_extract_block_key", None)), "no block key")
    _need(callable(getattr(aiocoap.Message, "_extract_block", None)), "no Message._extract_block")


def _block2_observed_token(
    managers: list[Any], udps: list[Any], _: list[resource.Resource]
) -> None:
    for manager in managers:
        tokens = getattr(manager, "token_manager", None)
        process = getattr(tokens, "process_request", None)
        _need(callable(process), "no TokenManager.process_request")
        _need(len(_parameters(process)) == 1, "process_request takes not one request")
        _need(isinstance(getattr(tokens, "incoming_requests", None), dict), "no incoming dict")
        _need(getattr(tokens, "token_interface", None) is manager, "not the message manager's")
        send = getattr(manager, "send_message", None)
        _need(callable(send) and len(_parameters(send)) == 2, "send_message takes not two")
        render = getattr(getattr(tokens, "context", None), "render_to_pipe", None)
        _need(callable(render), "its context has no render_to_pipe")
        _need(hasattr(tokens, "log"), "no log on the TokenManager")


def _request_cycle(managers: list[Any], udps: list[Any], _: list[resource.Resource]) -> None:
    for manager in managers:
        tokens = getattr(manager, "token_manager", None)
        process = getattr(type(tokens), "process_request", None)
        _need(cycles.on_event_of(process) is not None, "no on_event closure holding stop")
        _need(isinstance(getattr(tokens, "incoming_requests", None), dict), "no incoming dict")
    _need(callable(getattr(aiocoap.pipe.Pipe, "on_interest_end", None)), "no on_interest_end")


CONTEXT_CHECKS: dict[str, Callable[[list[Any], list[Any], list[resource.Resource]], None]] = {
    "dedup-table": _dedup_table,
    "dedup-timers": _dedup_timers,
    "dedup-restore": _dedup_restore,
    "backlog": _backlog,
    "message-ids": _message_ids,
    "send-errors": _send_errors,
    "datagram-in": _datagram_in,
    "peer-address-once": _peer_address_once,
    "encode-once": _encode_once,
    "datagram-out": _datagram_out,
    "exchange-record": _exchange_record,
    "block1-spool": _block1_spool,
    "block2-cache": _block2_cache,
    "block2-observed-token": _block2_observed_token,
    "request-cycle": _request_cycle,
}


def _run(checks: Iterable[tuple[str, Callable[[], None]]]) -> dict[str, str]:
    broken = {}
    for name, check in checks:
        try:
            check()
        except _Broken as e:
            broken[name] = str(e)
    return broken


def verify_classes() -> None:
    """Check the hooks that act before a context exists."""
    broken = _run(CLASS_CHECKS.items())
    if broken:
        raise SeamError(broken)


def verify(
    context: aiocoap.Context, resources: Iterable[resource.Resource] = ()
) -> list[tuple[Any, MessageInterfaceUDP6]]:
    """Check every hook against `context` and `resources`; return the context's UDP stacks."""
    broken = _run(CLASS_CHECKS.items())
    try:
        stacks = _udp_stacks(context)
    except _Broken as e:
        broken["udp-stack"] = str(e)  # the hooks below cannot even be looked for
        raise SeamError(broken) from None
    managers = [manager for manager, _ in stacks]
    udps = [udp for _, udp in stacks]
    res = list(resources)
    broken.update(
        _run(
            (name, lambda check=check: check(managers, udps, res))  # type: ignore[misc]
            for name, check in CONTEXT_CHECKS.items()
        )
    )
    if broken:
        raise SeamError(broken)
    return stacks
