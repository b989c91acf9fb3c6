"""Path keys and ignore rules: pure string work, no file-system access.

A *key* is a file's root-relative POSIX path (``"data/train.jsonl"``); the state store and the
remote side only ever see keys. :class:`IgnoreRules` decides which keys a folder takes. Names
that are not valid UTF-8 reach Python as strings with surrogate escapes; the helpers at the end
detect them and render them printable for messages.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

__all__ = [
    "IgnoreRules",
    "display_name",
    "is_valid_utf8_name",
    "printable_key",
    "to_key",
    "to_path",
]

#: Matches nothing: the regex used when a rule list has no patterns of a kind.
_NEVER = re.compile(r"(?!)")


class IgnoreRules:
    """Which files of a folder are taken: include globs, then exclude globs.

    Patterns are fnmatch-style (``*``, ``?``, ``[seq]``, ``[!seq]``) and case-sensitive; ``*``
    and ``?`` never match ``/``.

    * A pattern **without** ``/`` is about one name. In ``include`` it matches the file's
      basename (``*.jsonl``). In ``exclude`` it matches **any** path component, so ``.*``
      excludes hidden files *and* everything inside hidden directories.
    * A pattern **with** ``/`` matches the whole root-relative POSIX path (a leading ``/`` is
      allowed and ignored: every such pattern is anchored at the root). ``**`` as a whole
      component matches any number of directories, including none: ``data/**/*.jsonl`` takes
      ``data/a.jsonl`` and ``data/x/y/a.jsonl``; ``cache/**`` matches everything under
      ``cache``.
    * A trailing ``/`` marks a directory: in ``exclude``, ``build/`` prunes directories named
      ``build`` (but not a file named so) and ``out/tmp/`` prunes that one directory; in
      ``include``, ``data/`` means ``data/**``.
    * An exclude that matches a directory excludes everything below it.
    * A file is taken when some include matches and no exclude does. An empty ``include`` takes
      nothing (the configuration supplies per-purpose defaults).

    The patterns are compiled into a few regexes once, so checking 100,000 keys is cheap.
    """

    __slots__ = (
        "_by_name_only",
        "_exclude_dir_name",
        "_exclude_dir_path",
        "_exclude_name",
        "_exclude_path",
        "_include_name",
        "_include_path",
        "exclude",
        "include",
    )

    def __eq__(self, other: object) -> bool:
        # The same patterns are the same rules: a reload that keeps them leaves the folder alone
        # (compared by identity, every SIGHUP rewatched and rescanned every folder).
        if not isinstance(other, IgnoreRules):
            return NotImplemented
        return (self.include, self.exclude) == (other.include, other.exclude)

    def __hash__(self) -> int:
        return hash((self.include, self.exclude))

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self.include: tuple[str, ...] = tuple(include)
        self.exclude: tuple[str, ...] = tuple(exclude)
        include_names: list[str] = []
        include_paths: list[str] = []
        for pattern in self.include:
            if pattern.endswith("/"):
                pattern = pattern.rstrip("/") + "/**"
            if "/" in pattern:
                include_paths.append(_translate_path(pattern))
            else:
                include_names.append(_translate_name(pattern))
        exclude_names: list[str] = []  # any component, file or directory
        exclude_paths: list[str] = []  # whole path, file or directory
        exclude_dir_names: list[str] = []  # a directory component only
        exclude_dir_paths: list[str] = []  # a directory's whole path only
        for pattern in self.exclude:
            is_dir_only = pattern.endswith("/")
            pattern = pattern.rstrip("/")
            if not pattern:
                continue
            if pattern.endswith("/**"):
                # "cache/**" matches everything below cache, so cache itself can be pruned.
                exclude_dir_paths.append(_translate_path(pattern[: -len("/**")]))
            if "/" in pattern:
                target = exclude_dir_paths if is_dir_only else exclude_paths
                target.append(_translate_path(pattern))
            else:
                target = exclude_dir_names if is_dir_only else exclude_names
                target.append(_translate_name(pattern))
        self._include_name = _compile(include_names)
        self._include_path = _compile(include_paths)
        self._exclude_name = _compile(exclude_names)
        self._exclude_path = _compile(exclude_paths)
        self._exclude_dir_name = _compile(exclude_names + exclude_dir_names)
        self._exclude_dir_path = _compile(exclude_paths + exclude_dir_paths)
        # With name patterns only (the usual configuration), one regex decides a file: its
        # name is included and (negative lookahead) not excluded. A scan asks once per file.
        self._by_name_only: re.Pattern[str] | None = None
        if not include_paths and not exclude_paths:
            excluded = "|".join(f"(?:{r})" for r in exclude_names)
            included = "|".join(f"(?:{r})" for r in include_names)
            self._by_name_only = (
                re.compile(f"(?!(?:{excluded})\\Z)(?:{included})", re.DOTALL)
                if included and excluded
                else self._include_name
            )

    def __repr__(self) -> str:
        return f"IgnoreRules(include={list(self.include)!r}, exclude={list(self.exclude)!r})"

    def matches(self, rel_path: str) -> bool:
        """Whether the file at key ``rel_path`` is taken, checking its directories too."""
        parent, _, _ = rel_path.rpartition("/")
        return not (parent and self.excludes_dir(parent)) and self.takes_file(rel_path)

    def excludes_dir(self, rel_dir: str) -> bool:
        """Whether the directory ``rel_dir`` (or one of its parents) is excluded: prune it."""
        prefix = ""
        for part in rel_dir.split("/"):
            prefix = f"{prefix}/{part}" if prefix else part
            if self.prunes_dir(prefix):
                return True
        return False

    def takes_file(self, rel_path: str, name: str | None = None) -> bool:
        """Whether the file ``rel_path`` is taken, judging only its own name and path.

        For walkers that have already pruned the file's directories with :meth:`prunes_dir`;
        anyone else should call :meth:`matches`. ``name`` is the basename, if already known.
        """
        if name is None:
            name = rel_path.rpartition("/")[2]
        if self._by_name_only is not None:
            return self._by_name_only.fullmatch(name) is not None
        if self._exclude_name.fullmatch(name):
            return False
        # Whole-path patterns are rarer; skip their regex when there are none.
        if self._exclude_path is not _NEVER and self._exclude_path.fullmatch(rel_path):
            return False
        if self._include_name.fullmatch(name):
            return True
        return self._include_path is not _NEVER and bool(self._include_path.fullmatch(rel_path))

    def prunes_dir(self, rel_dir: str) -> bool:
        """Whether the directory ``rel_dir`` is excluded by its own name or path.

        Its parents are not looked at (a walker has pruned them already); see :meth:`excludes_dir`.
        """
        name = rel_dir.rpartition("/")[2]
        return bool(
            self._exclude_dir_name.fullmatch(name) or self._exclude_dir_path.fullmatch(rel_dir)
        )


def _compile(regexes: Iterable[str]) -> re.Pattern[str]:
    parts = [f"(?:{r})" for r in regexes]
    # DOTALL: a file name may contain a newline, and "*" must match it too.
    return re.compile("|".join(parts), re.DOTALL) if parts else _NEVER


def _translate_path(pattern: str) -> str:
    """Regex for a whole-path glob; ``**`` components span any number of directories."""
    parts = pattern.strip("/").split("/")
    out: list[str] = []
    last = len(parts) - 1
    for index, part in enumerate(parts):
        if part != "**":
            out.append(_translate_name(part) + ("" if index == last else "/"))
        elif index == last:
            out.append(".+")  # everything below (keys never end in "/")
        elif not out or not out[-1].endswith("(?:.*/)?"):
            out.append("(?:.*/)?")  # zero or more whole directories
    return "".join(out)


