"""Secrets and access: the API key stays out of every output, files stay private, TLS stays on.

The key-leak test runs the daemon as a real subprocess through a full cycle with failures on
every path that logs (injected faults, a quarantined file, a wrong key answered with 401), with
the key given by environment variable and by key file, then searches every byte it could have
reached: logs, CLI output, process arguments and the state database with its WAL.
"""

from __future__ import annotations

import http.server
import io
import json
import logging
import os
import shutil
import ssl
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import structlog
from click.testing import CliRunner, Result

from syncd.api import Mistral
from syncd.cli import cli
from syncd.emulator import EmulatorServer
from syncd.errors import ApiConnectionError, AuthError
from syncd.logs import REDACTED, configure_logging, register_secret, reset_logging
from tests.configs import FolderSetup, write_chat_file, write_config
from tests.daemon_process import DaemonProcess
from tests.support import wait_until

#: Distinctive keys: any occurrence in an output is a leak, never a coincidence.
CANARY = "sk-SECRET-canary-1234567890abcdefXYZ"
WRONG_KEY = "sk-WRONG-canary-0987654321fedcbaQRS"

#: Runs the daemon with its stdout sent to its stderr, so one captured stream holds both. The
#: shell execs the daemon: same pid, and /proc/<pid>/cmdline shows the daemon's own argv.
BOTH_STREAMS = ("sh", "-c", 'exec "$@" 1>&2', "sh")

CLEAN_ENV: dict[str, str | None] = {
    "SYNCD_CONFIG": None,
    "STATE_DIRECTORY": None,
    "CREDENTIALS_DIRECTORY": None,
}


def invoke(config: Path, *args: str, api_key: str | None) -> Result:
    """``syncd -c CONFIG ARGS...`` in-process with ``api_key`` as MISTRAL_API_KEY."""
    return CliRunner().invoke(
        cli, ["-c", str(config), *args], env={**CLEAN_ENV, "MISTRAL_API_KEY": api_key}
    )


def wait_synced(daemon: DaemonProcess, path: str) -> None:
    """Wait until ``path`` is on the remote: uploaded, or adopted after a lost answer."""

    def synced() -> bool:
        events = daemon.named("file_uploaded") + daemon.named("file_adopted")
        return any(event.get("path") == path for event in events)

    wait_until(synced, timeout=60, what=f"{path} uploaded or adopted")


