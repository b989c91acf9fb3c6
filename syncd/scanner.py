"""Walk one watched folder and list the regular files its rules take, with their stats.

The walk reads directories only: it never opens or hashes a file, and it never follows a
symlink. What a user must hear about (a symlink out of the folder, a FIFO, a name that is not
UTF-8, a directory it cannot read) comes out as a :class:`ScanProblem` next to the entries;
comparing the result with the state store is the caller's job.
"""

from __future__ import annotations

import errno
import operator
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from syncd.beneath import open_beneath
from syncd.domain import FileStat
from syncd.errors import LocalFileError
from syncd.hashing import describe_kind
from syncd.paths import IgnoreRules, is_valid_utf8_name, printable_key

__all__ = ["ScanEntry", "ScanItem", "ScanProblem", "scan_folder"]

#: A file or directory that disappeared while the walk looked at it: gone, not a problem. A
#: directory replaced by a symlink since its parent was listed (ELOOP on open) is gone too:
#: the next walk reports the symlink.
_VANISHED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_BY_NAME = operator.attrgetter("name")


class ScanEntry(NamedTuple):
    """A regular file the folder's rules take, with the fingerprint seen during the walk.

    A named tuple of plain values: a walk makes one per file, and a rescan of an unchanged
    tree compares the fields with the stored row without building anything else.
    """

    rel_path: str
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    @property
    def stat(self) -> FileStat:
        """The fingerprint as the rest of syncd takes it."""
        return FileStat(self.size, self.mtime_ns, self.inode, self.ctime_ns)


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """Something at ``rel_path`` the user must hear about; it is not synced.

    ``is_directory`` is true when a whole directory was skipped (unreadable, or a name that is
    not UTF-8): keys below ``rel_path + "/"`` were not listed, so they are unknown, not gone.
    """

    rel_path: str
    reason: str
    is_directory: bool = False


ScanItem = ScanEntry | ScanProblem


def scan_folder(root: Path, rules: IgnoreRules) -> Iterator[ScanItem]:
    """Yield every regular file under ``root`` that ``rules`` take, and the problems met.

    Entries come out in key order: ascending plain string order (code point order) of their
    root-relative POSIX ``rel_path``, which is also the byte order of their UTF-8 form, the
    order a database gives with a binary collation. So a caller can merge the walk with rows
    read ``ORDER BY rel_path`` in one pass. Because ``"/"`` sorts after ``"-"`` and ``"."``,
    a directory's files cannot simply come before its subdirectories: each subdirectory ``d``
    is walked at the position of ``"d/"`` among its siblings (``a-b``, ``a.b``, ``a/x``,
    ``a0``). A directory that cannot be listed is reported at that position too, before any
    key below it. Problems about single entries come at their entry's position, under the key
    they are reported with (a printable form for a name that is not UTF-8, which may sort
    elsewhere). The walk keeps an explicit stack, so depth is not limited by Python's
    recursion limit.

    Symlinks are never followed:

    * to a file or directory inside ``root``: skipped silently; the target is scanned (or
      excluded) under its own path, and not following links to directories rules out loops;
    * to anything outside ``root``: reported ("symlink points outside the watched folder");
    * broken or looping: reported when its name is one the rules take.

    FIFOs, sockets and devices are reported when the rules take their name. Directories the
    rules exclude are pruned without being read.

    Raises:
        LocalFileError: ``root`` does not exist, is not a directory, or cannot be listed.
    """
    root_real = _check_root(root)
    # One iterator per directory being walked, innermost last. A directory is listed (and
    # its files stat-ed) whole, then closed, so no descriptor stays open below it.
    top = os.fspath(root)
    walking: list[Iterator[_Part]] = [iter(_list_dir(top, top, "", rules, root_real))]
    while walking:
        for part in walking[-1]:
            if isinstance(part, _Subdir):
                walking.append(iter(_list_dir(top, part.path, part.prefix, rules, root_real)))
                break
            yield from part
        else:
            walking.pop()


