"""Issue 20: the watched root holds under a swap, and nothing answers strangers.

Every test runs real parts: a daemon subprocess over the emulator on loopback, real files,
real sockets.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.api import Mistral
from syncd.emulator import EmulatorServer
from syncd.errors import FileUnreadableError, UsageError
from syncd.hashing import hash_file, open_regular
from syncd.paths import IgnoreRules
from syncd.scanner import scan_folder
from tests.configs import FolderSetup, chat_line, write_chat_file, write_config
from tests.conftest import StartDaemon
from tests.daemon_process import DaemonProcess, db_states
from tests.support import wait_until

pytestmark = pytest.mark.e2e


# -- 1. nothing from outside the watched root is read or uploaded ---------------------------------

#: What sits outside the watched folder, where a swapped-in symlink points: never uploaded.
SECRET = (chat_line("secret question", "secret answer from outside the root") + "\n").encode()
#: What was written inside the folder: the same length, so a read by name sends a whole body.
DECOY = (chat_line("decoy question", "decoy answer from inside the root!!!") + "\n").encode()


def test_hashing_below_a_root_refuses_a_symlink_anywhere_on_the_path(tmp_path: Path) -> None:
    """Every directory below the root is opened without following; the root itself may be a
    link (as configured)."""
    root = tmp_path / "root"
    target = _outside_dir(tmp_path, "b")
    (root / "a").mkdir(parents=True)
    (root / "a" / "b").symlink_to(target / "b")
    (root / "c").symlink_to(target)
    for key, shown in (("a/b/x.jsonl", "a/b"), ("c/b/x.jsonl", "c")):
        with pytest.raises(FileUnreadableError, match=f"{shown} on its path is a symbolic link"):
            hash_file(root / key, root=root)
        with pytest.raises(FileUnreadableError, match="symbolic link"):
            open_regular(root / key, root=root)
    linked_root = tmp_path / "linked-root"
    linked_root.symlink_to(target)
    digest, _ = hash_file(linked_root / "b" / "x.jsonl", root=linked_root)
    assert digest == hashlib.sha256(SECRET).hexdigest()


def test_a_scan_never_lists_a_directory_through_an_ancestor_swapped_for_a_symlink(
    tmp_path: Path,
) -> None:
    """The walk opens each subdirectory from the root, not by its whole path: an ancestor
    swapped for a link after it was listed hides its files instead of listing the outside."""
    root = tmp_path / "root"
    target = _outside_dir(tmp_path, "b")
    write_chat_file(root / "a" / "0.jsonl")
    write_chat_file(root / "a" / "b" / "inside.jsonl")
    walk = scan_folder(root, IgnoreRules(["*.jsonl"], []))
    first = next(walk)  # a/0.jsonl: "a" was listed, "a/b/" is opened next
    assert first.rel_path == "a/0.jsonl"
    (root / "a").rename(tmp_path / "elsewhere")
    (root / "a").symlink_to(target)
    assert [item.rel_path for item in walk] == []


def _remote_contents(emulator: EmulatorServer, api_key: str) -> list[bytes]:
    with Mistral(api_key=api_key, server_url=emulator.url) as client:
        return [client.files.download(info.id).read() for info in client.files.iter_all()]


def _outside_dir(tmp_path: Path, below: str) -> Path:
    """A directory outside the watched folder holding ``below/x.jsonl`` with :data:`SECRET`."""
    target = tmp_path / "outside-target"
    (target / below).mkdir(parents=True, exist_ok=True)
    (target / below / "x.jsonl").write_bytes(SECRET)
    return target


def _wait_for_verdict(daemon: DaemonProcess, swapped: str, key: str) -> None:
    """Until the swapped directory is reported as a symlink, or (the bug) the key uploaded."""
    wait_until(
        lambda: (
            (
                daemon.named("file_uploaded")
                and any(e.get("path") == key for e in daemon.named("file_uploaded"))
            )
            or any(e.get("path") == swapped for e in daemon.named("file_skipped"))
        ),
        timeout=30,
        what=f"a verdict on {swapped}",
    )


def _assert_nothing_from_outside(
    daemon: DaemonProcess, emulator: EmulatorServer, api_key: str, folder: Path, key: str
) -> None:
    # A file written after the verdict: once it is uploaded, anything queued before it was too.
    (folder / "marker.jsonl").write_text(chat_line("marker", "marker") + "\n", encoding="utf-8")
    daemon.wait_event("file_uploaded", path="marker.jsonl")
    assert SECRET not in _remote_contents(emulator, api_key)
    assert not [e for e in daemon.named("file_uploaded") if e.get("path") == key]


@pytest.mark.parametrize(
    ("directories", "moved_to"),
    [("sub", "outside"), ("sub", "hidden"), ("a/b", "outside")],
    ids=["symlink-swap", "renamed-hidden-then-symlink", "swap-two-levels-up"],
)
def test_a_directory_swapped_for_a_symlink_while_a_file_settles_is_not_followed(
    tmp_path: Path,
    emulator: EmulatorServer,
    api_key: str,
    start_daemon: StartDaemon,
    directories: str,
    moved_to: str,
) -> None:
    """The watcher path: the event names a file below a directory swapped meanwhile."""
    folder = tmp_path / "watch"
    top, _, below = directories.partition("/")
    target = _outside_dir(tmp_path, below)
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"watch": {"settle": '"500ms"'}},
    )
    daemon = start_daemon(config)
    write_chat_file(folder / directories / "first.jsonl", salt="first")
    daemon.wait_event("file_uploaded", path=f"{directories}/first.jsonl")  # watched by now

    key = f"{directories}/x.jsonl"
    (folder / key).write_bytes(DECOY)  # an event, held while it settles
    destination = tmp_path / "elsewhere" if moved_to == "outside" else folder / f".{top}"
    destination.parent.mkdir(exist_ok=True)
    (folder / top).rename(destination)
    (folder / top).symlink_to(target)

    _wait_for_verdict(daemon, top, key)
    _assert_nothing_from_outside(daemon, emulator, api_key, folder, key)
    assert daemon.stop() == 0


def _is_open_by(pid: int, path: Path) -> bool:
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        return any(fd.readlink() == path for fd in fd_dir.iterdir())
    except OSError:
        return False


def test_a_directory_swapped_for_a_symlink_during_a_scan_is_not_followed(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """The rescan path: listed as a regular file, swapped before it is hashed."""
    folder = tmp_path / "watch"
    target = _outside_dir(tmp_path, "")
    # Hashed (and validated) before sub/x.jsonl in key order: the window for the swap.
    big = folder / "big1.jsonl"
    folder.mkdir()
    line = chat_line("q" * 200, "a" * 800) + "\n"
    big.write_text(line * (20_000_000 // len(line)), encoding="utf-8")
    (folder / "big2.jsonl").write_text(line * (9_000_000 // len(line)), encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "x.jsonl").write_bytes(DECOY)
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config)
    wait_until(lambda: _is_open_by(daemon.proc.pid, big), timeout=30, what="big1 being read")
    (folder / "sub").rename(tmp_path / "elsewhere")
    (folder / "sub").symlink_to(target)

    _wait_for_verdict(daemon, "sub", "sub/x.jsonl")
    _assert_nothing_from_outside(daemon, emulator, api_key, folder, "sub/x.jsonl")
    assert daemon.stop() == 0


def test_a_file_hashed_as_a_regular_file_and_a_symlink_when_uploaded_sends_the_hashed_bytes(
    tmp_path: Path, emulator: EmulatorServer, api_key: str, start_daemon: StartDaemon
) -> None:
    """The upload reads the file it opened and checked, not the name: the bytes hashed go out.

    A first attempt hangs (its intent is kept), so the next one looks for it on the server
    first; the swap happens during that slow lookup, after the file was checked.
    """
    folder = tmp_path / "watch"
    target = _outside_dir(tmp_path, "")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"api": {"timeout": '"2s"'}, "log": {"level": '"debug"'}},
    )
    daemon = start_daemon(config)
    write_chat_file(folder / "first.jsonl", salt="first")
    daemon.wait_event("file_uploaded", path="first.jsonl")

    emulator.set_faults(fault_rate=1.0, fault_kinds=("hang",))
    (folder / "x.jsonl").write_bytes(DECOY)
    daemon.wait_event("upload_retry_scheduled", path="x.jsonl")
    emulator.set_faults(fault_rate=0.0, latency_ms=700)  # under the 2 s timeout
    wait_until(
        lambda: len([e for e in daemon.named("upload_started") if e.get("path") == "x.jsonl"]) >= 2,
        timeout=30,
        what="the second attempt",
    )
    (folder / "x.jsonl").unlink()
    (folder / "x.jsonl").symlink_to(target / "x.jsonl")

    daemon.wait_event("file_uploaded", path="x.jsonl", timeout=30)
    contents = _remote_contents(emulator, api_key)
    assert SECRET not in contents
    assert DECOY in contents
    assert daemon.stop() == 0


# -- 5. names that are not UTF-8 ------------------------------------------------------------------


def test_a_name_that_is_not_utf8_appearing_while_running_is_quarantined_cleanly(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    """Like one present at start: quarantined with the rename hint, no traceback in the log."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "good.jsonl")
    config = write_config(tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)])
    daemon = start_daemon(config)
    daemon.wait_event("file_uploaded", path="good.jsonl")

    write_chat_file(folder / os.fsdecode(b"caf\xe9.jsonl"), salt="latin-1")
    skipped = daemon.wait_event("file_skipped", path="caf\\xe9.jsonl")
    assert skipped["error"] == "file name is not valid UTF-8; rename it (not synced)"
    assert db_states(tmp_path) == {"good.jsonl": "uploaded", "caf\\xe9.jsonl": "quarantined"}
    assert daemon.named("error") == []
    assert "Traceback" not in "".join(daemon.raw)
    assert "UnicodeEncodeError" not in "".join(daemon.raw)
    assert daemon.stop() == 0


