"""The client ``syncd files`` uses: the config's server and key rules, or the environment's.

A config file is used when it was named (``-c``, ``SYNCD_CONFIG``) or the default one exists; a
named one that cannot be loaded exits 78. Its server is the config's, the embedded emulator
included (a running daemon's, found through its data dir; else one started for the command),
unless ``--server-url``/``MISTRAL_SERVER_URL`` overrides it. Its key follows the config's rules
(``api_key_env``, then ``api_key_file``). With no config file at all, ``MISTRAL_API_KEY`` and
Mistral's API, as the SDK.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from syncd.api import Mistral
from syncd.api.client import API_KEY_ENV
from syncd.cli.access import CLIENT_RETRIES, connected_or_exit
from syncd.cli.context import EXIT_CONFIG, fail
from syncd.config import DEFAULT_API_KEY_ENV, Config, find_api_key, load_config
from syncd.config.api_key import missing_api_key_message
from syncd.config.endpoints import MISTRAL_SERVER
from syncd.errors import ConfigError
from syncd.logs import register_secret

__all__ = ["files_client"]


def _config(ctx: click.Context) -> Config | None:
    root = ctx.find_root()
    path = Path(str(root.obj)) if root.obj is not None else None
    named = root.get_parameter_source("config_path") not in (
        None,
        click.core.ParameterSource.DEFAULT,
    )
    if path is None or (not named and not path.exists()):
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def _env_key() -> str:
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        fail(
            f"no API key found: set the {DEFAULT_API_KEY_ENV} environment variable, or name a "
            "config with -c (its api_key_env or api_key_file)",
            EXIT_CONFIG,
        )
    return key


@contextmanager
def files_client(ctx: click.Context, server_url: str | None) -> Iterator[Mistral]:
    """The client for one ``syncd files`` command (errors exit with ``error: ...``)."""
    config = _config(ctx)
    if config is None:
        key = _env_key()
        register_secret(key)
        with Mistral(api_key=key, server_url=server_url or MISTRAL_SERVER) as client:
            yield client
        return
    if server_url is None:
        with connected_or_exit(config, share_running=True) as connection:
            yield connection.client
        return
    try:
        found = find_api_key(config.api, os.environ)
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    if found is None:
        fail(missing_api_key_message(config.api), EXIT_CONFIG)
    register_secret(found.value.get_secret_value())
    with Mistral(
        api_key=found.value.get_secret_value(),
        server_url=server_url,
        timeout=config.api.timeout.total_seconds(),
        connect_timeout=config.api.connect_timeout.total_seconds(),
        max_retries=CLIENT_RETRIES,
    ) as client:
        yield client
