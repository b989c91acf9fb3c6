"""Where the state database lives: the SQLAlchemy URL and, for SQLite, the file path.

Owns the defaults (``$STATE_DIRECTORY``, systemd's ``StateDirectory=``, else
``/var/lib/syncd``), the rule that a relative SQLite path is relative to the config file, and
the rule that the URL in the config file carries no password (it comes from
``[state] password_file`` or from libpq's own PGPASSWORD, PGPASSFILE or ~/.pgpass).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from syncd.config.problems import HiddenValueError

__all__ = [
    "DEFAULT_STATE_DIR",
    "default_state_dir",
    "default_state_url",
    "is_sqlite",
    "mask_password",
    "resolve_state_url",
    "sqlite_path",
    "with_password",
]

#: Used when neither ``[state] url`` nor ``$STATE_DIRECTORY`` says otherwise.
DEFAULT_STATE_DIR = Path("/var/lib/syncd")
_DB_FILE_NAME = "state.db"

_INLINE_CREDENTIAL_MESSAGE = (
    "database passwords never live in the config file; remove the password from this URL and "
    "put it in the file named by state.password_file (e.g. a systemd LoadCredential=), or let "
    "libpq find it (PGPASSFILE, ~/.pgpass); the URL is not shown"
)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    """``$STATE_DIRECTORY`` (its first entry: systemd joins several with ``:``) or the default."""
    entries = [entry for entry in environ.get("STATE_DIRECTORY", "").split(":") if entry]
    return Path(entries[0]) if entries else DEFAULT_STATE_DIR


def default_state_url(environ: Mapping[str, str]) -> str:
    """The state URL used when ``[state] url`` is not set."""
    return f"sqlite:///{default_state_dir(environ) / _DB_FILE_NAME}"


def resolve_state_url(text: str, base_dir: Path) -> str:
    """Parse ``text`` as a SQLAlchemy URL; make a relative SQLite path absolute under ``base_dir``.

    Raises:
        HiddenValueError: not a SQLAlchemy URL, or it holds a password (in the user-info part or
            as a ``password`` query parameter). The text is never echoed.
    """
    url = _parse(text)
    if url.password is not None or "password" in url.query:
        raise HiddenValueError(_INLINE_CREDENTIAL_MESSAGE)
    path = _sqlite_file(url)
    if path is None:
        return text  # nothing to resolve: keep the URL exactly as written
    absolute = path if path.is_absolute() else (base_dir / path).resolve()
    return url.set(database=str(absolute)).render_as_string(hide_password=False)


def sqlite_path(text: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for in-memory SQLite and other databases."""
    return _sqlite_file(_parse(text))


def is_sqlite(text: str) -> bool:
    """Whether ``text`` is a SQLite URL (a file or in memory)."""
    return _parse(text).get_backend_name() == "sqlite"


def with_password(text: str, password: str) -> str:
    """The URL with ``password`` set (quoted as URLs need it; everything else as parsed)."""
    return _parse(text).set(password=password).render_as_string(hide_password=False)


def mask_password(text: str) -> str:
    """The URL with any password shown as ``***``, for status output; without one, as written."""
    url = _parse(text)
    return text if url.password is None else url.render_as_string(hide_password=True)


def _parse(text: str) -> URL:
    try:
        return make_url(text)
    except ArgumentError:
        raise HiddenValueError(
            "not a SQLAlchemy database URL; expected e.g. 'sqlite:////var/lib/syncd/state.db' "
            "(absolute path) or 'sqlite:///var/state.db' (relative to the config file)"
        ) from None


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        return None  # SQLite URI filenames carry their own rules; taken as written
    return Path(database).expanduser()
