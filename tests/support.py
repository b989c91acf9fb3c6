"""Helpers shared by the tests: waiting without sleeping blindly."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """Poll ``predicate`` until it returns something truthy and return it; fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)


def run_as_nobody(call: Callable[[], object]) -> object:
    """Run ``call`` in a forked child with uid/gid nobody; return its result or exception.

    Tests run as root here, so file permissions stop nothing; an unprivileged child gets real
    EACCES errors from the kernel. Use a directory from ``world_traversable_dir``.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                outcome: object = call()
            except Exception as exc:  # noqa: BLE001 (handed to the parent as the result)
                outcome = exc
            with os.fdopen(write_end, "wb") as pipe:
                pickle.dump(outcome, pipe)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)  # noqa: S301 (our own child's output)


@contextmanager
def world_traversable_dir() -> Iterator[Path]:
    """A directory under /tmp that an unprivileged user can traverse (pytest's tmp is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="syncd-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)
