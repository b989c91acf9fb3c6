"""The data the benchmarks chew on: big random files, valid JSONL files, nested trees.

Every JSONL file is a valid fine-tune chat file with content unique to it, so no upload is
skipped as a duplicate and no file is quarantined: each one costs the full path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = [
    "chat_jsonl",
    "write_chat_files",
    "write_jsonl_files",
    "write_random_file",
    "write_tree",
]

_CHUNK = 1024 * 1024


def write_random_file(path: Path, size: int) -> Path:
    """``size`` random bytes at ``path`` (random, so nothing compresses or dedupes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            chunk = os.urandom(min(_CHUNK, remaining))
            handle.write(chunk)
            remaining -= len(chunk)
    return path


def chat_jsonl(tag: str, size: int) -> bytes:
    """A valid fine-tune chat JSONL document of about ``size`` bytes, unique to ``tag``."""
    line = json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"What is item {tag}?"},
                {"role": "assistant", "content": f"Item {tag} is a benchmark sample."},
            ]
        }
    ).encode()
    count = max(1, size // (len(line) + 1))
    return (line + b"\n") * count


def write_jsonl_files(root: Path, count: int, size: int, *, per_dir: int = 100) -> list[Path]:
    """``count`` JSONL files of about ``size`` bytes, ``per_dir`` to a subdirectory."""
    paths: list[Path] = []
    for index in range(count):
        directory = root / f"batch-{index // per_dir:04d}"
        if index % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"sample-{index:06d}.jsonl"
        path.write_bytes(chat_jsonl(str(index), size))
        paths.append(path)
    return paths


def write_chat_files(root: Path, count: int, *, lines: int, per_dir: int = 100) -> list[Path]:
    """``count`` JSONL files of ``lines`` chat samples each, ``per_dir`` to a subdirectory."""
    paths: list[Path] = []
    for index in range(count):
        directory = root / f"batch-{index // per_dir:04d}"
        if index % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
        line = chat_jsonl(str(index), 1)
        path = directory / f"sample-{index:06d}.jsonl"
        path.write_bytes(line * lines)
        paths.append(path)
    return paths


def write_tree(root: Path, count: int, *, fanout: int = 10, per_dir: int = 100) -> int:
    """``count`` small JSONL files in a tree three directories deep; returns the file count.

    With the defaults, 100,000 files sit in 1,000 leaf directories under 10 x 10 parents:
    the shape of a real dataset folder, not one flat directory.
    """
    written = 0
    leaf = 0
    while written < count:
        top, middle = divmod(leaf // fanout, fanout)
        directory = root / f"part-{top:02d}" / f"shard-{middle:02d}" / f"set-{leaf % fanout:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        for _ in range(min(per_dir, count - written)):
            (directory / f"s{written:06d}.jsonl").write_bytes(chat_jsonl(str(written), 150))
            written += 1
        leaf += 1
    return written
