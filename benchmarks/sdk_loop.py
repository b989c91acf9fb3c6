"""``python -m benchmarks.sdk_loop URL FOLDER``: the loop a user writes without syncd.

Walks FOLDER and uploads every ``*.jsonl`` file (purpose fine-tune), one after the other, with
the official ``mistralai`` SDK; prints ``{"uploaded", "seconds"}`` as JSON. It keeps no state,
hashes and validates nothing: the baseline syncd's per-file bookkeeping is compared against.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mistralai.client import Mistral

__all__ = ["main"]


def main(argv: list[str]) -> int:
    url, folder = argv
    started = time.perf_counter()
    client = Mistral(api_key="bench-key", server_url=url)
    uploaded = 0
    for path in sorted(Path(folder).rglob("*.jsonl")):
        with path.open("rb") as content:
            client.files.upload(
                file={"file_name": path.name, "content": content}, purpose="fine-tune"
            )
        uploaded += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"uploaded": uploaded, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
