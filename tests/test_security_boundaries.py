"""Issue 20: the watched root holds under a swap, and nothing answers strangers.

Every test runs real parts: a daemon subprocess over the emulator on loopback, real files,
real sockets.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
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


# -- 2. the status listener answers only its own Host ----------------------------------------------


def test_the_status_listener_without_a_token_answers_only_its_loopback_host(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    """A rebinding page's request (Host: evil.example.com) gets 421, not file names."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "secret-name.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"metrics": {"listen": '"127.0.0.1:0"'}},
    )
    daemon = start_daemon(config)
    port = int(daemon.wait_event("metrics_listening")["listen"].rpartition(":")[2])
    daemon.wait_event("file_uploaded", path="secret-name.jsonl")
    url = f"http://127.0.0.1:{port}/api/status"

    for host in ("evil.example.com", f"evil.example.com:{port}", "127.0.0.1:1", "10.0.0.1:80"):
        refused = httpx.get(url, headers={"Host": host})
        assert refused.status_code == 421, host
        assert "secret-name" not in refused.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"127.0.0.2:{port}"):
        answered = httpx.get(url, headers={"Host": host})
        assert answered.status_code == 200, host
    assert httpx.get(f"http://localhost:{port}/healthz").status_code == 200
    assert daemon.stop() == 0


def test_with_a_token_the_status_listener_answers_any_host_that_carries_it(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    """The token is the guard then (a proxy or a DNS name in front is fine)."""
    folder = tmp_path / "ft"
    (tmp_path / "status-token").write_text("tok-123\n", encoding="utf-8")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"metrics": {"listen": '"127.0.0.1:0"', "token_file": '"status-token"'}},
    )
    daemon = start_daemon(config)
    port = int(daemon.wait_event("metrics_listening")["listen"].rpartition(":")[2])
    url = f"http://127.0.0.1:{port}/api/status"
    headers = {"Host": "status.example.com", "Authorization": "Bearer tok-123"}
    assert httpx.get(url, headers=headers).status_code == 200
    assert httpx.get(url, headers={"Host": "status.example.com"}).status_code == 401
    assert daemon.stop() == 0
