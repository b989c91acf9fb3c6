"""Which hosts are this machine's own (loopback), and the one rule for sending the API key.

The rule lives here, below the config and the API client, so the daemon's config check, the
Python client and ``syncd files`` refuse the same URLs with the same message: the key travels in
a header, so anything that leaves the machine must use TLS.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["PLAIN_HTTP_REFUSED", "check_key_transport", "is_loopback_host", "split_host_port"]

#: Why a plain ``http://`` URL to another host is refused, wherever the key would be sent.
PLAIN_HTTP_REFUSED = (
    "plain http:// is allowed only for loopback hosts (localhost, 127.0.0.1, ::1); "
    "use https:// so the API key is sent over TLS"
)


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP address (127.0.0.0/8, ::1); any other name is not."""
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_key_transport(url: str) -> None:
    """Refuse a server URL the API key must not be sent to: plain http to a non-loopback host.

    Raises:
        ValueError: :data:`PLAIN_HTTP_REFUSED`, for ``http://`` to a host that is not loopback.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname or ""):
        raise ValueError(PLAIN_HTTP_REFUSED)


def split_host_port(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header's ``(host, port)`` (IPv6 without brackets, port None when absent);
    None when it is not ``host[:port]``."""
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = value.rpartition(":")
        if not colon:
            host, port_text = value, None
        else:
            port_text = port_text_or_empty
    if not host:
        return None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or len(port_text) > 5:
        return None
    return host, int(port_text)
