"""Configuration: the TOML file read into frozen, validated pydantic models.

Owns every default and every rule about what a valid config is. Components take their own
section model (``WatchConfig``, ``FolderConfig``...); only the daemon and the CLI see ``Config``.

Modules: ``models`` (the tables), ``field_types`` (durations, paths), ``loader`` (file ->
``Config``, friendly errors), ``credentials`` (the API key), ``problems`` (pydantic errors ->
one line each), and the value parsers ``durations``, ``schedules``, ``endpoints``,
``database_urls``.
"""

from __future__ import annotations

from syncd.config.api_key import ApiKey, find_api_key, require_api_key, resolve_api_key
from syncd.config.durations import format_duration, parse_duration
from syncd.config.endpoints import LOCAL_EMULATOR_NOTE, describe_server
from syncd.config.loader import DEFAULT_CONFIG_PATH, load_config, parse_config
from syncd.config.models import (
    DEFAULT_API_KEY_ENV,
    ApiConfig,
    Config,
    FolderConfig,
    LogConfig,
    MetricsConfig,
    ResultsConfig,
    RetentionConfig,
    StateConfig,
    WatchConfig,
)

__all__ = [
    "DEFAULT_API_KEY_ENV",
    "DEFAULT_CONFIG_PATH",
    "LOCAL_EMULATOR_NOTE",
    "ApiConfig",
    "ApiKey",
    "Config",
    "FolderConfig",
    "LogConfig",
    "MetricsConfig",
    "ResultsConfig",
    "RetentionConfig",
    "StateConfig",
    "WatchConfig",
    "describe_server",
    "find_api_key",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
    "require_api_key",
    "resolve_api_key",
]
