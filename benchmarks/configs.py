"""syncd configuration files for the benchmarks: one folder, a server URL, explicit settings.

Every setting a figure depends on (concurrency, settle, log level) is written out, so a change
of syncd's defaults cannot silently change what a benchmark measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import API_KEY

__all__ = ["SyncdSetup", "syncd_env", "write_syncd_config"]


@dataclass(frozen=True, slots=True)
class SyncdSetup:
    """A written configuration: the file, the watched folder and the state database."""

    config: Path
    folder: Path
    state_db: Path


def write_syncd_config(
    directory: Path,
    *,
    folder: Path,
    server_url: str,
    concurrency: int = 8,
    settle: str = "2s",
    purpose: str = "fine-tune",
    log_level: str = "info",
) -> SyncdSetup:
    """Write ``directory/config.toml`` watching ``folder``; state goes to ``directory/state``."""
    state_db = directory / "state" / "state.db"
    text = f"""\
[api]
server_url = "{server_url}"
concurrency = {concurrency}
max_attempts = 8

[state]
url = "sqlite:///{state_db}"

[watch]
settle = "{settle}"
rescan_interval = "1h"

[log]
format = "json"
level = "{log_level}"

[[folders]]
path = "{folder}"
purpose = "{purpose}"
"""
    config = directory / "config.toml"
    config.write_text(text, encoding="utf-8")
    return SyncdSetup(config=config, folder=folder, state_db=state_db)


def syncd_env(base: dict[str, str]) -> dict[str, str]:
    """``base`` plus the API key syncd reads from the environment."""
    return {**base, "MISTRAL_API_KEY": API_KEY}
