"""Bad-input catalogue, end to end: what a watched folder or a config file can hold that is wrong.

Every case goes through the real CLI (``syncd sync`` and ``syncd status --json`` in-process with
the emulator over loopback, ``syncd sync`` in a subprocess without root's file capabilities, or
``syncd run`` as a daemon subprocess) and asserts the exact message the user is shown. For a bad
file the rest of its folder still syncs (a good file beside it is uploaded) and nothing is lost
(the bad entry is left as it was on disk and its row, with the reason, stays in the store).
Only the two mid-hash races run at the pipeline level, with a real store and real files, because
their timing cannot be steered through the CLI; their second pass is ``syncd sync`` again.

The catalogue has 52 cases (one test id each): 22 bad files beside a good one, 3 unreadable
files or directories, 2 files changed or removed while hashed, 7 awkward names that must
upload, 1 tree 300 levels deep, 2 watched folders lost under the daemon, and 15 configuration
and API-key errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from syncd.api import Mistral
from syncd.cli import cli
from syncd.config import load_config
from syncd.emulator import EmulatorServer
from syncd.folder_specs import folder_spec
from syncd.paths import printable_key
from syncd.pipeline import Pipeline
from syncd.store import open_store, repo
from tests.configs import (
    FolderSetup,
    chat_line,
    write_batch_file,
    write_chat_file,
    write_config,
)
from tests.daemon_process import DaemonProcess
from tests.support import wait_until

#: Variables the CLI reads; cleared so the machine running the tests does not leak in.
CLEAN_ENV: dict[str, str | None] = {
    "SYNCD_CONFIG": None,
    "STATE_DIRECTORY": None,
    "CREDENTIALS_DIRECTORY": None,
    # Wide enough that rich never folds a 255-byte name in the status table.
    "COLUMNS": "1000",
}

Files = dict[str, dict[str, Any]]


# -- running the CLI -------------------------------------------------------------------------------


def invoke(config: Path, *args: str, api_key: str | None) -> Result:
    """``syncd -c CONFIG ARGS...`` in-process, with ``api_key`` as MISTRAL_API_KEY."""
    return CliRunner().invoke(
        cli,
        ["-c", str(config), *args],
        env={**CLEAN_ENV, "MISTRAL_API_KEY": api_key},
        catch_exceptions=False,
    )


def status_rows(config: Path, api_key: str) -> list[dict[str, Any]]:
    """``syncd status --json``: every file row."""
    result = invoke(config, "status", "--json", api_key=api_key)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)["files"]
    return rows


def status_files(config: Path, api_key: str) -> Files:
    """``syncd status --json``: every file row, by path (for a config with one folder)."""
    return {str(row["path"]): row for row in status_rows(config, api_key)}


def remote_by_name(emulator: EmulatorServer, api_key: str) -> dict[str, str]:
    """Remote filename -> file id, for every file on the emulator."""
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        return {info.filename: info.id for info in client.files.iter_all()}


def remote_content(emulator: EmulatorServer, api_key: str, file_id: str) -> bytes:
    with (
        Mistral(api_key=api_key, server_url=emulator.url) as client,
        client.files.download(file_id) as response,
    ):
        return response.read()


def sync_as_root_without_dac_override(
    config: Path, api_key: str
) -> subprocess.CompletedProcess[str]:
    """``syncd sync`` in a subprocess that keeps uid 0 but loses CAP_DAC_OVERRIDE/READ_SEARCH.

    Tests run as root, and root reads a 0000 file anyway; without those two capabilities the
    kernel applies file modes to it like to anyone, so "permission denied" is real.
    """
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "util-linux setpriv is needed to drop root's file capabilities"
    return subprocess.run(
        [
            setpriv,
            "--bounding-set",
            "-dac_override,-dac_read_search",
            sys.executable,
            "-m",
            "syncd",
            "-c",
            str(config),
            "sync",
            "--no-progress",
        ],
        env={**os.environ, "MISTRAL_API_KEY": api_key},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def log_events(stderr: str, name: str) -> list[dict[str, Any]]:
    """The JSON log events called ``name`` in a captured stderr."""
    events = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") == name:
            events.append(event)
    return events


def fingerprint(path: Path) -> tuple[int, int, str]:
    """(mode, size, sha256 or link target) of whatever is at ``path``, without following it."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return st.st_mode, st.st_size, str(path.readlink())
    if stat.S_ISREG(st.st_mode) and st.st_size < 1_000_000:
        return st.st_mode, st.st_size, hashlib.sha256(path.read_bytes()).hexdigest()
    return st.st_mode, st.st_size, ""


