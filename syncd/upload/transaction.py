"""One file's upload, top to bottom: check it, look for an earlier attempt, send, verify.

Exactly once: an intent that may have reached the server (a crash mid-request, or an answer lost
after the body was sent) is kept on the row. Before sending again, the upload looks for that
upload on the server (same name and size, created since the intent), checks its bytes hash to the
row's sha256, and adopts it instead of uploading a duplicate. A failure is written here, by
:mod:`~syncd.upload.failures`; a success is handed back to the worker, whose
:mod:`~syncd.upload.success` writes it while the worker sends its next file.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import BinaryIO, cast

import structlog

from syncd.api import FileInfo, Files, sent_filename
from syncd.errors import (
    ApiError,
    FileChangedError,
    FileVanishedError,
    InvalidRequestError,
    LocalFileError,
    PayloadTooLargeError,
    UsageError,
)
from syncd.hashing import DigestingReader, open_unchanged
from syncd.outage import OutageGate
from syncd.retry import is_retryable, retry_after_of, retry_delay
from syncd.store import Store, repo
from syncd.store.records import LocalFileRecord
from syncd.upload.failures import Failures, may_have_landed
from syncd.upload.success import Successes
from syncd.upload.work import Uploaded, UploadSettings, Work

__all__ = ["ADOPT_SKEW", "FileUpload"]

log = structlog.get_logger(__name__)

#: How far before the recorded intent a server's created_at may lie (clock skew, whole seconds).
ADOPT_SKEW = timedelta(seconds=5)
#: Tries of the adoption lookup (a listing and a download, both idempotent) within one attempt.
_LOOKUP_TRIES = 3


class FileUpload:
    """Uploads one claimed row: :meth:`run`.

    Threads: the upload workers (``syncd-upload-N``), each with its own row; it keeps no state
    between calls and takes no lock of its own (the gate and the store have theirs).
    """

    def __init__(
        self,
        store: Store,
        files: Files,
        gate: OutageGate,
        settings: UploadSettings,
        stopping: threading.Event,
        successes: Successes,
        failures: Failures,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._files = files
        self._gate = gate
        self._settings = settings
        self._stopping = stopping
        self._successes = successes
        self._failures = failures
        self._clock = clock

    def run(self, work: Work) -> Uploaded | None:
        """Upload one claimed row: a failure is recorded; a success is returned, to be recorded
        by the caller (see :class:`~syncd.upload.success.Successes`)."""
        record, folder = work.record, work.folder
        path = folder.root / record.rel_path
        assert record.sha256 is not None, "only hashed rows are queued"
        log.debug(
            "upload_started", folder=folder.name, path=record.rel_path, attempt=record.attempts
        )
        # Opened once, walked from the root without following a symlink, and checked to be the
        # file that was hashed: the body is read from it, never from the name again.
        try:
            opened = open_unchanged(path, root=folder.root, expected=record.stat)
        except FileVanishedError:
            self._failures.vanished(record, folder)
            return None
        except FileChangedError:
            self._failures.changed(record, folder, "changed since it was hashed")
            return None
        except LocalFileError as exc:
            self._failures.changed(record, folder, str(exc))
            return None
        with opened:
            return self._send(work, DigestingReader(opened, str(path)))

    def _send(self, work: Work, body: DigestingReader) -> Uploaded | None:
        """:meth:`run` once the file is open: send ``body``, then check what was sent."""
        record, folder = work.record, work.folder
        filename = PurePosixPath(record.rel_path).name
        intent = record.intent_started_at
        # Whether an earlier attempt may still turn up on the server (until looked for): the
        # claim keeps an earlier intent and records its own time only when there was none.
        earlier_unsettled = intent is not None and intent != work.claimed
        if intent is not None and earlier_unsettled:
            # Look for the name as it was sent (recorded with the intent; an intent recorded
            # before syncd kept that holds the local name): the client may percent-encode it.
            sent = record.intent_filename
            if sent is None or sent == filename:
                sent = sent_filename(filename)
            try:
                adopted = self._look_for_earlier_upload(record, sent, intent)
            except ApiError as exc:
                self._failures.retry_later(record, folder, exc)
                return None
            if adopted is not None:
                return Uploaded(work, adopted, action="adopt")
            earlier_unsettled = False

        started = self._clock()
        try:
            # A binary reader as far as the upload goes (read, seek, tell, seekable).
            info = self._files.upload(
                file=cast(BinaryIO, body), purpose=record.purpose, filename=filename
            )
        except (InvalidRequestError, PayloadTooLargeError, UsageError) as exc:
            self._failures.quarantine(record, folder, exc)
            return None
        except ApiError as exc:
            # A request refused before it was acted on (429, a connection never made) leaves
            # nothing to look for, so the next attempt need not look first.
            keep = earlier_unsettled or may_have_landed(exc)
            self._failures.retry_later(record, folder, exc, keep_intent=keep)
            return None
        except FileVanishedError:
            self._failures.vanished(record, folder)
            return None
        except LocalFileError as exc:
            # It grew or shrank while it was being sent: judge it again once it settles.
            self._failures.changed(record, folder, str(exc))
            return None

        # The bytes sent must be the bytes hashed: the digest of what went out says so exactly
        # (a writer may have changed the open file meanwhile).
        if (
            body.hexdigest() != record.sha256
            or body.bytes_read != record.size
            or (info.bytes is not None and info.bytes != record.size)
        ):
            self._successes.discard(info.id)
            self._failures.changed(record, folder, "changed while it was being uploaded")
            return None
        log.debug(
            "upload_sent",
            path=record.rel_path,
            duration_ms=int((self._clock() - started).total_seconds() * 1000),
        )
        return Uploaded(work, info, action="upload")

    def _look_for_earlier_upload(
        self, record: LocalFileRecord, filename: str, intent: datetime
    ) -> FileInfo | None:
        """:meth:`_find_earlier_upload`, tried again at once on a transient failure.

        Listing and downloading are idempotent, so a dropped connection costs a short wait here
        rather than a whole backoff step of the file; not while the API is down for everybody.
        """
        tries = 0
        while True:
            tries += 1
            try:
                return self._find_earlier_upload(record, filename, intent)
            except ApiError as exc:
                if (
                    tries >= _LOOKUP_TRIES
                    or not is_retryable(exc)
                    or self._gate.is_open
                    or self._stopping.is_set()
                ):
                    raise
                delay = retry_delay(
                    tries, self._settings.retry_policy, retry_after=retry_after_of(exc)
                )
                log.debug("adoption_lookup_retrying", path=record.rel_path, error=str(exc))
                self._stopping.wait(delay)

    def _find_earlier_upload(
        self, record: LocalFileRecord, filename: str, intent: datetime
    ) -> FileInfo | None:
        """An earlier attempt of this row that reached the server, verified by content."""
        with self._store.session() as s:
            known = repo.remote_ids_with_filename(s, filename)
        candidate = self._files.find_upload(
            filename, record.size, (intent - ADOPT_SKEW).timestamp(), exclude_ids=known
        )
        if candidate is None or not self._content_matches(candidate.id, record.sha256):
            return None
        return candidate

    def _content_matches(self, file_id: str, sha256: str | None) -> bool:
        digest = hashlib.sha256()
        with self._files.download(file_id) as response:
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
        return digest.hexdigest() == sha256
