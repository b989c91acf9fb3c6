"""Repository functions: every read and write of the state store goes through here.

Each function takes a Session first (from :meth:`syncd.store.Store.session`, one per unit of
work, never shared between threads) and returns frozen records, never ORM rows. The queries are
plain SQLAlchemy Core/ORM constructs that run unchanged on SQLite and PostgreSQL.

``state_changed_at`` says since when a row is in its state; a retry cycle (``pending`` <->
``uploading``) counts as one state, so "unsynced since" survives retries.

The functions live in modules by concern and are gathered here, so callers write
``repo.claim_due_uploads(...)`` whatever module holds it.
"""

from __future__ import annotations

from syncd.store.audit_log import audit, audit_entries, get_meta, set_meta
from syncd.store.fleet import (
    forget_node,
    heartbeat,
    list_nodes,
    take_over_silent_claims,
    uploading_elsewhere,
)
from syncd.store.folder_rows import adopt_legacy_folder_keys, list_local, state_counts
from syncd.store.lineage_queries import iter_remote_files
from syncd.store.local_files import (
    Fingerprint,
    find_missing_by_stat,
    folder_fingerprints,
    get_local,
    get_local_by_id,
    get_locals,
    iter_fingerprints,
    lock_local,
    mark_missing,
    oldest_unsynced_by_folder,
    oldest_unsynced_since,
    pending_count,
    pending_totals,
    record_ctimes,
    rename_local,
    set_state,
    upsert_local,
)
from syncd.store.rejudge import rejudge_if_settings_changed, rejudge_quarantined
from syncd.store.remote_reconcile import (
    VANISHED_REASON,
    any_live_remote,
    live_remote_ids,
    record_vanished,
)
from syncd.store.remotes import (
    find_live_remote_by_content,
    find_live_remotes_by_content,
    get_remote,
    record_remote_deleted,
    remote_files,
    remote_ids_with_filename,
)
from syncd.store.retention_queries import aged_remote_files, local_row_count, remote_holding
from syncd.store.upload_queue import (
    claim_due_uploads,
    inflight_uploads,
    next_due_at,
    record_failure,
    record_upload,
    reset_inflight,
    retry_failed,
    reuse_remote,
)

__all__ = [
    "VANISHED_REASON",
    "Fingerprint",
    "adopt_legacy_folder_keys",
    "aged_remote_files",
    "any_live_remote",
    "audit",
    "audit_entries",
    "claim_due_uploads",
    "find_live_remote_by_content",
    "find_live_remotes_by_content",
    "find_missing_by_stat",
    "folder_fingerprints",
    "forget_node",
    "get_local",
    "get_local_by_id",
    "get_locals",
    "get_meta",
    "get_remote",
    "heartbeat",
    "inflight_uploads",
    "iter_fingerprints",
    "iter_remote_files",
    "list_local",
    "list_nodes",
    "live_remote_ids",
    "local_row_count",
    "lock_local",
    "mark_missing",
    "next_due_at",
    "oldest_unsynced_by_folder",
    "oldest_unsynced_since",
    "pending_count",
    "pending_totals",
    "record_ctimes",
    "record_failure",
    "record_remote_deleted",
    "record_upload",
    "record_vanished",
    "rejudge_if_settings_changed",
    "rejudge_quarantined",
    "remote_files",
    "remote_holding",
    "remote_ids_with_filename",
    "rename_local",
    "reset_inflight",
    "retry_failed",
    "reuse_remote",
    "set_meta",
    "set_state",
    "state_counts",
    "take_over_silent_claims",
    "uploading_elsewhere",
    "upsert_local",
]