def write_good_file(folder: Path, purpose: str) -> Path:
    """A valid ``good.*`` file for ``purpose`` in ``folder``."""
    if purpose == "ocr":
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "good.pdf").write_bytes(b"%PDF-1.4 good\n")
        return folder / "good.pdf"
    if purpose == "batch":
        return write_batch_file(folder / "good.jsonl", salt="good")
    return write_chat_file(folder / "good.jsonl", salt="good")


# -- 1. bad files beside a good one ---------------------------------------------------------------


def _text(name: str, content: str) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / name).write_text(content, encoding="utf-8")

    return make


def _bytes(name: str, content: bytes) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        (folder / name).write_bytes(content)

    return make


def _sparse(name: str, size: int) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        with (folder / name).open("wb") as handle:
            handle.truncate(size)  # a hole: no disk blocks are used

    return make


def _symlink(name: str, target: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).symlink_to(target)


def _symlink_to_sibling(folder: Path) -> None:
    write_chat_file(folder.parent / "outside.jsonl", salt="outside")
    (folder / "up.jsonl").symlink_to("../outside.jsonl")


def _symlink_loop(folder: Path) -> None:
    (folder / "loop-a.jsonl").symlink_to("loop-b.jsonl")
    (folder / "loop-b.jsonl").symlink_to("loop-a.jsonl")


def _fifo(folder: Path) -> None:
    os.mkfifo(folder / "pipe.jsonl")


def _char_device(folder: Path) -> None:
    # /dev/null's numbers; root may mknod, and the scanner must never open it.
    os.mknod(folder / "null.jsonl", stat.S_IFCHR | 0o600, os.makedev(1, 3))


def _non_utf8_name(folder: Path) -> None:
    # Latin-1 "café": the byte 0xe9 alone is not UTF-8 (a surrogate escape in the str).
    (folder / os.fsdecode(b"caf\xe9.jsonl")).write_text(_lines(chat_line("q", "a")), "utf-8")


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


_CHAT = chat_line("question", "answer")
_USER_LAST = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
_PRETTY = json.dumps(json.loads(_CHAT), indent=2)
_NOT_JSON = "line {}: not valid JSON: Expecting value (column 1)"


@dataclass(frozen=True)
class BadFile:
    """One catalogue entry: how to make the bad entry, and what status must say about it."""

    make: Callable[[Path], None]
    path: str
    reason: str
    purpose: str = "fine-tune"
    folder_keys: dict[str, str] = field(default_factory=dict)
    state: str = "quarantined"
    whole: bool = True
    """False: ``reason`` is how the message starts (the rest is more of the same)."""


