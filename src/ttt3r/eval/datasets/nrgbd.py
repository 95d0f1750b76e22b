"""Neural RGB-D (NRGBD) synthetic scenes, 3D reconstruction.

Layout under ``root`` (one folder per scene, every folder is used)::

    <scene>/images/img0.png, img1.png ...   colour frames
    <scene>/depth/depth0.png ...            16-bit depth, millimetres
    <scene>/poses.txt                       one 4x4 camera-to-world a frame, 4 lines each,
                                            OpenGL camera axes; "nan" rows = unknown pose

Poses are converted to OpenCV axes (camera y and z flipped). Every
``min(kf_every, N // 2)``-th frame is used, at most ``max_frames``. Depths beyond
10 m are missing. Intrinsics: fx = fy = 554.2562584220408, (cx, cy) = (320, 240).
"""

from __future__ import annotations


import numpy as np

from ...errors import TTT3RError
from .base import KeyframeReconLoader, Sequence, pinhole, read_png_depth

NRGBD_INTRINSICS = (554.2562584220408, 554.2562584220408, 320.0, 240.0)
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def _read_nrgbd_depth(path) -> np.ndarray:
    return read_png_depth(path, 1000.0, max_valid=10.0)


def read_nrgbd_poses(path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 4) camera-to-world poses in OpenCV axes (NaN where unknown) and (N,) validity."""
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    if len(lines) % 4:
        raise TTT3RError(f"{path}: {len(lines)} lines; expected 4 lines per pose")
    poses, valid = [], []
    for k in range(0, len(lines), 4):
        block = lines[k : k + 4]
        try:
            m = np.array([[float(v) for v in ln.split()] for ln in block])
        except ValueError:
            raise TTT3RError(f"{path}:{k + 1}: pose rows must be numbers") from None
        if m.shape != (4, 4):
            raise TTT3RError(f"{path}:{k + 1}: expected 4 rows of 4 numbers")
        ok = bool(np.isfinite(m).all())
        poses.append(m @ GL_TO_CV if ok else np.full((4, 4), np.nan))
        valid.append(ok)
    return np.array(poses), np.array(valid)


class NRGBD(KeyframeReconLoader):
    """NRGBD scenes for reconstruction (see the module docstring)."""

    name = "nrgbd"

    def sequence_names(self) -> list[str]:
        return self._subdirs(self.root)

    def load(self, name: str) -> Sequence:
        scene = self._dir(self.root / name, "scene folder")
        img_dir = self._dir(scene / "images", f"images of scene {name}")
        n = sum(1 for p in img_dir.iterdir() if p.suffix == ".png")
        if n == 0:
            raise TTT3RError(f"{self.name}: no img*.png images in {img_dir}")
        step = max(1, min(self.kf_every, n // 2))
        ids = list(range(n))[::step][: self.max_frames]
        images = [self._file(img_dir / f"img{i}.png", "colour frame") for i in ids]
        depths = [self._file(scene / "depth" / f"depth{i}.png", "depth map") for i in ids]
        pose_path = self._file(scene / "poses.txt", "camera poses")
        all_poses, all_valid = read_nrgbd_poses(pose_path)
        if len(all_poses) < n:
            raise TTT3RError(f"{self.name}/{name}: {len(all_poses)} poses in {pose_path} for {n} images")
        return self._sequence(
            name,
            images,
            poses=all_poses[ids],
            timestamps=np.array(ids, dtype=np.float64),
            pose_valid=all_valid[ids],
            depth_paths=depths,
            depth_reader=_read_nrgbd_depth,
            intrinsics=pinhole(*NRGBD_INTRINSICS, len(images)),
        )
