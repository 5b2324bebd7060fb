"""Debian's Chromium under Playwright, as the browser tests and scripts/bench_wall.py launch it.

Playwright drives the browser that `scripts/bootstrap.sh --test` installs with apt
(`executable_path`), never one of its own: there is no network to download one, so
`playwright install` is never run. The flags keep a headless Chromium from reaching for the
network by itself (component updates, sync, QUIC probes) and from waiting on first-run UI;
Playwright gives every launch a fresh temporary profile (`--user-data-dir`) of its own.
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def in_ci() -> bool:
    """Under CI a browser that cannot run fails the tests that need it; elsewhere they skip."""
    return os.environ.get("CI") in ("true", "1")


def missing() -> str | None:
    """Why the browser cannot be launched here, or None when it can."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing: scripts/bootstrap.sh --test installs Debian's chromium"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is missing: pip install -e '.[test]'"
    return None


async def launch(playwright: "Playwright") -> "Browser":
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=FLAGS, headless=True
    )