BAD_FILES = [
    pytest.param(
        BadFile(_text("words.jsonl", "just some words\n"), "words.jsonl", _NOT_JSON.format(1)),
        id="not-json",
    ),
    pytest.param(
        BadFile(
            _text("array.jsonl", "[1, 2]\n"),
            "array.jsonl",
            "line 1: expected a JSON object, got an array",
        ),
        id="json-array-not-object",
    ),
    pytest.param(
        BadFile(
            _text("pretty.jsonl", _PRETTY + "\n"),
            "pretty.jsonl",
            "line 1: not valid JSON: Expecting property name enclosed in double quotes "
            "(column 2); this looks like pretty-printed JSON: JSONL needs one record per line; "
            "line 2: not valid JSON: Extra data (column 13); ",
            whole=False,
        ),
        id="pretty-printed-json",
    ),
    pytest.param(
        BadFile(
            _text("gap.jsonl", _lines(_CHAT, "", _CHAT)),
            "gap.jsonl",
            "line 2: blank line; JSONL needs one JSON object per line",
        ),
        id="blank-line-between-records",
    ),
    pytest.param(
        BadFile(
            _bytes("bom.jsonl", b"\xef\xbb\xbf" + _CHAT.encode() + b"\n"),
            "bom.jsonl",
            "line 1: starts with a byte order mark (BOM); save the file as UTF-8 without BOM",
        ),
        id="byte-order-mark",
    ),
    pytest.param(
        BadFile(
            _text("nan.jsonl", '{"text": NaN}\n'),
            "nan.jsonl",
            "line 1: not valid JSON: NaN is not allowed in JSON",
        ),
        id="nan-constant",
    ),
    pytest.param(
        BadFile(
            _text("cut.jsonl", _CHAT + "\n" + _CHAT[:30]),
            "cut.jsonl",
            "line 2: not valid JSON: Expecting property name enclosed in double quotes (column 31)",
        ),
        id="truncated-last-record",
    ),
    pytest.param(
        BadFile(
            _text("user-last.jsonl", _lines(_USER_LAST)),
            "user-last.jsonl",
            "line 1: message 1: the last message must be from the assistant, got 'user'",
        ),
        id="schema-last-message-not-assistant",
    ),
    pytest.param(
        BadFile(
            _text("nobody.jsonl", _lines(json.dumps({"custom_id": "1"}))),
            "nobody.jsonl",
            'line 1: missing "body"',
            purpose="batch",
        ),
        id="batch-line-without-body",
    ),
    pytest.param(
        BadFile(
            _bytes("latin1.jsonl", b'{"text": "caf\xe9"}\n'),
            "latin1.jsonl",
            "line 1: not valid UTF-8 (byte 0xe9 at column 14)",
        ),
        id="invalid-utf8-content",
    ),
    pytest.param(
        BadFile(
            _text("many.jsonl", _lines(*["nope"] * 25)),
            "many.jsonl",
            "; ".join([_NOT_JSON.format(n) for n in range(1, 11)] + ["... and 15 more errors"]),
        ),
        id="many-bad-lines-capped",
    ),
    pytest.param(
        BadFile(
            _sparse("huge.jsonl", 600_000_000),
            "huge.jsonl",
            "file is 600.0 MB, over the Files API limit of 512 MB",
        ),
        id="oversize-600MB",
    ),
    pytest.param(
        BadFile(
            _text("notes.txt", "not for fine-tuning\n"),
            "notes.txt",
            "fine-tune files must end in .jsonl; got notes.txt",
            folder_keys={"include": '["*"]'},
        ),
        id="wrong-extension",
    ),
    pytest.param(
        BadFile(
            _text("notes.md", "# not a scan\n"),
            "notes.md",
            "ocr files must end in one of .pdf, .png, .jpg, .jpeg, .tif, .tiff, .bmp, .gif, "
            ".webp, .avif, .docx, .pptx, .epub, .rtf, .odt, .ipynb, .tex; got notes.md",
            purpose="ocr",
            folder_keys={"include": '["*"]'},
        ),
        id="wrong-extension-ocr",
    ),
    pytest.param(
        BadFile(_bytes("empty.jsonl", b""), "empty.jsonl", "file is empty"), id="empty-file"
    ),
    pytest.param(
        BadFile(_symlink_loop, "loop-a.jsonl", "symlink loop: -> loop-b.jsonl; not followed"),
        id="symlink-loop",
    ),
    pytest.param(
        BadFile(
            _symlink("escape.jsonl", "/etc/passwd"),
            "escape.jsonl",
            "symlink points outside the watched folder: -> /etc/passwd; not followed",
        ),
        id="symlink-out-of-root",
    ),
    pytest.param(
        BadFile(
            _symlink_to_sibling,
            "up.jsonl",
            "symlink points outside the watched folder: -> ../outside.jsonl "
            "({dir}/outside.jsonl); not followed",
        ),
        id="relative-symlink-climbing-out",
    ),
    pytest.param(
        BadFile(
            _symlink("dangling.jsonl", "nowhere.jsonl"),
            "dangling.jsonl",
            "broken symlink: -> nowhere.jsonl does not exist; skipped",
        ),
        id="broken-symlink",
    ),
    pytest.param(BadFile(_fifo, "pipe.jsonl", "is a FIFO, not a regular file; skipped"), id="fifo"),
    pytest.param(
        BadFile(_char_device, "null.jsonl", "is a character device, not a regular file; skipped"),
        id="character-device",
    ),
    pytest.param(
        BadFile(
            _non_utf8_name,
            "caf\\xe9.jsonl",
            "file name is not valid UTF-8; rename it (not synced)",
        ),
        id="non-utf8-file-name",
    ),
]


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_file_is_reported_and_the_rest_syncs(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, case: BadFile
) -> None:
    """The bad entry gets its exact reason in status; the good file beside it is uploaded."""
    folder = tmp_path / "data"
    folder.mkdir()
    good = write_good_file(folder, case.purpose).name
    case.make(folder)
    before = {p.name: fingerprint(p) for p in folder.iterdir()}
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder, case.purpose, extra=case.folder_keys)],
    )

    result = invoke(config, "sync", "--no-progress", api_key=api_key)

    assert result.exit_code == 3, result.output
    assert "file(s) quarantined or skipped: see `syncd status`" in result.output
    files = status_files(config, api_key)
    assert files[case.path]["state"] == case.state
    reason = str(files[case.path]["reason"])
    expected = case.reason.format(dir=tmp_path)
    assert reason == expected if case.whole else reason.startswith(expected), reason
    assert files[good]["state"] == "uploaded"
    assert set(remote_by_name(emulator, api_key)) == {good}
    # Nothing lost: every entry is still there exactly as it was, the bad one included.
    assert {p.name: fingerprint(p) for p in folder.iterdir()} == before
    again = invoke(config, "sync", "--no-progress", api_key=api_key)
    assert again.exit_code == 3, again.output
    assert emulator.stats()["uploads"] == 1


