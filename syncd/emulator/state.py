"""The emulator's persistent store: file metadata in SQLite, content in one blob per id.

Blobs live at ``<data_dir>/blobs/<uuid>`` and are named only by id, so no client-chosen filename
ever becomes a path. Uploads are written under ``<data_dir>/tmp`` and moved into place when
committed. One connection guarded by a lock makes every method safe to call from any thread.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from syncd.errors import StoreBusyError

__all__ = ["DataDirBusyError", "FileStore", "ListQuery", "NewFile", "StoredFile"]

_SCHEMA_VERSION = 1
_LOCK_FILE_NAME = "emulator.lock"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    filename    TEXT    NOT NULL,
    purpose     TEXT    NOT NULL,
    bytes       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    sample_type TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    num_lines   INTEGER,
    mimetype    TEXT,
    signature   TEXT,
    sha256      TEXT    NOT NULL,
    expires_at  INTEGER,
    visibility  TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS files_by_name_and_content ON files (filename, sha256);
-- Listing order (newest first), with expires_at so the liveness test needs no table lookup:
-- without it every page sorted the whole table (a 100,000-file listing took 20 s of CPU).
CREATE INDEX IF NOT EXISTS files_newest_first ON files (created_at DESC, seq DESC, expires_at);
"""
# A file whose upload expiry has passed is gone for every reader, hence the expires_at test in
# each statement. Statements are literals; the one dynamic WHERE (list filters) is assembled
# from fixed clauses only, and every value a client sends is a bound parameter.
_SELECT_COLUMNS = (
    "SELECT id, filename, purpose, bytes, created_at, sample_type, source, num_lines, mimetype,"
    " signature, sha256, expires_at, visibility FROM files"
)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"
_SELECT_LIVE_BY_ID = (
    "SELECT id, filename, purpose, bytes, created_at, sample_type, source, num_lines, mimetype,"
    " signature, sha256, expires_at, visibility FROM files"
    " WHERE id = ? AND (expires_at IS NULL OR expires_at > ?)"
)
_SELECT_DUPLICATE = (
    "SELECT id, filename, purpose, bytes, created_at, sample_type, source, num_lines, mimetype,"
    " signature, sha256, expires_at, visibility FROM files"
    " WHERE filename = ? AND sha256 = ? AND (expires_at IS NULL OR expires_at > ?)"
    " ORDER BY seq LIMIT 1"
)
_INSERT = (
    "INSERT INTO files (id, filename, purpose, bytes, created_at, sample_type, source, num_lines,"
    " mimetype, signature, sha256, expires_at, visibility)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_DELETE_LIVE = "DELETE FROM files WHERE id = ? AND (expires_at IS NULL OR expires_at > ?)"
_COUNT_LIVE = "SELECT COUNT(*) FROM files WHERE expires_at IS NULL OR expires_at > ?"
_SELECT_EXPIRED_IDS = "SELECT id FROM files WHERE expires_at IS NOT NULL AND expires_at <= ?"


class DataDirBusyError(StoreBusyError, RuntimeError):
    """Another emulator (in this or another process) already serves this data dir.

    A :class:`~syncd.errors.StoreBusyError`: for ``syncd sync`` beside a daemon whose embedded
    emulator holds it, it means the same as the state store being held (one line, exit 75).
    """


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file as the API reports it, plus the full content digest used for dedupe."""

    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    sample_type: str
    source: str
    num_lines: int | None
    mimetype: str | None
    signature: str | None
    sha256: str
    expires_at: int | None
    visibility: str

    def to_wire(self) -> dict[str, Any]:
        """The JSON file object of the Files API (without ``deleted``)."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "sample_type": self.sample_type,
            "source": self.source,
            "num_lines": self.num_lines,
            "mimetype": self.mimetype,
            "signature": self.signature,
            "expires_at": self.expires_at,
            "visibility": self.visibility,
        }


