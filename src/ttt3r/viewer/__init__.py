"""Interactive 3D viewer (optional extra ``ttt3r[viz]``, built on viser).

* :class:`LiveViewer`: a web viewer that frames are added to one by one, used
  live by ``ttt3r reconstruct --view``.
* :func:`view_run`: streams a run directory's frames from disk into a
  :class:`LiveViewer` (what ``ttt3r view DIR`` does).

viser is imported only when a viewer is created; without it,
:class:`~ttt3r.errors.TTT3RError` says how to install it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ._core import MIN_POINTS_PER_FRAME, TRAJECTORY_CHUNK, LiveViewer, require_viser
from .rundir import iter_frames, list_frames, read_frame

__all__ = [
    "LiveViewer",
    "MIN_POINTS_PER_FRAME",
    "TRAJECTORY_CHUNK",
    "iter_frames",
    "list_frames",
    "read_frame",
    "require_viser",
    "view_run",
]


def view_run(
    run_dir: str | Path,
    viewer: LiveViewer,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Read a run directory frame by frame and add each frame to ``viewer``.

    Only one full-resolution frame is in memory at a time; the viewer keeps its
    bounded subsample (``viewer.expect_frames`` is told the number of frames,
    so they share ``max_points_total`` from the start). The GUI status line shows the loading progress, and
    ``progress(done, total)`` (if given) is called after each frame.

    Returns:
        The number of frames added.

    Raises:
        TTT3RError: the directory is missing, has no frames, or a file is
            missing or corrupt (the message names the file).
    """
    total = len(list_frames(run_dir))
    viewer.expect_frames(total)
    n = 0

    def _progress(done: int, total: int) -> None:
        if done == total or done % 10 == 0:
            viewer.set_status(f"loading {done}/{total}" if done < total else "")
        if progress is not None:
            progress(done, total)

    viewer.set_status(f"loading 0/{total}")
    try:
        for frame in iter_frames(run_dir, progress=_progress):
            viewer.add(frame)
            n += 1
    except BaseException:
        viewer.set_status(f"loading stopped after {n}/{total} frames")
        raise
    return n