# -- 2. unreadable files and directories ---------------------------------------------------------


def test_unreadable_file_is_unstable_then_syncs_once_readable(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """A 0000 file is "unstable: cannot open ...: Permission denied"; once readable it uploads."""
    folder = tmp_path / "data"
    write_good_file(folder, "fine-tune")
    locked = write_chat_file(folder / "locked.jsonl", salt="locked")
    locked.chmod(0)
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])

    first = sync_as_root_without_dac_override(config, api_key)

    assert first.returncode == 1, first.stderr
    assert "1 file(s) not uploaded: see `syncd status`" in first.stdout + first.stderr
    files = status_files(config, api_key)
    assert files["locked.jsonl"]["state"] == "unstable"
    assert files["locked.jsonl"]["reason"] == f"cannot open {locked}: Permission denied"
    assert set(remote_by_name(emulator, api_key)) == {"good.jsonl"}

    locked.chmod(0o644)
    second = sync_as_root_without_dac_override(config, api_key)
    assert second.returncode == 0, second.stderr
    assert status_files(config, api_key)["locked.jsonl"]["state"] == "uploaded"
    assert set(remote_by_name(emulator, api_key)) == {"good.jsonl", "locked.jsonl"}


def test_unreadable_directory_is_logged_and_its_files_are_not_called_missing(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """A 0000 subdirectory is logged as skipped; its known files stay uploaded, not missing."""
    folder = tmp_path / "data"
    write_good_file(folder, "fine-tune")
    write_chat_file(folder / "sub" / "inner.jsonl", salt="inner")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    assert invoke(config, "sync", "--no-progress", api_key=api_key).exit_code == 0
    write_chat_file(folder / "sub" / "later.jsonl", salt="later")
    (folder / "sub").chmod(0)
    try:
        blocked = sync_as_root_without_dac_override(config, api_key)
    finally:
        (folder / "sub").chmod(0o755)

    assert blocked.returncode == 1, "files it could not list are not synced: not a clean pass"
    (skipped,) = log_events(blocked.stderr, "directory_skipped")
    assert skipped["path"] == "sub"
    assert skipped["error"] == "cannot read directory: Permission denied; its files are not synced"
    files = status_files(config, api_key)
    assert files["sub/inner.jsonl"]["state"] == "uploaded"  # unknown, not gone
    assert "sub/later.jsonl" not in files
    assert invoke(config, "sync", "--no-progress", api_key=api_key).exit_code == 0
    assert status_files(config, api_key)["sub/later.jsonl"]["state"] == "uploaded"


def test_directory_with_non_utf8_name_is_logged_and_the_rest_syncs(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """A directory whose name is not UTF-8 is skipped with a log line naming it printably."""
    folder = tmp_path / "data"
    write_good_file(folder, "fine-tune")
    bad_dir = folder / os.fsdecode(b"d\xff")
    bad_dir.mkdir()
    (bad_dir / "inner.jsonl").write_text(_lines(_CHAT), encoding="utf-8")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])

    result = invoke(config, "sync", "--no-progress", api_key=api_key)

    assert result.exit_code == 1, result.output  # its files are not synced
    assert "d\\xff: directory name is not valid UTF-8" in result.output
    (skipped,) = log_events(result.stderr, "directory_skipped")
    assert skipped["path"] == "d\\xff"
    assert skipped["error"] == (
        "directory name is not valid UTF-8; rename it (its files are not synced)"
    )
    assert set(remote_by_name(emulator, api_key)) == {"good.jsonl"}
    assert (bad_dir / "inner.jsonl").read_text(encoding="utf-8") == _lines(_CHAT)  # untouched


# -- 3. files that change while they are hashed (pipeline level) ---------------------------------

#: Big enough that hashing takes a good fraction of a second, so the change lands while the file
#: is open; sparse, so it costs no disk until it is uploaded.
_SLOW_FILE_BYTES = 128 * 1024 * 1024


