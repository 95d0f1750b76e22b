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
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, for writers that take a file name
    (``safetensors.torch.save_file``, ``torch.save``); on success the file is synced to
    disk, given the usual permissions (0666 minus the umask) and renamed onto ``path``.

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
        _fsync(tmp)
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        _raise_write_error(path, e)
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it onto ``path``
    (as :func:`atomic_path`, whose errors it shares)."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _raise_write_error(path: Path, e: OSError):
    """A full disk or a folder that cannot be written as one line naming ``path``; else ``e``."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise TTT3RError(f"{path}: no space left on device while writing") from e
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise TTT3RError(f"{path}: cannot write ({e.strerror or e})") from e
    raise e


@contextlib.contextmanager
def staged_open(path: str | os.PathLike) -> Iterator[IO]:
    """A plain binary ``open`` (no temporary file, no sync) for files in a private staging folder
    that their caller syncs (:func:`sync_files`) and makes visible as a whole; the errors of
    :func:`atomic_path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            yield f
    except OSError as e:
        _raise_write_error(path, e)


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(paths) -> None:
    """Make files written without a sync durable (e.g. a staging folder's, before a marker file
    says they are complete): one ``os.sync()`` where the platform has it (one flush for all of
    them, instead of one per file), else an fsync per file."""
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
