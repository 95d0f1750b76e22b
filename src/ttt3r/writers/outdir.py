"""The output folder guard: never write over, or delete, files ttt3r did not write.

An output folder belongs to one run at a time (:mod:`ttt3r.writers.lock`). Rules:

* A missing or empty folder is created / used as is.
* A non-empty folder is refused (one-line :class:`TTT3RError`) unless
  ``overwrite=True``.
* With ``overwrite=True`` the files of a previous ttt3r run are removed: those
  whose relative paths match both the patterns recorded in that run's manifest
  (``.ttt3r-manifest.json``) and ttt3r's own output patterns (:func:`known_patterns`:
  the ``files`` of every registered export, :mod:`ttt3r.writers.exports`, and
  ``run.json``). Nothing else is ever deleted. If a file that this
  run would write exists but was not written by ttt3r, the run is refused
  rather than replacing it.

* No symbolic link is followed out of the folder: a link where ttt3r would
  write or delete (a sub-folder such as ``depth``, or a file such as
  ``points.ply``) is refused, naming the link, before anything is written.
* Overwrite is transactional. A run that replaces an earlier run writes into
  ``.ttt3r-new/`` inside the folder; :meth:`OutputDir.commit` (a finished or
  interrupted run) moves its files into place and only then removes the
  earlier run's files it did not write (stale frames, exports not chosen this
  time). A failed run is rolled back (:meth:`OutputDir.rollback`): the earlier
  results stay as they were.
* A run into a new or empty folder writes in place; if it fails or is
  interrupted before any frame is finished, the rollback removes what it wrote
  (and the folder, if it made it), as when the input cannot be opened.

The manifest is written before any output file lands in the folder and
records the patterns the run owns. Since the folder was checked to hold no
foreign file matching them, every file that matches them afterwards was written
by ttt3r.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from ..errors import TTT3RError
from ..io.strict_json import write_json
from .exports import available_exports, get_export
from .lock import LOCK_NAME, FolderLock, busy_error, lock_holder

__all__ = ["MANIFEST_NAME", "RUN_FILES", "STAGING_NAME", "OutputDir", "known_patterns", "patterns_for"]

MANIFEST_NAME = ".ttt3r-manifest.json"
#: The folder, inside the output folder, where a run that replaces an earlier one writes until it commits.
STAGING_NAME = ".ttt3r-new"
#: ttt3r's own bookkeeping entries of an output folder (not outputs; never "foreign").
_OWN_ENTRIES = (MANIFEST_NAME, LOCK_NAME, STAGING_NAME)

#: Files every run writes, whatever its exports (regular expressions of relative paths).
RUN_FILES: tuple[str, ...] = (r"run\.json", r"frames\.csv")


def known_patterns() -> dict[str, tuple[str, ...]]:
    """Every relative path ttt3r may write, as regular expressions: per registered export, and ``run``."""
    return {e: get_export(e).files for e in available_exports()} | {"run": RUN_FILES}


def _own_folders() -> list[str]:
    """The sub-folders registered exports create, deepest first (removed on overwrite only when empty)."""
    folders = dict.fromkeys(d for e in available_exports() for d in get_export(e).folders())
    return sorted(folders, key=lambda d: -d.count("/"))


def patterns_for(exports: Iterable[str]) -> list[str]:
    """The path patterns owned by a run with these exports (``run.json``'s is always included)."""
    out: list[str] = []
    for pats in [*(get_export(e).files for e in exports), RUN_FILES]:
        out.extend(p for p in pats if p not in out)
    return out


def _tmp_variant(pattern: str) -> str:
    """A pattern matching the temporary files atomic writes of ``pattern`` may leave."""
    head, _, tail = pattern.rpartition("/")
    prefix = head + "/" if head else ""
    return prefix + r"\." + tail + r"\.[^/]*\.tmp"


def _compile(patterns: Iterable[str]) -> re.Pattern:
    alts = []
    for p in patterns:
        alts.append(p)
        alts.append(_tmp_variant(p))
    return re.compile("(?:" + "|".join(alts) + ")") if alts else re.compile(r"(?!)")


class OutputDir:
    """A checked, locked output folder (see module doc).

    Args:
        path: the output folder (created if missing).
        exports: names of the registered exports this run writes.
        overwrite: allow writing into a non-empty folder, replacing only files
            of an earlier ttt3r run (see module doc).

    Use: :meth:`prepare` once before writing anything; write into
    :attr:`write_dir`; then :meth:`commit` (the run's files become the
    folder's) or :meth:`rollback` (nothing of the run is kept).
    :class:`~ttt3r.writers.run.RunWriter` says which, when. Both release the lock.

    Attributes:
        write_dir: where the run's writers write (the folder, or its ``.ttt3r-new/``).
        removed: files of the earlier run removed at :meth:`commit` (relative paths).
    """

    def __init__(self, path: str | os.PathLike, exports: Iterable[str], overwrite: bool = False) -> None:
        self.path = Path(path)
        self.exports = list(dict.fromkeys(exports))
        self.overwrite = overwrite
        self.patterns = patterns_for(self.exports)
        self.removed: list[str] = []
        self.write_dir = self.path
        self.lock = FolderLock(self.path)
        self._earlier: list[str] = []
        self._earlier_patterns: list[str] = []
        self._created: list[Path] = []
        self._open = False
        self._checked = False  # checked under the lock: every file matching our patterns is ttt3r's

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME

    @property
    def staging(self) -> bool:
        """True when this run replaces an earlier one (it writes into ``.ttt3r-new/`` until :meth:`commit`)."""
        return self.write_dir != self.path

    def _files(self) -> list[str]:
        """Relative paths of the folder's top-level entries and of every file in ttt3r's sub-folders
        (ttt3r's lock and scratch folder left out).

        Only these can match ttt3r's patterns; other sub-folders are not walked.
        """
        out = sorted(c.name + ("/" if c.is_dir() else "") for c in self.path.iterdir()
                     if c.name not in (LOCK_NAME, STAGING_NAME))
        for d in _own_folders():
            sub = self.path / d
            if sub.is_dir() and not sub.is_symlink():
                for c in sorted(sub.iterdir()):
                    if c.is_file() or c.is_symlink():
                        out.append(f"{d}/{c.name}")
        return out

    def _links(self) -> list[str]:
        """Symbolic links where ttt3r writes or deletes: its sub-folders (at every level), its own
        entries, and files matching any ttt3r pattern (relative paths)."""
        links = [n for n in _OWN_ENTRIES if (self.path / n).is_symlink()]
        links += [d for d in sorted(_own_folders(), key=lambda d: d.count("/")) if (self.path / d).is_symlink()]
        anything = _compile(p for ps in known_patterns().values() for p in ps)
        for rel in self._files():
            rel = rel.rstrip("/")
            if rel not in links and anything.fullmatch(rel) and (self.path / rel).is_symlink():
                links.append(rel)
        return links

    def _previous_patterns(self) -> list[str]:
        mp = self.manifest_path
        if not mp.is_file():
            return []
        try:
            data = json.loads(mp.read_text(encoding="utf-8"))
            pats = [str(p) for p in data.get("patterns", [])]
        except (OSError, ValueError, AttributeError):
            return []
        # only patterns that ttt3r itself knows: a tampered manifest cannot widen deletion
        known = {p for ps in known_patterns().values() for p in ps}
        return [p for p in pats if p in known]

    def check(self) -> list[str]:
        """Validate the folder without changing anything; return the earlier run's files that this run
        replaces or, at :meth:`commit`, removes.

        Raises:
            TTT3RError: the path is a file; another run is writing into the
                folder (naming its pid); a symbolic link sits where ttt3r would
                write (naming it); the folder cannot be written; the folder is
                not empty and ``overwrite`` is false; or a file this run would
                write exists and was not written by ttt3r.
        """
        p = self.path
        if p.exists() and not p.is_dir():
            raise TTT3RError(f"{p}: output path exists and is not a folder")
        if not p.exists():
            return []
        if not self.lock.held and (holder := lock_holder(p)) is not None:
            raise busy_error(p, holder)
        links = self._links()
        if links:
            raise TTT3RError(f"{p / links[0]}: is a symbolic link; an output folder belongs to one run and "
                             "ttt3r never writes or deletes through a link (remove it, or choose another folder)")
        for d in ["", *_own_folders()]:
            sub = p / d
            if sub.is_dir() and not os.access(sub, os.W_OK | os.X_OK):
                what = "output folder" if not d else "folder of the output folder"
                raise TTT3RError(f"{sub}: {what} is not writable; choose another folder")
        files = self._files()
        if not files or self._died_before_first_frame(files):
            return []
        if not self.overwrite:
            prev = self.manifest_path.is_file()
            what = "holds a previous ttt3r run" if prev else "is not empty"
            raise TTT3RError(f"{p}: output folder {what}; use --overwrite to replace ttt3r's files "
                             "(other files are kept), or choose another folder")
        self._earlier_patterns = self._previous_patterns()
        ours = _compile(self._earlier_patterns)
        mine = _compile(self.patterns)
        for rel in files:
            if rel != MANIFEST_NAME and not ours.fullmatch(rel) and mine.fullmatch(rel):
                raise TTT3RError(f"{p / rel}: exists and was not written by ttt3r; move it away or "
                                 "choose another output folder")
        return [rel for rel in files if rel != MANIFEST_NAME and ours.fullmatch(rel)]

    def _died_before_first_frame(self, files: list[str]) -> bool:
        """The folder holds only what a run that died before finishing a frame wrote (its manifest, a
        ``"running"`` run.json with no frame done, a ``frames.csv`` with its header alone, empty
        sub-folders): as good as empty (its lock was checked to be stale)."""
        if MANIFEST_NAME not in files or "run.json" not in files:
            return False
        tops = {d.split("/")[0] + "/" for d in _own_folders()}
        for rel in files:
            if rel in (MANIFEST_NAME, "run.json"):
                continue
            if rel == "frames.csv" and _at_most_one_line(self.path / rel):
                continue
            if rel not in tops or any(not c.is_dir() for c in (self.path / rel).rglob("*")):
                return False
        try:
            info = json.loads((self.path / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(info, dict) and info.get("status") == "running" and info.get("frames_done") == 0

    def prepare(self) -> None:
        """:meth:`check` the folder, create it if missing, take its lock and get :attr:`write_dir` ready.

        Nothing of an earlier run is changed here (see :meth:`commit`). In a
        folder without an earlier run, the manifest is written now, before any output.
        """
        self.check()
        missing = []
        for d in [self.path, *self.path.parents]:
            if d.exists():
                break
            missing.append(d)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TTT3RError(f"{self.path}: cannot create output folder ({e.strerror or e})") from e
        self._created = missing  # deepest first
        try:
            self.lock.acquire()
            self._earlier = self.check()  # again, under the lock
            self._checked = True
            staging = self.path / STAGING_NAME
            if staging.is_symlink() or staging.exists():
                _remove_tree(staging)  # the scratch folder of a run that died
            if self._earlier:
                self.write_dir = staging
                self.write_dir.mkdir()
            else:
                self._write_manifest(self.patterns)
        except BaseException:
            self._open = True
            self.rollback()
            raise
        self._open = True

    def commit(self) -> None:
        """Make the run's files the folder's: move them out of ``.ttt3r-new/`` (when replacing an earlier
        run), then remove the earlier run's files that were not replaced; release the lock. Idempotent."""
        if not self._open:
            return
        self._open = False
        try:
            self._commit()
        except OSError as e:
            where = e.filename or self.path
            raise TTT3RError(f"{where}: cannot move the new run's files into place ({e.strerror or e}); "
                             f"they are in {self.write_dir}") from None
        finally:
            self.lock.release()

    def _commit(self) -> None:
        if not self.staging:
            return
        # while files move, the manifest covers both runs' patterns (a crash mid-way leaves no "foreign" file)
        self._write_manifest(list(dict.fromkeys(self._earlier_patterns + self.patterns)))
        moved = set()
        for src in sorted(self.write_dir.rglob("*")):
            if src.is_dir() or src.is_symlink():
                continue
            rel = src.relative_to(self.write_dir).as_posix()
            dst = self.path / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            moved.add(rel)
        for rel in self._earlier:
            if rel not in moved:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / rel).unlink()
                self.removed.append(rel)
        self._remove_empty_dirs(self.path)
        self._write_manifest(self.patterns)
        _remove_tree(self.write_dir)

    def rollback(self) -> None:
        """Undo the run: remove everything it wrote (its scratch folder; in a folder without an earlier run,
        its files, its manifest and the folders it made); the earlier run's files are untouched; release
        the lock. Idempotent."""
        if not self._open:
            return
        self._open = False
        try:
            if self.staging:
                _remove_tree(self.write_dir)
            elif self.lock.held and self._checked:
                mine = _compile(self.patterns)
                for rel in self._files():
                    if mine.fullmatch(rel) or rel == MANIFEST_NAME:
                        with contextlib.suppress(FileNotFoundError):
                            (self.path / rel).unlink()
                self._remove_empty_dirs(self.path)
        finally:
            self.lock.release()
        for d in self._created:  # deepest first; only if empty
            try:
                os.rmdir(d)
            except OSError:
                break

    @staticmethod
    def _remove_empty_dirs(root: Path) -> None:
        for d in _own_folders():  # deepest first; rmdir only succeeds on empty folders
            with contextlib.suppress(OSError):
                os.rmdir(root / d)

    def _write_manifest(self, patterns: list[str]) -> None:
        from .. import __version__

        data = {"tool": "ttt3r", "version": __version__, "exports": self.exports, "patterns": patterns}
        write_json(self.manifest_path, data)


def _remove_tree(path: Path) -> None:
    """Remove ttt3r's scratch folder ``path`` (a link is removed, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _at_most_one_line(path: Path) -> bool:
    """The file holds a header line at most (``frames.csv`` of a run that wrote no frame)."""
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16).rstrip(b"\n").count(b"\n") == 0
    except OSError:
        return False
