"""The Watcher when the kernel says no: inotify limits, a queue overflow, an unreadable root.

Each case runs the real Watcher in a child process (this file, run as a script) so the machine
and the test process are left alone:

* inotify limits are set inside a fresh user namespace (``unshare --user --map-root-user``).
  ``/proc/sys/user/max_inotify_watches`` and ``max_inotify_instances`` are per user namespace,
  and the namespace's own root may lower them, so the child meets the real ENOSPC / EMFILE
  from the kernel without any sysctl of the machine changing.
* the queue overflow is produced by freezing the child (SIGSTOP) while the test generates more
  events than ``fs.inotify.max_queued_events``; when it resumes, the kernel hands it
  IN_Q_OVERFLOW.
* the unreadable root belongs to a uid that is not mapped into the child's user namespace, so
  the namespace's root has no capability over it and gets the EACCES a service user would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = Path(__file__).resolve()
_UNMAPPED_UID = 12345


def _child(argv: list[str]) -> None:
    """Watch --root as folder 'data' and print one JSON line with what the watcher said."""
    from structlog.testing import capture_logs

    from syncd.watcher import Watcher

    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--max-watches", type=int)
    parser.add_argument("--max-instances", type=int)
    parser.add_argument("--await-overflow", action="store_true")
    parser.add_argument("--then-write", action="store_true")
    args = parser.parse_args(argv)
    if args.max_watches is not None:
        Path("/proc/sys/user/max_inotify_watches").write_text(str(args.max_watches))
    if args.max_instances is not None:
        Path("/proc/sys/user/max_inotify_instances").write_text(str(args.max_instances))

    degraded: list[list[str]] = []
    changes: set[str] = set()
    overflow_seen = threading.Event()

    def on_degraded(folder: str, message: str) -> None:
        degraded.append([folder, message])
        if "overflowed" in message:
            overflow_seen.set()

    with capture_logs() as logs:
        watcher = Watcher(lambda folder, path: changes.add(path), on_degraded)
        added = watcher.add_folder("data", args.root)
        seen_after = None
        if args.await_overflow:
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            overflow_seen.wait(timeout=20)
        if args.then_write:
            seen_after = _an_event_after_the_overflow(args.root, changes)
        result = {
            "added": added,
            "degraded": degraded,
            "degraded_folders": watcher.degraded_folders(),
            "overflows": watcher.overflows,
            "warnings": [e["event"] for e in logs if e["log_level"] == "warning"],
            "errors": [e["event"] for e in logs if e["log_level"] == "error"],
            "seen_after": seen_after,
        }
        watcher.stop()
    sys.stdout.write(json.dumps(result) + "\n")


def _an_event_after_the_overflow(root: Path, changes: set[str]) -> bool:
    """Whether the watcher still delivers events: write a file every 0.2 s until one is seen
    (with a tiny queue one event may be lost to another overflow), for at most 20 s."""
    written: list[str] = []
    for index in range(100):
        if any(path in changes for path in written):
            return True
        path = root / f"after-overflow-{index}.jsonl"
        path.write_text("{}\n")
        written.append(str(path))
        time.sleep(0.2)  # pacing the writes themselves, not waiting for a result
    return any(path in changes for path in written)


def _run_child(*args: str, in_user_namespace: bool = False) -> dict[str, Any]:
    command = [sys.executable, str(_HERE), *args]
    if in_user_namespace:
        command = ["unshare", "--user", "--map-root-user", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _tree(tmp_path: Path, subdirs: int) -> Path:
    root = tmp_path / "data"
    for index in range(subdirs):
        (root / f"d{index}").mkdir(parents=True)
    root.mkdir(exist_ok=True)
    return root


def test_instance_limit_is_reported_not_raised(tmp_path: Path) -> None:
    """With no inotify instance left (EMFILE), add_folder returns False and names the sysctl."""
    root = _tree(tmp_path, 0)
    result = _run_child("--root", str(root), "--max-instances", "0", in_user_namespace=True)
    assert result["added"] is False
    [[folder, message]] = result["degraded"]
    assert folder == "data"
    assert "fs.inotify.max_user_instances" in message
    assert str(root) in message
    assert result["degraded_folders"] == {"data": message}
    assert "watch_degraded" in result["warnings"]


def test_watch_limit_on_root_is_reported_not_raised(tmp_path: Path) -> None:
    """When not even the root can be watched (ENOSPC), add_folder returns False with the sysctl."""
    root = _tree(tmp_path, 0)
    result = _run_child("--root", str(root), "--max-watches", "0", in_user_namespace=True)
    assert result["added"] is False
    [[_, message]] = result["degraded"]
    assert "fs.inotify.max_user_watches" in message
    assert "'data'" in message


def test_watch_limit_below_root_is_not_silent(tmp_path: Path) -> None:
    """Running out of watches part-way down the tree degrades the folder once, naming the path.

    watchdog >= 7.1.1 gives up on the whole folder (7.1.0 watched the rest and only logged it).
    """
    root = _tree(tmp_path, 3)
    result = _run_child("--root", str(root), "--max-watches", "2", in_user_namespace=True)
    assert result["added"] is False
    [[_, message]] = result["degraded"]
    assert message.startswith(f"folder 'data' is not watched (rescans only): cannot watch {root}/d")
    assert "fs.inotify.max_user_watches" in message


def test_enough_watches_is_not_degraded(tmp_path: Path) -> None:
    """Under the same user-namespace setup, a limit that suffices gives a clean add."""
    root = _tree(tmp_path, 3)
    result = _run_child("--root", str(root), "--max-watches", "4", in_user_namespace=True)
    assert result == {
        "added": True,
        "degraded": [],
        "degraded_folders": {},
        "overflows": 0,
        "warnings": [],
        "errors": [],
        "seen_after": None,
    }


def test_queue_overflow_degrades_the_folder(tmp_path: Path) -> None:
    """Events lost to IN_Q_OVERFLOW degrade the folder and are counted (watchdog#654)."""
    root = _tree(tmp_path, 0)
    files = [root / "a", root / "b"]
    for path in files:
        path.write_text("x")
    queue_limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    child = subprocess.Popen(
        [sys.executable, str(_HERE), "--root", str(root), "--await-overflow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        os.kill(child.pid, signal.SIGSTOP)
        _, status = os.waitpid(child.pid, os.WUNTRACED)  # returns once it is really stopped
        assert os.WIFSTOPPED(status)
        try:
            # Alternate two names so the kernel cannot merge consecutive identical events.
            for index in range(queue_limit + 100):
                os.utime(files[index % 2])
        finally:
            os.kill(child.pid, signal.SIGCONT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["overflows"] == 1
    [[folder, message]] = result["degraded"]
    assert folder == "data"
    assert "overflowed" in message
    assert "fs.inotify.max_queued_events" in message


@pytest.fixture
def small_inotify_queue(runs_alone: None) -> Iterator[None]:
    """fs.inotify.max_queued_events lowered to 64 (read when an inotify instance starts).

    Every inotify instance on the machine that starts meanwhile gets the small queue, so no
    test runs on another worker until it is restored (``runs_alone``)."""
    if os.geteuid() != 0:
        pytest.fail("lowering fs.inotify.max_queued_events needs root (CI runs as root)")
    sysctl = Path("/proc/sys/fs/inotify/max_queued_events")
    before = sysctl.read_text()
    sysctl.write_text("64")
    try:
        yield
    finally:
        sysctl.write_text(before)


def test_an_overflow_of_a_small_queue_costs_a_rescan_and_watching_goes_on(
    tmp_path: Path, small_inotify_queue: None
) -> None:
    """2,000 files against a queue of 64: watchdog 7.1.1 calls on_events_lost() on every
    callback, and a root sentinel without it stopped the reader thread for good."""
    root = _tree(tmp_path, 0)
    child = subprocess.Popen(
        [sys.executable, str(_HERE), "--root", str(root), "--await-overflow", "--then-write"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        os.kill(child.pid, signal.SIGSTOP)
        _, status = os.waitpid(child.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        try:
            for index in range(2000):
                (root / f"f{index:04}.jsonl").write_text("{}\n")
        finally:
            os.kill(child.pid, signal.SIGCONT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["overflows"] >= 1
    assert result["degraded"], result
    assert all("overflowed" in message for _, message in result["degraded"]), result
    assert "watch_thread_died" not in result["errors"], result
    assert "watch_callback_failed" not in result["errors"], result
    assert result["seen_after"] is True, result


def test_unreadable_root_is_reported(tmp_path: Path) -> None:
    """A root the daemon's user cannot list is degraded, not silently 'watched' (EACCES)."""
    root = _tree(tmp_path, 0)
    os.chown(root, _UNMAPPED_UID, _UNMAPPED_UID)
    root.chmod(0o700)
    result = _run_child("--root", str(root), in_user_namespace=True)
    assert result["added"] is False
    [[_, message]] = result["degraded"]
    assert message == f"cannot watch folder 'data': {root} is not readable by this user " + (
        "(check its permissions, or SupplementaryGroups=)"
    )


if __name__ == "__main__":
    _child(sys.argv[1:])
