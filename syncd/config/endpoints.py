"""Network endpoints in the config: the Files API server URL and the metrics listen address.

Plain ``http://`` is allowed only to loopback: the API key travels in a header, so anything
that leaves the machine must use TLS.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from syncd.config.problems import HiddenValueError
from syncd.hosts import check_key_transport, is_loopback_host

__all__ = [
    "EMBEDDED_SERVER",
    "LOCAL_EMULATOR_NOTE",
    "MISTRAL_SERVER",
    "check_server_url",
    "describe_server",
    "is_loopback_host",
    "parse_listen_address",
]

#: The ``server_url`` that means "run the Files API emulator inside the daemon".
EMBEDDED_SERVER = "embedded"
#: The default ``server_url``: Mistral's API, as in the SDK. The emulator is only ever chosen.
MISTRAL_SERVER = "https://api.mistral.ai"
#: What every surface that reports uploads says when they go to an emulator.
LOCAL_EMULATOR_NOTE = "local emulator: nothing leaves this machine"

_MAX_PORT = 65535


def check_server_url(text: str) -> str:
    """Validate ``server_url``: ``"embedded"`` or an http(s) URL; returned without trailing ``/``.

    Raises:
        ValueError: not a usable URL, or plain http to a host that is not loopback.
        HiddenValueError: the URL carries a user name or password (never echoed).
    """
    if text == EMBEDDED_SERVER:
        return text
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f'expected "{EMBEDDED_SERVER}" or an http(s) URL such as "https://api.mistral.ai"'
        )
    if parts.username is not None or parts.password is not None:
        raise HiddenValueError(
            "server_url must not contain a user name or password: the API key comes from "
            "api.api_key_env or api.api_key_file"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("the port in server_url is not a number between 0 and 65535") from None
    if parts.query or parts.fragment:
        # Not echoed: a query string is where people paste tokens ("?key=...").
        raise HiddenValueError("server_url must not have a query string or fragment")
    check_key_transport(text)
    return text.rstrip("/")


def describe_server(server_url: str, *, embedded: bool = False) -> str:
    """Name the API uploads go to, for people: the URL, and whether it is the local emulator.

    ``embedded`` says the URL is the daemon's own in-process emulator (its loopback address).
    Another loopback server is only said to be on this machine: it may be a proxy.
    """
    if embedded or server_url == EMBEDDED_SERVER:
        shown = "embedded emulator" if server_url == EMBEDDED_SERVER else server_url
        return f"{shown} ({LOCAL_EMULATOR_NOTE})"
    host = urlsplit(server_url).hostname
    if host is not None and is_loopback_host(host):
        return f"{server_url} (a server on this machine)"
    return server_url


def parse_listen_address(text: str) -> tuple[str, int]:
    """``"127.0.0.1:9108"`` or ``"[::1]:9108"`` -> ``(host, port)``; port 0 lets the OS choose.

    Raises:
        ValueError: not ``host:port``, an unbracketed IPv6 address, or a port out of range.
    """
    host, separator, port_text = text.rpartition(":")
    if not separator or not host:
        raise ValueError('expected "host:port", e.g. "127.0.0.1:9108" or "[::1]:9108"')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError('put an IPv6 address in brackets, e.g. "[::1]:9108"')
    if not port_text.isdigit() or int(port_text) > _MAX_PORT:
        raise ValueError(f"the port must be a number between 0 and {_MAX_PORT}")
    return host, int(port_text)
