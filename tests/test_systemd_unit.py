"""The shipped systemd unit: systemd itself accepts it, and it says what syncd relies on.

``systemd-analyze verify`` loads the unit the way PID 1 would and prints a diagnostic for every
unknown key or unparsable value, but it exits 0 for most of them and also refuses a unit whose
ExecStart binary is missing. So the test verifies a copy whose ExecStart points at this venv's
``syncd`` script (same arguments, everything else untouched) and fails on any diagnostic that
names the unit. ``--recursive-errors=no`` keeps problems of unrelated system units out of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "syncd.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"

Directives = dict[str, dict[str, list[str]]]


def _parse(text: str) -> Directives:
    """Unit-file syntax: [Section], Key=value, '#' comments; a key may repeat."""
    sections: Directives = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{UNIT}: not a Key=value line: {raw!r}"
        sections[section][key.strip()].append(value.strip())
    return sections


def _testable_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart's binary swapped for one that exists here."""
    syncd_script = Path(sys.executable).parent / "syncd"
    assert syncd_script.exists(), syncd_script
    original = UNIT.read_text() if text is None else text
    rewritten = original.replace("ExecStart=/usr/local/bin/syncd ", f"ExecStart={syncd_script} ", 1)
    assert rewritten != original, "ExecStart=/usr/local/bin/syncd not found in the unit"
    copy = tmp_path / "syncd.service"
    copy.write_text(rewritten)
    return copy


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=cwd,
        env=env,
        check=False,
    )


def _diagnostics_about(unit: Path, result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if unit.name in line]


def test_systemd_accepts_every_line(tmp_path: Path) -> None:
    """systemd-analyze verify loads the unit with no warning about any key or value."""
    unit = _testable_copy(tmp_path)
    result = _analyze("verify", "--recursive-errors=no", unit.name, cwd=tmp_path)
    assert _diagnostics_about(unit, result) == []
    assert result.returncode == 0, result.stderr


def test_verify_would_catch_a_bad_line(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt key and a bad value are both reported."""
    broken = UNIT.read_text().replace(
        "ProtectHome=yes", "ProtectHome=maybe\nProtectSystm=strict", 1
    )
    unit = _testable_copy(tmp_path, broken)
    result = _analyze("verify", "--recursive-errors=no", unit.name, cwd=tmp_path)
    diagnostics = "\n".join(_diagnostics_about(unit, result))
    assert "ProtectSystm" in diagnostics
    assert "maybe" in diagnostics


def test_required_directives() -> None:
    """The unit carries the lifecycle, credential and sandboxing settings syncd depends on."""
    service = _parse(UNIT.read_text())["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "/usr/local/bin/syncd -c /etc/syncd/config.toml run",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "WatchdogSec": "60",
        "Restart": "on-failure",
        "RestartSec": "5",
        "RestartPreventExitStatus": "78",
        "TimeoutStopSec": "90",
        "StateDirectory": "syncd",
        "StateDirectoryMode": "0700",
        "LoadCredential": "mistral-api-key:/etc/syncd/mistral-api-key",
        "DynamicUser": "yes",
        "UMask": "0077",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "SystemCallFilter": "@system-service",
        "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    }
    assert {key: service.get(key) for key in expected} == {
        key: [value] for key, value in expected.items()
    }
    assert service["ReadOnlyPaths"], "the watched folders should be listed read-only"


def test_no_secret_or_environment_key_in_the_unit() -> None:
    """The API key only arrives through LoadCredential=, never Environment= in the unit."""
    service = _parse(UNIT.read_text())["Service"]
    assert not [v for v in service.get("Environment", []) if "KEY" in v.upper()]
    assert "EnvironmentFile" not in service


def test_hardening_exposure_stays_low(tmp_path: Path) -> None:
    """systemd-analyze security rates the sandbox at an exposure of 2.0 or better ("OK").

    ``--threshold`` is ten times the exposure score: the command fails above 2.0.
    """
    unit = _testable_copy(tmp_path)
    result = _analyze(
        "security", "--offline=true", "--threshold=20", f"./{unit.name}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout.splitlines()[-1:]
