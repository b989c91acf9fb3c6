"""Issue 14.2 end to end: a Files API that accepts connections and never answers.

``syncd sync`` says it is waiting, gives up in bounded time naming the API and leaves the files
pending; the next pass against an answering API uploads each exactly once. The daemon shows
the wait in ``STATUS=`` (a real unix datagram socket) and ``/healthz``. Timeouts are short here
(1-2 s) so the suite stays fast; the README gives the defaults' figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from syncd.emulator import EmulatorServer
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.daemon_process import NotifySocket
from tests.hung_servers import silent_server
from tests.reliability_checks import (
    alive,
    assert_exactly_once_and_consistent,
    local_states,
    run_syncd,
    running_daemon,
    state_db,
)
from tests.support import wait_until

SHORT = {"timeout": '"1s"', "connect_timeout": '"1s"', "max_attempts": "2", "concurrency": "2"}


def events(stderr: str) -> list[dict[str, object]]:
    found = []
    for line in stderr.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_sync_against_a_silent_api_gives_up_in_bounded_time_then_uploads_each_once(
    tmp_path: Path, emulator: EmulatorServer, api_key: str
) -> None:
    folder = tmp_path / "ft"
    local = {f"f{n}.jsonl": write_chat_file(folder / f"f{n}.jsonl", salt=str(n)) for n in range(5)}
    with silent_server() as server:
        config = write_config(
            tmp_path, server_url=server.url, folders=[FolderSetup(folder)], sections={"api": SHORT}
        )
        started = time.monotonic()
        result = run_syncd(config, api_key, "sync", "--no-progress", timeout=120)
        took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    # Listing 1 s, two uploads 1 s, patience 1.5 s, a probe in flight up to 1 s; plus start-up.
    assert took < 30, took
    print(f"syncd sync against a silent API: exit 1 after {took:.1f} s")
    output = result.stdout + result.stderr
    assert server.url in output, "the message names the unresponsive API"
    assert "unavailable" in output
    waiting = [e for e in events(result.stderr) if e.get("event") == "api_waiting"]
    assert waiting and server.url in str(waiting[0]["request"]), result.stderr
    assert api_key not in output
    db = state_db(tmp_path)
    assert set(local_states(db).values()) <= {"pending", "uploading"}, local_states(db)
    assert len(local_states(db)) == 5

    write_config(
        tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)], sections={"api": SHORT}
    )
    again = run_syncd(config, api_key, "sync", "--no-progress", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    check = assert_exactly_once_and_consistent(emulator, api_key, db, local)
    assert check.remote_files == 5 and check.uploads_seen_by_server == 5


def test_the_daemon_shows_a_silent_api_in_status_and_healthz(
    tmp_path: Path, api_key: str, notify: NotifySocket
) -> None:
    folder = tmp_path / "ft"
    write_chat_file(folder / "a.jsonl")
    with silent_server() as server:
        config = write_config(
            tmp_path,
            server_url=server.url,
            folders=[FolderSetup(folder)],
            sections={
                "api": {**SHORT, "timeout": '"2s"'},
                "metrics": {"listen": '"127.0.0.1:0"'},
            },
        )
        with running_daemon(config, api_key, notify=notify) as daemon:
            metrics_url = "http://" + str(daemon.wait_event("metrics_listening")["listen"])

            def status_says_so() -> str | None:
                alive(daemon)
                for message in notify.poll():
                    for line in message.split("\n"):
                        if line.startswith("STATUS=") and (
                            "api_no_answer_for=" in line or "api_unavailable_for=" in line
                        ):
                            return line
                return None

            line = wait_until(status_says_so, timeout=30, what="STATUS= telling the API is silent")
            assert api_key not in line

            def unhealthy() -> httpx.Response | None:
                answer = httpx.get(metrics_url + "/healthz")
                return answer if answer.status_code == 503 else None

            health = wait_until(unhealthy, timeout=20, what="/healthz 503")
            assert "Files API" in health.text and api_key not in health.text
            daemon.wait_event("api_waiting", timeout=20)
            assert daemon.stop() == 0
