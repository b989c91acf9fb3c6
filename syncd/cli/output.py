"""Output for scripts: one tab-separated record per line when stdout is not a terminal.

Like ``git status --porcelain`` and ``rclone lsf``: no box, no wrapping, one line per record,
fields separated by tabs (a tab or newline in a name is escaped, an empty field is ``-``), so
``grep``, ``cut -f`` and ``awk -F'\\t'`` work. ``--porcelain``/``--table`` choose explicitly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from syncd.paths import printable_key

__all__ = ["porcelain_option", "record", "wants_porcelain"]

F = TypeVar("F", bound=Callable[..., Any])


def porcelain_option(fields: str) -> Callable[[F], F]:
    """``--porcelain/--table``; ``fields`` names the columns of a record, for the help."""
    return click.option(
        "--porcelain/--table",
        "porcelain",
        default=None,
        help=f"One tab-separated record per line ({fields}); the default when stdout is not "
        "a terminal. --table: the tables, even in a pipe.",
    )


def wants_porcelain(porcelain: bool | None) -> bool:
    return not sys.stdout.isatty() if porcelain is None else porcelain


def record(*fields: object) -> str:
    """One line: the fields, escaped, tab-separated; ``None`` and empty become ``-``."""
    return "\t".join(
        "-" if value is None or value == "" else printable_key(str(value)) for value in fields
    )
