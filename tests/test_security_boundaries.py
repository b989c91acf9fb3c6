"""Issue 20: the watched root holds under a swap, and nothing answers strangers.

Every test runs real parts: a daemon subprocess over the emulator on loopback, real files,
real sockets.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.daemon_process import db_states

pytestmark = pytest.mark.e2e


# -- 5. names that are not UTF-8 ------------------------------------------------------------------


def test_a_name_that_is_not_utf8_appearing_while_running_is_quarantined_cleanly(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    """Like one present at start: quarantined with the rename hint, no traceback in the log."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "good.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="good.jsonl")

    write_chat_file(folder / os.fsdecode(b"caf\xe9.jsonl"), salt="latin-1")
    skipped = daemon.wait_event("file_skipped", path="caf\\xe9.jsonl")
    assert skipped["error"] == "file name is not valid UTF-8; rename it (not synced)"
    assert db_states(tmp_path) == {"good.jsonl": "uploaded", "caf\\xe9.jsonl": "quarantined"}
    assert daemon.named("error") == []
    assert "Traceback" not in "".join(daemon.raw)
    assert "UnicodeEncodeError" not in "".join(daemon.raw)
    assert daemon.stop() == 0