@dataclass
class Evidence:
    """Everything the key could have reached, collected while and after the daemon ran."""

    texts: dict[str, str]
    blobs: dict[str, bytes]

    def add_process(self, label: str, daemon: DaemonProcess) -> None:
        """The daemon's argv as the kernel and ``ps`` show it."""
        pid = daemon.proc.pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        assert cmdline.split("\0")[1:3] == ["-m", "syncd"]  # the daemon itself, not the shell
        self.texts[f"{label} /proc/{pid}/cmdline"] = cmdline
        ps = subprocess.run(
            ["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True, check=True
        )
        line = next(row for row in ps.stdout.splitlines() if row.split(maxsplit=1)[0] == str(pid))
        assert "syncd" in line and " run" in line
        self.texts[f"{label} ps"] = ps.stdout

    def add_cli(self, label: str, config: Path, api_key: str | None) -> None:
        """status (table, --json, --problems) and check-config output while the key is set."""
        for args in (["status"], ["status", "--json"], ["status", "--problems"], ["check-config"]):
            result = invoke(config, *args, api_key=api_key)
            # --problems exits 1 while a file is quarantined (the point here is the key).
            assert result.exit_code in ((0, 1) if "--problems" in args else (0,)), result.output
            self.texts[f"{label} {' '.join(args)}"] = result.output

    def add_files_under(self, label: str, directory: Path) -> None:
        """Every byte of every file below ``directory`` (database, -wal, -shm...)."""
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                self.blobs[f"{label} {path}"] = path.read_bytes()

    def leaks(self, secret: str) -> list[str]:
        """Where ``secret`` was found, or in an escaped form of it."""
        spellings = {secret, secret.encode("unicode_escape").decode()}
        found = [name for name, text in self.texts.items() if any(s in text for s in spellings)]
        found += [name for name, data in self.blobs.items() if secret.encode() in data]
        return found


def _check_private(state_dir: Path) -> None:
    """The state directory is 0700; the database and its WAL/SHM companions are 0600."""
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    database = state_dir / "state.db"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    for companion in state_dir.glob("state.db-*"):
        assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion


def test_api_key_never_reaches_logs_output_arguments_or_database(
    tmp_path: Path,
    make_emulator: Callable[..., EmulatorServer],
    daemons: list[DaemonProcess],
) -> None:
    """Env var run with faults and a quarantine, key-file run, wrong-key run: no trace anywhere."""
    emulator = make_emulator(
        api_key=CANARY, fault_rate=0.25, retry_after=0.05, seed=8, dedupe=False
    )
    folder = tmp_path / "data"
    for i in range(3):
        write_chat_file(folder / f"good-{i}.jsonl", salt=str(i))
    (folder / "broken.jsonl").write_text("not json\n", encoding="utf-8")
    state_dir = tmp_path / "state"
    assert not state_dir.exists()  # syncd creates it, with its own permissions
    sections = {"api": {"max_attempts": "40"}, "log": {"level": '"debug"'}}
    config = write_config(
        tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)], sections=sections
    )
    evidence = Evidence(texts={}, blobs={})

    # Run 1: key from MISTRAL_API_KEY; faults on every kind of request; one bad file.
    first = DaemonProcess(config, api_key=CANARY, prefix=BOTH_STREAMS)
    daemons.append(first)
    for i in range(3):
        wait_synced(first, f"good-{i}.jsonl")
    quarantined = first.wait_event("file_quarantined", path="broken.jsonl")
    assert quarantined["error"] == "line 1: not valid JSON: Expecting value (column 1)"
    evidence.add_process("run 1", first)
    evidence.add_cli("run 1", config, CANARY)
    _check_private(state_dir)
    evidence.add_files_under("run 1", state_dir)
    assert first.stop() == 0
    assert emulator.stats()["faults"], "the faults must have happened for the error paths to log"

    # Run 2: the key from api_key_file (the variable is empty, so the file is read).
    key_file = tmp_path / "credentials" / "mistral-api-key"
    key_file.parent.mkdir(mode=0o700)
    key_file.write_text(CANARY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    sections["api"]["api_key_file"] = f'"{key_file}"'
    config = write_config(
        tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)], sections=sections
    )
    write_chat_file(folder / "good-3.jsonl", salt="3")
    second = DaemonProcess(config, api_key="", prefix=BOTH_STREAMS)
    daemons.append(second)
    wait_synced(second, "good-3.jsonl")
    evidence.add_process("run 2", second)
    evidence.add_cli("run 2", config, None)
    assert f"api key:   found in file {key_file}" in evidence.texts["run 2 check-config"]
    evidence.add_files_under("run 2", state_dir)
    assert second.stop() == 0

    # Run 3: a wrong key; the emulator answers 401 and the error is logged and stored.
    emulator.set_faults(fault_rate=0.0)
    del sections["api"]["api_key_file"]
    config = write_config(
        tmp_path, server_url=emulator.url, folders=[FolderSetup(folder)], sections=sections
    )
    write_chat_file(folder / "good-4.jsonl", salt="4")
    third = DaemonProcess(config, api_key=WRONG_KEY, prefix=BOTH_STREAMS)
    daemons.append(third)
    refused = third.wait_event("upload_retry_scheduled", path="good-4.jsonl")
    assert refused["error"] == "HTTP 401: Unauthorized"
    evidence.add_process("run 3", third)
    evidence.add_cli("run 3", config, WRONG_KEY)
    evidence.add_files_under("run 3", state_dir)
    assert third.stop() == 0

    for label, daemon in (("run 1", first), ("run 2", second), ("run 3", third)):
        evidence.texts[f"{label} log"] = "".join(daemon.raw)
    evidence.add_files_under("after", state_dir)
    evidence.blobs["config.toml"] = (tmp_path / "config.toml").read_bytes()

    # The search reads what it should: the database holds the file names and the 401.
    database = b"".join(data for name, data in evidence.blobs.items() if "state.db" in name)
    assert b"good-4.jsonl" in database
    assert b"HTTP 401: Unauthorized" in database
    assert "HTTP 401: Unauthorized" in evidence.texts["run 3 status --json"]
    assert any(name.endswith("state.db-wal") for name in evidence.blobs)  # read while open
    assert len(evidence.texts) > 20
    assert "upload_retry_scheduled" in evidence.texts["run 1 log"]  # error paths did log
    assert evidence.leaks(CANARY) == []
    assert evidence.leaks(WRONG_KEY) == []
    assert CANARY in key_file.read_text()  # the only place the key lives on this machine


