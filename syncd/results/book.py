"""The jobs' ledger as the results parts use it: claims, state changes and audit lines.

Threads: the results worker's thread (and tests). Each call is its own transaction in the state
store; no lock of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from syncd.store import Store, repo
from syncd.store import jobs as job_rows
from syncd.store.records import JobRecord

__all__ = ["JobBook"]


class JobBook:
    """Reads and writes ``jobs`` rows on behalf of one node."""

    def __init__(
        self, store: Store, *, node: str, lease: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.node = node
        self.lease = lease
        self.clock = clock

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.store.session() as s:
            yield s

    def claim(self, key: str, states: Collection[str]) -> JobRecord | None:
        """Hold the job for this node while it works on it (None: another node does)."""
        with self.store.session() as s:
            return job_rows.claim_job(
                s, key, node=self.node, now=self.clock(), lease=self.lease, states=states
            )

    def release(self, key: str) -> None:
        with self.store.session() as s:
            job_rows.release_job(s, key, node=self.node)

    @contextmanager
    def claimed(self, key: str, states: Collection[str]) -> Iterator[JobRecord | None]:
        job = self.claim(key, states)
        try:
            yield job
        finally:
            if job is not None:
                self.release(key)

    def update(
        self,
        key: str,
        *,
        audit: str | None = None,
        job: JobRecord | None = None,
        detail: str | None = None,
        file_id: str | None = None,
        nbytes: int | None = None,
        **values: Any,
    ) -> None:
        """Change the job's row and, with ``audit``, append an audit line about it, at once."""
        now = self.clock()
        with self.store.session() as s:
            job_rows.update_job(s, key, now=now, **values)
            if audit is not None and job is not None:
                repo.audit(
                    s,
                    audit,
                    now=now,
                    folder=job.folder,
                    rel_path=job.rel_path,
                    sha256=job.sha256,
                    file_id=file_id,
                    bytes=nbytes,
                    detail=detail,
                )

    def jobs(self, folders: Collection[str], states: Collection[str]) -> list[JobRecord]:
        with self.store.session() as s:
            return job_rows.jobs_with_state(s, folders, states)
