"""Forgetting a quarantine verdict, so the next scan judges the file again.

A quarantined row keeps its hash, and identical bytes keep their state (``plan.decide_content``):
a file is not re-read until it changes. Clearing the hash makes the next scan read, validate
and decide it afresh under the folder's current settings; the bytes are not uploaded unless
they now pass.

The settings a folder's files were judged under (purpose, validation mode, batch endpoint) are
kept in the ``meta`` table, one entry per folder: when a scan finds them changed, every
quarantined file of the folder is judged again. A row judged under another purpose (its
``purpose`` column) is judged again in any case, also before the entry exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from sqlalchemy import update
from sqlalchemy.orm import Session

from syncd.domain import LocalState
from syncd.store.audit_log import get_meta, set_meta
from syncd.store.schema import LocalFile

__all__ = ["rejudge_if_settings_changed", "rejudge_quarantined"]


def rejudge_if_settings_changed(s: Session, folder: str, *, purpose: str, settings: str) -> int:
    """Before a scan of ``folder``: forget the quarantine verdicts that its current judging
    ``settings`` (a string naming purpose, mode and endpoint) may decide otherwise; returns how
    many. Records ``settings`` as the ones its files are now judged under."""
    key = "judged:" + hashlib.sha256(folder.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    previous = get_meta(s, key)
    if previous is not None and previous != settings:
        count = rejudge_quarantined(s, [folder])
    else:
        count = rejudge_quarantined(s, [folder], purpose_other_than=purpose)
    if previous != settings:
        set_meta(s, key, settings)
    return count


def rejudge_quarantined(
    s: Session,
    folders: Collection[str],
    *,
    purpose_other_than: str | None = None,
    rel_paths: Collection[str] | None = None,
) -> int:
    """Forget the verdict of quarantined rows of ``folders``; returns how many.

    ``purpose_other_than``: only rows judged under another purpose (the folder's purpose has
    changed since). ``rel_paths``: only these files.
    """
    query = (
        update(LocalFile)
        .where(LocalFile.folder.in_(list(folders)))
        .where(LocalFile.state == LocalState.QUARANTINED)
        .where(LocalFile.sha256.is_not(None))
    )
    if purpose_other_than is not None:
        query = query.where(LocalFile.purpose != purpose_other_than)
    if rel_paths is not None:
        query = query.where(LocalFile.rel_path.in_(list(rel_paths)))
    result = s.execute(query.values(sha256=None).execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)
