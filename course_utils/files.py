"""Writing files so that a reader never sees half of one: atomic replace, umask modes.

The bottom of the package, with ``settings`` and ``checks``. Chapter 1's baseline cache,
chapter 6's compressed and exported models all go through :func:`atomic_write_bytes`, so
a killed run leaves the old file or the whole new one, and a shared cache stays readable
by every user of the disk.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["ORPHAN_SECONDS", "atomic_write_bytes"]

ORPHAN_SECONDS = 600
"""A ``.NAME.*.tmp`` file untouched for this long was left by a killed writer: removed."""


def _new_temporary(path: Path) -> tuple[int, Path]:
    """A new empty ``.NAME.<random>.tmp`` beside ``path``, open for writing.

    Created with mode 0o666 and the umask applied, like any new file (mkstemp's 0o600
    would lock other users out of a shared cache).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _remove_orphans(path: Path) -> None:
    """Remove ``.NAME.*.tmp`` files beside ``path`` older than :data:`ORPHAN_SECONDS`."""
    prefix, now = f".{path.name}.", time.time()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > ORPHAN_SECONDS:
                os.unlink(entry.path)
        except OSError:  # gone already, or another user's file in a sticky folder
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The file gets the mode any new file gets from the umask (0644 under umask 022, 0664
    under 002), so that files written into a shared folder are readable by the others.
    Temporary files that a killed writer left beside ``path`` are removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    fd, tmp = _new_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
