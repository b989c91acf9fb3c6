"""A throwaway PostgreSQL cluster for the test suite: its own data dir, port and superuser.

The suite starts one (lazily, the first time a test asks for PostgreSQL) and every test gets a
fresh empty database in it. Nothing depends on a system cluster: ``initdb`` makes a new one in
a fresh temp dir outside the checkout, listening on 127.0.0.1 at a free port (and on a unix
socket in that dir), with trust auth for the role ``syncd_test`` and without fsync.

PostgreSQL refuses to run as root, and the tests run as root in CI: then ``initdb`` and
``pg_ctl`` run as ``nobody`` (``setpriv``), which owns the temp dir. The server's default
collation is ICU's ``en-US``, like most production clusters: text does not sort bytewise there,
so a query that relies on byte order shows up here and not only in production.

Tests that must ride out a database outage call :meth:`PostgresCluster.kill` (an immediate
shutdown, as a crash would be) and :meth:`PostgresCluster.start` (same port, same data).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

__all__ = ["PostgresCluster", "PostgresUnavailableError", "find_bindir"]

#: The superuser initdb creates; trust auth, so URLs carry no password.
SUPERUSER = "syncd_test"
#: How long a start or a stop may take (crash recovery after :meth:`kill` included).
DEADLINE_SECONDS = 60.0
#: The account the server runs as when the tests run as root.
_UNPRIVILEGED = "nobody"
_UNPRIVILEGED_GROUP = "nogroup"
#: Server settings for a test cluster: no fsync (the OS keeps what was written, and a test
#: crashes the server, never the machine). Commits still reach the WAL before they return:
#: with synchronous_commit=off an immediate stop would lose what a test just committed.
_SERVER_OPTIONS = (
    "fsync=off",
    "full_page_writes=off",
    "max_connections=200",
    "shared_buffers=32MB",
)
_INSTALL_HINT = (
    "the test suite needs PostgreSQL's server binaries (initdb, pg_ctl, postgres): "
    "run `make test`, which installs them, or `apt-get install -y postgresql`"
)


class PostgresUnavailableError(RuntimeError):
    """The server binaries are missing, or the cluster would not start (the log is attached)."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest
    of Debian's ``/usr/lib/postgresql/*/bin``.

    Raises:
        PostgresUnavailableError: no server binaries anywhere (with how to install them).
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False, timeout=30
        )
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    looked = ", ".join(str(c) for c in candidates) or "no pg_config on PATH, no /usr/lib/postgresql"
    raise PostgresUnavailableError(f"{_INSTALL_HINT} (looked in {looked})")