def _translate_name(pattern: str) -> str:
    """Regex for a glob of one path component (no ``/`` inside)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            while i < n and pattern[i] == "*":
                i += 1  # "**" inside a name is just "*"
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(pattern, i)
            if end < 0:
                out.append(re.escape(char))
            else:
                out.append(_translate_class(pattern[i:end]))
                i = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Index of the ``]`` closing a class whose body starts at ``start``; -1 if unclosed."""
    i = start
    if i < len(pattern) and pattern[i] == "!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1  # a "]" first in the class is literal
    return pattern.find("]", i)


def _translate_class(body: str) -> str:
    """Regex for the class ``[body]`` with fnmatch's meaning of every body it accepts.

    fnmatch's own translation decides ranges (an empty one such as ``[z-a]`` never matches,
    ``-`` first or last is literal, ``[!]`` is any character) and escapes set operations; a
    ``[`` left bare inside the class is escaped too, so no pattern compiles to a nested set
    (``re`` warns, and a later Python may refuse). A class never matches the separator.
    """
    translated = fnmatch.translate(f"[{body}]")
    if not (translated.startswith("(?s:") and translated.endswith(")\\Z")):
        raise ValueError(f"unexpected fnmatch translation of [{body}]: {translated!r}")
    regex = translated[len("(?s:") : -len(")\\Z")]
    if regex.startswith("[") and len(regex) > 2:
        regex = "[" + regex[1:-1].replace("[", "\\[") + "]"
    return f"(?!/)(?:{regex})"