# -- 2. the status listener answers only its own Host ----------------------------------------------


def test_the_status_listener_without_a_token_answers_only_its_loopback_host(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    """A rebinding page's request (Host: evil.example.com) gets 421, not file names."""
    folder = tmp_path / "ft"
    write_chat_file(folder / "secret-name.jsonl")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"metrics": {"listen": '"127.0.0.1:0"'}},
    )
    daemon = start_daemon(config)
    port = int(daemon.wait_event("metrics_listening")["listen"].rpartition(":")[2])
    daemon.wait_event("file_uploaded", path="secret-name.jsonl")
    url = f"http://127.0.0.1:{port}/api/status"

    for host in ("evil.example.com", f"evil.example.com:{port}", "127.0.0.1:1", "10.0.0.1:80"):
        refused = httpx.get(url, headers={"Host": host})
        assert refused.status_code == 421, host
        assert "secret-name" not in refused.text
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"127.0.0.2:{port}"):
        answered = httpx.get(url, headers={"Host": host})
        assert answered.status_code == 200, host
    assert httpx.get(f"http://localhost:{port}/healthz").status_code == 200
    assert daemon.stop() == 0


def test_with_a_token_the_status_listener_answers_any_host_that_carries_it(
    tmp_path: Path, emulator: EmulatorServer, start_daemon: StartDaemon
) -> None:
    """The token is the guard then (a proxy or a DNS name in front is fine)."""
    folder = tmp_path / "ft"
    (tmp_path / "status-token").write_text("tok-123\n", encoding="utf-8")
    config = write_config(
        tmp_path,
        server_url=emulator.url,
        folders=[FolderSetup(folder)],
        sections={"metrics": {"listen": '"127.0.0.1:0"', "token_file": '"status-token"'}},
    )
    daemon = start_daemon(config)
    port = int(daemon.wait_event("metrics_listening")["listen"].rpartition(":")[2])
    url = f"http://127.0.0.1:{port}/api/status"
    headers = {"Host": "status.example.com", "Authorization": "Bearer tok-123"}
    assert httpx.get(url, headers=headers).status_code == 200
    assert httpx.get(url, headers={"Host": "status.example.com"}).status_code == 401
    assert daemon.stop() == 0


