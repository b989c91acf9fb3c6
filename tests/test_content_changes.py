"""Issue 14.1: a change of content is seen even when (size, mtime, inode) stay the same.

A file rewritten in place with its old length and its mtime set back (``rsync --inplace -t``,
``touch -d``, a backup restore) kept the old fingerprint, so syncd never read it again. Now the
ctime is in the fingerprint, a watcher event saying the file was written always leads to a
rehash, files hashed within a timestamp tick of their last change are hashed again on the next
look (Git's racy-timestamp rule), and ``syncd verify --deep`` hashes everything.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from syncd import plan
from syncd.api import Mistral
from syncd.config.models import WatchConfig
from syncd.domain import FileStat, LocalState
from syncd.emulator import EmulatorServer
from syncd.errors import NotFoundError
from syncd.paths import IgnoreRules
from syncd.pipeline import FolderSpec, Pipeline
from syncd.purposes import DEFAULT_EXCLUDE
from syncd.store import Store, open_store, repo
from syncd.watcher import Watcher
from tests.configs import FolderSetup, chat_line, write_config
from tests.reliability_checks import alive, query, run_syncd, running_daemon, state_db
from tests.support import wait_until

SECOND = 1_000_000_000


def rewrite_in_place(path: Path, text: str) -> None:
    """Overwrite ``path``'s bytes (same length, same inode) and put its mtime back, as
    ``rsync --inplace -t`` or ``touch -d`` after an edit do."""
    before = path.stat()
    data = text.encode()
    assert len(data) == before.st_size, "the test needs a same-length rewrite"
    with path.open("r+b") as f:
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


def same_length_variants(question: str) -> tuple[str, str]:
    """Two valid fine-tune files of the same length with other bytes."""
    first = chat_line(question, "answer A") + "\n"
    second = chat_line(question, "answer B") + "\n"
    assert len(first) == len(second)
    return first, second


def remote_bodies(emulator: EmulatorServer, api_key: str) -> list[bytes]:
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        bodies = []
        for info in client.files.iter_all():
            try:
                with client.files.download(info.id) as response:
                    bodies.append(response.read())
            except NotFoundError:
                continue  # superseded between the listing and the download
        return bodies


# -- the daemon ---------------------------------------------------------------------------------


def test_an_in_place_rewrite_with_the_mtime_put_back_reaches_the_remote(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """The daemon uploads the new bytes (and supersedes the old file) within seconds."""
    folder = tmp_path / "ft"
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    old, new = same_length_variants("q")
    path = folder / "train.jsonl"
    path.write_text(old, encoding="utf-8")
    db = state_db(tmp_path)
    with running_daemon(config, api_key) as daemon:
        daemon.wait_event("file_uploaded", path="train.jsonl")
        assert remote_bodies(emulator, api_key) == [old.encode()]

        rewrite_in_place(path, new)

        def new_bytes_on_remote() -> bool:
            return alive(daemon) and remote_bodies(emulator, api_key) == [new.encode()]

        wait_until(new_bytes_on_remote, timeout=20, what="the rewritten bytes on the remote")
        assert daemon.stop() == 0
    sha = hashlib.sha256(new.encode()).hexdigest()
    assert query(db, "select state, sha256 from local_files") == [("uploaded", sha)]


# -- the fingerprint and the racy rule, in process ------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> FolderSpec:
    root = tmp_path / "data"
    root.mkdir()
    rules = IgnoreRules(["*.jsonl"], DEFAULT_EXCLUDE)
    return FolderSpec(name="data", root=root, purpose="fine-tune", rules=rules)


def test_the_ctime_catches_a_rewrite_a_rescan_would_have_trusted(
    store: Store, folder: FolderSpec
) -> None:
    """Same size, mtime and inode after the rewrite: the ctime moved, so the scan reads it."""
    pipeline = Pipeline(store, timestamp_granularity_ns=0)
    old, new = same_length_variants("ctime")
    path = folder.root / "a.jsonl"
    path.write_text(old, encoding="utf-8")
    assert pipeline.scan(folder).queued == 1
    assert pipeline.scan(folder).hashed == 0, "unchanged: trusted"

    rewrite_in_place(path, new)
    summary = pipeline.scan(folder)
    assert (summary.hashed, summary.queued) == (1, 1)
    with store.session() as s:
        record = repo.get_local(s, folder.key, "a.jsonl")
    assert record is not None and record.sha256 == hashlib.sha256(new.encode()).hexdigest()
    assert record.ctime_ns == path.stat().st_ctime_ns


def test_a_file_hashed_within_a_tick_of_its_last_change_is_hashed_again(
    store: Store, folder: FolderSpec
) -> None:
    """Racy: hashed right after it was written, so its stamps may not move with a second write
    in the same tick. The next look reads it again; once a tick has passed, it is trusted."""
    granularity = 2 * SECOND  # a coarse (FAT, NFS) clock, as configured
    pipeline = Pipeline(store, timestamp_granularity_ns=granularity)
    path = folder.root / "a.jsonl"
    path.write_text(chat_line("racy", "x") + "\n", encoding="utf-8")
    assert pipeline.scan(folder).hashed == 1
    with store.session() as s:
        record = repo.get_local(s, folder.key, "a.jsonl")
    assert record is not None and record.racy

    assert pipeline.scan(folder).hashed == 1, "racy: read again although nothing moved"
    last_change = max(path.stat().st_mtime_ns, path.stat().st_ctime_ns)
    wait_until(
        lambda: time.time_ns() - last_change > granularity,
        timeout=5,
        interval=0.05,
        what="one tick after the last change",
    )
    assert pipeline.scan(folder).hashed == 1, "still racy when last hashed: read once more"
    with store.session() as s:
        record = repo.get_local(s, folder.key, "a.jsonl")
    assert record is not None and not record.racy
    assert pipeline.scan(folder).hashed == 0, "hashed a tick after its last change: trusted"


def test_the_racy_rule_can_be_turned_off(store: Store, folder: FolderSpec) -> None:
    pipeline = Pipeline(store, timestamp_granularity_ns=0)
    (folder.root / "a.jsonl").write_text(chat_line("off", "x") + "\n", encoding="utf-8")
    pipeline.scan(folder)
    assert pipeline.scan(folder).hashed == 0


def test_a_written_file_is_hashed_again_whatever_its_stat_says(
    store: Store, folder: FolderSpec
) -> None:
    """The watcher said "written": the look at settle time reads the file even though its
    fingerprint is unchanged (a same-length rewrite within one tick of a coarse clock)."""
    hashed: list[int] = []
    pipeline = Pipeline(store, timestamp_granularity_ns=0, on_hashed=hashed.append)
    (folder.root / "a.jsonl").write_text(chat_line("w", "x") + "\n", encoding="utf-8")
    pipeline.scan(folder)
    assert len(hashed) == 1
    pipeline.refresh(folder, "a.jsonl")
    assert len(hashed) == 1, "an attribute event alone: the fingerprint is trusted"
    pipeline.refresh(folder, "a.jsonl", rehash=True)
    assert len(hashed) == 2, "a write event: read again"


def test_the_watcher_tells_written_files_apart(tmp_path: Path) -> None:
    """Real inotify: writing to a file reports it as written; a chmod does not."""
    root = tmp_path / "w"
    root.mkdir()
    path = root / "a.jsonl"
    path.write_text("x\n", encoding="utf-8")
    lock = threading.Lock()
    changed: list[str] = []
    written: list[str] = []

    def on_change(_folder: str, p: str) -> None:
        with lock:
            changed.append(p)

    def on_written(_folder: str, p: str) -> None:
        with lock:
            written.append(p)

    watcher = Watcher(on_change, lambda _f, _m: None, on_written=on_written)
    try:
        assert watcher.add_folder("w", root)
        path.chmod(0o600)
        wait_until(lambda: str(path) in changed, timeout=10, what="the chmod event")
        assert not written, "a chmod writes no bytes"
        with path.open("r+b") as f:
            f.write(b"y")
        wait_until(lambda: str(path) in written, timeout=10, what="the write event")
    finally:
        watcher.stop()


# -- rows from before the ctime was kept -------------------------------------------------------


def forget_ctimes(db: Path) -> None:
    """What migration 0006 leaves in rows recorded before it: no ctime."""
    with closing(sqlite3.connect(db)) as connection:
        connection.execute("update local_files set ctime_ns = null")
        connection.commit()


def test_a_rescan_fills_in_missing_ctimes_without_reading_the_files(
    tmp_path: Path, folder: FolderSpec
) -> None:
    db = tmp_path / "s.db"
    store = open_store(f"sqlite:///{db}")
    try:
        hashed: list[int] = []
        pipeline = Pipeline(store, timestamp_granularity_ns=0, on_hashed=hashed.append)
        for n in range(3):
            (folder.root / f"{n}.jsonl").write_text(chat_line(str(n), "x") + "\n", "utf-8")
        pipeline.scan(folder)
        forget_ctimes(db)
        hashed.clear()
        pipeline.scan(folder)
        assert hashed == [], "an upgrade does not read every file again"
        with store.session() as s:
            rows = [repo.get_local(s, folder.key, f"{n}.jsonl") for n in range(3)]
        for n, row in enumerate(rows):
            assert row is not None
            assert row.ctime_ns == (folder.root / f"{n}.jsonl").stat().st_ctime_ns
    finally:
        store.dispose()


def test_verify_deep_finds_what_the_fingerprint_hides(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """A row from before 0006 (no ctime) and a rewrite with the mtime put back: plain verify
    trusts the fingerprint; --deep reads the bytes and reports the difference."""
    folder = tmp_path / "ft"
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    old, new = same_length_variants("deep")
    path = folder / "train.jsonl"
    path.write_text(old, encoding="utf-8")
    assert run_syncd(config, api_key, "sync").returncode == 0
    forget_ctimes(state_db(tmp_path))
    rewrite_in_place(path, new)

    plain = run_syncd(config, api_key, "verify", "--json")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    deep = run_syncd(config, api_key, "verify", "--deep", "--json")
    assert deep.returncode == 1, deep.stdout + deep.stderr
    assert '"kind": "changed_since_upload"' in deep.stdout
    assert '"path": "train.jsonl"' in deep.stdout
    assert "touch" in deep.stdout, "it says how to have it synced"
    assert '"deep": true' in deep.stdout


# -- the rule itself ----------------------------------------------------------------------------


@given(
    mtime=st.integers(min_value=0, max_value=4 * SECOND),
    ctime=st.integers(min_value=0, max_value=4 * SECOND),
    hashed_at=st.integers(min_value=0, max_value=8 * SECOND),
    granularity=st.integers(min_value=0, max_value=3 * SECOND),
)
def test_racy_means_hashed_within_one_tick_of_the_last_change(
    mtime: int, ctime: int, hashed_at: int, granularity: int
) -> None:
    stat = FileStat(10, mtime, 1, ctime)
    racy = plan.is_racy(stat, hashed_at, granularity)
    assert racy == (hashed_at - max(mtime, ctime) < granularity)
    if racy:
        # Whatever the stamps say, a racy row is read again.
        assert plan.needs_hash(stat, LocalState.UPLOADED, "sha", stat, stored_racy=True)
    assert not plan.needs_hash(stat, LocalState.UPLOADED, "sha", stat, stored_racy=False)


def test_auto_granularity_follows_the_stamps() -> None:
    fine = FileStat(1, 5 * SECOND + 123, 1, 5 * SECOND + 456)
    coarse = FileStat(1, 5 * SECOND, 1, 6 * SECOND)
    assert plan.timestamp_granularity_ns(fine, None) == plan.FINE_GRANULARITY_NS
    assert plan.timestamp_granularity_ns(coarse, None) == plan.COARSE_GRANULARITY_NS
    assert plan.timestamp_granularity_ns(coarse, 7) == 7


def test_an_unknown_recorded_ctime_is_not_held_against_a_file() -> None:
    recorded = FileStat(1, 2, 3, 0)
    assert not FileStat(1, 2, 3, 99).moved_since(recorded)
    assert FileStat(1, 2, 3, 99).moved_since(FileStat(1, 2, 3, 98))
    assert FileStat(1, 2, 4, 99).moved_since(recorded)


@pytest.mark.parametrize(
    ("value", "expected_ns"),
    [("auto", None), ("2s", 2 * SECOND), ("0s", 0), ("150ms", 150_000_000)],
)
def test_timestamp_granularity_setting(value: str, expected_ns: int | None) -> None:
    watch = WatchConfig.model_validate({"timestamp_granularity": value})
    assert watch.timestamp_granularity_ns == expected_ns


@pytest.mark.parametrize(
    ("value", "message"),
    [("2m", "at most 1m"), ("soon", "auto"), (2, "auto")],
)
def test_a_bad_timestamp_granularity_is_refused(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WatchConfig.model_validate({"timestamp_granularity": value})
