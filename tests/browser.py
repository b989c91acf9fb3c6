"""Headless Chromium for the status page's tests: Debian's ``chromium``, driven by Playwright.

Playwright never downloads a browser here: it launches the system's Chromium (``SYNCD_CHROMIUM``,
else ``chromium`` on PATH; `make test` installs Debian's package where it is missing). The flags
keep Chromium off the network it would otherwise call home to, and let it run as root in CI.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

__all__ = ["CHROMIUM_ARGS", "chromium_path", "launch"]

CHROMIUM_ARGS = (
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def chromium_path() -> str:
    """The Chromium executable, or a failure saying how to get one (never a skip)."""
    configured = os.environ.get("SYNCD_CHROMIUM")
    found = configured or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        pytest.fail(
            "the status page's browser tests need Chromium: `apt-get install chromium` "
            "(Debian's package; make test installs it) or set SYNCD_CHROMIUM to its executable"
        )
    return found


def launch(playwright: Playwright) -> Browser:
    """Start headless Chromium from this machine's package, never a downloaded one."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), args=list(CHROMIUM_ARGS), headless=True
    )
