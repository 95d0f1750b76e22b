"""The output folder's lock: one ttt3r run writes into a folder at a time.

A run holds ``DIR/.ttt3r.lock`` from before its first write until it has
closed (or rolled back) its files. The file holds one JSON object::

    {"pid": 4242, "host": "box", "started": "2026-12-03T10:57:22+00:00"}

and is held with an exclusive ``flock`` (released by the kernel when the
process dies, however it dies). How to read a folder:

* no lock file: no run is writing into it; ``run.json`` is final (or the run
  was killed before it could remove its lock, see below).
* a lock file whose ``pid`` is alive on ``host`` (and which is ``flock``-ed):
  a run is writing into it now; ``run.json`` is at most a few frames behind.
* a lock file whose ``pid`` is not alive on this host: the run died (killed,
  power loss). Its per-frame files and ``run.json`` (``"status": "running"``)
  are what it wrote before dying (a run that was replacing an earlier one
  leaves the earlier results as they were, its own files in ``.ttt3r-new/``).
  The next run into the folder takes such a stale lock over.

Where ``fcntl`` is missing (Windows) the lock is the file's existence
(``O_CREAT | O_EXCL``) and liveness is the pid's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import TTT3RError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "FolderLock", "busy_error", "lock_holder", "pid_alive"]

LOCK_NAME = ".ttt3r.lock"
_HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists on this host (a zombie counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # pragma: no cover
        return False
    return True


def _parse(text: str) -> dict[str, Any]:
    """The lock record: the JSON object, or a bare pid; ``{}`` when unreadable."""
    text = text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if isinstance(data, int) and not isinstance(data, bool):
        return {"pid": data}
    if isinstance(data, dict) and isinstance(data.get("pid"), int):
        return data
    return {}


def _record_is_live(rec: dict[str, Any]) -> bool:
    """A record names a live run of another process: its pid is alive here (other hosts: assume alive)."""
    pid = rec.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    if rec.get("host", _HOST) != _HOST:
        return True
    return pid_alive(pid)


def busy_error(folder: Path, rec: dict[str, Any]) -> TTT3RError:
    """The one-line refusal naming the run (its pid, and host if not this one) that holds ``folder``."""
    pid = rec.get("pid", "?")
    host = rec.get("host")
    where = f" on {host}" if host and host != _HOST else ""
    return TTT3RError(f"another ttt3r run (pid {pid}{where}) is writing to {folder}; wait for it to finish or "
                      f"choose another folder (if no such run exists, delete {folder / LOCK_NAME})")


def _flocked(fd: int) -> bool | None:
    """Try to take the ``flock`` on ``fd``: True taken, False held by another, None unsupported here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        return None  # ENOLCK, EOPNOTSUPP: a filesystem without locks; fall back to the pid
    return True


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def lock_holder(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The record of the live run holding ``folder``'s lock, or ``None`` (no lock, or a stale one).

    Read-only: a stale lock is left in place (the next :meth:`FolderLock.acquire` takes it over).
    """
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TTT3RError(f"{path}: is a symbolic link; an output folder's files must not point "
                             "out of it") from None
        return None
    try:
        rec = _parse(_read_fd(fd))
        taken = _flocked(fd)
        if taken is False:
            return rec or {"pid": "?"}
        return rec if _record_is_live(rec) else None
    finally:
        os.close(fd)  # also drops a flock taken just to test it


class FolderLock:
    """The exclusive lock of one output folder (see module doc); :meth:`acquire`, then :meth:`release`.

    Attributes:
        path: ``folder/.ttt3r.lock``.
        stale: the record of a dead run's lock that :meth:`acquire` took over, else ``None``.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (the folder must exist), taking over a stale one.

        Raises:
            TTT3RError: another live run holds it (naming its pid), or the lock
                file cannot be written (naming it).
        """
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        if fcntl is None:  # pragma: no cover - Windows
            flags |= os.O_EXCL
        for attempt in range(20):
            try:
                fd = os.open(self.path, flags, 0o644)
            except FileExistsError:  # pragma: no cover - Windows: O_EXCL
                if _record_is_live(rec := self._read_path()):
                    raise busy_error(self.folder, rec) from None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                self.stale = rec
                continue
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise TTT3RError(f"{self.path}: is a symbolic link; an output folder's files must not point "
                                     "out of it") from None
                raise TTT3RError(f"{self.folder}: cannot write to the output folder ({e.strerror or e})") from None
            try:
                taken = _flocked(fd)
                prev = _parse(_read_fd(fd))
                if taken is False:
                    if attempt < 4:  # perhaps only a lock_holder() peeking: it lets go at once
                        os.close(fd)
                        time.sleep(0.05)
                        continue
                    raise busy_error(self.folder, prev or {"pid": "?"})
                st = os.fstat(fd)
                try:
                    now = os.stat(self.path, follow_symlinks=False)
                except FileNotFoundError:  # released (unlinked) by its holder between open and flock
                    os.close(fd)
                    continue
                if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                    os.close(fd)
                    continue
                if taken is None and _record_is_live(prev):
                    raise busy_error(self.folder, prev)
                self.stale = prev or self.stale
                self._write(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.close(fd)
                raise
            self._fd, self._ino = fd, (st.st_dev, st.st_ino)
            return
        raise TTT3RError(f"{self.path}: cannot take the output folder's lock (it keeps changing)")  # pragma: no cover

    def _read_path(self) -> dict[str, Any]:  # pragma: no cover - Windows
        try:
            return _parse(self.path.read_text(encoding="utf-8"))
        except OSError:
            return {}

    def _write(self, fd: int) -> None:
        rec = {"pid": os.getpid(), "host": _HOST,
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        data = (json.dumps(rec, allow_nan=False) + "\n").encode()
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
            os.fsync(fd)
        except OSError as e:
            raise TTT3RError(f"{self.path}: cannot write the output folder's lock ({e.strerror or e})") from None

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the lock. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            now = os.stat(self.path, follow_symlinks=False)
            if (now.st_dev, now.st_ino) == self._ino:
                os.unlink(self.path)  # unlink before unlocking: a waiter then sees a fresh file
        except OSError:
            pass
        finally:
            os.close(fd)
