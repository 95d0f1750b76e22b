"""Read a reconstruction's run directory back as :class:`~ttt3r.results.FrameResult` s.

The layout is the original CUT3R demo's, one file per frame and kind, the frame
number zero-padded to six digits::

    DIR/depth/000000.npy    (H, W) float32 depth along the camera z axis
    DIR/conf/000000.npy     (H, W) float32 confidence (>= 1)
    DIR/color/000000.png    (H, W, 3) uint8 RGB
    DIR/camera/000000.npz   pose: (4, 4) camera-to-world (OpenCV axes)
                            intrinsics: (3, 3) pinhole matrix, pixels

Frames are the ``depth/*.npy`` files; every other kind must exist for each of
them, except that a run without a ``conf/`` folder gets confidence 1 everywhere
and one without a ``color/`` folder gets grey points. Any problem raises
:class:`~ttt3r.errors.TTT3RError` with one line naming the file.

Frames are read one at a time (:func:`iter_frames`) so a run of thousands of
frames never has to be in memory at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from ..results import FrameResult
from ..geometry import unproject
from ..io.layout import DEMO_LAYOUT, load_camera

__all__ = ["list_frames", "read_frame", "iter_frames"]


def list_frames(run_dir: str | Path) -> list[int]:
    """Frame numbers of a run directory, ascending (the stems of ``depth/*.npy``).

    Raises:
        TTT3RError: ``run_dir`` is missing or not a folder, has no ``depth/`` or
            no frames in it, or a ``depth/`` file's name is not a frame number.
    """
    run = Path(run_dir)
    if not run.exists():
        raise TTT3RError(f"{run}: no such run directory")
    if not run.is_dir():
        raise TTT3RError(f"{run}: not a directory")
    depth_dir = run / "depth"
    if not depth_dir.is_dir():
        raise TTT3RError(f"{depth_dir}: missing (not a reconstruction run directory?)")
    indices = []
    for p in depth_dir.glob("*.npy"):
        if not p.stem.isdigit():
            raise TTT3RError(f"{p}: file name is not a frame number like 000000.npy")
        indices.append(int(p.stem))
    if not indices:
        raise TTT3RError(f"{depth_dir}: no frames (no .npy files)")
    return sorted(indices)


def _load_npy(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if not path.is_file():
        raise TTT3RError(f"{path}: missing")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any read failure is a corrupt file
        raise TTT3RError(f"{path}: cannot read .npy ({type(e).__name__}: {_one_line(e)})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        raise TTT3RError(f"{path}: expected an (H, W) array, got shape {getattr(arr, 'shape', None)}")
    if shape is not None and arr.shape != shape:
        raise TTT3RError(f"{path}: shape {arr.shape} does not match the depth map's {shape}")
    return arr.astype(np.float32, copy=False)


def _load_color(path: Path, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise TTT3RError(f"{path}: missing")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Exception as e:  # noqa: BLE001
        raise TTT3RError(f"{path}: cannot read image ({type(e).__name__}: {_one_line(e)})") from None
    if rgb.shape[:2] != shape:
        raise TTT3RError(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]}, depth map is {shape[1]}x{shape[0]}")
    return rgb


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200]


def read_frame(run_dir: str | Path, index: int) -> FrameResult:
    """Read frame ``index`` of a run directory as a :class:`FrameResult`.

    ``pts3d_cam`` is the depth map unprojected with the intrinsics
    (:func:`ttt3r.geometry.unproject`, as float32); ``pose`` is camera-to-world, so
    ``result.points_world()`` are the world-frame points. ``name`` is the
    zero-padded frame number.

    Raises:
        TTT3RError: a file of the frame is missing, unreadable or inconsistent.
    """
    p = DEMO_LAYOUT.paths(run_dir, index)  # the writers' layout, one source of truth
    depth = _load_npy(p["depth"])
    hw = (int(depth.shape[0]), int(depth.shape[1]))
    if p["conf"].parent.is_dir():
        conf = _load_npy(p["conf"], hw)
    else:
        conf = np.ones(hw, dtype=np.float32)
    if p["color"].parent.is_dir():
        rgb = _load_color(p["color"], hw)
    else:
        rgb = np.full(hw + (3,), 160, dtype=np.uint8)
    pose, K = load_camera(p["camera"])
    return FrameResult(
        index=index,
        name=p["depth"].stem,
        pts3d_cam=unproject(depth, K).astype(np.float32),
        conf=conf,
        pose=pose,
        intrinsics=K,
        rgb=rgb,
    )


def iter_frames(
    run_dir: str | Path,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[FrameResult]:
    """Yield the run's frames one by one, in frame order.

    ``progress(done, total)`` is called once the consumer is done with each
    frame (``done`` from 1 to ``total``). The frame list is read first, so a directory without
    frames fails before anything is yielded.
    """
    indices = list_frames(run_dir)
    total = len(indices)
    for k, index in enumerate(indices):
        frame = read_frame(run_dir, index)
        yield frame
        if progress is not None:
            progress(k + 1, total)
