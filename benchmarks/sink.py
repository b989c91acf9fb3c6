"""A bare upload sink: uvicorn with h11 (the emulator's HTTP stack), reading and dropping bodies.

``python -m benchmarks.sink`` prints ``sink listening on <url>`` and serves until SIGTERM. It
answers every ``POST /v1/files`` with a fixed file object after reading the whole body; what
the emulator adds on top (multipart parsing, hashing, validation, SQLite, the blob on disk) is
the difference between the two in the emulator benchmark.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys

import uvicorn
from starlette.types import Receive, Scope, Send

__all__ = ["app", "main"]

_ANSWER = json.dumps(
    {
        "id": "00000000-0000-4000-8000-000000000000",
        "object": "file",
        "bytes": 0,
        "created_at": 0,
        "filename": "sink",
        "purpose": "fine-tune",
        "sample_type": "instruct",
        "source": "upload",
        "num_lines": None,
        "mimetype": None,
        "signature": None,
        "expires_at": None,
        "visibility": "workspace",
    }
).encode()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the request body to its end, then answer 200 with a file object."""
    if scope["type"] != "http":
        return
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_ANSWER)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _ANSWER})


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(
        app, http="h11", lifespan="off", log_config=None, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    print(f"sink listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    asyncio.run(server.serve(sockets=[sock]))
    sys.exit(0)


if __name__ == "__main__":
    main()
