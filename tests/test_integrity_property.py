"""Issue 21: a stateful property test over real processes.

Hypothesis drives one real ``syncd run`` at a time against the emulator (no server-side dedupe,
so every upload that reaches it is a file, as on the real API) through reloads (the config
rewritten, a folder dropped and re-added), rescans (every second), SIGKILLs, lost answers and a
second daemon on the same store. After every step:

* no announced id (a ``file_uploaded``/``file_adopted`` line) is missing from the remote while
  its content is still the file's current content;
* nothing is sent twice: every upload the emulator received is of a distinct (name, content),
  and the test never writes a content twice;
* a second daemon is refused (exit 75) and changes nothing.

Kept small (a few examples of a few steps, derandomized) so it runs in well under a minute.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from syncd.emulator import EmulatorOptions, EmulatorServer
from tests.configs import FolderSetup, chat_line, write_config
from tests.conftest import TEST_API_KEY
from tests.daemon_process import DaemonProcess
from tests.reliability_checks import run_syncd

EXIT_BUSY = 75
FILES = (("stay", "s0.jsonl"), ("flaky", "f0.jsonl"), ("flaky", "f1.jsonl"))


class DaemonLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="syncd-property-"))
        self.emulator = EmulatorServer(
            self.root / "emulator", EmulatorOptions(api_key=TEST_API_KEY, dedupe=False)
        )
        self.emulator.start()
        self.folders = {name: self.root / name for name in ("stay", "flaky")}
        self.with_flaky = True
        self.config = self._write_config()
        self.daemon: DaemonProcess | None = None
        self.finished: list[DaemonProcess] = []
        self.version = 0
        #: (folder, name, sha256) of every content the test ever wrote.
        self.written: set[tuple[str, str, str]] = set()

    # -- helpers -------------------------------------------------------------------------------

    def _write_config(self) -> Path:
        folders = [FolderSetup(self.folders["stay"])]
        if self.with_flaky:
            folders.append(FolderSetup(self.folders["flaky"]))
        return write_config(
            self.root,
            server_url=self.emulator.url,
            folders=folders,
            sections={
                "watch": {"settle": '"100ms"', "rescan_interval": '"1s"'},
                "api": {"max_attempts": "20", "concurrency": "2"},
            },
        )

    def _current(self) -> dict[str, str]:
        """name -> sha256 of what is on disk now."""
        current = {}
        for folder, name in FILES:
            path = self.folders[folder] / name
            if path.exists():
                current[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        return current

    def _remote(self) -> list[tuple[str, str, str]]:
        """(id, filename, sha256) of every live file on the emulator, read from its own store."""
        db = self.root / "emulator" / "emulator.sqlite3"
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as connection:
            return connection.execute("SELECT id, filename, sha256 FROM files").fetchall()

    def _announced(self) -> list[tuple[str, str, str]]:
        """(file_id, path, sha256) of every upload or adoption a daemon announced."""
        out = []
        for daemon in [*self.finished, *([self.daemon] if self.daemon else [])]:
            for event in list(daemon.events):
                if event.get("event") in ("file_uploaded", "file_adopted"):
                    out.append((str(event["file_id"]), str(event["path"]), str(event["sha256"])))
        return out

    # -- rules ---------------------------------------------------------------------------------

    @initialize()
    def running_with_files(self) -> None:
        """Every example starts with a daemon at work on every file."""
        for which in range(len(FILES)):
            self.write(which, 2)
        self.start()

    @rule(which=st.sampled_from(range(len(FILES))), lines=st.integers(1, 3))
    def write(self, which: int, lines: int) -> None:
        folder, name = FILES[which]
        self.version += 1
        body = "".join(chat_line(f"q{self.version}.{i}", "a") + "\n" for i in range(lines))
        path = self.folders[folder] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole and renamed into place: the property is about syncd, not torn writes.
        staging = self.root / f".{name}.tmp"
        staging.write_text(body, encoding="utf-8")
        staging.replace(path)
        self.written.add((folder, name, hashlib.sha256(body.encode()).hexdigest()))

    @precondition(lambda self: self.daemon is None)
    @rule()
    def start(self) -> None:
        self.daemon = DaemonProcess(self.config, api_key=TEST_API_KEY)
        self.daemon.wait_event("daemon_started", timeout=30)

    @precondition(lambda self: self.daemon is not None)
    @rule()
    def kill(self) -> None:
        assert self.daemon is not None
        self.daemon.kill()
        self.finished.append(self.daemon)
        self.daemon = None

    @precondition(lambda self: self.daemon is not None)
    @rule(flaky=st.booleans())
    def reload(self, flaky: bool) -> None:
        assert self.daemon is not None
        self.with_flaky = flaky
        self._write_config()
        reloads = len(self.daemon.named("config_reloaded"))
        self.daemon.signal(signal.SIGHUP)
        self.daemon.wait_event("config_reloaded", timeout=20)
        assert len(self.daemon.named("config_reloaded")) > reloads

    @rule(lost=st.booleans())
    def lost_answers(self, lost: bool) -> None:
        self.emulator.set_faults(fault_rate=0.3 if lost else 0.0, fault_kinds=("lost-response",))

    @precondition(lambda self: self.daemon is not None)
    @rule()
    def second_daemon(self) -> None:
        assert self.daemon is not None
        uploads = self.emulator.stats()["uploads"]
        assert isinstance(uploads, int)
        second = run_syncd(self.config, TEST_API_KEY, "run", timeout=60)
        assert second.returncode == EXIT_BUSY, second.stderr
        assert f"pid {self.daemon.proc.pid}" in second.stderr
        assert self.daemon.proc.poll() is None

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def no_current_announced_id_is_deleted(self) -> None:
        current = self._current()
        live = {file_id for file_id, _name, _sha in self._remote()}
        for file_id, path, sha in self._announced():
            if current.get(Path(path).name) == sha:
                assert file_id in live, (
                    f"{file_id} ({path}) was announced and is gone while its content is current"
                )

    @invariant()
    def nothing_is_sent_twice(self) -> None:
        uploads = self.emulator.stats()["uploads"]
        assert isinstance(uploads, int)
        assert uploads <= len(self.written), f"{uploads} uploads of {len(self.written)} contents"
        seen = [(name, sha) for _id, name, sha in self._remote()]
        assert len(seen) == len(set(seen)), f"a content is on the remote twice: {sorted(seen)}"

    def teardown(self) -> None:
        try:
            if self.daemon is not None:
                self.daemon.kill()
            for daemon in self.finished:
                daemon.kill()
        finally:
            self.emulator.stop()
            shutil.rmtree(self.root, ignore_errors=True)


DaemonLife.TestCase.settings = settings(
    max_examples=3, stateful_step_count=6, deadline=None, print_blob=True
)
test_daemon_life = pytest.mark.slow(DaemonLife.TestCase)
