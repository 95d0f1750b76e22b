"""The output folder guard: never write over, or delete, files ttt3r did not write.

Rules:

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

The manifest is written before any output file and records the patterns this
run owns. Since the folder was checked to hold no foreign file matching them,
every file that matches them afterwards was written by ttt3r.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from ..errors import TTT3RError
from ..io.atomic import atomic_write_text
from .exports import available_exports, get_export

__all__ = ["MANIFEST_NAME", "RUN_FILES", "OutputDir", "known_patterns", "patterns_for"]

MANIFEST_NAME = ".ttt3r-manifest.json"

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
    """A checked output folder.

    Args:
        path: the output folder (created if missing).
        exports: names of the registered exports this run writes.
        overwrite: allow writing into a non-empty folder, removing only files
            of an earlier ttt3r run (see module doc).

    Call :meth:`prepare` once before writing anything.
    """

    def __init__(self, path: str | os.PathLike, exports: Iterable[str], overwrite: bool = False) -> None:
        self.path = Path(path)
        self.exports = list(dict.fromkeys(exports))
        self.overwrite = overwrite
        self.patterns = patterns_for(self.exports)
        self.removed: list[str] = []

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME

    def _files(self) -> list[str]:
        """Relative paths of the folder's top-level entries and of every file in ttt3r's sub-folders.

        Only these can match ttt3r's patterns; other sub-folders are not walked.
        """
        out = sorted(c.name + ("/" if c.is_dir() else "") for c in self.path.iterdir())
        for d in _own_folders():
            sub = self.path / d
            if sub.is_dir() and not sub.is_symlink():
                for c in sorted(sub.iterdir()):
                    if c.is_file() or c.is_symlink():
                        out.append(f"{d}/{c.name}")
        return out

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
        """Validate the folder without changing anything; return the files ``prepare`` would remove.

        Raises:
            TTT3RError: the path is a file, the folder is not empty and
                ``overwrite`` is false, or a file this run would write exists
                and was not written by ttt3r.
        """
        p = self.path
        if p.exists() and not p.is_dir():
            raise TTT3RError(f"{p}: output path exists and is not a folder")
        if not p.exists():
            return []
        files = self._files()
        if not files:
            return []
        if not self.overwrite:
            prev = self.manifest_path.is_file()
            what = "holds a previous ttt3r run" if prev else "is not empty"
            raise TTT3RError(f"{p}: output folder {what}; use --overwrite to replace ttt3r's files "
                             "(other files are kept), or choose another folder")
        ours = _compile(self._previous_patterns())
        mine = _compile(self.patterns)
        for rel in files:
            if rel != MANIFEST_NAME and not ours.fullmatch(rel) and mine.fullmatch(rel):
                raise TTT3RError(f"{p / rel}: exists and was not written by ttt3r; move it away or "
                                 "choose another output folder")
        return [rel for rel in files if rel != MANIFEST_NAME and ours.fullmatch(rel)]

    def prepare(self) -> None:
        """:meth:`check` the folder, remove an earlier run's files if allowed, write the manifest."""
        to_remove = self.check()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TTT3RError(f"{self.path}: cannot create output folder ({e.strerror or e})") from e
        for rel in to_remove:
            with contextlib.suppress(FileNotFoundError):
                (self.path / rel).unlink()
            self.removed.append(rel)
        if to_remove:
            self._remove_empty_dirs()
        self._write_manifest()

    def _remove_empty_dirs(self) -> None:
        for d in _own_folders():  # deepest first; rmdir only succeeds on empty folders
            with contextlib.suppress(OSError):
                os.rmdir(self.path / d)

    def _write_manifest(self) -> None:
        from .. import __version__

        data = {"tool": "ttt3r", "version": __version__, "exports": self.exports, "patterns": self.patterns}
        atomic_write_text(self.manifest_path, json.dumps(data, indent=1) + "\n")
