"""What happens after an upload is recorded never undoes it, nor strands the next claimed row."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from syncd.api import Mistral
from syncd.config import load_config
from syncd.domain import LocalState
from syncd.emulator import EmulatorServer
from syncd.engine import Engine
from syncd.store import open_store, repo
from syncd.upload import UploadEvent
from tests.configs import FolderSetup, write_chat_file, write_config

FILES = 12


def test_a_failing_upload_callback_neither_requeues_the_file_nor_stalls_the_queue(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """The first upload's event handler raises: that file stays uploaded (not sent again), and
    the row its worker claimed with the record is still uploaded, like every other."""
    folder = tmp_path / "ft"
    for i in range(FILES):
        write_chat_file(folder / f"f{i:02}.jsonl", 1, salt=str(i))
    config = load_config(
        write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    )
    seen: list[UploadEvent] = []

    def on_upload(event: UploadEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("a broken progress handler")

    with (
        open_store(config.state.database_url, threads=config.store_threads) as store,
        Mistral(api_key=api_key, server_url=emulator.url) as client,
    ):
        report = Engine(config, store, client.files, on_upload=on_upload).sync_once()
        with store.session() as s:
            states = Counter(row.state for row in repo.list_local(s))
        names = Counter(info.filename for info in client.files.iter_all())
    assert states == {LocalState.UPLOADED: FILES}, states
    assert report.not_uploaded == 0
    assert sorted(names) == [f"f{i:02}.jsonl" for i in range(FILES)]
    assert set(names.values()) == {1}, names
    assert [event.outcome for event in seen] == ["uploaded"] * FILES


def test_an_upload_finishing_after_a_takeover_that_was_recorded_elsewhere_is_discarded(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    """Fleet mode: this node's upload lands after another node took the row over and recorded
    the same content as its own file. Keeping both would be a duplicate: this one is deleted."""
    emulator = make_emulator(latency_ms=1500, dedupe=False)
    folder = tmp_path / "ft"
    path = write_chat_file(folder / "a.jsonl", 1)
    config = load_config(
        write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    )
    with (
        open_store(config.state.database_url, threads=config.store_threads) as store,
        Mistral(api_key=api_key, server_url=emulator.url) as client,
    ):
        # The other node's copy of the same bytes (uploaded before ours is even claimed).
        theirs = client.files.upload(file=path, purpose="fine-tune", filename="a.jsonl")
        engine = Engine(config, store, client.files)
        done = threading.Event()

        def sync() -> None:
            engine.sync_once()
            done.set()

        worker = threading.Thread(target=sync, daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        record = None
        while time.monotonic() < deadline:
            with store.session() as s:
                record = repo.list_local(s)[0] if repo.list_local(s) else None
            if record is not None and record.state is LocalState.UPLOADING:
                break
            time.sleep(0.02)
        assert record is not None and record.state is LocalState.UPLOADING
        # Meanwhile another node takes the row over and records its copy.
        with store.session() as s:
            repo.record_upload(
                s,
                record.id,
                file_id=theirs.id,
                filename="a.jsonl",
                bytes=record.size,
                sha256=record.sha256 or "",
                purpose="fine-tune",
                created_at=record.updated_at,
                now=record.updated_at,
            )
        worker.join(timeout=60)
        assert done.is_set()
        with store.session() as s:
            (final,) = repo.list_local(s)
        remote = [f.id for f in client.files.iter_all()]
    assert (final.state, final.remote_file_id) == (LocalState.UPLOADED, theirs.id)
    assert remote == [theirs.id]
