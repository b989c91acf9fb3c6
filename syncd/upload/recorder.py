"""Successes written in groups by one recorder thread, while the workers send their next files.

A worker hands over each upload the server accepted (:meth:`Recorder.submit`: the write, and
what follows its commit) and goes on with the row it holds in reserve; it waits for the future
only when it needs the rows that write claims. The recorder takes every write queued at that
moment and commits them in one transaction (on SQLite; a server database writes each alone, see
:class:`~syncd.upload.rows.RowWriter`), then runs what follows each commit (its log line, its
event) and settles its future. Eight workers' successes cost one thread and one commit, instead
of eight threads taking turns on the store, or eight workers waiting for their own commits.

A group that fails in any way is rolled back whole, and each of its writes runs alone, as
:meth:`~syncd.upload.rows.RowWriter.persist` runs it, so one bad write cannot lose another's
outcome.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from syncd.upload.rows import GROUP_MAX, RowWriter

__all__ = ["Recorder"]

T = TypeVar("T")
R = TypeVar("R")


class _Item(Generic[T, R]):
    __slots__ = ("future", "then", "write")

    def __init__(self, write: Callable[[Any], T], then: Callable[[T], R]) -> None:
        self.write = write
        self.then = then
        self.future: Future[R] = Future()

    def settle(self, written: T | BaseException) -> None:
        if isinstance(written, BaseException):
            self.future.set_exception(written)
            return
        try:
            self.future.set_result(self.then(written))
        except Exception as exc:  # noqa: BLE001 - the worker waiting for it handles it
            self.future.set_exception(exc)


class Recorder:
    """The recorder thread and its queue; see the module docstring.

    Threads: :meth:`submit` and :meth:`close` are called by the upload workers and the
    uploader; the writes run on ``syncd-record`` (started with the first write; after
    :meth:`close`, a write runs on the caller's thread). Locks: ``_ready`` guards the queue;
    the recorder holds it only to take a group, never while it writes.
    """

    def __init__(self, rows: RowWriter) -> None:
        self._rows = rows
        self._ready = threading.Condition()
        self._queue: list[_Item[Any, Any]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, write: Callable[[Any], T], then: Callable[[T], R]) -> Future[R]:
        """Commit ``write`` (it gets the transaction's session) with whatever else is queued;
        the future holds what ``then`` makes of its value once committed, or the error."""
        item: _Item[T, R] = _Item(write, then)
        with self._ready:
            if not self._closed:
                self._queue.append(item)
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="syncd-record", daemon=True
                    )
                    self._thread.start()
                self._ready.notify()
                return item.future
        self._write([item])
        return item.future

    def close(self) -> None:
        """Take no more writes (those queued are still written; later ones run inline)."""
        with self._ready:
            self._closed = True
            self._ready.notify()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                group, self._queue = self._queue[:GROUP_MAX], self._queue[GROUP_MAX:]
            self._write(group)

    def _write(self, group: list[_Item[Any, Any]]) -> None:
        written = self._rows.persist_all([item.write for item in group])
        for item, value in zip(group, written, strict=True):
            item.settle(value)
