"""Rewrite a finished run's pose-dependent outputs with corrected poses, from what is on disk.

Given a run folder in the demo layout (:data:`ttt3r.io.layout.DEMO_LAYOUT`) and
per-frame corrected poses (and depth scales, :mod:`ttt3r.loops.closure`), every
output that depends on the poses is written again:

* ``camera/%06d.npz``: the new ``pose``; the pose the run first wrote kept as
  ``pose_raw`` (a later rewrite keeps it) and ``depth_scale``, the factor from
  the depth the run first wrote to the saved depth;
* ``depth/%06d.npy``: the run's raw depth (:func:`raw_depth`) times the
  frame's new depth scale (rewritten only where the scale changes);
* ``trajectory.txt`` (its timestamps kept), ``points.ply`` re-fused from the
  saved depth, confidence and colour, the COLMAP model, ``scene.glb`` and
  ``preview.png``: each only if the run wrote it (the manifest's exports),
  by the export registry's own writers (:mod:`ttt3r.writers.exports`), fed
  frame by frame: constant memory.

Poses and depth scales are always given relative to the run's *raw* outputs,
the ones it first wrote (``pose_raw``, :func:`raw_depth`), never to those of
an earlier rewrite: rewriting twice with the same poses and scales is
rewriting once, and a second rewrite replaces the first's corrections instead
of stacking on them (``ttt3r refine`` on a refined run, docs/loop_closure.md).

The fusion reads camera points as the unprojection of the saved depth with the
saved intrinsics. It equals the run's own fusion bit for bit when the run's
point maps were that unprojection (the oracle predictors; for the network the
self-view points differ from it by the focal fit's residual).

Atomicity: everything new is written under ``.ttt3r-rewrite/`` inside the run
folder, in the run's layout; then ``READY.json`` (the list of files) is written
there, ``run.json`` says ``"loop_closure": {"status": "committing"}``, and the
files are renamed into place in a fixed order, camera files last; then the
staging folder goes and ``run.json`` gets the final record. Interrupted before
``READY.json``: the run's files are untouched (the staging folder is removed
by the next rewrite). Interrupted during the renames: every file is whole, and
:func:`recover_rewrite` (called by :func:`rewrite_run` first) finishes them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from ..geometry import unproject
from ..io.atomic import sync_files
from ..io.layout import DEMO_LAYOUT, save_camera, save_map
from ..io.strict_json import write_json
from ..progress import progress_bar
from ..results import FrameResult

__all__ = ["STAGING", "RewriteSummary", "raw_camera", "raw_depth", "read_camera", "recover_rewrite", "rewrite_run",
           "run_frames"]

#: the staging folder, inside the run folder
STAGING = ".ttt3r-rewrite"
_READY = "READY.json"
_MANIFEST = ".ttt3r-manifest.json"
#: exports whose files are rewritten through their registered writer (``demo`` is done here)
_POSE_EXPORTS = ("trajectory", "ply", "colmap", "glb", "preview")


@dataclass
class RewriteSummary:
    """What :func:`rewrite_run` did: frames read, files replaced (relative paths), seconds."""

    frames: int
    files: list[str]
    seconds: float


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TTT3RError(f"{path.parent}: not a ttt3r run folder (no {path.name})") from None
    except (OSError, ValueError) as e:
        raise TTT3RError(f"{path}: cannot read {what} ({type(e).__name__})") from None
    if not isinstance(data, dict):
        raise TTT3RError(f"{path}: {what} is not a JSON object")
    return data


def run_frames(run_dir: str | os.PathLike) -> list[int]:
    """The frame indices of a run folder: those with a camera file, increasing."""
    cam = Path(run_dir) / DEMO_LAYOUT.camera
    if not cam.is_dir():
        raise TTT3RError(f"{run_dir}: not a ttt3r run folder with per-frame outputs (no {DEMO_LAYOUT.camera}/)")
    out = sorted(int(p.stem) for p in cam.glob("*.npz") if p.stem.isdigit())
    if not out:
        raise TTT3RError(f"{cam}: no camera files")
    return out


def _timestamps(run_dir: Path, frames: list[int]) -> list[float | None]:
    path = run_dir / "trajectory.txt"
    if not path.is_file():
        return [None] * len(frames)
    from ..io.trajectory import read_tum

    traj = read_tum(path)
    if len(traj) != len(frames):
        raise TTT3RError(f"{path}: {len(traj)} poses for {len(frames)} camera files; cannot keep its timestamps")
    return [float(t) for t in traj.timestamps]


def _writer_options(info: dict, path: Path):
    from ..writers.run import WriterOptions

    raw = info.get("writer_options") or {}
    known = WriterOptions.__dataclass_fields__
    try:
        return WriterOptions(**{k: v for k, v in raw.items() if k in known})
    except TypeError as e:
        raise TTT3RError(f"{path}: writer_options are not valid ({e})") from None


_move = os.replace  # one rename (same file system: atomic)


def read_camera(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A camera file as the run wrote it: (4, 4) pose, (3, 3) intrinsics and any other arrays.

    Unlike :func:`ttt3r.io.layout.load_camera` a degenerate focal length (a frame the
    network got wrong) is accepted: its points are left out of the fusion, as
    non-finite ones are.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k], np.float64) for k in z.files}
    except FileNotFoundError:
        raise TTT3RError(f"{path}: missing") from None
    except Exception as e:  # noqa: BLE001 - any read failure is a corrupt file
        raise TTT3RError(f"{path}: cannot read .npz ({type(e).__name__})") from None
    pose, K = arrays.pop("pose", None), arrays.pop("intrinsics", None)
    if pose is None or K is None or pose.shape != (4, 4) or K.shape != (3, 3):
        raise TTT3RError(f"{path}: needs a 4x4 'pose' and a 3x3 'intrinsics'")
    return pose, K, arrays


def _raw_of(pose: np.ndarray, extra: dict[str, np.ndarray]) -> tuple[np.ndarray, float]:
    """A camera file's raw pose and the depth scale applied since (1 when never rewritten)."""
    return extra.get("pose_raw", pose), float(extra.get("depth_scale", 1.0))


