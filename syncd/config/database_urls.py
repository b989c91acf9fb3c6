"""Where the state database lives: the SQLAlchemy URL and, for SQLite, the file path.

Owns the defaults (``$STATE_DIRECTORY``, systemd's ``StateDirectory=``, else
``/var/lib/syncd``) and the rule that a relative SQLite path is relative to the config file.
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
    "mask_password",
    "resolve_state_url",
    "sqlite_path",
]

#: Used when neither ``[state] url`` nor ``$STATE_DIRECTORY`` says otherwise.
DEFAULT_STATE_DIR = Path("/var/lib/syncd")
_DB_FILE_NAME = "state.db"


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
        HiddenValueError: not a SQLAlchemy URL (the text is not echoed: it may hold a password).
    """
    url = _parse(text)
    path = _sqlite_file(url)
    if path is None:
        return text  # nothing to resolve: keep the URL exactly as written
    absolute = path if path.is_absolute() else (base_dir / path).resolve()
    return url.set(database=str(absolute)).render_as_string(hide_password=False)


def sqlite_path(text: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for in-memory SQLite and other databases."""
    return _sqlite_file(_parse(text))


def mask_password(text: str) -> str:
    """The URL with any password shown as ``***``, for status output."""
    return _parse(text).render_as_string(hide_password=True)


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
