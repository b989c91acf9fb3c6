"""Open the Files API a configuration points at: a real URL, or the embedded emulator.

``server_url = "embedded"`` starts the emulator in-process on a loopback port, with its data
beside the state database, so nobody needs an account to try syncd. Its address is published
in its data dir, so a reading command run beside the daemon (``share_running``) talks to the
daemon's emulator instead of refusing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from syncd.api import Mistral
from syncd.config import ApiConfig, Config, require_api_key, resolve_api_key
from syncd.config.api_key import missing_api_key_message
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
    """The emulator this process started, if it did."""
    borrowed: bool = False
    """True when the server is a running syncd's embedded emulator (``share_running``)."""

    @property
    def is_local_emulator(self) -> bool:
        return self.embedded is not None or self.borrowed


def _api_key(api: ApiConfig, environ: Mapping[str, str]) -> str:
    found = require_api_key(api, environ)
    if found is None:  # only the embedded emulator needs none, and it is not this server
        raise ConfigError(missing_api_key_message(api))
    return found.value.get_secret_value()


@contextmanager
def connect(
    config: Config,
    environ: Mapping[str, str],
    *,
    max_retries: int = 0,
    share_running: bool = False,
) -> Iterator[Connection]:
    """Yield a client for the configured API; the daemon uses ``max_retries=0`` (it persists
    its own retry times), interactive commands may ask for in-call retries.

    ``share_running``: when a running syncd holds the embedded emulator's data dir, talk to
    that emulator (its published address) instead of raising ``DataDirBusyError``.
    """
    api = config.api
    embedded: EmulatorServer | None = None
    borrowed = False
    if api.is_embedded:
        # Imported here: a real API never needs the emulator's web stack loaded.
        from syncd.emulator import DataDirBusyError, EmulatorServer
        from syncd.emulator.address import publish_url, published_url

        data_dir = config.state.embedded_data_dir
        embedded = EmulatorServer(data_dir)
        try:
            server_url = embedded.start()
        except DataDirBusyError:
            running = published_url(data_dir) if share_running else None
            if running is None:
                raise
            embedded, server_url, borrowed = None, running, True
        else:
            publish_url(data_dir, server_url)
            log.info("emulator_started", url=server_url, data_dir=str(data_dir))
        key = resolve_api_key(api, environ) or EMBEDDED_API_KEY
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
        yield Connection(client=client, server_url=server_url, embedded=embedded, borrowed=borrowed)
    finally:
        client.close()
        if embedded is not None:
            from syncd.emulator.address import withdraw_url

            withdraw_url(config.state.embedded_data_dir, server_url)
            embedded.stop()