class InvalidPatternError(ValueError):
    """A glob that cannot be used; the message names it."""


def check_patterns(patterns: Iterable[str]) -> None:
    """Raise :class:`InvalidPatternError` naming the first glob syncd cannot match with."""
    for pattern in patterns:
        try:
            IgnoreRules([pattern], [pattern])
        except (re.error, ValueError) as exc:
            raise InvalidPatternError(f"glob {pattern!r} cannot be used: {exc}") from exc


def to_key(root: Path, path: Path) -> str:
    """The root-relative POSIX key of ``path``, a file under ``root`` (both lexical, unresolved).

    Raises:
        ValueError: ``path`` is not strictly below ``root`` (or climbs out with ``..``).
    """
    try:
        relative = path.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not inside the watched folder {root}") from None
    parts = relative.parts
    if not parts or ".." in parts:
        raise ValueError(f"{path} is not a file inside the watched folder {root}")
    return PurePosixPath(*parts).as_posix()


def to_path(root: Path, key: str) -> Path:
    """The path of ``key`` under ``root``.

    Raises:
        ValueError: ``key`` is not a canonical key: empty, absolute, with ``.``/``..`` or empty
            components, or with a NUL byte. Such a key could point outside ``root``.
    """
    if not key or key.startswith("/") or "\0" in key:
        raise ValueError(f"not a valid file key: {printable_key(key)!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"not a valid file key: {printable_key(key)!r}")
    return root.joinpath(*key.split("/"))


def is_valid_utf8_name(name: str) -> bool:
    """Whether ``name`` (from ``os.fsdecode``) came from valid UTF-8 bytes.

    Undecodable bytes arrive as lone surrogates, which can neither be stored as text nor sent
    as a file name, so such a file must be renamed before it can be synced.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable_key(name: str) -> str:
    """``name`` made safe for a one-line message.

    Undecodable bytes (surrogate escapes) become ``\\xNN``; control and other non-printable
    characters (a newline in a file name, say) become their escape (``\\n``, ``\\x07``,
    ``\\u200b``). Printable text, including non-ASCII letters, is kept as is.
    """
    if name.isprintable():
        return name
    out: list[str] = []
    for char in name:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])
    return "".join(out)


def display_name(name: str | bytes) -> str:
    """A printable form of a file name given as raw bytes or as ``os.fsdecode`` text."""
    return printable_key(os.fsdecode(name) if isinstance(name, bytes) else name)
