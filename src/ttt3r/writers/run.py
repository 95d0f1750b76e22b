""":class:`RunWriter`: every output of ``ttt3r reconstruct`` behind one ``add`` / ``close``.

Which files each export writes, and the writer that writes them, is declared in
:mod:`ttt3r.writers.exports` (one registered class per export); ``run.json``
(:class:`~ttt3r.writers.runinfo.RunInfoWriter`), ``frames.csv``
(:class:`~ttt3r.writers.frames_csv.FramesCsvWriter`) and ``.ttt3r-manifest.json``
(:class:`~ttt3r.writers.outdir.OutputDir`) are always written.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..results import FrameResult
from .base import Writer
from .colmap import DEFAULT_MAX_REPROJ_ERROR
from .exports import ExportContext, available_exports, default_exports, get_export
from .frames_csv import FRAMES_CSV, FramesCsvWriter
from .fusion import VoxelFusion
from .outdir import OutputDir

__all__ = ["RunWriter", "WriterOptions"]


@dataclass
class WriterOptions:
    """Settings of the writers.

    Attributes:
        conf_threshold: fused points keep pixels with ``conf > conf_threshold``.
        voxel_size: fusion voxel edge in world units; ``None``: automatic (two
            pixels' footprint at the first frame's median depth).
        max_points: the fused cloud never holds more voxels than this (the voxel
            size doubles when it would).
        flush_every: rewrite ``points.ply`` and the COLMAP text files every N frames.
        trajectory_every: rewrite ``trajectory.txt`` every N frames.
        info_every: rewrite ``run.json`` every N frames (after the frame's files), so that a
            killed run's ``run.json`` is at most N - 1 frames behind the files on disk.
        colmap_max_points: points in ``points3D.txt`` at most.
        glb_max_points: points in ``scene.glb`` at most.
        preview_frames: frames in the preview's depth strip.
        fusion_pixel_stride: fuse every N-th pixel per axis (1: all; 2 is
            4x faster and loses little since voxels span about two pixels).
        track_length: frames (observations) kept per fused point for the
            exports that need tracks (COLMAP's ``points3D``).
        colmap_res: ``"source"`` (images and intrinsics at the source frames'
            size) or ``"network"`` (the preprocessed frames'), for the COLMAP
            and nerfstudio exports.
        colmap_max_reproj_error: COLMAP observations reproject within this many
            pixels of the written images; farther ones are left out (and points
            left with one observation).
    """

    conf_threshold: float = 1.5
    voxel_size: float | None = None
    max_points: int = 2_000_000
    flush_every: int = 100
    trajectory_every: int = 10
    info_every: int = 1
    colmap_max_points: int = 500_000
    glb_max_points: int = 1_000_000
    preview_frames: int = 6
    fusion_pixel_stride: int = 2
    track_length: int = 8
    colmap_res: str = "source"
    colmap_max_reproj_error: float = DEFAULT_MAX_REPROJ_ERROR


class RunWriter:
    """Fans frames out to the selected writers; use as a context manager.

    Args:
        out_dir: the output folder (checked by :class:`OutputDir`: a non-empty
            folder needs ``overwrite=True``; foreign files are never touched).
        exports: registered export names (:func:`~ttt3r.writers.exports.available_exports`);
            ``None``: the defaults. Writers are called in registration order.
        fps: frames per second of the processed sequence (for TUM timestamps),
            or ``None``.
        overwrite: replace the files of an earlier ttt3r run in ``out_dir``.
        options: :class:`WriterOptions`.
        info: recorded in ``run.json`` (input, weights, settings, ...).
        background: write in a background thread (``add`` only queues the
            frame; at most ``queue_size`` frames wait, so memory stays bounded)
            so that file writing overlaps with the network. A frame must not be
            modified after ``add``. An error in the writer thread is raised by
            the next ``add`` or by ``close``.
        queue_size: frames that may wait for the writer thread.

    On ``__exit__`` with an exception, :meth:`close` runs with
    ``interrupted=True``: every file is written for the frames finished so far
    and ``run.json`` says ``"interrupted": true``; an error while closing does
    not hide the exception that stopped the run. What is kept
    (:class:`~ttt3r.writers.outdir.OutputDir`):

    * a run that finished, or was interrupted (KeyboardInterrupt, SIGTERM)
      after at least one frame: its files become the folder's (replacing an
      earlier run's, whose stale files are then removed);
    * a run that failed (any other exception) while replacing an earlier run:
      nothing of it; the earlier results stay as they were;
    * a run that failed in a new or empty folder: its finished frames, as an
      interrupted run;
    * a run stopped before its first frame: nothing (a new folder is removed again).
    """

    def __init__(self, out_dir: str | os.PathLike, exports: Iterable[str] | None = None, *,
                 fps: float | None = None, overwrite: bool = False, options: WriterOptions | None = None,
                 info: dict[str, Any] | None = None, background: bool = False, queue_size: int = 4) -> None:
        wanted = list(dict.fromkeys(default_exports() if exports is None else exports))
        for e in wanted:
            get_export(e)  # an unknown name: one error listing the known ones
        specs = [get_export(e) for e in available_exports() if e in wanted]
        self.exports = [s.name for s in specs]
        self.options = options or WriterOptions()
        for s in specs:
            s.check_available()  # before touching the folder
        self.out_dir = Path(out_dir)
        self.guard = OutputDir(self.out_dir, self.exports, overwrite=overwrite)
        self.guard.prepare()
        try:
            self._start(specs, fps, info, background, queue_size)
        except BaseException:
            self.guard.rollback()
            raise

    def _start(self, specs, fps, info, background, queue_size) -> None:
        opt = self.options
        d = self.guard.write_dir  # the folder, or its scratch folder when replacing an earlier run
        self.fusion: VoxelFusion | None = None
        if any(s.needs_fusion or s.needs_tracks for s in specs):
            tracks = opt.track_length if any(s.needs_tracks for s in specs) else 0
            self.fusion = VoxelFusion(voxel_size=opt.voxel_size, max_points=opt.max_points,
                                      conf_threshold=opt.conf_threshold, pixel_stride=opt.fusion_pixel_stride,
                                      track_length=tracks)
        ctx = ExportContext(out_dir=d, options=opt, fps=fps, fusion=self.fusion)
        self.writers: dict[str, Writer] = {s.name: s.create(ctx) for s in specs}
        self.writers[FRAMES_CSV] = FramesCsvWriter(d / FRAMES_CSV, fps=fps)  # always, like run.json
        from .runinfo import RunInfoWriter

        info = dict(info or {})
        info.setdefault("output", os.fspath(self.out_dir))
        info.setdefault("exports", self.exports)
        info.setdefault("writer_options", asdict(opt))
        self.info = RunInfoWriter(d / "run.json", info, every=opt.info_every)
        self.n_frames = 0
        self.closed = False
        self._error: BaseException | None = None
        self._error_reported = False
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=max(1, int(queue_size)))
            self._thread = threading.Thread(target=self._worker, name="ttt3r-writer", daemon=True)
            self._thread.start()

    @property
    def paths(self) -> dict[str, Path]:
        """Main output path of each export (the output folder for ``demo``), ``run``: run.json,
        ``frames``: frames.csv."""
        d = self.out_dir
        return {e: d / get_export(e).path for e in self.exports} | {"run": d / "run.json", "frames": d / FRAMES_CSV}

    def add(self, frame: FrameResult) -> None:
        """Write / accumulate one frame (frames arrive in index order)."""
        if self.closed:
            raise RuntimeError("RunWriter is closed")
        if self._queue is None:
            self._write(frame)
            return
        if self._error is not None:
            self._error_reported = True
            raise self._error
        self._queue.put(frame)

    def _write(self, frame: FrameResult) -> None:
        if self.fusion is not None:
            self.fusion.add_frame(frame)
        for w in self.writers.values():
            w.add(frame)
        self.info.add(frame)
        self.n_frames += 1

    def _worker(self) -> None:
        assert self._queue is not None
        while True:
            frame = self._queue.get()
            try:
                if frame is None:
                    return
                if self._error is None:  # after an error, drain the queue without writing
                    try:
                        self._write(frame)
                    except BaseException as e:  # re-raised in the caller's thread
                        self._error = e
            finally:
                self._queue.task_done()

    def wait(self) -> None:
        """Block until every frame added so far is written (a background writer), so that its
        files can be read (under :attr:`write_dir`); a writer error is raised here."""
        if self._queue is not None:
            self._queue.join()
        if self._error is not None:
            self._error_reported = True
            raise self._error

    @property
    def write_dir(self) -> Path:
        """Where the files are being written: the output folder, or its scratch folder while an
        earlier run is being replaced (the files move to the output folder when the run closes)."""
        return self.guard.write_dir

    def close(self, interrupted: bool = False, failed: bool = False) -> None:
        """Finish every file; ``interrupted`` marks a partial run, ``failed`` one stopped by an error
        (see the class doc for what is kept). Idempotent.

        Every writer is closed even if one fails; the first failure is re-raised
        after ``run.json`` is written (marked interrupted). Ctrl-C and SIGTERM
        wait until the files and ``run.json`` are complete (then KeyboardInterrupt
        is raised), so that ``run.json`` always tells the truth.
        """
        if self.closed:
            return
        self.closed = True
        from ..interrupts import deferred_interrupts

        note = f"ttt3r: finishing the files of the frames done in {self.out_dir} (a moment)"
        with deferred_interrupts(note):
            error = self._close(interrupted, failed)
        if error is not None:
            raise error

    def _close(self, interrupted: bool, failed: bool) -> BaseException | None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
        failed = failed or self._error is not None
        interrupted = interrupted or failed
        error: BaseException | None = None if self._error_reported else self._error
        self.n_frames = self.info.n_frames
        if interrupted and self.n_frames == 0:  # nothing finished: leave nothing
            self.guard.rollback()
            return error
        try:
            for w in self.writers.values():
                try:
                    w.close(interrupted=interrupted)
                except Exception as e:  # keep closing the others
                    error = error or e
            self.info.close(interrupted=interrupted or error is not None)
        except BaseException:
            if self.guard.staging:
                self.guard.rollback()
            else:
                self.guard.commit()
            raise
        if (failed or error is not None) and self.guard.staging:
            self.guard.rollback()  # an earlier run is being replaced: keep it as it was
        else:
            self.guard.commit()
        return error

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close(interrupted=True, failed=not issubclass(exc_type, KeyboardInterrupt))
        except (Exception, KeyboardInterrupt):
            pass  # the exception that stopped the run is the one to report (e.g. the file that failed)