def _cluster_parent() -> Path:
    """Where the cluster's temp dir goes: the usual temp dir, unless the server's account could
    not reach it (a 0700 parent) or its unix socket path would be too long; then /tmp."""
    usual = Path(tempfile.gettempdir())
    reachable = all(p.stat().st_mode & 0o001 for p in (usual, *usual.parents))
    return usual if reachable and len(str(usual)) <= 60 else Path("/tmp")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One initdb-made cluster in a temp dir; :meth:`create` makes and starts it."""

    def __init__(self, bindir: Path, base: Path, port: int) -> None:
        self.bindir = bindir
        self.base = base
        """The temp dir: data dir, server log and unix socket."""
        self.data_dir = base / "data"
        self.log_file = base / "server.log"
        self.port = port
        self.host = "127.0.0.1"
        self.user = SUPERUSER
        self.startup_seconds = 0.0
        """How long :meth:`create` took (initdb and the first start)."""

    @classmethod
    def create(cls) -> PostgresCluster:
        """initdb a new cluster in a fresh temp dir and start it.

        Raises:
            PostgresUnavailableError: the binaries are missing, or initdb or the start failed.
        """
        began = time.monotonic()
        bindir = find_bindir()
        base = Path(tempfile.mkdtemp(prefix="syncd-pg-", dir=_cluster_parent()))
        cluster = cls(bindir, base, _free_port())
        try:
            if os.geteuid() == 0:
                account = pwd.getpwnam(_UNPRIVILEGED)
                os.chown(base, account.pw_uid, account.pw_gid)
            base.chmod(0o700)
            cluster._initdb()
            # Another process may take the free port before the server binds it: try anew.
            for attempt in range(3):
                try:
                    cluster.start()
                    break
                except PostgresUnavailableError:
                    if attempt == 2 or "could not bind" not in cluster.server_log():
                        raise
                    cluster.port = _free_port()
        except BaseException:
            cluster.destroy()
            raise
        cluster.startup_seconds = time.monotonic() - began
        return cluster

    # -- running the server's tools ------------------------------------------------------------

    def _command(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bindir / tool), *args]
        if os.geteuid() != 0:
            return argv
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise PostgresUnavailableError(
                "PostgreSQL refuses to run as root and util-linux's setpriv (to run it as "
                f"{_UNPRIVILEGED}) is missing"
            )
        drop = [
            setpriv,
            f"--reuid={_UNPRIVILEGED}",
            f"--regid={_UNPRIVILEGED_GROUP}",
            "--clear-groups",
        ]
        return [*drop, *argv]

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self._command(tool, *args),
            capture_output=True,
            text=True,
            check=False,
            timeout=DEADLINE_SECONDS + 30,
            cwd=self.base,
            stdin=subprocess.DEVNULL,
        )

    def _initdb(self) -> None:
        done = self._run(
            "initdb",
            f"--pgdata={self.data_dir}",
            f"--username={self.user}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            # Production clusters compare text by a language's rules, not by bytes.
            "--locale-provider=icu",
            "--icu-locale=en-US",
            "--no-sync",
            "--no-instructions",
        )
        if done.returncode != 0:
            raise PostgresUnavailableError(
                f"initdb failed (exit {done.returncode}): {done.stderr.strip() or done.stdout}"
            )

    def server_log(self) -> str:
        """The server's log so far ('' before the first start)."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server on its port and data dir; return once it takes connections.

        After :meth:`kill` this runs crash recovery first (``pg_ctl -w`` waits for it).

        Raises:
            PostgresUnavailableError: it did not start within the deadline (the log tail is shown).
        """
        options = [
            f"-p {self.port}",
            f"-c listen_addresses={self.host}",
            f"-c unix_socket_directories={self.base}",
            *(f"-c {option}" for option in _SERVER_OPTIONS),
        ]
        done = self._run(
            "pg_ctl",
            "start",
            f"--pgdata={self.data_dir}",
            f"--log={self.log_file}",
            "--wait",
            f"--timeout={int(DEADLINE_SECONDS)}",
            f"--options={' '.join(options)}",
        )
        if done.returncode != 0:
            tail = "\n".join(self.server_log().splitlines()[-20:])
            raise PostgresUnavailableError(
                f"PostgreSQL did not start on port {self.port} (pg_ctl exit {done.returncode}: "
                f"{done.stderr.strip() or done.stdout.strip()}); server log:\n{tail}"
            )
        self.wait_ready()

    def wait_ready(self, *, timeout: float = DEADLINE_SECONDS) -> None:
        """Poll with real connections until one succeeds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=5) as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() >= deadline:
                    raise PostgresUnavailableError(
                        f"PostgreSQL on port {self.port} not ready after {timeout}s: {exc}"
                    ) from exc
            time.sleep(0.05)

    def is_running(self) -> bool:
        """Whether the server is up (``pg_ctl status``)."""
        return self._run("pg_ctl", "status", f"--pgdata={self.data_dir}").returncode == 0

    def ensure_running(self) -> None:
        """Start the server again if a test left it stopped."""
        if not self.is_running():
            self.start()

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``pg_ctl stop -m mode``) and wait until it is gone.

        ``fast`` rolls back open transactions and disconnects clients cleanly; ``immediate``
        is a crash: no checkpoint, clients cut off, recovery at the next start.
        """
        done = self._run(
            "pg_ctl",
            "stop",
            f"--pgdata={self.data_dir}",
            f"--mode={mode}",
            "--wait",
            f"--timeout={int(DEADLINE_SECONDS)}",
        )
        if done.returncode != 0 and self.is_running():
            raise PostgresUnavailableError(
                f"pg_ctl stop -m {mode} failed: {done.stderr.strip() or done.stdout.strip()}"
            )

    def kill(self) -> None:
        """Stop the server hard, as a crash would (``pg_ctl stop -m immediate``)."""
        self.stop("immediate")

    def restart(self, *, hard: bool = True) -> None:
        """Stop (hard by default) and start again on the same port and data dir."""
        self.stop("immediate" if hard else "fast")
        self.start()

    def destroy(self) -> None:
        """Stop the server if it runs and delete the temp dir (best effort, never raises)."""
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailableError, OSError, subprocess.SubprocessError):
                self.stop("fast")
        shutil.rmtree(self.base, ignore_errors=True)

    # -- databases -----------------------------------------------------------------------------

    def dsn(self, database: str) -> str:
        """A libpq connection string for ``database`` (psycopg)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database``."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database with a unique name; returns the name."""
        name = f"syncd_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, cutting off any connection a test left open."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
