"""Credentials: where their files are, and reading them. Never the TOML.

The API key comes from the environment variable first, then the key file; the state database's
password from ``[state] password_file`` (else libpq's own PGPASSWORD, PGPASSFILE, ~/.pgpass). A
relative credential file is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd's
``LoadCredential=``) when it is set, else beside the config file.

Secrets are held as ``SecretStr`` so a stray repr or log line shows asterisks. Errors name the
variable or the file, never the content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from syncd.config.field_types import ResolveContext, resolve_path
from syncd.config.problems import HiddenValueError
from syncd.domain import is_sendable_api_key

__all__ = [
    "SecretFile",
    "credential_path",
    "read_password_file",
    "read_secret_file",
    "read_token_file",
]


def credential_path(value: object, context: ResolveContext) -> Path:
    """A credential file's absolute path: a relative one is in ``$CREDENTIALS_DIRECTORY`` when
    systemd sets it, else beside the config file.

    systemd's ``LoadCredential=`` puts credentials in ``$CREDENTIALS_DIRECTORY``, so a unit can
    say ``api_key_file = "mistral-api-key"`` whatever directory systemd picked.

    Raises:
        ValueError: not a non-empty path string.
    """
    credentials_dir = context.environ.get("CREDENTIALS_DIRECTORY")
    return resolve_path(value, Path(credentials_dir) if credentials_dir else context.base_dir)


def read_secret_file(path: Path) -> str:
    """The text of the credential file at ``path``, not stripped.

    Raises:
        HiddenValueError: the file is missing, unreadable, not UTF-8 or blank. The message
            names the file, never its content (a UnicodeDecodeError, which carries the
            bytes, is never chained to it).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HiddenValueError(f"cannot read {path}: {exc.strerror}") from None
    text = _decoded(raw)
    if text is None:
        # Raised outside the except block: a UnicodeDecodeError carries the file's bytes.
        raise HiddenValueError(f"{path} is not UTF-8 text")
    if not text.strip():
        raise HiddenValueError(f"{path} is empty")
    return text


@dataclass(frozen=True, slots=True)
class SecretFile:
    """A credential file read when the config was loaded: where it is, and what it holds."""

    path: Path
    value: SecretStr
    """Never print it; its repr is asterisks."""

    def __str__(self) -> str:
        return str(self.path)


def read_password_file(path: Path) -> SecretFile:
    """The database password in the file at ``path``: the whole file but a final line break.

    Raises:
        HiddenValueError: as :func:`read_secret_file`, or the password spans several lines or
            holds a NUL character (libpq cannot send either).
    """
    password = read_secret_file(path).removesuffix("\n").removesuffix("\r")
    if "\n" in password or "\r" in password:
        raise HiddenValueError(
            f"{path} must hold the password alone, on one line (a final line break is ignored)"
        )
    if "\0" in password:
        raise HiddenValueError(f"{path} holds a NUL character, which no password may contain")
    return SecretFile(path, SecretStr(password))


def read_token_file(path: Path) -> SecretFile:
    """The status page's bearer token in the file at ``path``, surrounding whitespace ignored.

    Raises:
        HiddenValueError: as :func:`read_secret_file`, or the token has a character a bearer
            token cannot carry (a space, a line break, a control or non-ASCII character).
    """
    token = read_secret_file(path).strip()
    if not is_sendable_api_key(token) or token.lower().startswith("bearer "):
        raise HiddenValueError(
            f"{path} must hold one token alone: printable ASCII, no spaces or line breaks "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return SecretFile(path, SecretStr(token))


def _decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
