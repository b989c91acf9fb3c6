"""Fixtures shared by the whole suite: a real emulator on loopback, per test.

``emulator`` is ready-made (API key ``"test-key"``); ``make_emulator`` builds more, with option
overrides and optionally a given data dir (to test restarts). Every server is stopped at teardown.

``browser`` is one headless Chromium for the session (:mod:`tests.browser`).

PostgreSQL: ``postgres_cluster`` is one throwaway cluster for the whole session, started the
first time a test asks for it (:mod:`tests.postgres_cluster`); ``postgres_url`` is a fresh
empty database in it per test; ``db_url`` runs a test once on SQLite and once on PostgreSQL,
and ``engine_store`` is a migrated store on it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import settings

from syncd.emulator import EmulatorOptions, EmulatorServer
from syncd.store import Store, open_store
from tests.daemon_process import DaemonProcess, NotifySocket
from tests.machine_lock import WORKER_INPUT_KEY, MachineLock

if TYPE_CHECKING:  # imported when a test first asks for PostgreSQL: psycopg takes 0.2 s to load
    from playwright.sync_api import Browser

    from tests.postgres_cluster import PostgresCluster

TEST_API_KEY = "test-key"

# Property tests are reproducible: the suite runs Hypothesis derandomized (the same examples on
# every machine, no example database to carry between runs). `HYPOTHESIS_PROFILE=explore`
# searches afresh for a local session; a failure it finds belongs in an @example.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- pytest-xdist: tests that change the machine run alone (tests/machine_lock.py) -------------


def pytest_configure(config: pytest.Config) -> None:
    """On the xdist controller: a fresh directory for the run's lock file."""
    if not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("xdist"):
        config.stash[_LOCK_DIR] = Path(tempfile.mkdtemp(prefix="syncd-tests-"))


def pytest_unconfigure(config: pytest.Config) -> None:
    lock_dir = config.stash.get(_LOCK_DIR, None)
    if lock_dir is not None:
        shutil.rmtree(lock_dir, ignore_errors=True)
    machine_lock = config.stash.get(_MACHINE_LOCK, None)
    if machine_lock is not None:
        machine_lock.close()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's hook on the controller, once per worker: hand it the run's lock file."""
    node.workerinput[WORKER_INPUT_KEY] = str(node.config.stash[_LOCK_DIR] / "machine.lock")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """On a worker, every test (its fixtures' setup and teardown too) holds the shared lock."""
    machine_lock = _worker_machine_lock(item.config)
    if machine_lock is None:
        return (yield)
    with machine_lock.shared():
        return (yield)


_LOCK_DIR = pytest.StashKey[Path]()
_MACHINE_LOCK = pytest.StashKey[MachineLock]()


def _worker_machine_lock(config: pytest.Config) -> MachineLock | None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None or WORKER_INPUT_KEY not in workerinput:
        return None
    if _MACHINE_LOCK not in config.stash:
        config.stash[_MACHINE_LOCK] = MachineLock(Path(workerinput[WORKER_INPUT_KEY]))
    return config.stash[_MACHINE_LOCK]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first (otherwise in collection order): the workers take tests in
    this order, and a long test handed out last keeps one worker busy while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def runs_alone(request: pytest.FixtureRequest) -> Iterator[None]:
    """No test runs on another worker while this one does (for a test that changes the
    machine for a moment, e.g. a sysctl every inotify instance reads when it starts)."""
    machine_lock = _worker_machine_lock(request.config)
    if machine_lock is None:
        yield
        return
    with machine_lock.alone():
        yield


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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of the suite's own (initdb, 127.0.0.1, a free port), started on
    first use and stopped after the last test. Missing server binaries are an error, never a
    skip: ``make test`` installs them."""
    from tests.postgres_cluster import PostgresCluster

    cluster = PostgresCluster.create()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh, empty PostgreSQL database; dropped after the test.

    A test that stopped the server (``postgres_cluster.kill()``) gets it started again here.
    """
    postgres_cluster.ensure_running()
    name = postgres_cluster.create_database()
    yield postgres_cluster.url(name)
    postgres_cluster.ensure_running()
    postgres_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty state database: a SQLite file in tmp_path, or a PostgreSQL database.

    Tests taking it run once per engine; the PostgreSQL cluster starts only when one does.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def engine_store(db_url: str) -> Iterator[Store]:
    """A migrated state store on each engine of ``db_url``."""
    opened = open_store(db_url)
    yield opened
    opened.dispose()


StartDaemon = Callable[..., DaemonProcess]


@pytest.fixture
def start_daemon(api_key: str, daemons: list[DaemonProcess]) -> StartDaemon:
    """``start_daemon(config, **kwargs)``: a started ``syncd run`` subprocess with the test
    API key, killed at teardown."""

    def start(config: Path, **kwargs: Any) -> DaemonProcess:
        daemon = DaemonProcess(config, api_key=api_key, **kwargs)
        daemons.append(daemon)
        return daemon

    return start


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    """A real unix datagram socket standing in for systemd's NOTIFY_SOCKET."""
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium (Debian's, driven by Playwright) for the session's browser tests;
    each test opens a context of its own."""
    # Imported only when a browser test runs: Playwright is not needed to collect the suite.
    from playwright.sync_api import sync_playwright

    from tests.browser import launch as launch_chromium

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()
