"""What ``syncd --version`` says: the release, and the commit for a build from a git checkout.

Computed only when asked (it may run git), never at import: every command starts faster.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from syncd import __version__

__all__ = ["version_text"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def version_text() -> str:
    """``syncd 0.1.0`` for an installed release; ``syncd 0.1.0 (git 3155e7a, modified)``
    when the package runs from a git checkout (``make run``, an editable install)."""
    commit = _checkout_commit()
    return f"syncd {__version__}" + (f" ({commit})" if commit else "")


def _checkout_commit() -> str | None:
    git = shutil.which("git")
    if git is None or not (_CHECKOUT / ".git").exists() or not (_CHECKOUT / "syncd").is_dir():
        return None
    try:
        head = _git(git, "rev-parse", "--short=12", "HEAD")
        dirty = _git(git, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"git {head}" + (", modified" if dirty else "")


def _git(git: str, *args: str) -> str:
    done = subprocess.run(
        [git, "-C", str(_CHECKOUT), *args], capture_output=True, text=True, timeout=5, check=True
    )
    return done.stdout.strip()
