"""Read the TOML file and turn it into a :class:`~syncd.config.models.Config`.

Every problem in the file is reported at once, one line each, as a single ``ConfigError``:
``<file>: <key.path>: <what is wrong> (got <value>)``. No pydantic text or URL reaches the user.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from syncd.config.field_types import ResolveContext
from syncd.config.models import Config
from syncd.config.problems import describe_validation_error
from syncd.errors import ConfigError

__all__ = ["DEFAULT_CONFIG_PATH", "load_config", "parse_config"]

DEFAULT_CONFIG_PATH = Path("/etc/syncd/config.toml")

_INLINE_KEY_MESSAGE = (
    "API keys never live in the config file; remove this key and put the key in the "
    "environment variable named by api.api_key_env (default MISTRAL_API_KEY) or in the file "
    "named by api.api_key_file (e.g. a systemd LoadCredential=)"
)


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config file at ``path``.

    ``environ`` (default ``os.environ``) supplies ``STATE_DIRECTORY`` and
    ``CREDENTIALS_DIRECTORY``. A ``[state] password_file`` is read here too.

    Raises:
        ConfigError: the file is missing, unreadable, not TOML, or has bad keys or values.
    """
    source = Path(path).expanduser().absolute()
    try:
        raw = source.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: config file not found (pass -c PATH or set SYNCD_CONFIG)"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read config file: {exc.strerror}") from None
    decoded = _decoded(raw)
    if isinstance(decoded, int):
        # Raised outside the except block: a UnicodeDecodeError carries the file's bytes,
        # and the file may hold a (refused) api_key.
        raise ConfigError(f"{source}: not UTF-8 text (bad byte at offset {decoded})")
    return parse_config(decoded, source=source, environ=environ)


def parse_config(text: str, *, source: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Validate config ``text`` as if read from ``source`` (relative paths resolve beside it).

    Reads no file but ``[state] password_file`` (its content is kept as a secret, never
    shown); ``environ`` defaults to ``os.environ``.

    Raises:
        ConfigError: one line per problem, each naming ``source`` and the key path.
    """
    source = Path(source).absolute()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)".
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    problems = _pop_inline_api_keys(data)
    context = ResolveContext(
        base_dir=source.parent, environ=os.environ if environ is None else environ
    )
    config: Config | None = None
    try:
        config = Config.model_validate(data, context=context.as_validation_context())
    except ValidationError as exc:
        problems.extend(describe_validation_error(exc, Config))
    if problems or config is None:
        # Not chained: pydantic's own text (with its URLs and raw inputs) stays out of tracebacks.
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in problems))
    return config


def _decoded(raw: bytes) -> str | int:
    """The UTF-8 text, or the offset of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start


def _pop_inline_api_keys(data: dict[str, Any]) -> list[str]:
    """Take out any ``api_key`` so its value cannot reach an error message, and say why."""
    problems: list[str] = []
    if data.pop("api_key", None) is not None:
        problems.append(f"api_key: {_INLINE_KEY_MESSAGE}")
    api = data.get("api")
    if isinstance(api, dict) and api.pop("api_key", None) is not None:
        problems.append(f"api.api_key: {_INLINE_KEY_MESSAGE}")
    return problems
