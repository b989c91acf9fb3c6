"""The build as a newcomer meets it: the lock, the license, the version."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_names_the_release_and_the_checkouts_commit() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "syncd", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert re.fullmatch(
        rf"syncd {re.escape(project['version'])} \(git {head}(, modified)?\)\n", done.stdout
    ), done.stdout


def test_the_license_file_is_the_one_pyproject_names() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")


def test_the_lock_pins_every_package_with_hashes() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    packages = lock["package"]
    names = {package["name"] for package in packages}
    # The runtime set and the test tools are both locked.
    assert {"watchdog", "httpx", "sqlalchemy", "pytest", "mypy", "import-linter"} <= names
    for package in packages:
        if package["name"] == "syncd":
            continue
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files, package["name"]
        assert all(f["hash"].startswith("sha256:") for f in files), package["name"]


def test_the_watchdog_bound_is_the_one_beside_its_reason() -> None:
    """syncd reaches into watchdog's private inotify layer: a new minor release is let in by
    `make upgrade` after the suite ran against it, never by a fresh install."""
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'private inotify layer.*\n.*\n.*\n.*\n\s*"watchdog>=7\.1,<7\.2"', text)


def test_every_module_of_the_package_is_on_a_layer() -> None:
    """A module left off the layers contract is not checked by it: a new one must be placed."""
    contracts = _pyproject()["tool"]["importlinter"]["contracts"]  # type: ignore[index]
    layers = next(c for c in contracts if c.get("containers") == ["syncd"])["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    modules = {
        path.stem if path.is_file() else path.name
        for path in (ROOT / "syncd").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert modules == placed
