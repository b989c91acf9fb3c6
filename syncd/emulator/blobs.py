"""Streaming a stored blob as an HTTP response, straight from its open file.

The response owns the already-opened handle (opened under the store's lock, so a concurrent
delete cannot race it) and closes it however the exchange ends: done, HEAD, or client gone.
"""

from __future__ import annotations

from typing import BinaryIO
from urllib.parse import quote

import anyio
import anyio.to_thread
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["BlobResponse"]

_READ_CHUNK = 1024 * 1024


class BlobResponse(Response):
    """Streams an already opened blob; owns the handle and closes it whatever happens."""

    def __init__(self, handle: BinaryIO, size: int, filename: str) -> None:
        super().__init__(
            status_code=200,
            media_type="application/octet-stream",
            headers={
                "content-length": str(size),
                "content-disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
            },
        )
        self._handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if scope["method"] == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            async with anyio.create_task_group() as group:

                async def stop_on_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(stop_on_disconnect)
                while chunk := await anyio.to_thread.run_sync(self._handle.read, _READ_CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()
        finally:
            self._handle.close()
