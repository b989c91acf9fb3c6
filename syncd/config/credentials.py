"""Credentials: where their files are, and reading them. Never the TOML.

The API key comes from the environment variable first, then the key file; the state database's
password from ``[state] password_file`` (else libpq's own PGPASSWORD, PGPASSFILE, ~/.pgpass). A
relative credential file is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd's
``LoadCredential=``) when it is set, else beside the config file.

Secrets are held as ``SecretStr`` so a stray repr or log line shows asterisks. Errors name the
variable or the file, never the content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from syncd.config.field_types import ResolveContext, resolve_path
from syncd.config.problems import HiddenValueError
from syncd.domain import is_sendable_api_key
from syncd.errors import ConfigError

if TYPE_CHECKING:  # models imports this module for its credential files
    from syncd.config.models import ApiConfig

__all__ = [
    "ApiKey",
    "SecretFile",
    "credential_path",
    "find_api_key",
    "missing_api_key_message",
    "read_password_file",
    "read_secret_file",
    "read_token_file",
    "require_api_key",
    "resolve_api_key",
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


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key and where it was found (for status output: never print ``value``)."""

    value: SecretStr
    source: str
    """``"environment variable MISTRAL_API_KEY"`` or ``"file /run/credentials/.../key"``."""


def find_api_key(api: ApiConfig, environ: Mapping[str, str]) -> ApiKey | None:
    """The key from ``environ[api.api_key_env]``, else from ``api.api_key_file``; else ``None``.

    Surrounding whitespace (the newline most editors add) is stripped.

    Raises:
        ConfigError: the key file is missing, unreadable, empty or holds more than one token,
            or the key (from either place) is not printable ASCII.
    """
    from_env = environ.get(api.api_key_env, "").strip()
    if from_env:
        source = f"environment variable {api.api_key_env}"
        _check_sendable(from_env, source)
        return ApiKey(SecretStr(from_env), source)
    path = api.api_key_file
    if path is None:
        return None
    try:
        key, problem = read_secret_file(path).strip(), None
    except HiddenValueError as exc:
        key, problem = "", str(exc)
    if problem is not None:
        # Raised outside the except block, so no exception context rides along.
        raise ConfigError(f"api.api_key_file: {problem}")
    if len(key.split()) != 1:
        raise ConfigError(
            f"api.api_key_file: {path} must hold the key alone, without spaces or extra lines"
        )
    _check_sendable(key, f"api.api_key_file: {path}")
    return ApiKey(SecretStr(key), f"file {path}")


def resolve_api_key(api: ApiConfig, environ: Mapping[str, str]) -> str | None:
    """The API key as plain text, or ``None`` when neither the variable nor the file has one.

    Raises:
        ConfigError: as :func:`find_api_key`.
    """
    found = find_api_key(api, environ)
    return None if found is None else found.value.get_secret_value()


def missing_api_key_message(api: ApiConfig) -> str:
    """Why a real API cannot be used without a key, naming where one is looked for."""
    where = f"the {api.api_key_env} environment variable"
    if api.api_key_file is not None:
        where += f" or the file {api.api_key_file}"
    return f"no API key found: set {where} (keys never live in the TOML)"


def require_api_key(api: ApiConfig, environ: Mapping[str, str]) -> ApiKey | None:
    """The key a connection to ``api`` will send; ``None`` only for the embedded emulator,
    which needs none. The one rule ``run``, ``sync``, ``files`` and ``check-config`` apply.

    Raises:
        ConfigError: as :func:`find_api_key`, or no key for a server that needs one.
    """
    found = find_api_key(api, environ)
    if found is None and not api.is_embedded:
        raise ConfigError(missing_api_key_message(api))
    return found


def _check_sendable(key: str, where: str) -> None:
    """Refuse a key that cannot travel in an HTTP header, without ever showing it.

    A space, a control character (a newline from a pasted two-line value) or a non-ASCII letter
    makes the HTTP library raise an error that quotes the whole header, key included, and that
    error would reach logs and the state database. Such a key is a typo anyway: refuse it here,
    naming only where it came from.

    Raises:
        ConfigError: the key holds anything but printable ASCII (an optional leading
            ``Bearer `` aside).
    """
    if not is_sendable_api_key(key):
        raise ConfigError(
            f"{where}: the API key holds a space, a control character (e.g. a line break) or a "
            "non-ASCII character; an API key is one token of printable ASCII"
        )


def _decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
