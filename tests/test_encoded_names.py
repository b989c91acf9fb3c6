"""Issue 21.3: a file whose name the client percent-encodes is adopted after a lost response.

The client sends ``"`` and control characters percent-encoded (WHATWG form encoding), so the
server records ``a; filename=%22evil.jsonl%22``; the adoption lookup compared the local name and
never matched, and every lost response left another copy on the remote, which retention never
deletes. The lookup now compares the name as it was sent, recorded with the intent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.reliability_checks import all_uploaded, state_db
from tests.support import wait_until

NAMES = (
    "esc\x1b[31mred.jsonl",
    'a; filename="evil.jsonl',
    "tab\tname.jsonl",
    "del\x7f.jsonl",
    "plain.jsonl",
)


def test_lost_responses_never_leave_copies_of_encoded_names(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    api_key: str,
    start_daemon: StartDaemon,
) -> None:
    # No server-side dedupe: every upload that reaches it is a file, as on the real API.
    emulator = make_emulator(dedupe=False, fault_rate=0.5, fault_kinds=("lost-response",), seed=21)
    folder = tmp_path / "ft"
    for i, name in enumerate(NAMES):
        write_chat_file(folder / name, salt=str(i))
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"api": {"max_attempts": "30", "concurrency": "1"}},
    )
    daemon = start_daemon(config)
    db = state_db(tmp_path)
    wait_until(lambda: all_uploaded(db, len(NAMES)), timeout=90, what="every file uploaded")
    assert daemon.stop() == 0
    emulator.set_faults(fault_rate=0.0)
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        copies = Counter(f.filename for f in client.files.iter_all())
    assert sorted(copies.values()) == [1] * len(NAMES), copies
