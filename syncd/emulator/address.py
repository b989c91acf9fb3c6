"""Where a running embedded emulator listens, published in its data dir for other commands.

The daemon's embedded emulator takes a random loopback port and an exclusive lock on its data
dir. While it holds the lock, ``url`` in that dir names its address, so ``syncd verify``,
``cleanup --dry-run`` and ``files`` reach the same emulator instead of refusing. The file is
read only while the lock is held: one left by a killed process is never trusted.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["ADDRESS_FILE_NAME", "publish_url", "published_url", "withdraw_url"]

ADDRESS_FILE_NAME = "url"


def publish_url(data_dir: Path, url: str) -> None:
    """Write ``url`` to the data dir (owner-only, replaced atomically)."""
    partial = data_dir / f".{ADDRESS_FILE_NAME}.{os.getpid()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(url + "\n")
    partial.replace(data_dir / ADDRESS_FILE_NAME)


def published_url(data_dir: Path) -> str | None:
    """The published address, or None when there is none (or it is not a loopback URL)."""
    try:
        text = (data_dir / ADDRESS_FILE_NAME).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text.startswith(("http://127.0.0.1:", "http://[::1]:")) else None


def withdraw_url(data_dir: Path, url: str) -> None:
    """Remove the published address if it is still ``url`` (ours)."""
    if published_url(data_dir) == url:
        with contextlib.suppress(OSError):
            (data_dir / ADDRESS_FILE_NAME).unlink()