def _open_by_this_process(path: Path) -> bool:
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if fd.readlink() == path:
                return True
        except OSError:
            continue
    return False


@pytest.fixture
def while_hashing() -> Iterator[Callable[[Path, Callable[[], object]], None]]:
    """``while_hashing(path, action)``: run ``action`` in a thread once ``path`` is open."""
    threads: list[threading.Thread] = []

    def start(path: Path, action: Callable[[], object]) -> None:
        def run() -> None:
            wait_until(lambda: _open_by_this_process(path), timeout=20, interval=0.001, what="open")
            action()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()


def _ocr_setup(tmp_path: Path, emulator: EmulatorServer) -> tuple[Path, Path]:
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "good.pdf").write_bytes(b"%PDF-1.4 good\n")
    big = folder / "big.pdf"
    _sparse("big.pdf", _SLOW_FILE_BYTES)(folder)
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder, "ocr")])
    return config, big


def test_file_growing_while_hashed_is_unstable_then_uploaded_whole(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    while_hashing: Callable[[Path, Callable[[], object]], None],
) -> None:
    """Appended to mid-hash: unstable with "size A -> B bytes"; the next sync uploads all of it."""
    config, big = _ocr_setup(tmp_path, emulator)
    loaded = load_config(config)
    store = open_store(loaded.state.database_url)
    try:
        spec = folder_spec(loaded.folders[0], loaded.node.name)

        def append() -> None:
            with big.open("ab") as handle:
                handle.write(b"tail written while hashing")

        while_hashing(big, append)
        summary = Pipeline(store).scan(spec)
        with store.session() as s:
            row = repo.get_local(s, spec.key, "big.pdf")
    finally:
        store.dispose()
    assert summary.unstable == 1
    assert summary.queued == 1  # good.pdf
    assert row is not None
    assert row.state.value == "unstable"
    grown = _SLOW_FILE_BYTES + len(b"tail written while hashing")
    assert row.last_error == (
        f"{big} changed while it was being hashed "
        f"(size {_SLOW_FILE_BYTES} -> {grown} bytes); will retry once it settles"
    )

    result = invoke(config, "sync", "--no-progress", api_key=api_key)

    assert result.exit_code == 0, result.output
    files = status_files(config, api_key)
    assert files["big.pdf"]["state"] == "uploaded"
    assert files["big.pdf"]["bytes"] == grown
    file_id = str(files["big.pdf"]["file_id"])
    blob = emulator.data_dir / "blobs" / file_id
    with blob.open("rb") as stored, big.open("rb") as local:
        assert hashlib.file_digest(stored, "sha256").hexdigest() == (
            hashlib.file_digest(local, "sha256").hexdigest()
        )
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        client.files.delete(file_id)  # the emulator's copy is real bytes: give the disk back


def test_file_removed_while_hashed_is_not_recorded_then_synced_when_back(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    while_hashing: Callable[[Path, Callable[[], object]], None],
) -> None:
    """Deleted mid-hash: no row, nothing uploaded; the good file is queued; it syncs once back."""
    config, big = _ocr_setup(tmp_path, emulator)
    loaded = load_config(config)
    store = open_store(loaded.state.database_url)
    try:
        spec = folder_spec(loaded.folders[0], loaded.node.name)
        while_hashing(big, big.unlink)
        summary = Pipeline(store).scan(spec)
        with store.session() as s:
            row = repo.get_local(s, spec.key, "big.pdf")
    finally:
        store.dispose()
    assert row is None
    assert summary.queued == 1
    assert summary.unstable == 0
    big.write_bytes(b"%PDF-1.4 back again\n")

    result = invoke(config, "sync", "--no-progress", api_key=api_key)

    assert result.exit_code == 0, result.output
    assert {p: f["state"] for p, f in status_files(config, api_key).items()} == {
        "big.pdf": "uploaded",
        "good.pdf": "uploaded",
    }
    ids = remote_by_name(emulator, api_key)
    assert remote_content(emulator, api_key, ids["big.pdf"]) == b"%PDF-1.4 back again\n"


# -- 4. awkward names that must upload -----------------------------------------------------------

#: A name of exactly 255 bytes (NAME_MAX) in 89 characters: 83 three-byte CJK + ".jsonl".
_LONGEST_NAME = "日" * 83 + ".jsonl"


