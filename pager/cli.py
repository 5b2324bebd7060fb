"""The command line: `pager-emulator serve` / `python -m pager serve`, and `replay`."""

import argparse
import asyncio
import gc
import logging
import math
import platform
import signal
import sys
from collections.abc import Callable
from importlib.metadata import version

from pager.app import Emulator, StartupError
from pager.coap.seam import SeamError
from pager.config import ConfigError, load
from pager.fleet import fleet_configs
from pager.replay import DEFAULT_TIMEOUT, ReplayError, run
from pager.store import StoreError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pager-emulator", description="Emulated T7470 pager transmitter over CoAP"
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulator")
    serve.add_argument("--host", help="address to bind (default :: = all addresses)")
    serve.add_argument("--port", type=int, help="UDP port (default 5683; 0 = any free port)")
    serve.add_argument("--db", help="SQLite store path (default pager.db)")
    serve.add_argument("--config", help="TOML configuration file")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    serve.add_argument(
        "--control-port", type=int, help="HTTP control API port (default 7470; 0 = any free port)"
    )
    serve.add_argument("--no-control", action="store_true", help="no HTTP control API")
    serve.add_argument(
        "--lrsn-port", type=int, help="LRSN TCP port (default 3700; 0 = any free port)"
    )
    serve.add_argument("--no-lrsn", action="store_true", help="no LRSN interface")
    serve.add_argument(
        "--fleet", type=int, metavar="N", help="run N independent transmitters on consecutive ports"
    )
    replay = sub.add_parser(
        "replay",
        help="replay a recorded journal against a CoAP server and report every answer that differs",
    )
    replay.add_argument(
        "journal", metavar="FILE.jsonl", help="a journal (GET /journal?format=jsonl)"
    )
    replay.add_argument("--target", required=True, metavar="URI", help="coap://HOST:PORT")
    replay.add_argument(
        "--speed",
        type=_speed,
        metavar="N",
        default=1.0,
        help="N times the recorded pace (default 1); max or 0: each request as soon as the"
        " previous one is answered",
    )
    replay.add_argument("--report", metavar="FILE", help="write the whole result as JSON")
    replay.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each answer (default {DEFAULT_TIMEOUT:g})",
    )
    return p


def _speed(text: str) -> float | None:
    """None for as fast as the target answers (`max`, or 0, which could mean nothing else)."""
    if text == "max":
        return None
    value = _seconds(text, zero=True)
    return None if value == 0 else value


def _seconds(text: str, *, zero: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def _version() -> str:
    """The versions a bug report needs: this package, the pinned aiocoap it patches, Python."""
    return (
        f"pager-emulator {version('pager-emulator')} "
        f"(aiocoap {version('aiocoap')}, Python {platform.python_version()})"
    )


def _loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when asked for, or when installed and `auto`; asyncio's own loop otherwise."""
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise SystemExit(
                "pager-emulator: event_loop = 'uvloop' but uvloop is not installed"
                " (pip install 'pager-emulator[fast]')"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _tune_garbage_collector() -> None:
    """Shorter collection pauses for a long-running server process.

    aiocoap leaves each request's Pipe and its closures in a reference cycle, so only the
    cyclic collector frees them, and the duplicate-detection table keeps the last
    `dedup_max_entries` requests alive for seconds. With Python's default thresholds
    (700, 10, 10) full collections ran several times a second under write load, with long
    pauses. A middle-generation collection costs in proportion to what survived the young
    ones since the last, so collecting the middle generation often, and the old one rarely,
    keeps every pause short; the writes' 99th percentile followed these thresholds (README,
    Benchmarks). What exists after start-up (modules, classes, the loaded state) lives as
    long as the process and is frozen out of every later collection.
    """
    gc.set_threshold(2000, 4, 50)
    gc.collect()
    gc.freeze()


def _banner(emulator: Emulator) -> str:
    host = emulator.config.host
    shown = f"[{host}]" if ":" in host else host
    line = f"pager-emulator listening on udp {shown}:{emulator.port}, store {emulator.db_path}"
    if emulator.control_port is not None:
        line += f", control http://{emulator.config.control_host}:{emulator.control_port}"
    if emulator.lrsn_address is not None:
        lhost, lport = emulator.lrsn_address
        lshown = f"[{lhost}]" if ":" in lhost else lhost
        line += f", lrsn tcp {lshown}:{lport}"
    return line


async def _serve(emulators: list[Emulator]) -> None:
    started: list[Emulator] = []
    for emulator in emulators:
        emulator.fleet = list(emulators)
    try:
        for emulator in emulators:
            started.append(await emulator.start())
            print(_banner(emulator), flush=True)
        _tune_garbage_collector()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        for emulator in started:
            await emulator.stop()
        if started:
            print("pager-emulator stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "replay":
        return _replay(args)
    try:
        config = load(
            args.config,
            host=args.host,
            port=args.port,
            db=args.db,
            log_level=args.log_level,
            control_port=args.control_port,
            control=False if args.no_control else None,
            lrsn_port=args.lrsn_port,
            lrsn=False if args.no_lrsn else None,
        )
        configs = fleet_configs(config, args.fleet)
    except ConfigError as e:
        print(f"pager-emulator: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        with asyncio.Runner(loop_factory=_loop_factory(config.event_loop)) as runner:
            runner.run(_serve([Emulator(c) for c in configs]))
    except (StoreError, StartupError, SeamError) as e:
        print(f"pager-emulator: {e}", file=sys.stderr)
        return 1
    return 0


def _replay(args: argparse.Namespace) -> int:
    try:
        return run(
            args.journal, args.target, speed=args.speed, report=args.report, timeout=args.timeout
        )
    except ReplayError as e:
        print(f"pager-emulator replay: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pager-emulator replay: interrupted", file=sys.stderr)
        return 130
