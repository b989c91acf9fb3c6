"""The jobs part of ``syncd status``: what came home, what is in flight, held or failed.

Loaded only when a folder has a ``results`` folder; it reads in Core, as the rest of
``syncd status`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from syncd.config import Config
from syncd.documents import job_json
from syncd.store import Store, job_reads

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["jobs_document", "print_jobs"]

#: Jobs listed by ``syncd status`` (those in flight or held first).
_LISTED = 200


def jobs_document(store: Store, config: Config, names: Mapping[str, str]) -> dict[str, Any]:
    """Counts per folder and state, and the jobs themselves, as ``/api/jobs`` has them."""
    keys = list(names)
    with store.connection() as c:
        counts = job_reads.job_counts(c, keys)
        recent = job_reads.recent_jobs(c, folders=keys, limit=_LISTED)
        written = job_reads.written_paths(c, [job.key for job in recent])
    by_folder: dict[str, dict[str, int]] = {}
    for (key, state), n in counts.items():
        by_folder.setdefault(names.get(key, key), {})[state] = n
    now = datetime.now(UTC)
    return {
        "states": list(job_reads.JOB_STATES),
        "counts": by_folder,
        "jobs": [
            job_json(
                job,
                names.get(job.folder, job.folder),
                now=now,
                overdue_after=config.results.overdue_after,
                results=written.get(job.key, []),
            )
            for job in recent
        ],
    }


def print_jobs(console: Console, document: Mapping[str, Any]) -> None:
    """The jobs as a table (a terminal's view)."""
    from rich.table import Table
    from rich.text import Text

    if not document["jobs"]:
        return
    table = Table(title="Results (batch jobs and OCR)")
    for column in ("folder", "input", "state", "job", "progress", "results / reason"):
        table.add_column(column, overflow="fold")
    for job in document["jobs"]:
        progress = job["progress"]
        done = f"{progress['completed'] or 0}/{progress['total']}" if progress["total"] else ""
        state = job["state"] + (" (overdue)" if job["overdue"] else "")
        detail = "\n".join([*job["results"], *([job["reason"]] if job["reason"] else [])])
        table.add_row(
            Text(job["folder"]),
            Text(job["path"]),
            state,
            Text(job["job_id"] or ""),
            done,
            Text(detail),
        )
    console.print(table)
