"""``frames.csv``: which input each output index came from, and its timestamp.

One row per written frame, in output order::

    index,source,source_index,timestamp
    0,1305031102.175304.png,0,1305031102.175304
    1,1305031102.211214.png,2,1305031102.211214

* ``index``: the output index (the ``%06d`` of the per-frame files, the row of
  ``trajectory.txt``). With ``--skip-bad`` unreadable inputs are skipped and the
  outputs renumbered; this file says which input each index is.
* ``source``: the file name (image folder), the path as written in the list
  (text list), or ``video.mp4#N`` (video, decoded frame number N).
* ``source_index``: position of the input in the sorted folder or in the list,
  or the decoded frame number in the video.
* ``timestamp``: the timestamp ``trajectory.txt`` gives the frame
  (:meth:`ttt3r.results.FrameResult.time`): a video frame's presentation time
  in seconds, the number a numeric file name spells, else the index.

The header is written atomically when the run starts; each row is then appended
with one ``write`` of the whole line and synced to disk every ``every`` rows and
at close, so that a run that is interrupted or killed leaves a valid file listing
the frames done (as rows of complete lines).
"""

from __future__ import annotations

import csv
import errno
import io
import os
from pathlib import Path

from ..errors import TTT3RError
from ..io.atomic import atomic_write_text
from ..results import FrameResult

__all__ = ["FRAMES_CSV", "FRAMES_CSV_HEADER", "FramesCsvWriter", "read_frames_csv"]

#: The file's name in the output folder.
FRAMES_CSV = "frames.csv"
FRAMES_CSV_HEADER = ("index", "source", "source_index", "timestamp")


def _row(values: tuple) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


class FramesCsvWriter:
    """Appends one ``frames.csv`` row per frame (see the module doc).

    Args:
        path: the file to write.
        fps: frames per second of the processed sequence, for frames without a
            timestamp (as :class:`~ttt3r.writers.trajectory.TrajectoryWriter`).
        every: sync to disk every ``every`` rows (and at close).
    """

    def __init__(self, path: str | os.PathLike, fps: float | None = None, every: int = 10) -> None:
        self.path = Path(path)
        self.fps = fps
        self.every = max(1, int(every))
        self.rows = 0
        atomic_write_text(self.path, _row(FRAMES_CSV_HEADER))
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def add(self, frame: FrameResult) -> None:
        if self._fd is None:
            raise RuntimeError(f"{self.path}: writer is closed")
        source_index = "" if frame.source_index is None else int(frame.source_index)
        line = _row((int(frame.index), frame.name, source_index, repr(float(frame.time(self.fps)))))
        try:
            os.write(self._fd, line.encode("utf-8"))  # one write of the whole line: never half a row on disk
            self.rows += 1
            if self.rows % self.every == 0:
                os.fsync(self._fd)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise TTT3RError(f"{self.path}: no space left on device while writing") from e
            raise

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self, interrupted: bool = False) -> None:
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = None


def read_frames_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``frames.csv`` as dicts of strings keyed by :data:`FRAMES_CSV_HEADER`."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