def test_key_quoted_escaped_by_a_library_is_still_redacted_from_logs() -> None:
    """A key with a line break, quoted repr-escaped (as httpx quotes a bad header), is hidden.

    The client refuses such a key before sending (tests/test_api_client.py); this guards the
    log pipeline for any library that still quotes it, in event fields and stdlib messages.
    """
    key = "sk-line\nbreak-canary-4242"
    quoted = f"Illegal header value b'Bearer {repr(key)[1:-1]}'"
    assert "break-canary-4242" in quoted
    register_secret(key)
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    try:
        structlog.get_logger().error("upload_failed", error=quoted)
        logging.getLogger("httpx").error("send failed: %s", quoted)
    finally:
        reset_logging()
    output = stream.getvalue()
    assert output.count(REDACTED) == 2
    assert "break-canary-4242" not in output


def test_state_directory_and_database_are_private_even_with_umask_0(tmp_path: Path) -> None:
    """From scratch under umask 000: every new directory 0700, the database file 0600."""
    folder = tmp_path / "data"
    folder.mkdir()
    state_dir = tmp_path / "fresh" / "deeper" / "state"
    config = tmp_path / "config.toml"
    config.write_text(
        '[api]\nserver_url = "embedded"\n'
        f'[state]\nurl = "sqlite:///{state_dir}/state.db"\n'
        f'[[folders]]\npath = "{folder}"\npurpose = "fine-tune"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "syncd", "-c", str(config), "sync", "--no-progress"],
        env={k: v for k, v in os.environ.items() if k != "MISTRAL_API_KEY"},
        umask=0,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for directory in (tmp_path / "fresh", tmp_path / "fresh" / "deeper", state_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    _check_private(state_dir)
    # The embedded emulator's data (uploaded training files) sits inside, just as private.
    assert stat.S_IMODE((state_dir / "emulator").stat().st_mode) == 0o700


# -- the emulator: keys and file names ------------------------------------------------------------


def test_emulator_refuses_a_wrong_key_on_every_endpoint(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    """Every /v1 and control endpoint answers 401 to a wrong or missing key and changes nothing."""
    emulator = make_emulator(api_key=CANARY)
    with Mistral(api_key=CANARY, server_url=emulator.url) as client:
        kept = client.files.upload(
            file=b'{"text": "keep me"}\n', filename="k.jsonl", purpose="fine-tune"
        )
    requests = [
        ("GET", "/v1/files", None),
        ("POST", "/v1/files", {"purpose": "fine-tune"}),
        ("GET", f"/v1/files/{kept.id}", None),
        ("GET", f"/v1/files/{kept.id}/content", None),
        ("GET", f"/v1/files/{kept.id}/url", None),
        ("DELETE", f"/v1/files/{kept.id}", None),
        ("GET", "/v1/fine_tuning/jobs", None),
        ("GET", "/v1/batch/jobs", None),
        ("GET", "/_emulator/stats", None),
        ("GET", "/_emulator/faults", None),
    ]
    for headers in ({"Authorization": f"Bearer {WRONG_KEY}"}, {}):
        for method, path, data in requests:
            files = {"file": ("x.jsonl", b'{"text": "sneaky"}\n')} if data else None
            response = httpx.request(
                method, emulator.url + path, headers=headers, data=data, files=files
            )
            assert response.status_code == 401, (method, path, response.text)
            assert response.json() == {"detail": "Unauthorized"}
            assert response.headers["www-authenticate"] == "Bearer"
            assert CANARY not in response.text
    stats = emulator.stats()
    assert stats["files"] == 1
    assert stats["uploads"] == 1
    with Mistral(api_key=CANARY, server_url=emulator.url) as client:
        assert [info.id for info in client.files.iter_all()] == [kept.id]


def test_emulator_keeps_every_filename_inside_its_data_dir(
    tmp_path: Path, make_emulator: Callable[..., EmulatorServer]
) -> None:
    """Hostile upload names are metadata only: content lives under blobs/<uuid>, nothing escapes."""
    data_dir = tmp_path / "sandbox" / "emulator"
    emulator = make_emulator(api_key=CANARY, data_dir=data_dir)
    escapes = [Path("/tmp/syncd-escape.jsonl"), Path("/etc/syncd-escape.jsonl")]
    passwd = Path("/etc/passwd").read_bytes()
    before = _tree(tmp_path, skip=data_dir)
    names = [
        "../../x.jsonl",
        "../../../../../../tmp/syncd-escape.jsonl",
        "/etc/passwd",
        "/etc/syncd-escape.jsonl",
        "a/../../b.jsonl",
        "..",
        ".",
        "..\\..\\win.jsonl",
        "%2e%2e%2fencoded.jsonl",
        "blobs/../emulator.sqlite3",
        "données-日本語-😀.jsonl",
        "new\nline.jsonl",
    ]
    ids = {}
    with Mistral(api_key=CANARY, server_url=emulator.url) as client:
        for index, name in enumerate(names):
            content = f'{{"text": "upload {index}"}}\n'.encode()
            info = client.files.upload(file=content, filename=name, purpose="agentic_safety")
            ids[info.id] = content
        for file_id, content in ids.items():
            with client.files.download(file_id) as response:
                assert response.read() == content
    # "../../x" from blobs/ or tmp/ would land in tmp_path; absolute ones at their own place.
    assert _tree(tmp_path, skip=data_dir) == before
    assert not any(path.exists() for path in escapes)
    assert Path("/etc/passwd").read_bytes() == passwd
    stored = {p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*") if p.is_file()}
    blobs = {name for name in stored if name.startswith("blobs/")}
    assert blobs == {f"blobs/{file_id}" for file_id in ids}
    assert stored - blobs <= {
        "signing.key",
        "emulator.sqlite3",
        "emulator.sqlite3-wal",
        "emulator.sqlite3-shm",
        "emulator.lock",
    }


def _tree(root: Path, *, skip: Path) -> set[str]:
    """Every path below ``root`` except those inside ``skip``."""
    return {str(p) for p in root.rglob("*") if skip not in (p, *p.parents)}


def test_key_is_not_forwarded_on_a_redirect_to_another_origin(
    make_emulator: Callable[..., EmulatorServer],
) -> None:
    """A server redirecting elsewhere does not get the key sent on: the target answers 401."""
    emulator = make_emulator(api_key=CANARY)

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", emulator.url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        redirector = f"http://127.0.0.1:{server.server_address[1]}"
        with (
            Mistral(api_key=CANARY, server_url=redirector, max_retries=0) as client,
            pytest.raises(AuthError),
        ):
            client.files.list()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert emulator.stats()["requests"] == 1  # it was reached, without the key


# -- TLS: verification on, no silent way off -----------------------------------------------------


@dataclass(frozen=True)
class TlsServer:
    url: str
    cert: Path
    seen_authorization: list[str]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A loopback HTTPS server with a fresh self-signed certificate, answering an empty list."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is needed to make a self-signed certificate"
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = json.dumps({"data": [], "object": "list", "total": 0}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            return  # a client refusing our certificate is the point of these tests

    server = QuietServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield TlsServer(f"https://127.0.0.1:{server.server_address[1]}", cert, seen)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


#: Variables other tools read to turn verification off; none of them may affect syncd.
_INSECURE_ENV = {
    "PYTHONHTTPSVERIFY": "0",
    "CURL_CA_BUNDLE": "",
    "REQUESTS_CA_BUNDLE": "",
    "HTTPX_VERIFY": "0",
    "SSL_VERIFY": "false",
    "SYNCD_INSECURE": "1",
    "SYNCD_TLS_VERIFY": "false",
    "MISTRAL_VERIFY_SSL": "false",
    "NODE_TLS_REJECT_UNAUTHORIZED": "0",
}


def test_self_signed_certificate_is_refused_whatever_the_environment(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An untrusted certificate fails with ApiConnectionError naming certificate verification."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name, value in _INSECURE_ENV.items():
        monkeypatch.setenv(name, value)
    before = len(tls_server.seen_authorization)
    with (
        Mistral(api_key=CANARY, server_url=tls_server.url, max_retries=0) as client,
        pytest.raises(ApiConnectionError) as caught,
    ):
        client.files.list()
    message = str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert "certificate verify failed: self-signed certificate" in message
    assert "SSL_CERT_FILE" in message
    assert message.startswith(f"cannot connect for GET {tls_server.url}/v1/files")
    assert CANARY not in message
    assert len(tls_server.seen_authorization) == before  # the key never left the process


def test_ssl_cert_file_makes_a_private_ca_trusted(
    tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE naming the server's CA is the supported way to trust a private CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.cert))
    with Mistral(api_key=CANARY, server_url=tls_server.url, max_retries=0) as client:
        page = client.files.list()
    assert page.total == 0
    assert tls_server.seen_authorization[-1] == f"Bearer {CANARY}"


def test_sync_against_an_untrusted_server_fails_with_the_reason_in_status(
    tmp_path: Path, tls_server: TlsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`syncd sync` to a self-signed server uploads nothing; status says why; exit 1."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    write_chat_file(tmp_path / "data" / "a.jsonl")
    config = write_config(
        tmp_path,
        server_url=tls_server.url,
        folders=[FolderSetup(tmp_path / "data")],
        sections={"api": {"max_attempts": "1"}},
    )
    result = invoke(config, "sync", "--no-progress", api_key=CANARY)
    assert result.exit_code == 1, result.output
    status = json.loads(invoke(config, "status", "--json", api_key=CANARY).stdout)
    (row,) = status["files"]
    assert row["state"] == "failed"
    assert "certificate verify failed: self-signed certificate" in row["reason"]
    assert CANARY not in result.output


@pytest.mark.parametrize(
    "setting",
    [
        "[api]\nverify = false",
        "[api]\ninsecure = true",
        "[api]\ntls_verify = false",
        "[api]\nssl_verify = false",
        "[api]\nverify_ssl = false",
        "[api]\nca_bundle = '/dev/null'",
        "verify = false",
    ],
)
def test_no_config_key_turns_verification_off(tmp_path: Path, setting: str) -> None:
    """Every would-be "skip TLS verification" key is an unknown key: exit 78, named."""
    (tmp_path / "data").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(
        f'{setting}\n[[folders]]\npath = "data"\npurpose = "fine-tune"\n', encoding="utf-8"
    )
    result = invoke(config, "check-config", api_key=CANARY)
    assert result.exit_code == 78
    key = setting.split("\n")[-1].split(" = ")[0]
    table = "api." if setting.startswith("[api]") else ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error: {config}: {table}{key}: unknown key; ")
