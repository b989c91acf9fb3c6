"""``python -m benchmarks.upload_one URL PATH PURPOSE FILENAME``: one upload through syncd.api.

Run as its own process so its peak RSS is syncd's alone. Prints ``{"seconds", "bytes", "id"}``
as JSON; the seconds cover the upload call only, as curl's ``time_total`` does.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from syncd.api import Mistral

__all__ = ["main"]


def main(argv: list[str]) -> int:
    url, path, purpose, filename = argv
    with Mistral(api_key="bench-key", server_url=url, max_retries=0) as client:
        started = time.perf_counter()
        info = client.files.upload(file=Path(path), purpose=purpose, filename=filename)
        seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "bytes": info.bytes, "id": info.id}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
