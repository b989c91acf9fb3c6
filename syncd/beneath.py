"""Open and look at a path below a watched folder's root without following any symlink on the way.

Only the root itself is resolved by the kernel (it may be configured as a symlink to a
directory). Below it, every directory is opened relative to the previous one with
``O_NOFOLLOW | O_DIRECTORY``, and the last name is opened or stat-ed relative to its directory,
never following a link either. So a directory swapped for a symlink anywhere on the path, at any
moment, is refused rather than followed out of the root: the same guard as git's
``has_symlink_leading_path`` and Syncthing's ``TraversesSymlink``, done on descriptors so there is
no window between the check and the use.

Errors are ``OSError``; a symlink where a directory was is a :class:`SymlinkOnPathError`
(``ELOOP``) naming it. Callers translate them (:mod:`syncd.hashing`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = [
    "SymlinkOnPathError",
    "lstat_beneath",
    "open_beneath",
    "open_parent",
    "relative_parts",
]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
#: The root may itself be a symlink to a directory (as the scanner allows): only it is followed.
_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class SymlinkOnPathError(OSError):
    """A directory on the path is a symbolic link: not followed (errno ELOOP)."""


def relative_parts(root: Path, path: Path) -> tuple[str, ...]:
    """The names leading from ``root`` to ``path`` (lexically; nothing is resolved).

    Raises:
        OSError: ``path`` is not strictly below ``root``, or climbs with ``..`` (EXDEV).
    """
    # On the strings first: a Path is kept normalised (no "//", no "." part, no trailing "/"),
    # so a path that starts with the root's gets relative_to's answer at a fifth of its cost
    # (several calls per file); anything else (a relative root like ".") asks pathlib.
    root_text, path_text = os.fspath(root), os.fspath(path)
    prefix = root_text if root_text.endswith("/") else root_text + "/"
    if path_text.startswith(prefix):
        parts: tuple[str, ...] = tuple(path_text[len(prefix) :].split("/"))
    else:
        try:
            parts = path.relative_to(root).parts
        except ValueError:
            parts = ()
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise OSError(errno.EXDEV, "not a path inside the watched folder", str(path))
    return parts


def open_beneath(root: Path, path: Path, flags: int) -> int:
    """``os.open`` of ``path`` (below ``root``) with ``flags | O_NOFOLLOW``, walked from the root.

    Raises:
        OSError: as ``open``; ELOOP when the file or a directory on its path is a symlink.
    """
    parts = relative_parts(root, path)
    parent = _open_parent(root, parts)
    try:
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        os.close(parent)


def lstat_beneath(root: Path, path: Path) -> os.stat_result:
    """The ``lstat`` of ``path`` (below ``root``), its directories walked without following links.

    Raises:
        OSError: as ``lstat``; ELOOP when a directory on its path is a symlink.
    """
    parts = relative_parts(root, path)
    parent = _open_parent(root, parts)
    try:
        return os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def open_parent(root: Path, path: Path) -> int:
    """A descriptor of the directory holding ``path`` (below ``root``), walked from the root
    without following a link: for operations on the name itself (``unlink(name, dir_fd=)``).

    Raises:
        OSError: as ``open``; ELOOP when a directory on the path is a symlink.
    """
    return _open_parent(root, relative_parts(root, path))


def _open_parent(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of the directory holding ``parts[-1]``, each step refusing a symlink."""
    fd = os.open(root, _ROOT_FLAGS)
    try:
        for index, name in enumerate(parts[:-1]):
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                # O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR (ELOOP on some
                # kernels); a regular file there is ENOTDIR too, and that one is just gone.
                if exc.errno in (errno.ENOTDIR, errno.ELOOP) and _is_symlink(fd, name):
                    shown = "/".join(parts[: index + 1])
                    raise SymlinkOnPathError(
                        errno.ELOOP,
                        f"{shown} on its path is a symbolic link; not followed",
                        str(root.joinpath(*parts)),
                    ) from exc
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False
