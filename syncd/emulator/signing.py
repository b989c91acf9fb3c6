"""Signed download URLs: an HMAC-SHA256 over the file id and the expiry time.

The secret is generated once per data dir and kept there with mode 0600, so URLs survive a
restart and a copied URL cannot be altered to reach another file or to live longer.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["SECRET_FILE_NAME", "SIGNED_PATH", "UrlSigner", "load_or_create_secret"]

#: Where signed URLs point; served without the API key.
SIGNED_PATH = "/_emulator/signed"

SECRET_FILE_NAME = "signing.key"  # noqa: S105 (a file name, not a secret)
_SECRET_BYTES = 32


def load_or_create_secret(data_dir: Path) -> bytes:
    """Read the data dir's signing secret, creating it (mode 0600) on first use."""
    path = data_dir / SECRET_FILE_NAME
    try:
        # O_EXCL: two processes starting at once must not both write a different secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    secret = secrets.token_bytes(_SECRET_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret.hex())
    return secret


def _read_secret(path: Path) -> bytes:
    text = path.read_text(encoding="ascii").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"{path}: signing secret is not hex") from exc
    if len(secret) < 16:
        raise ValueError(f"{path}: signing secret is too short")
    return secret


class UrlSigner:
    """Signs and checks ``(file_id, expires_at)`` pairs."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "UrlSigner(<secret>)"

    def sign(self, file_id: str, expires_at: int) -> str:
        """The hex signature for a URL to ``file_id`` valid until unix time ``expires_at``."""
        message = f"{file_id}:{expires_at}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def is_valid(self, file_id: str, expires_at: int, signature: str, now: float) -> bool:
        """True when ``signature`` matches and ``now`` is before ``expires_at``."""
        if now >= expires_at:
            return False
        return hmac.compare_digest(self.sign(file_id, expires_at), signature)
