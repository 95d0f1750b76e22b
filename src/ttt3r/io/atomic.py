"""Atomic file writes: a file is either absent or complete, never half-written."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import TTT3RError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; finished files get the usual
# permissions (0666 minus the umask), like files opened with open().
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, for writers that take a file name
    (``safetensors.torch.save_file``, ``torch.save``); on success the file is synced to
    disk, given the usual permissions (0666 minus the umask) and renamed onto ``path``.

    ``sync=False`` leaves out the sync: the file is still never seen half-written by
    a reader or after the writing process dies, but may be lost in a power cut until
    the caller syncs it (:func:`sync_files`; e.g. many staged files synced at once).

    On any exception the temporary file is removed and ``path`` is untouched.
    A full disk, or a folder that cannot be written, becomes a one-line
    :class:`TTT3RError` naming ``path`` (the file that failed).
    """
    path = Path(path)
    tmp = ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        if sync:
            _fsync(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise TTT3RError(f"{path}: no space left on device while writing") from e
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise TTT3RError(f"{path}: cannot write ({e.strerror or e})") from e
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", sync: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it onto ``path``
    (as :func:`atomic_path`, whose errors and ``sync`` it shares)."""
    with atomic_path(path, sync) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(paths) -> None:
    """Make files written with ``sync=False`` durable: one ``os.sync()`` where the platform has
    it (one flush for all of them, instead of one per file), else an fsync per file."""
    if hasattr(os, "sync"):
        os.sync()
        return
    for p in paths:
        _fsync(p)


def _remove_quietly(p: str) -> None:
    if not p:
        return
    with contextlib.suppress(OSError):
        os.unlink(p)
