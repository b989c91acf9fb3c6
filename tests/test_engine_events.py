"""What happens after an upload is recorded never undoes it, nor strands the next claimed row."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from syncd.api import Mistral
from syncd.config import load_config
from syncd.domain import LocalState
from syncd.emulator import EmulatorServer
from syncd.engine import Engine
from syncd.store import open_store, repo
from syncd.uploader import UploadEvent
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
