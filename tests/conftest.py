"""Fixtures shared by the whole suite: a real emulator on loopback, per test.

``emulator`` is ready-made (API key ``"test-key"``); ``make_emulator`` builds more, with option
overrides and optionally a given data dir (to test restarts). Every server is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.emulator import EmulatorOptions, EmulatorServer
from syncd.store import Store, open_store
from tests.daemon_process import DaemonProcess

TEST_API_KEY = "test-key"


@pytest.fixture
def api_key() -> str:
    """The bearer token the ``emulator`` fixture accepts."""
    return TEST_API_KEY


@pytest.fixture
def make_emulator(
    tmp_path_factory: pytest.TempPathFactory, api_key: str
) -> Iterator[Callable[..., EmulatorServer]]:
    """Factory ``make_emulator(*, data_dir=None, **option_overrides) -> started EmulatorServer``.

    Options default to ``EmulatorOptions(api_key="test-key")``; pass ``api_key=None`` for an
    emulator that accepts any bearer token. Without ``data_dir`` each server gets a fresh one.
    """
    servers: list[EmulatorServer] = []

    def make(*, data_dir: Path | None = None, **option_overrides: Any) -> EmulatorServer:
        option_overrides.setdefault("api_key", api_key)
        directory = data_dir if data_dir is not None else tmp_path_factory.mktemp("emulator")
        server = EmulatorServer(directory, EmulatorOptions(**option_overrides))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def emulator(make_emulator: Callable[..., EmulatorServer]) -> EmulatorServer:
    """A started emulator on a fresh data dir, API key ``"test-key"``; stopped after the test."""
    return make_emulator()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    """Daemon subprocesses a test starts (append them); each is killed at teardown."""
    started: list[DaemonProcess] = []
    yield started
    for daemon in started:
        daemon.kill()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated state store in a real SQLite file under the test's tmp dir."""
    opened = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield opened
    opened.dispose()
