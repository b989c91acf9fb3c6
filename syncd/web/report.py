"""The status page's data, as JSON-ready documents: the page renders them, ``/api`` returns them.

One :class:`StatusReport` per request, on one store session. Every list is paged in the
database (see :mod:`syncd.store.status_queries`), so the cost of a request does not grow with
the number of tracked files beyond the grouped counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from syncd import __version__
from syncd.documents import audit_json, file_json, iso, job_json, lineage_json, node_json
from syncd.documents import retention_document as plan_document
from syncd.domain import LocalState
from syncd.fleet_runtime import database_now
from syncd.pipeline import FolderSpec
from syncd.retention_preview import RetentionPreview
from syncd.store import job_reads, repo, status_queries
from syncd.web.source import LiveStatus

__all__ = ["RATE_WINDOW", "StatusReport"]

#: Uploads over this window give the upload rate.
RATE_WINDOW = timedelta(minutes=5)


def _age_s(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 1)


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Documents about this daemon's folders, read through ``session`` at ``now``."""

    session: Session
    folders: Mapping[str, FolderSpec]
    live: LiveStatus
    now: datetime

    def name_of(self, key: str | None) -> str | None:
        """A folder key's display name (the key itself for a folder not configured here)."""
        if key is None:
            return None
        spec = self.folders.get(key)
        return spec.name if spec is not None else key

    def key_of(self, name: str | None) -> str | None:
        """The key of the folder called ``name`` here, or None."""
        return next((k for k, spec in self.folders.items() if spec.name == name), None)

    def overview(self) -> dict[str, Any]:
        """The daemon's health and one entry per folder (counts, oldest unsynced, last scan)."""
        s, live, now = self.session, self.live, self.now
        counts = repo.state_counts(s)
        oldest = repo.oldest_unsynced_by_folder(s, list(self.folders))
        uploaded, uploaded_bytes = status_queries.uploads_since(
            s, list(self.folders), now - RATE_WINDOW
        )
        window = RATE_WINDOW.total_seconds()
        folders = []
        for key, spec in self.folders.items():
            by_state = counts.get(key, {})
            folders.append(
                {
                    "name": spec.name,
                    "path": key,
                    "root": str(spec.root),
                    "purpose": spec.purpose,
                    "shared": spec.shared_id is not None,
                    "node": None if spec.shared_id is not None else spec.node or live.node,
                    "counts": by_state,
                    "total": sum(by_state.values()),
                    "oldest_unsynced_at": iso(oldest.get(key)),
                    "oldest_unsynced_age_s": _age_s(now, oldest.get(key)),
                    "last_good_scan_at": iso(live.last_good_scan.get(key)),
                }
            )
        return {
            "node": live.node,
            "version": __version__,
            "now": iso(now),
            "started_at": iso(live.started_at),
            "health": {"healthy": live.healthy, "reason": live.health_reason},
            "api": {
                "available": live.api_down_for is None,
                "down_for_s": live.api_down_for,
                "down_since": iso(
                    None
                    if live.api_down_for is None
                    else now - timedelta(seconds=live.api_down_for)
                ),
                "error": live.api_error,
                "server": live.api_server,
            },
            "queue_depth": live.queue_depth,
            "uploading": live.uploading,
            "upload_rate": {
                "window_s": window,
                "files": uploaded,
                "bytes": uploaded_bytes,
                "files_per_min": round(uploaded * 60 / window, 2),
                "bytes_per_s": round(uploaded_bytes / window, 1),
            },
            "states": [state.value for state in LocalState],
            "folders": folders,
        }

    def files(
        self,
        *,
        folder: str | None,
        states: tuple[LocalState, ...] | None,
        limit: int,
        offset: int,
    ) -> dict[str, Any]:
        """A page of tracked files, as ``syncd status --json`` lists them."""
        page = status_queries.files_page(
            self.session,
            list(self.folders),
            folder=self.key_of(folder) if folder else None,
            states=states,
            limit=limit,
            offset=offset,
        )
        return {
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "files": [file_json(r, self.name_of(r.folder) or r.folder) for r in page.items],
        }

    def problems(self, *, folder: str | None, limit: int, offset: int) -> dict[str, Any]:
        """Quarantined, failed and unstable files with their reasons, newest first."""
        key = self.key_of(folder) if folder else None
        if folder and key is None:
            return {"folder": folder, "total": 0, "limit": limit, "offset": offset, "files": []}
        page = status_queries.problems_page(
            self.session, list(self.folders), folder=key, limit=limit, offset=offset
        )
        return {
            "folder": folder or None,
            "total": page.total,
            "limit": limit,
            "offset": offset,
            "files": [file_json(r, self.name_of(r.folder) or r.folder) for r in page.items],
        }

    def activity(self, *, limit: int, offset: int) -> dict[str, Any]:
        """The audit trail of these folders: uploads, supersedes, deletions; newest first."""
        page = status_queries.activity_page(
            self.session, list(self.folders), limit=limit, offset=offset
        )
        return {
            "limit": limit,
            "offset": offset,
            "has_more": page.total > offset + limit,
            "entries": [audit_json(e, self.name_of(e.folder)) for e in page.items],
        }

    def jobs(self, *, limit: int) -> dict[str, Any]:
        """Jobs whose results come home: counts per folder and state, then those in flight or
        held first, then the newest others."""
        keys = list(self.folders)
        counts: dict[str, dict[str, int]] = {}
        for (key, state), n in job_reads.job_counts(self.session, keys).items():
            counts.setdefault(self.name_of(key) or key, {})[state] = n
        recent = job_reads.recent_jobs(self.session, folders=keys, limit=limit)
        written = job_reads.written_paths(self.session, [job.key for job in recent])
        return {
            "states": list(job_reads.JOB_STATES),
            "counts": counts,
            "error": self.live.results_error,
            "jobs": [
                job_json(
                    job,
                    self.name_of(job.folder) or job.folder,
                    now=self.now,
                    overdue_after=self.live.overdue_after,
                    results=written.get(job.key, []),
                )
                for job in recent
            ],
        }

    def nodes(self) -> dict[str, Any]:
        """Every node in the store (fleet mode), as ``syncd nodes --json`` lists them."""
        s = self.session
        now = database_now(s)
        records = repo.list_nodes(s)
        oldest = repo.oldest_unsynced_by_folder(s, {key for n in records for key in n.folders})
        names = {key: spec.name for key, spec in self.folders.items()}
        lease = self.live.lease
        return {
            "now": iso(now),
            "lease_s": lease.total_seconds(),
            "this_node": self.live.node,
            "nodes": [
                node_json(
                    n, now=now, lease=lease, this_node=self.live.node, names=names, oldest=oldest
                )
                for n in records
            ],
        }

    def lineage(self, query: str) -> dict[str, Any]:
        """Remote files of a path or a sha256: ids, purpose, upload time (the manifest's data)."""
        places = [(key, str(spec.root)) for key, spec in self.folders.items()]
        found = status_queries.lineage(self.session, query, places)
        return {
            "query": query,
            "limit": status_queries.LINEAGE_LIMIT,
            "matches": [{**lineage_json(r), "folder_name": self.name_of(r.folder)} for r in found],
        }


def retention_document(
    preview: RetentionPreview | None, next_run_at: datetime | None
) -> dict[str, Any]:
    """The next retention run: when, and what its dry run plans (``syncd cleanup --dry-run``);
    ``computing`` while the first plan is being made (``preview`` None)."""
    if preview is None:
        return {"next_run_at": iso(next_run_at), "computing": True, "policies": None}
    settings = preview.settings
    return {
        "next_run_at": iso(next_run_at),
        "computing": False,
        "computed_at": iso(preview.computed_at.astimezone(UTC)),
        "policies": [
            {
                "folder": settings.name_of(key),
                "max_age_s": policy.max_age.total_seconds() if policy.max_age else None,
                "keep_current": policy.keep_current,
            }
            for key, policy in settings.policies.items()
        ],
        "max_deletes": settings.max_deletes,
        "error": preview.error,
        "plan": None if preview.result is None else plan_document(preview.result, settings),
    }
