"""An HTTP proxy the environment names carries the API's requests, uploads included."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from syncd.api import Mistral

_ANSWER = {
    "id": "file-through-proxy",
    "object": "file",
    "bytes": 3,
    "created_at": 1,
    "filename": "a.jsonl",
    "purpose": "fine-tune",
    "sample_type": "instruct",
    "source": "upload",
}


class _Proxy:
    """A forward proxy on loopback that answers every request itself, keeping request lines."""

    def __init__(self) -> None:
        self.request_lines: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.request_lines.append(lines[0])
        length = next(
            (
                int(line.split(":", 1)[1])
                for line in lines
                if line.lower().startswith("content-length:")
            ),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk
        payload = json.dumps(_ANSWER).encode()
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    def close(self) -> None:
        self._server.close()


def test_an_environment_proxy_carries_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client sends small answers' requests on its transport directly (issue 25): the
    transport it picks for the API is still the proxy ``HTTP_PROXY`` names, so the upload
    reaches the proxy as an absolute-form request and its answer comes back."""
    proxy = _Proxy()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    source = tmp_path / "a.jsonl"
    source.write_bytes(b"{}\n")
    # Nothing listens on the API's own address: only the proxy can answer.
    closed = socket.create_server(("127.0.0.1", 0))
    api = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    try:
        with Mistral(api_key="test-key-proxy", server_url=api, max_retries=0) as client:
            info = client.files.upload(file=source, purpose="fine-tune")
    finally:
        proxy.close()
    assert info.id == "file-through-proxy"
    assert proxy.request_lines == [f"POST {api}/v1/files HTTP/1.1"]
