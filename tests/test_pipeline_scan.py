"""Pipeline.scan merges the walk with the stored rows in key order: real files, real SQLite.

(The racy-timestamp rule is off here, ``timestamp_granularity_ns=0``: these files are scanned
moments after they are written, which the rule rightly distrusts; tests/test_content_changes.py
covers it.)
"""

from __future__ import annotations

import gc
import os
import sqlite3
import tempfile
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.domain import FileStat, LocalState
from syncd.errors import StoreError
from syncd.paths import IgnoreRules
from syncd.pipeline import FolderSpec, Pipeline, ScanSummary
from syncd.purposes import DEFAULT_EXCLUDE
from syncd.store import Store, open_store, repo
from tests.configs import write_chat_file
from tests.support import run_as_nobody, world_traversable_dir

#: Keys whose string order is not "files first, then subdirectories" ("-" and "." sort before
#: "/", "0" after), plus letters beyond ASCII and beyond the BMP and a newline.
TRICKY_KEYS = (
    "a-b.jsonl",
    "a.b.jsonl",
    "a/x.jsonl",
    "a/b-c.jsonl",
    "a/b/c.jsonl",
    "a0.jsonl",
    "b.jsonl",
    "\u00e9t\u00e9.jsonl",
    "\U0001f600/deep.jsonl",
    "\uffff.jsonl",
    "line\nbreak.jsonl",
)

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _spec(root: Path) -> FolderSpec:
    return FolderSpec("data", root, "fine-tune", IgnoreRules(["*.jsonl"], DEFAULT_EXCLUDE))


def _states(store: Store, spec: FolderSpec) -> dict[str, LocalState]:
    with store.session() as s:
        return {r.rel_path: r.state for r in repo.list_local(s, folder=spec.key)}


@pytest.fixture
def spec(tmp_path: Path) -> FolderSpec:
    root = tmp_path / "data"
    for key in TRICKY_KEYS:
        write_chat_file(root / key, salt=key)
    return _spec(root)


def test_rescan_of_an_unchanged_tree_reads_no_file(store: Store, spec: FolderSpec) -> None:
    """Every file matches its row however its key sorts: nothing hashed, nothing missing."""
    first = Pipeline(store, timestamp_granularity_ns=0).scan(spec)
    assert (first.files, first.hashed, first.queued) == (len(TRICKY_KEYS),) * 3
    again = Pipeline(store, timestamp_granularity_ns=0).scan(spec)
    assert again == ScanSummary(folder="data", files=len(TRICKY_KEYS))
    assert set(_states(store, spec).values()) == {LocalState.PENDING}


def test_one_rescan_sees_new_changed_vanished_renamed_and_problems(
    store: Store, spec: FolderSpec
) -> None:
    """Changes interleaved in key order each get their verdict in the same scan."""
    pipeline = Pipeline(store, timestamp_granularity_ns=0)
    pipeline.scan(spec)
    root = spec.root
    (root / "a-b.jsonl").unlink()  # vanished, before "a/" in key order
    write_chat_file(root / "a/x.jsonl", salt="changed")  # changed, inside "a/"
    write_chat_file(root / "a/new.jsonl", salt="new")  # new, inside "a/"
    (root / "z").mkdir()
    (root / "a.b.jsonl").rename(root / "z/moved.jsonl")  # renamed, across the whole order
    os.mkfifo(root / "a0-pipe.jsonl")  # a problem between "a/" and "a0"

    summary = pipeline.scan(spec)

    assert (summary.files, summary.hashed, summary.queued) == (len(TRICKY_KEYS), 2, 2)
    assert (summary.renamed, summary.missing) == (1, 1)
    assert summary.problems == ["a0-pipe.jsonl: is a FIFO, not a regular file; skipped"]
    states = _states(store, spec)
    assert states["a-b.jsonl"] is LocalState.MISSING
    assert "a.b.jsonl" not in states
    assert states["z/moved.jsonl"] is LocalState.PENDING
    assert states["a0-pipe.jsonl"] is LocalState.QUARANTINED
    assert sum(state is LocalState.MISSING for state in states.values()) == 1

    third = pipeline.scan(spec)
    assert (third.hashed, third.missing, third.renamed) == (0, 0, 0)  # the FIFO is not "gone"
    assert third.problems == summary.problems


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(TRICKY_KEYS), unique=True),
    st.lists(st.sampled_from(TRICKY_KEYS), unique=True),
    st.lists(st.sampled_from(TRICKY_KEYS), unique=True),
)
def test_rescans_agree_with_what_is_on_disk(
    first: list[str], second: list[str], third: list[str]
) -> None:
    """Over any sequence of trees, rows of present files are not missing, and the rest are."""
    with tempfile.TemporaryDirectory() as scratch:
        spec = _spec(Path(scratch) / "data")
        spec.root.mkdir()
        store = open_store(f"sqlite:///{scratch}/state.db")
        try:
            pipeline = Pipeline(store, timestamp_granularity_ns=0)
            on_disk: set[str] = set()
            for keys in (first, second, third):
                for key in on_disk - set(keys):
                    (spec.root / key).unlink()
                for key in set(keys) - on_disk:
                    # Salted by key: no two files share content, so nothing counts as a rename.
                    write_chat_file(spec.root / key, salt=key)
                before = _states(store, spec)
                summary = pipeline.scan(spec)
                on_disk = set(keys)
                states = _states(store, spec)
                present_before = {k for k, v in before.items() if v is not LocalState.MISSING}
                assert summary.files == len(on_disk)
                assert summary.missing == len(present_before - on_disk)
                assert summary.hashed == len(on_disk - present_before)
                assert {k for k, v in states.items() if v is not LocalState.MISSING} == on_disk
        finally:
            store.dispose()