@pytest.mark.parametrize(
    ("name", "remote_name"),
    [
        pytest.param("two\nlines.jsonl", "two%0Alines.jsonl", id="newline-in-name"),
        pytest.param("tab\there.jsonl", "tab%09here.jsonl", id="tab-in-name"),
        pytest.param("emoji-😀🎉.jsonl", "emoji-😀🎉.jsonl", id="emoji"),
        pytest.param("rtl-שלום-مرحبا.jsonl", "rtl-שלום-مرحبا.jsonl", id="right-to-left"),
        pytest.param(_LONGEST_NAME, _LONGEST_NAME, id="255-byte-name"),
        # The key holds "[/x]" (a directory "[", a file "x] [bold]y.jsonl"): rich markup that
        # once crashed the status table.
        pytest.param("[/x] [bold]y.jsonl", "x] [bold]y.jsonl", id="rich-markup-in-key"),
    ],
)
def test_awkward_name_uploads_and_shows_in_status(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, name: str, remote_name: str
) -> None:
    """The file uploads with its bytes intact; status shows its exact key (JSON) or printably."""
    assert len(_LONGEST_NAME.encode()) == 255
    folder = tmp_path / "data"
    write_good_file(folder, "fine-tune")
    path = write_chat_file(folder / name, salt="awkward")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])

    result = invoke(config, "sync", "--no-progress", api_key=api_key)

    assert result.exit_code == 0, result.output
    files = status_files(config, api_key)
    assert files[name]["state"] == "uploaded"
    remote = remote_by_name(emulator, api_key)
    assert set(remote) == {"good.jsonl", remote_name}
    assert remote[remote_name] == files[name]["file_id"]
    assert remote_content(emulator, api_key, remote[remote_name]) == path.read_bytes()
    table = invoke(config, "status", api_key=api_key)
    assert table.exit_code == 0, table.output
    row = next(line for line in table.stdout.splitlines() if str(files[name]["file_id"]) in line)
    assert printable_key(name) in row


def test_nfc_and_nfd_spellings_are_two_files(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """ "café" composed (NFC) and decomposed (NFD) are two files, two rows, two uploads."""
    composed = unicodedata.normalize("NFC", "café.jsonl")
    decomposed = unicodedata.normalize("NFD", "café.jsonl")
    assert composed != decomposed
    folder = tmp_path / "data"
    write_chat_file(folder / composed, salt="nfc")
    write_chat_file(folder / decomposed, salt="nfd")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])

    result = invoke(config, "sync", "--no-progress", api_key=api_key)

    assert result.exit_code == 0, result.output
    files = status_files(config, api_key)
    assert {p: f["state"] for p, f in files.items()} == {
        composed: "uploaded",
        decomposed: "uploaded",
    }
    remote = remote_by_name(emulator, api_key)
    assert set(remote) == {composed, decomposed}
    assert remote[composed] == files[composed]["file_id"]
    assert remote[decomposed] == files[decomposed]["file_id"]
    assert remote_content(emulator, api_key, remote[decomposed]) == (
        (folder / decomposed).read_bytes()
    )


def test_three_hundred_levels_deep_uploads(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    """A file 300 directories down uploads under its full key; no recursion limit is hit."""
    folder = tmp_path / "data"
    write_good_file(folder, "fine-tune")
    deep_key = "/".join(["level"] * 300 + ["deep.jsonl"])
    write_chat_file(folder / deep_key, salt="deep")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])

    result = invoke(config, "sync", "--no-progress", api_key=api_key)

    assert result.exit_code == 0, result.output
    assert status_files(config, api_key)[deep_key]["state"] == "uploaded"
    assert set(remote_by_name(emulator, api_key)) == {"good.jsonl", "deep.jsonl"}


