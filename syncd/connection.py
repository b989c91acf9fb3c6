"""Open the Files API a configuration points at: a real URL, or the embedded emulator.

``server_url = "embedded"`` starts the emulator in-process on a loopback port, with its data
beside the state database, so nobody needs an account to try syncd.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from syncd.api import Mistral
from syncd.config import ApiConfig, Config, require_api_key, resolve_api_key
from syncd.config.credentials import missing_api_key_message
from syncd.errors import ConfigError
from syncd.logs import register_secret

if TYPE_CHECKING:
    from syncd.emulator import EmulatorServer

__all__ = ["EMBEDDED_API_KEY", "Connection", "connect"]

log = structlog.get_logger(__name__)

#: The embedded emulator accepts any bearer token; this one only fills the header.
EMBEDDED_API_KEY = "embedded"


@dataclass(frozen=True, slots=True)
class Connection:
    client: Mistral
    server_url: str
    embedded: EmulatorServer | None


def _api_key(api: ApiConfig, environ: Mapping[str, str]) -> str:
    found = require_api_key(api, environ)
    if found is None:  # only the embedded emulator needs none, and it is not this server
        raise ConfigError(missing_api_key_message(api))
    return found.value.get_secret_value()


@contextmanager
def connect(
    config: Config, environ: Mapping[str, str], *, max_retries: int = 0
) -> Iterator[Connection]:
    """Yield a client for the configured API; the daemon uses ``max_retries=0`` (it persists
    its own retry times), interactive commands may ask for in-call retries."""
    api = config.api
    embedded: EmulatorServer | None = None
    if api.is_embedded:
        # Imported here: a real API never needs the emulator's web stack loaded.
        from syncd.emulator import EmulatorServer

        embedded = EmulatorServer(config.state.embedded_data_dir)
        server_url = embedded.start()
        key = resolve_api_key(api, environ) or EMBEDDED_API_KEY
        log.info("emulator_started", url=server_url, data_dir=str(config.state.embedded_data_dir))
    else:
        server_url = api.server_url
        key = _api_key(api, environ)
    # From here on no log line can carry the key, whatever a library puts in a message.
    register_secret(key)
    client = Mistral(
        api_key=key,
        server_url=server_url,
        timeout=api.timeout.total_seconds(),
        connect_timeout=api.connect_timeout.total_seconds(),
        timeout_per_mb=api.timeout_per_mb.total_seconds(),
        max_retries=max_retries,
    )
    try:
        yield Connection(client=client, server_url=server_url, embedded=embedded)
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()
