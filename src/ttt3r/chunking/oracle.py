"""A drift-simulating oracle: the ground truth turned into what a chunked feed-forward network gives.

``--oracle-drift scale=S,rot=R,noise=N,seed=K`` (:class:`DriftSpec`). For each
chunk (its own frame: the camera of its first fed frame ``f0``), and each of its
frames ``i`` (``j = i - f0`` frames into the chunk):

* scale: one factor ``s_c`` per chunk, ``log s_c ~ U(-log S, log S)``,
  applied to every point, depth and translation of the chunk;
* rotation drift: ``D_j = rot(axis_c, R * j degrees)`` about a uniformly random
  unit axis per chunk, accumulating from the chunk's first frame: the pose is
  ``[D_j R_rel | s_c D_j p_i]`` with ``R_rel`` the true rotation relative to
  ``f0`` (so ``angle(R_pred R_rel^T) = R * j`` exactly);
* relative translation noise: the camera position ``p_i`` (relative to ``f0``,
  ground-truth unit) integrates the true steps ``d_i`` plus noise
  ``N * |d_i| * xi``, ``xi ~ N(0, I_3)``: ``p_i = p_{i-1} + d_i + N |d_i| xi_i``;
* depth noise and confidence: per pixel ``z ~ N(0, 1)``, noise level
  ``sigma = N * exp(z)``, depth ``s_c * d * exp(sigma * eps)`` with
  ``eps ~ N(0, 1)``, confidence ``1 + exp(-z)`` (>= 1, high where the noise is
  low: ``sigma = N / (conf - 1)``);
* seeded: chunk ``c`` of the sequence keyed ``key`` draws from
  ``default_rng([seed, crc32(key), c])``, its frame ``i`` from
  ``default_rng([seed, crc32(key), c, i])``, whatever else runs.

Ground truth missing (depth 0) stays 0 with confidence 1. The oracle is a
:class:`ttt3r.chunking.stream.ChunkPredictor`: the aligner sees only its
per-chunk predictions, never the ground truth.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..errors import TTT3RError
from ..geometry import unproject
from ..results import FrameResult

__all__ = ["DriftOracle", "DriftSpec"]


@dataclass(frozen=True)
class DriftSpec:
    """Drift settings (see the module doc).

    Attributes:
        scale: S >= 1, per-chunk scale factors are log-uniform in [1/S, S].
        rot: R >= 0, rotation drift in degrees per frame.
        noise: N >= 0, relative translation noise and depth noise level.
        seed: the random seed.
    """

    scale: float = 1.0
    rot: float = 0.0
    noise: float = 0.0
    seed: int = 0

    @staticmethod
    def parse(text: str) -> DriftSpec:
        """``"scale=2,rot=0.05,noise=0.01,seed=0"`` (any subset; the rest default) -> DriftSpec."""
        kw: dict = {}
        for item in (x.strip() for x in str(text).split(",")):
            if not item:
                continue
            key, eq, val = item.partition("=")
            key = key.strip()
            if not eq or key not in ("scale", "rot", "noise", "seed"):
                raise TTT3RError(f"--oracle-drift: {item!r} is not one of scale=S, rot=R, noise=N, seed=K")
            try:
                kw[key] = int(val) if key == "seed" else float(val)
            except ValueError:
                raise TTT3RError(f"--oracle-drift: {key}={val.strip()!r} is not a number") from None
        spec = DriftSpec(**kw)
        if not spec.scale >= 1.0 or not np.isfinite(spec.scale):
            raise TTT3RError(f"--oracle-drift: scale must be >= 1 (factors in [1/scale, scale]), got {spec.scale}")
        if not (spec.rot >= 0 and spec.noise >= 0) or not np.isfinite([spec.rot, spec.noise]).all():
            raise TTT3RError(f"--oracle-drift: rot and noise must be >= 0, got rot={spec.rot}, noise={spec.noise}")
        return spec

    def to_json(self) -> dict:
        return asdict(self)


class DriftOracle:
    """Per-chunk drifted predictions from ground truth (a :class:`ChunkPredictor`; frames are indices).

    Args:
        spec: the drift.
        poses: (N, 4, 4) ground-truth camera-to-world (any world frame and unit).
        intrinsics: (N, 3, 3) pinhole matrices of the depth grids, in pixels.
        read_depth: frame index -> (H, W) ground-truth depth along z (0 = missing).
        key: names the sequence in the random streams (e.g. its name).
    """

    def __init__(self, spec: DriftSpec, poses: np.ndarray, intrinsics: np.ndarray,
                 read_depth: Callable[[int], np.ndarray], key: str = "") -> None:
        self.spec = spec
        self.poses = np.asarray(poses, dtype=np.float64)
        self.intrinsics = np.asarray(intrinsics, dtype=np.float64)
        self.read_depth = read_depth
        self._key = zlib.crc32(str(key).encode())
        self.chunk = 0
        self._start: int | None = None
        self.chunk_scale: list[float] = []
        self.chunk_axis: list[np.ndarray] = []

    def prepare(self, frame: int, name: str | None) -> int:
        return int(frame)

    def keep(self, prepared: int) -> int:
        return prepared

    def new_chunk(self) -> None:
        self.chunk += 1
        self._start = None

    def _open(self, i: int) -> None:
        rng = np.random.default_rng([self.spec.seed, self._key, self.chunk])
        ls = np.log(self.spec.scale)
        self._s = float(np.exp(rng.uniform(-ls, ls)))
        axis = rng.normal(size=3)
        self._axis = axis / np.linalg.norm(axis)
        self._start = i
        self._inv0 = np.linalg.inv(self.poses[i])
        self._p = np.zeros(3)
        self._t_prev = np.zeros(3)
        self.chunk_scale.append(self._s)
        self.chunk_axis.append(self._axis)

    def predict(self, i: int, name: str | None) -> FrameResult:
        if self._start is None:
            self._open(i)
        sp = self.spec
        j = i - self._start
        rel = np.eye(4) if j == 0 else self._inv0 @ self.poses[i]  # the chunk frame is its first camera
        rng = np.random.default_rng([sp.seed, self._key, self.chunk, i])
        d = rel[:3, 3] - self._t_prev
        self._t_prev = rel[:3, 3]
        self._p = self._p + d + sp.noise * np.linalg.norm(d) * rng.normal(size=3)
        D = Rotation.from_rotvec(self._axis * np.radians(sp.rot * j)).as_matrix()
        pose = np.eye(4)
        pose[:3, :3] = D @ rel[:3, :3]
        pose[:3, 3] = self._s * (D @ self._p)
        depth = np.asarray(self.read_depth(i), dtype=np.float64)
        z = rng.normal(size=depth.shape)
        eps = rng.normal(size=depth.shape)
        ok = np.isfinite(depth) & (depth > 0)
        pred = np.where(ok, self._s * depth * np.exp(sp.noise * np.exp(z) * eps), 0.0)
        conf = np.where(ok, 1.0 + np.exp(-z), 1.0).astype(np.float32)
        K = self.intrinsics[i]
        h, w = depth.shape
        return FrameResult(index=i, name=name or f"frame{i:06d}", pts3d_cam=unproject(pred, K).astype(np.float32),
                           conf=conf, pose=pose, intrinsics=K.copy(), rgb=np.broadcast_to(np.zeros(3, np.uint8), (h, w, 3)))