# -- 4. the key over plain HTTP -------------------------------------------------------------------

KEY = "canary-key-never-sent-in-clear"
PLAIN_HTTP_MESSAGE = (
    "plain http:// is allowed only for loopback hosts (localhost, 127.0.0.1, ::1); "
    "use https:// so the API key is sent over TLS"
)


def _own_address() -> str:
    """An address of this machine that is not loopback (the one its default route uses)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.123", 9))  # UDP: nothing is sent
        except OSError:
            pytest.skip("no non-loopback IPv4 address")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no non-loopback IPv4 address")
    return address


class _Eavesdropper:
    """A plain TCP listener on a non-loopback address, recording whatever reaches it."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.2)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self.received += conn.recv(65536)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def eavesdropper() -> Iterator[_Eavesdropper]:
    listener = _Eavesdropper(_own_address())
    yield listener
    listener.close()


def test_syncd_files_never_sends_the_key_over_plain_http_to_another_host(
    eavesdropper: _Eavesdropper,
) -> None:
    """`syncd files list` refuses with the daemon's message; nothing reaches the listener."""
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "files", "list", "--server-url", eavesdropper.url],
        env={**os.environ, "MISTRAL_API_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert PLAIN_HTTP_MESSAGE in result.stderr
    assert KEY not in result.stderr + result.stdout
    eavesdropper.close()
    assert eavesdropper.received == b""


def test_the_python_client_refuses_plain_http_to_another_host(
    eavesdropper: _Eavesdropper, emulator: EmulatorServer, api_key: str
) -> None:
    """The same rule in `Mistral(...)`; http to loopback and https stay allowed."""
    with pytest.raises(UsageError, match="plain http:// is allowed only for loopback"):
        Mistral(api_key=KEY, server_url=eavesdropper.url)
    eavesdropper.close()
    assert eavesdropper.received == b""
    Mistral(api_key=KEY, server_url="https://api.example.com").close()
    with Mistral(api_key=api_key, server_url=emulator.url.replace("127.0.0.1", "localhost")) as c:
        assert c.files.list().data is not None


# -- 3. the emulator on a non-loopback address ----------------------------------------------------


EMULATOR_CLI = (sys.executable, "-m", "syncd", "emulator", "--port", "0")


def _emulator_cli(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*EMULATOR_CLI, "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "SYNCD_EMULATOR_API_KEY"},
    )


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "192.0.2.2", "emulator.example.com"],  # noqa: S104 (each is refused)
)
def test_the_emulator_refuses_a_non_loopback_host_without_a_key(tmp_path: Path, host: str) -> None:
    """Exit 78 (EX_CONFIG, as the daemon's listener rule) before binding anything."""
    process = _emulator_cli(tmp_path / "data", "--host", host)
    try:
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 78, (out, err)
    assert "listening" not in out
    assert f"--host {host} is not a loopback address" in err
    assert "--api-key" in err


def test_the_emulator_on_a_non_loopback_host_with_a_key_guards_every_endpoint(
    tmp_path: Path,
) -> None:
    """Started with --api-key, the API and the /_emulator control endpoints need that key."""
    address = _own_address()
    process = _emulator_cli(tmp_path / "data", "--host", address, "--api-key", "emu-key")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("syncd emulator listening on "), line
        url = line.rpartition(" ")[2].strip()
        assert address in url
        good = {"Authorization": "Bearer emu-key"}
        for headers in ({}, {"Authorization": "Bearer guessed"}):
            assert httpx.get(url + "/v1/files", headers=headers).status_code == 401
            assert httpx.get(url + "/_emulator/stats", headers=headers).status_code == 401
            assert httpx.get(url + "/_emulator/faults", headers=headers).status_code == 401
            changed = httpx.post(url + "/_emulator/faults", headers=headers, json={"fault_rate": 1})
            assert changed.status_code == 401
        assert httpx.get(url + "/_emulator/faults", headers=good).json()["fault_rate"] == 0
        assert httpx.get(url + "/v1/files", headers=good).status_code == 200
    finally:
        process.terminate()
        process.communicate(timeout=10)