@dataclass(frozen=True, slots=True)
class NewFile:
    """What an upload learned about its content; the store adds id and timestamps."""

    filename: str
    purpose: str
    bytes: int
    sha256: str
    sample_type: str
    num_lines: int | None
    mimetype: str | None
    visibility: str
    expiry_hours: int | None
    #: ``upload`` for what clients send; ``mistral`` for what the service made (batch outputs).
    source: str = "upload"


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filters and page of ``GET /v1/files``; empty sequences mean "no filter"."""

    page: int = 0
    page_size: int = 100
    include_total: bool = True
    sample_types: Sequence[str] = ()
    sources: Sequence[str] = ()
    mimetypes: Sequence[str] = ()
    search: str | None = None
    purpose: str | None = None


def _claim_data_dir(data_dir: Path) -> BinaryIO:
    """Hold an exclusive lock on the data dir for this store's lifetime.

    Startup clears the tmp folder and orphan blobs, which would destroy a second live server's
    uploads; refusing to share the directory is the only safe answer.
    """
    handle = (data_dir / _LOCK_FILE_NAME).open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirBusyError(f"{data_dir} is in use by another emulator") from None
    return handle


class FileStore:
    """Thread-safe metadata and blob store rooted at ``data_dir``."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.data_dir = data_dir
        self.blob_dir = data_dir / "blobs"
        self.tmp_dir = data_dir / "tmp"
        self._clock = clock
        for directory in (data_dir, self.blob_dir, self.tmp_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._owner = _claim_data_dir(data_dir)
        try:
            self._db = sqlite3.connect(
                data_dir / "emulator.sqlite3", check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            self._reconcile()
        except BaseException:
            self._owner.close()
            raise

    def close(self) -> None:
        """Close the database and give the data dir free for another server; idempotent."""
        with self._lock:
            self._db.close()
            self._owner.close()

    def _now(self) -> int:
        return int(self._clock())

    def _reconcile(self) -> None:
        """Undo what a crash can leave behind: half-written uploads, blobs without a row."""
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        with self._lock:
            known = {row[0] for row in self._db.execute("SELECT id FROM files")}
            expired = [row[0] for row in self._db.execute(_SELECT_EXPIRED_IDS, (self._now(),))]
            for file_id in expired:
                self._db.execute("DELETE FROM files WHERE id = ?", (file_id,))
                known.discard(file_id)
            for blob in self.blob_dir.iterdir():
                if blob.name not in known:
                    blob.unlink(missing_ok=True)
            for file_id in known:
                if not (self.blob_dir / file_id).is_file():
                    self._db.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def new_upload_path(self) -> Path:
        """A fresh path under the data dir's tmp folder for one incoming upload."""
        return self.tmp_dir / f"{uuid.uuid4().hex}.part"

    def blob_path(self, file_id: str) -> Path:
        """Where the content of ``file_id`` lives (``file_id`` must be a canonical UUID)."""
        return self.blob_dir / file_id

    def commit(self, upload: Path, new: NewFile, *, dedupe: bool) -> tuple[StoredFile, bool]:
        """Store the finished upload at ``upload``; return the file and whether it was a dedupe.

        With ``dedupe``, a live file with the same name and content is returned instead and the
        upload is discarded, as the real API does.
        """
        now = self._now()
        with self._lock:
            if dedupe:
                row = self._db.execute(
                    _SELECT_DUPLICATE, (new.filename, new.sha256, now)
                ).fetchone()
                if row is not None:
                    upload.unlink(missing_ok=True)
                    return StoredFile(*row), True
            expires_at = None if new.expiry_hours is None else now + new.expiry_hours * 3600
            stored = StoredFile(
                id=str(uuid.uuid4()),
                filename=new.filename,
                purpose=new.purpose,
                bytes=new.bytes,
                created_at=now,
                sample_type=new.sample_type,
                source=new.source,
                num_lines=new.num_lines,
                mimetype=new.mimetype,
                signature=new.sha256[:16],
                sha256=new.sha256,
                expires_at=expires_at,
                visibility=new.visibility,
            )
            # Blob first: a crash between the two steps leaves an orphan blob that _reconcile
            # removes, never a row without content.
            upload.replace(self.blob_path(stored.id))
            self._db.execute(
                _INSERT,
                (
                    stored.id,
                    stored.filename,
                    stored.purpose,
                    stored.bytes,
                    stored.created_at,
                    stored.sample_type,
                    stored.source,
                    stored.num_lines,
                    stored.mimetype,
                    stored.signature,
                    stored.sha256,
                    stored.expires_at,
                    stored.visibility,
                ),
            )
            return stored, False

    def add_generated(self, path: Path, new: NewFile) -> StoredFile:
        """Store a file the service itself made (a batch job's output), never deduplicated.

        ``path`` is a finished file from :meth:`new_upload_path`; it is moved into the store.
        """
        stored, _ = self.commit(path, new, dedupe=False)
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        """The live file ``file_id``, or None when unknown, deleted or expired."""
        with self._lock:
            row = self._db.execute(
                _SELECT_LIVE_BY_ID,
                (file_id, self._now()),
            ).fetchone()
        return None if row is None else StoredFile(*row)

    def delete(self, file_id: str) -> bool:
        """Remove ``file_id`` and its content; False when there was no such live file."""
        with self._lock:
            cursor = self._db.execute(
                _DELETE_LIVE,
                (file_id, self._now()),
            )
            if cursor.rowcount == 0:
                return False
            # A download already streaming keeps its open descriptor; unlinking is safe.
            self.blob_path(file_id).unlink(missing_ok=True)
        return True

    def list(self, query: ListQuery) -> tuple[list[StoredFile], int | None]:
        """One page of live files, newest first, and the total when asked for."""
        where, params = self._filters(query)
        offset = query.page * query.page_size
        newest_first = "ORDER BY created_at DESC, seq DESC LIMIT ? OFFSET ?"
        page_sql = f"{_SELECT_COLUMNS} WHERE {where} {newest_first}"
        count_sql = f"SELECT COUNT(*) FROM files WHERE {where}"  # noqa: S608
        with self._lock:
            rows = self._db.execute(page_sql, (*params, query.page_size, offset)).fetchall()
            total = None
            if query.include_total:
                total = self._db.execute(count_sql, params).fetchone()[0]
        return [StoredFile(*row) for row in rows], total

    def count(self) -> int:
        """How many live files there are."""
        with self._lock:
            return int(
                self._db.execute(
                    _COUNT_LIVE,
                    (self._now(),),
                ).fetchone()[0]
            )

    def _filters(self, query: ListQuery) -> tuple[str, tuple[object, ...]]:
        clauses = [_LIVE]
        params: list[object] = [self._now()]
        for column, values in (
            ("sample_type", query.sample_types),
            ("source", query.sources),
            ("mimetype", query.mimetypes),
        ):
            if values:
                clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(values)
        if query.search:
            # instr, not LIKE: a search for "50%_off" must match literally.
            clauses.append("instr(lower(filename), lower(?)) > 0")
            params.append(query.search)
        if query.purpose is not None:
            clauses.append("purpose = ?")
            params.append(query.purpose)
        return " AND ".join(clauses), tuple(params)

    def open_content(self, file_id: str) -> tuple[StoredFile, BinaryIO] | None:
        """The live file and its content opened for reading, or None when it does not exist.

        Opened under the lock so a concurrent delete cannot slip between lookup and open; the
        caller closes the handle.
        """
        with self._lock:
            row = self._db.execute(
                _SELECT_LIVE_BY_ID,
                (file_id, self._now()),
            ).fetchone()
            if row is None:
                return None
            try:
                handle = self.blob_path(file_id).open("rb")
            except FileNotFoundError:
                return None
        return StoredFile(*row), handle