def test_rows_under_an_unreadable_directory_are_unknown_not_missing() -> None:
    """A directory that cannot be listed hides its rows from the merge; neighbours still go."""
    with world_traversable_dir() as base:
        base.chmod(0o777)  # the unprivileged child writes the tree and the store here
        # Open (and migrate) as root: the child may not read the checkout (a 0700 clone dir)
        # holding the migration scripts, so it uses this store, with connections of its own.
        store = open_store(f"sqlite:///{base}/state.db")
        store.dispose()
        for path in base.iterdir():
            os.chown(path, 65534, 65534)

        def scan_twice() -> tuple[dict[str, str], list[str]]:
            spec = _spec(base / "data")
            for key in ("sub-a.jsonl", "sub/inner.jsonl", "sub/z/deeper.jsonl", "sub0.jsonl"):
                write_chat_file(spec.root / key, salt=key)
            try:
                pipeline = Pipeline(store, timestamp_granularity_ns=0)
                pipeline.scan(spec)
                (spec.root / "sub-a.jsonl").unlink()
                (spec.root / "sub0.jsonl").unlink()
                (spec.root / "sub").chmod(0o000)
                summary = pipeline.scan(spec)
                states = {k: v.value for k, v in _states(store, spec).items()}
            finally:
                store.dispose()
            return states, summary.skipped_dirs

        outcome = run_as_nobody(scan_twice)
    assert isinstance(outcome, tuple), outcome
    states, skipped = outcome
    assert skipped == ["sub: cannot read directory: Permission denied; its files are not synced"]
    assert states == {
        "sub-a.jsonl": "missing",
        "sub/inner.jsonl": "pending",
        "sub/z/deeper.jsonl": "pending",
        "sub0.jsonl": "missing",
    }


def test_fingerprints_stream_in_code_point_order(store: Store) -> None:
    """iter_fingerprints gives one folder's rows as plain tuples in Python's string order."""
    keys = [*TRICKY_KEYS, "Z.jsonl", "\u00e9/x", "a/"]
    with store.session() as s:
        for folder in ("/one", "/two"):
            for index, key in enumerate(keys):
                repo.upsert_local(
                    s,
                    folder,
                    key,
                    purpose="fine-tune",
                    stat=FileStat(index, index, index, index),
                    sha256=None,
                    state=LocalState.PENDING,
                    now=NOW,
                )
    with store.session() as s:
        rows = list(repo.iter_fingerprints(s, "/one"))
        one_by_one = list(repo.iter_fingerprints(s, "/one", batch_rows=1))
    assert [row[0] for row in rows] == sorted(keys)
    assert rows == one_by_one
    z = keys.index("Z.jsonl")
    assert rows[0] == ("Z.jsonl", z, z, z, LocalState.PENDING, None, z, False)
    assert all(type(row) is tuple for row in rows)


def test_a_store_that_sorts_keys_another_way_is_refused(
    tmp_path: Path, store: Store, spec: FolderSpec
) -> None:
    """Rows out of byte order (a case-blind collation) fail the scan instead of faking deletions."""
    write_chat_file(spec.root / "C.jsonl", salt="C")
    Pipeline(store, timestamp_granularity_ns=0).scan(spec)
    store.dispose()
    db = tmp_path / "state.db"
    with sqlite3.connect(db) as raw:
        # Declare rel_path case-blind, as a database with a locale collation would compare it.
        raw.execute("PRAGMA writable_schema = ON")
        raw.execute(
            "UPDATE sqlite_schema SET sql = replace(sql, 'rel_path TEXT', "
            "'rel_path TEXT COLLATE NOCASE') WHERE name = 'local_files'"
        )
    with sqlite3.connect(db) as raw:
        raw.execute("REINDEX")
    reopened = open_store(f"sqlite:///{db}")
    try:
        with pytest.raises(StoreError, match="out of key order"):
            Pipeline(reopened).scan(spec)
        states = _states(reopened, spec)
    finally:
        reopened.dispose()
    assert LocalState.MISSING not in states.values()


def test_a_first_scan_holds_no_object_per_file_waiting_to_be_hashed(
    store: Store, tmp_path: Path
) -> None:
    """A first scan keeps every new file until it is hashed, while the uploads run: packed,
    not as a (key, FileStat) pair of objects per file (30 MB of small objects at 100,000
    files, whose freed arenas the uploads' allocations kept pinned: idle RSS)."""
    root = tmp_path / "many"
    for n in range(300):
        write_chat_file(root / f"f{n:03d}.jsonl", salt=str(n))
    stats_alive: list[int] = []
    walk_bytes_alive: list[int] = []  # what the walk allocated (each file's key, above all)

    def hashed(_bytes: int) -> None:
        if not stats_alive:  # the first file: every other one still waits
            stats_alive.append(sum(1 for o in gc.get_objects() if isinstance(o, FileStat)))
            walk = [tracemalloc.Filter(True, "*/syncd/scanner.py")]
            traces = tracemalloc.take_snapshot().filter_traces(walk).statistics("filename")
            walk_bytes_alive.append(sum(stat.size for stat in traces))

    tracemalloc.start()
    try:
        summary = Pipeline(store, on_hashed=hashed, timestamp_granularity_ns=0).scan(_spec(root))
    finally:
        tracemalloc.stop()
    assert summary.hashed == 300
    assert stats_alive[0] < 10
    # A key kept as a str is ~60 bytes here; the interpreter's free lists keep a few KB.
    assert walk_bytes_alive[0] < 300 * 20