# -- 5. a watched folder deleted or replaced under the daemon ------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("how", "reported"),
    [
        pytest.param("delete", "was deleted", id="folder-deleted"),
        pytest.param("replace", "was moved or renamed", id="folder-replaced"),
    ],
)
def test_watched_folder_lost_under_the_daemon(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    daemons: list[DaemonProcess],
    how: str,
    reported: str,
) -> None:
    """Its loss is logged as degraded, the other folder keeps syncing, and it syncs once back."""
    lost, other = tmp_path / "lost", tmp_path / "other"
    write_chat_file(lost / "first.jsonl", salt="lost-1")
    write_chat_file(other / "first.jsonl", salt="other-1")
    config = write_config(
        tmp_path, server_url=emulator.url, folders=[FolderSetup(lost), FolderSetup(other)]
    )
    daemon = DaemonProcess(config, api_key=api_key)
    daemons.append(daemon)
    daemon.wait_event("file_uploaded", folder="lost", path="first.jsonl")
    daemon.wait_event("file_uploaded", folder="other", path="first.jsonl")

    if how == "delete":
        shutil.rmtree(lost)
    else:
        lost.rename(tmp_path / "lost.old")
    degraded = daemon.wait_event("folder_degraded", folder="lost")
    assert degraded["error"] == (
        f"the root of folder 'lost' ({lost}) {reported}; "
        "its changes are no longer seen until the folder is watched again"
    )
    write_chat_file(other / "second.jsonl", salt="other-2")
    daemon.wait_event("file_uploaded", folder="other", path="second.jsonl")

    write_chat_file(lost / "back.jsonl", salt="lost-back")
    if how == "replace":
        write_chat_file(tmp_path / "lost.old" / "stray.jsonl", salt="stray")
    daemon.wait_event("file_uploaded", folder="lost", path="back.jsonl", timeout=30)
    # Once back, it is watched again: a new file arrives through an event, not a slow rescan.
    daemon.wait_event("folder_recovered", folder="lost", timeout=30)
    write_chat_file(lost / "watched.jsonl", salt="lost-watched")
    daemon.wait_event("file_uploaded", folder="lost", path="watched.jsonl", timeout=5)
    assert daemon.stop() == 0

    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        names = sorted(info.filename for info in client.files.iter_all())
    # Both first uploads are kept (a lost folder deletes nothing remotely), and nothing from
    # outside the configured path (the moved-away old folder) is ever uploaded.
    assert names == ["back.jsonl", "first.jsonl", "first.jsonl", "second.jsonl", "watched.jsonl"]
    states = {(row["folder"], row["path"]): row["state"] for row in status_rows(config, api_key)}
    assert states == {
        ("lost", "first.jsonl"): "missing",
        ("lost", "back.jsonl"): "uploaded",
        ("lost", "watched.jsonl"): "uploaded",
        ("other", "first.jsonl"): "uploaded",
        ("other", "second.jsonl"): "uploaded",
    }


# -- 6. configuration errors through the real CLI ------------------------------------------------

_FOLDER = '[[folders]]\npath = "data"\npurpose = "fine-tune"\n'
_KEY_IN_TOML = "sk-toml-canary-0b9d2e71"


@dataclass(frozen=True)
class BadConfig:
    """A config file body and the one error line syncd must print for it (after the path)."""

    text: str
    error: str
    hidden: str | None = None
    """A value that must not appear anywhere in the output."""


