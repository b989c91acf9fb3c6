"""The API key: from the environment variable first, then ``[api] api_key_file``.

Apart from :mod:`syncd.config.credentials` (which reads credential files for the models, so it
must not import them) because it reads the key as the loaded ``[api]`` table says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from syncd.config.credentials import read_secret_file
from syncd.config.models import ApiConfig
from syncd.config.problems import HiddenValueError
from syncd.domain import is_sendable_api_key
from syncd.errors import ConfigError

__all__ = [
    "ApiKey",
    "find_api_key",
    "missing_api_key_message",
    "require_api_key",
    "resolve_api_key",
]


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
