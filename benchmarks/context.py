"""What every benchmark receives: the run's size (full or quick), a scratch area, and a log.

Everything a benchmark writes goes under :attr:`BenchContext.root`, a fresh directory in /tmp
that the runner deletes at the end; benchmarks that make very large trees or files delete them
as soon as they are done (:meth:`BenchContext.discard`).
"""

from __future__ import annotations

import itertools
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = ["BenchContext"]

T = TypeVar("T")

#: The repository root: benchmarks run syncd from this checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BenchContext:
    """One suite run: sizes, scratch directories and shared fixtures."""

    root: Path
    quick: bool = False
    python: str = sys.executable
    repo: Path = REPO_ROOT
    #: Expensive fixtures one benchmark builds and a later one reuses (the 100k-file tree).
    shared: dict[str, object] = field(default_factory=dict)
    _started: float = field(default_factory=time.monotonic)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def size(self, full: T, quick: T) -> T:
        """``quick`` in ``--quick`` mode, else ``full``."""
        return quick if self.quick else full

    def scratch(self, name: str) -> Path:
        """A new, empty directory under the run's root."""
        path = self.root / f"{next(self._counter):02d}-{name}"
        path.mkdir(parents=True)
        return path

    def discard(self, path: Path) -> None:
        """Delete a scratch directory or file now (large data must not wait for the end)."""
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def log(self, message: str) -> None:
        """A progress line on stderr, stamped with the time since the run started."""
        elapsed = time.monotonic() - self._started
        print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)
