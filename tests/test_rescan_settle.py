"""Issue 21.4: full rescans hand recently changed files to the watcher's settle rule.

A file appended to every 100 ms for several seconds, with rescans every second: before, each
rescan that met it uploaded (and announced) a growing, valid prefix, later deleted as superseded;
now only the finished file is uploaded, once. The start-up scan obeys the same rule.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, chat_line, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.reliability_checks import stat
from tests.support import wait_until


def append_slowly(path: Path, lines: int, every: float, started: threading.Event) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for i in range(lines):
            handle.write(chat_line(f"q{i}", f"a{i}") + "\n")
            handle.flush()
            started.set()
            time.sleep(every)


def test_a_rescan_never_uploads_a_file_still_being_written(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    folder = tmp_path / "ft"
    write_chat_file(folder / "done.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        # Settle longer than the writer's pauses; the watcher is not needed to see it (polling
        # would be, on a share): the rescans alone meet the file mid-write.
        sections={"watch": {"settle": '"1s"', "rescan_interval": '"1s"'}},
    )
    growing = folder / "growing.jsonl"
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="done.jsonl")
    started = threading.Event()
    writer = threading.Thread(target=append_slowly, args=(growing, 80, 0.1, started))
    writer.start()
    try:
        rescans = len(daemon.named("rescan_finished"))
        wait_until(
            lambda: len(daemon.named("rescan_finished")) >= rescans + 3, timeout=30, what="rescans"
        )
    finally:
        writer.join()
    final = growing.read_bytes()
    print(
        "EVENTS",
        [
            (e["event"], e.get("bytes"), e.get("error"))
            for e in daemon.events
            if e.get("path") == "growing.jsonl"
        ],
    )
    uploaded = daemon.wait_event("file_uploaded", path="growing.jsonl", timeout=30)
    assert uploaded["bytes"] == len(final)
    wait_until(lambda: stat(emulator, "uploads") >= 2, timeout=10)
    assert [e["bytes"] for e in daemon.named("file_uploaded") if e["path"] == "growing.jsonl"] == [
        len(final)
    ], "a half-written version was uploaded"
    assert stat(emulator, "uploads") == 2
    assert daemon.stop() == 0