@dataclass(frozen=True, slots=True)
class _Subdir:
    """A subdirectory to walk at this point of its parent's listing."""

    path: str
    prefix: str
    """Its root-relative key with a trailing ``"/"``: the position its keys take."""


#: A listing in key order: runs of items, and the subdirectories to walk between them.
_Part = list[ScanItem] | _Subdir


def _list_dir(
    root: str, dir_path: str, prefix: str, rules: IgnoreRules, root_real: str
) -> list[_Part]:
    """One directory's items and subdirectories, in key order (see :func:`scan_folder`)."""
    try:
        dir_fd = _open_dir(root, prefix)
    except OSError as exc:
        return _unlisted(dir_path, prefix, exc)
    try:
        return _scan_dir(dir_fd, dir_path, prefix, rules, root_real)
    finally:
        os.close(dir_fd)


def _unlisted(dir_path: str, prefix: str, exc: OSError) -> list[_Part]:
    """The walk's verdict on a directory that could not be opened or listed."""
    if not prefix:
        raise LocalFileError(
            f"cannot read watched folder {printable_key(dir_path)}: {exc.strerror}",
            path=dir_path,
        ) from exc
    if exc.errno in _VANISHED_ERRNOS:
        return []
    problem = ScanProblem(
        prefix.rstrip("/"),
        f"cannot read directory: {exc.strerror}; its files are not synced",
        is_directory=True,
    )
    return [[problem]]


def _open_dir(root: str, prefix: str) -> int:
    """A descriptor of the directory ``prefix`` below ``root``: entries are then stat-ed
    relative to it (``fstatat``), cheaper than resolving each entry's whole path.

    It is opened from the root one directory at a time (:mod:`syncd.beneath`): a directory, or
    any ancestor, swapped for a symlink after its parent was listed is refused (ELOOP), never
    followed. The root itself may be a symlink to a directory.
    """
    if not prefix:
        return os.open(root, _DIR_FLAGS)
    return open_beneath(Path(root), Path(root, prefix.rstrip("/")), _DIR_FLAGS)


