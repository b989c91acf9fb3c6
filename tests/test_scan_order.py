"""The walk's key order: every entry comes in plain string order of its rel_path, for any names."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.paths import IgnoreRules
from syncd.scanner import ScanEntry, ScanItem, ScanProblem, scan_folder
from tests.support import run_as_nobody, world_traversable_dir

EVERYTHING = IgnoreRules(["*"], [])

#: Characters around "/" in code point order ("-" and "." before it, "0" after), a space, a
#: newline, letters beyond ASCII and beyond the BMP (whose UTF-16 order differs), U+FFFF.
_NAME_CHARS = "ab-.0 \n\t\u00e9\u65e5\U0001f600\uffff"
names = st.text(_NAME_CHARS, min_size=1, max_size=4).filter(lambda name: name not in {".", ".."})
#: A directory: name -> None for a file, or a nested directory.
trees: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.dictionaries(names, st.none(), max_size=4),
    lambda children: st.dictionaries(names, st.none() | children, max_size=4),
    max_leaves=24,
)


def _build(root: Path, tree: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Create ``tree`` under ``root``; yield the key of every file made."""
    for name, child in tree.items():
        if child is None:
            (root / name).write_bytes(b"x")
            yield prefix + name
        else:
            (root / name).mkdir()
            yield from _build(root / name, child, f"{prefix}{name}/")


def _entry_keys(items: list[ScanItem]) -> list[str]:
    return [item.rel_path for item in items if isinstance(item, ScanEntry)]


@settings(max_examples=150, deadline=None)
@given(trees)
def test_walk_yields_every_file_in_sorted_key_order(tree: dict[str, Any]) -> None:
    """For any tree, the walk's entries are exactly sorted(keys of its files)."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        keys = list(_build(root, tree))
        assert _entry_keys(list(scan_folder(root, EVERYTHING))) == sorted(keys)


def test_subdirectory_is_walked_at_the_position_of_its_name_and_slash(tmp_path: Path) -> None:
    """``a/x`` comes after ``a-b`` and ``a.b`` ("/" sorts after them) and before ``a0``."""
    for key in ("a0", "a.b", "a/x", "a/b/c", "a-b", "a/b-c"):
        path = tmp_path / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    keys = _entry_keys(list(scan_folder(tmp_path, EVERYTHING)))
    assert keys == ["a-b", "a.b", "a/b-c", "a/b/c", "a/x", "a0"]
    assert keys == sorted(keys)


def test_files_sort_by_code_point_not_utf16(tmp_path: Path) -> None:
    """A letter beyond the BMP sorts after U+FFFF, as its UTF-8 bytes do (UTF-16 would not)."""
    for name in ("\U0001f600", "\uffff", "z", "\u00e9"):
        (tmp_path / name).write_bytes(b"x")
    keys = _entry_keys(list(scan_folder(tmp_path, EVERYTHING)))
    assert keys == ["z", "\u00e9", "\uffff", "\U0001f600"]
    assert [key.encode() for key in keys] == sorted(key.encode() for key in keys)


def test_unreadable_directory_is_reported_before_any_key_below_it() -> None:
    """The problem for ``m`` comes where ``m/`` sorts: after ``m-x``, before ``n``."""
    with world_traversable_dir() as root:
        for key in ("l.jsonl", "m-x.jsonl", "m/inside.jsonl", "n.jsonl"):
            (root / key).parent.mkdir(exist_ok=True)
            (root / key).write_bytes(b"x")
            (root / key).chmod(0o644)
        (root / "m").chmod(0o000)
        outcome = run_as_nobody(lambda: list(scan_folder(root, EVERYTHING)))
    assert isinstance(outcome, list)
    assert [(type(item).__name__, item.rel_path) for item in outcome] == [
        ("ScanEntry", "l.jsonl"),
        ("ScanEntry", "m-x.jsonl"),
        ("ScanProblem", "m"),
        ("ScanEntry", "n.jsonl"),
    ]
    problem = outcome[2]
    assert isinstance(problem, ScanProblem)
    assert problem.is_directory