def raw_camera(run_dir: str | os.PathLike, idx: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Frame ``idx``'s camera as the run first wrote it, before any loop-closure rewrite:
    (4, 4) camera-to-world ``pose_raw`` (the pose, if never rewritten), (3, 3) intrinsics,
    and the cumulative ``depth_scale`` the saved depth carries since (1 if never rewritten)."""
    pose, K, extra = read_camera(DEMO_LAYOUT.paths(run_dir, idx)["camera"])
    pose_raw, scale = _raw_of(pose, extra)
    return pose_raw, K, scale


def raw_depth(run_dir: str | os.PathLike, idx: int) -> np.ndarray:
    """(H, W) float64 depth of frame ``idx`` as the run first wrote it, in the units of
    ``pose_raw``: the saved ``depth/%06d.npy`` divided by the camera file's ``depth_scale``
    (to float32 rounding of the saved map; exact when the scale is 1)."""
    return _unscaled(np.load(DEMO_LAYOUT.paths(run_dir, idx)["depth"]), raw_camera(run_dir, idx)[2])


def _unscaled(depth: np.ndarray, scale: float) -> np.ndarray:
    """A saved (H, W) depth map back in raw units: float64, divided by its ``depth_scale``."""
    depth = depth.astype(np.float64)
    return depth if scale == 1.0 else depth / scale


def _read_frame(run_dir: Path, idx: int) -> dict[str, np.ndarray]:
    from PIL import Image

    p = DEMO_LAYOUT.paths(run_dir, idx)
    pose, K, extra = read_camera(p["camera"])
    with Image.open(p["color"]) as im:
        color = np.asarray(im.convert("RGB"))
    return {"pose": pose, "intrinsics": K, "extra": extra, "color": color, "depth": np.load(p["depth"]),
            "conf": np.load(p["conf"])}


def _commit(run_dir: Path, staging: Path) -> list[str]:
    """Rename the staged files listed in ``READY.json`` into place, in its order; remove the staging folder."""
    files = _read_json(staging / _READY, "the staged file list")["files"]
    for rel in files:
        src, dst = staging / rel, run_dir / rel
        if src.exists():  # already moved when a commit is resumed
            dst.parent.mkdir(parents=True, exist_ok=True)
            _move(src, dst)
    shutil.rmtree(staging, ignore_errors=True)
    return list(files)


def recover_rewrite(run_dir: str | os.PathLike) -> bool:
    """Finish or discard an interrupted rewrite of ``run_dir``; True when one was finished.

    A staging folder with ``READY.json`` was complete: its remaining files are
    renamed into place. Without it the staging folder is incomplete and removed
    (the run's own files were never touched).
    """
    run_dir = Path(run_dir)
    staging = run_dir / STAGING
    if not staging.is_dir():
        return False
    if (staging / _READY).is_file():
        _commit(run_dir, staging)
        info = _read_json(run_dir / "run.json", "run.json")
        lc = info.get("loop_closure")
        if isinstance(lc, dict) and lc.get("status") == "committing":
            info["loop_closure"] = {**lc, "status": "done", "recovered": True}
            write_json(run_dir / "run.json", info, indent=2)
        return True
    shutil.rmtree(staging, ignore_errors=True)
    return False


def rewrite_run(run_dir: str | os.PathLike, poses: np.ndarray, depth_scales: np.ndarray | None = None,
                record: dict | None = None, progress: bool = False) -> RewriteSummary:
    """Rewrite ``run_dir``'s pose-dependent outputs with ``poses`` (see the module doc).

    Args:
        run_dir: a finished ttt3r run (demo layout, ``run.json``, manifest).
        poses: (N, 4, 4) corrected camera-to-world poses, one per camera file, in frame order.
        depth_scales: (N,) factors from the run's raw depth (:func:`raw_depth`, the depth it
            first wrote) to the new depth, not from the saved one (default: all 1: the raw depth).
        record: stored in ``run.json`` under ``"loop_closure"`` (loops, residuals, ...),
            with ``"status": "done"``.
        progress: show a progress bar (frames, rate, ETA) on stderr.

    Raises:
        TTT3RError: one line: not a run folder, a count that does not match, a
            non-finite pose or a scale that is not positive.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    recover_rewrite(run_dir)
    manifest = _read_json(run_dir / _MANIFEST, "the manifest")
    info = _read_json(run_dir / "run.json", "run.json")
    exports = [str(e) for e in manifest.get("exports", [])]
    if "demo" not in exports:
        raise TTT3RError(f"{run_dir}: the run did not write the per-frame outputs (export 'demo') to rewrite from")
    frames = run_frames(run_dir)
    poses = np.asarray(poses, np.float64)
    if poses.shape != (len(frames), 4, 4) or not np.all(np.isfinite(poses)):
        raise TTT3RError(f"{run_dir}: need {len(frames)} finite 4x4 poses (one per camera file), got {poses.shape}")
    scales = np.ones(len(frames)) if depth_scales is None else np.asarray(depth_scales, np.float64)
    if scales.shape != (len(frames),) or not np.all(np.isfinite(scales) & (scales > 0)):
        raise TTT3RError(f"{run_dir}: depth scales must be {len(frames)} positive numbers")
    stamps = _timestamps(run_dir, frames) if "trajectory" in exports else [None] * len(frames)

    from ..writers.run import RunWriter

    staging = run_dir / STAGING
    staging.mkdir()
    wanted = [e for e in _POSE_EXPORTS if e in exports]
    opts = _writer_options(info, run_dir / "run.json")
    # staged files are not seen before the commit: no intermediate run.json or trajectory (flush_every
    # stays the run's: the fusion's periodic reduction shapes the fused cloud)
    opts.info_every = opts.trajectory_every = 10**9
    staged_depth: list[str] = []
    with RunWriter(staging, wanted, options=opts, info={"rewrite_of": os.fspath(run_dir)},
                   background=True) as writer, \
            progress_bar(len(frames), "loop closure: rewrite", enabled=progress) as bar:  # fusion beside the reading
        for k, idx in enumerate(frames):
            f = _read_frame(run_dir, idx)
            p = DEMO_LAYOUT.paths(run_dir, idx)
            pose_raw, scale0 = _raw_of(f["pose"], f["extra"])
            depth = f["depth"]
            if scales[k] != scale0:  # raw depth (saved / scale0) times the new scale
                depth = (_unscaled(depth, scale0) * scales[k]).astype(np.float32)
                rel = p["depth"].relative_to(run_dir).as_posix()
                save_map(staging / rel, depth, staged=True)  # synced together below
                staged_depth.append(rel)
            rel = p["camera"].relative_to(run_dir).as_posix()
            save_camera(staging / rel, poses[k], f["intrinsics"], staged=True, pose_raw=pose_raw,
                        depth_scale=scales[k])
            with np.errstate(all="ignore"):  # a degenerate focal gives non-finite points: not fused
                pts = unproject(depth, f["intrinsics"]).astype(np.float32)
            frame = FrameResult(index=idx, name=f"{idx:06d}", pts3d_cam=pts,
                                conf=f["conf"], pose=poses[k], intrinsics=f["intrinsics"], rgb=f["color"])
            if stamps[k] is not None:
                frame.extras["timestamp"] = stamps[k]
            writer.add(frame)
            bar.update(1)

    from ..writers.outdir import patterns_for

    own = [pat for pat in patterns_for(wanted) if pat != r"run\.json"]
    bulk = sorted(q.relative_to(staging).as_posix() for q in staging.rglob("*") if q.is_file())
    bulk = [r for r in bulk if any(re.fullmatch(pat, r) for pat in own)]
    cameras = [DEMO_LAYOUT.paths(run_dir, i)["camera"].relative_to(run_dir).as_posix() for i in frames]
    files = bulk + staged_depth + cameras  # camera files last: a frame's camera file says it is complete
    sync_files([staging / r for r in staged_depth + cameras])  # durable before READY.json says they are there
    write_json(staging / _READY, {"files": files}, indent=None)
    info["loop_closure"] = {"status": "committing"}
    write_json(run_dir / "run.json", info, indent=2)
    done = _commit(run_dir, staging)
    info["loop_closure"] = {**(record or {}), "status": "done", "frames": len(frames),
                            "rewrite_s": round(time.perf_counter() - t0, 3)}
    write_json(run_dir / "run.json", info, indent=2)
    return RewriteSummary(len(frames), done, time.perf_counter() - t0)