def _scan_dir(
    dir_fd: int, dir_path: str, prefix: str, rules: IgnoreRules, root_real: str
) -> list[_Part]:
    """The items of one open directory, its subdirectories at their key positions."""
    try:
        with os.scandir(dir_fd) as listing:
            entries = sorted(listing, key=_BY_NAME)
    except OSError as exc:
        return _unlisted(dir_path, prefix, exc)
    items: list[ScanItem] = []
    subdirs: list[_Subdir] = []
    for entry in entries:
        name = entry.name
        rel_path = prefix + name
        # The common case, inlined: a regular file (d_type answers without a syscall).
        if entry.is_file(follow_symlinks=False):
            if not rules.takes_file(rel_path, name):
                continue
            if not (name.isascii() or is_valid_utf8_name(name)):
                items.append(
                    ScanProblem(
                        printable_key(rel_path),
                        "file name is not valid UTF-8; rename it (not synced)",
                    )
                )
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                problem = _entry_error(rel_path, exc, rules)
                if problem is not None:
                    items.append(problem)
                continue
            items.append(ScanEntry(rel_path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
            continue
        path = f"{dir_path.rstrip('/')}/{name}"
        item = _look_at_other(entry, path, rel_path, rules, root_real, subdirs)
        if item is not None:
            items.append(item)
    if not subdirs:
        return [items]  # sorted by name: with no subdirectory, that is key order
    # Subdirectory "d" sorts as "d/" (after "d-x" and "d.x"). Sorting the items by name first
    # kept entries that share a key (a printable key equal to a real name) in listing order.
    parts: list[_Part] = []
    run: list[ScanItem] = []
    for placed in sorted([*items, *subdirs], key=_position):
        if isinstance(placed, _Subdir):
            parts.extend((run, placed) if run else (placed,))
            run = []
        else:
            run.append(placed)
    if run:
        parts.append(run)
    return parts


def _position(item: ScanItem | _Subdir) -> str:
    """Where an item of a listing goes in key order."""
    if isinstance(item, _Subdir):
        return item.prefix
    if isinstance(item, ScanProblem) and item.is_directory:
        return item.rel_path + "/"
    return item.rel_path


def _check_root(root: Path) -> str:
    """The resolved path of ``root``, which must be an existing directory (or a link to one)."""
    shown = printable_key(str(root))
    try:
        st = root.stat()
    except FileNotFoundError as exc:
        raise LocalFileError(f"watched folder {shown} does not exist", path=str(root)) from exc
    except OSError as exc:
        raise LocalFileError(
            f"cannot look at watched folder {shown}: {exc.strerror}", path=str(root)
        ) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise LocalFileError(
            f"watched folder {shown} is {describe_kind(st.st_mode)}, not a directory",
            path=str(root),
        )
    return os.path.realpath(root)


def _look_at_other(
    entry: os.DirEntry[str],
    path: str,
    rel_path: str,
    rules: IgnoreRules,
    root_real: str,
    subdirs: list[_Subdir],
) -> ScanProblem | None:
    """Judge an entry that is not a regular file: a problem, a directory to walk, or nothing.

    ``path`` is the entry's full path (the listing was made from a descriptor, so
    ``entry.path`` holds the name only).
    """
    try:
        if entry.is_dir(follow_symlinks=False):
            if rules.prunes_dir(rel_path):
                return None
            if not is_valid_utf8_name(entry.name):
                return ScanProblem(
                    _shown_key(rel_path),
                    "directory name is not valid UTF-8; rename it (its files are not synced)",
                    is_directory=True,
                )
            subdirs.append(_Subdir(path, rel_path + "/"))
            return None
        if entry.is_symlink():
            return _symlink(entry, path, rel_path, rules, root_real)
        if not rules.takes_file(rel_path):
            return None
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        return _entry_error(rel_path, exc, rules)
    return ScanProblem(
        _shown_key(rel_path), f"is {describe_kind(mode)}, not a regular file; skipped"
    )


def _symlink(
    entry: os.DirEntry[str], path: str, rel_path: str, rules: IgnoreRules, root_real: str
) -> ScanProblem | None:
    """Report a symlink that leaves the folder, dangles or loops; skip one that stays inside."""
    try:
        target = str(Path(path).readlink())
    except OSError as exc:
        return _entry_error(rel_path, exc, rules)
    shown_target = printable_key(target)
    try:
        target_mode = entry.stat(follow_symlinks=True).st_mode
    except OSError as exc:
        if not rules.takes_file(rel_path):
            return None
        if exc.errno == errno.ELOOP:
            reason = f"symlink loop: -> {shown_target}; not followed"
        elif exc.errno in _VANISHED_ERRNOS:
            reason = f"broken symlink: -> {shown_target} does not exist; skipped"
        else:
            reason = f"symlink -> {shown_target} cannot be followed: {exc.strerror}; skipped"
        return ScanProblem(_shown_key(rel_path), reason)
    resolved = os.path.realpath(path)
    if resolved == root_real or resolved.startswith(root_real.rstrip("/") + "/"):
        return None  # the target is walked (or excluded) under its own path
    is_wanted = (
        not rules.prunes_dir(rel_path) if stat.S_ISDIR(target_mode) else rules.takes_file(rel_path)
    )
    if not is_wanted:
        return None
    shown_resolved = printable_key(resolved)
    where = shown_target if shown_resolved == shown_target else f"{shown_target} ({shown_resolved})"
    return ScanProblem(
        _shown_key(rel_path), f"symlink points outside the watched folder: -> {where}; not followed"
    )


def _entry_error(rel_path: str, exc: OSError, rules: IgnoreRules) -> ScanProblem | None:
    """An entry that could not be looked at: gone (nothing to say) or a problem to report."""
    if exc.errno in _VANISHED_ERRNOS or not rules.takes_file(rel_path):
        return None
    return ScanProblem(_shown_key(rel_path), f"cannot look at it: {exc.strerror}; skipped")


def _shown_key(rel_path: str) -> str:
    """The key to report a problem under: itself, or a printable form if it is not UTF-8."""
    return rel_path if is_valid_utf8_name(rel_path) else printable_key(rel_path)