BAD_CONFIGS = [
    pytest.param(
        BadConfig(
            '[watch]\nsettel = "2s"\n' + _FOLDER,
            "watch.settel: unknown key; did you mean 'settle'? allowed here: rescan_interval, "
            "settle, settle_max, timestamp_granularity, use_polling",
        ),
        id="unknown-key",
    ),
    pytest.param(
        BadConfig(
            '[api]\nconcurrency = "four"\n' + _FOLDER,
            "api.concurrency: expected an integer (got 'four')",
        ),
        id="bad-type",
    ),
    pytest.param(
        BadConfig(
            '[watch]\nsettle = "2 minutes"\n' + _FOLDER,
            'watch.settle: expected a duration such as "500ms", "2s", "5m", "1h", "30d" or '
            "\"1h30m\" (units: ms, s, m, h, d, w) (got '2 minutes')",
        ),
        id="bad-duration",
    ),
    pytest.param(
        BadConfig(
            '[retention]\nschedule = "0 25 * * *"\n' + _FOLDER,
            "retention.schedule: invalid cron expression: Error validating expression '25': "
            "the last value (25) is higher than the maximum value (23) (got '0 25 * * *')",
        ),
        id="bad-cron",
    ),
    pytest.param(
        BadConfig(
            '[retention]\nschedule = "0 3 * * 0"\n' + _FOLDER,
            "retention.schedule: cron day-of-week must use names (sun, mon, tue, wed, thu, fri, "
            "sat; ranges like mon-fri), not numbers: the scheduler would read 0 as Monday, "
            "unlike cron (got '0 3 * * 0')",
        ),
        id="cron-numeric-weekday",
    ),
    pytest.param(
        BadConfig(
            f'[api]\napi_key = "{_KEY_IN_TOML}"\n' + _FOLDER,
            "api.api_key: API keys never live in the config file; remove this key and put the "
            "key in the environment variable named by api.api_key_env (default MISTRAL_API_KEY) "
            "or in the file named by api.api_key_file (e.g. a systemd LoadCredential=)",
            hidden=_KEY_IN_TOML,
        ),
        id="api-key-in-toml",
    ),
    pytest.param(
        BadConfig(
            '[api]\napi_key_env = "sk7Hq2LmZpX9vRtY4nBcWd1EfGa0JuKs"\n' + _FOLDER,
            "api.api_key_env: expected an environment variable name in capitals, such as "
            "MISTRAL_API_KEY (the name, not the key itself; the value is not shown in case it "
            "is one)",
            hidden="sk7Hq2LmZpX9vRtY4nBcWd1EfGa0JuKs",
        ),
        id="key-pasted-as-api-key-env",
    ),
    pytest.param(
        BadConfig(
            '[api]\nserver_url = "https://api.mistral.ai/?key=sk-query-canary-55"\n' + _FOLDER,
            "api.server_url: server_url must not have a query string or fragment",
            hidden="sk-query-canary-55",
        ),
        id="server-url-with-query",
    ),
    pytest.param(
        BadConfig(
            '[api]\nserver_url = "http://files.example.com"\n' + _FOLDER,
            "api.server_url: plain http:// is allowed only for loopback hosts (localhost, "
            "127.0.0.1, ::1); use https:// so the API key is sent over TLS "
            "(got 'http://files.example.com')",
        ),
        id="plain-http-to-remote-host",
    ),
    pytest.param(
        BadConfig(
            '[api]\nserver_url = "embedded"\n',
            "folders: at least one [[folders]] table is required",
        ),
        id="no-folders",
    ),
    pytest.param(
        BadConfig(
            _FOLDER + '[[folders]]\npath = "data/inner"\npurpose = "batch"\n',
            "folders: folders[1].path ({dir}/data/inner) is inside folders[0].path ({dir}/data); "
            "nested folders would upload the same files twice",
        ),
        id="nested-folders",
    ),
    pytest.param(
        BadConfig(
            "[api\n" + _FOLDER,
            "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 5)",
        ),
        id="toml-syntax-error",
    ),
]


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_config_error_exits_78_naming_the_key(tmp_path: Path, case: BadConfig) -> None:
    """sync, status and check-config all exit 78 with one line: file, key, what is wrong."""
    (tmp_path / "data" / "inner").mkdir(parents=True)
    config = tmp_path / "bad.toml"
    config.write_text(case.text, encoding="utf-8")
    expected = f"error: {config}: {case.error.format(dir=tmp_path)}"
    for command in (["sync", "--no-progress"], ["status"], ["check-config"]):
        result = invoke(config, *command, api_key="sk-env-key-0000")
        assert result.exit_code == 78, (command, result.output)
        assert result.stderr.splitlines() == [expected], command
        assert result.stdout == ""
        if case.hidden is not None:
            assert case.hidden not in result.output
    # Refused before anything started: no state directory, no database, nothing created.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "data"]


def test_missing_config_file_exits_78(tmp_path: Path) -> None:
    """-c naming no file exits 78 and says how to point at one."""
    config = tmp_path / "nope.toml"
    result = invoke(config, "sync", "--no-progress", api_key="sk-env-key-0000")
    assert result.exit_code == 78
    assert result.stderr.splitlines() == [
        f"error: {config}: config file not found (pass -c PATH or set SYNCD_CONFIG)"
    ]


@pytest.mark.parametrize(
    ("key_env", "key_file", "error"),
    [
        pytest.param(
            None,
            "missing-key",
            "error: api.api_key_file: cannot read {dir}/missing-key: No such file or directory",
            id="api-key-file-missing",
        ),
        pytest.param(
            "sk-first-half\nsk-second-half",
            None,
            "error: environment variable MISTRAL_API_KEY: the API key holds a space, a control "
            "character (e.g. a line break) or a non-ASCII character; an API key is one token of "
            "printable ASCII",
            id="api-key-with-line-break",
        ),
    ],
)
def test_api_key_problem_exits_78_without_showing_the_key(
    tmp_path: Path, key_env: str | None, key_file: str | None, error: str
) -> None:
    """A key that cannot be used stops sync and check-config with 78, naming where it looked."""
    keys = {"api_key_file": f'"{key_file}"'} if key_file else {}
    config = write_config(
        tmp_path,
        server_url="https://api.mistral.ai",
        folders=[FolderSetup(tmp_path / "data")],
        sections={"api": keys},
    )
    expected = error.format(dir=tmp_path)
    for command in (["sync", "--no-progress"], ["check-config"]):
        result = invoke(config, *command, api_key=key_env)
        assert result.exit_code == 78, (command, result.output)
        assert expected in result.stderr.splitlines(), command
        for part in (key_env or "").split():
            assert part not in result.output
