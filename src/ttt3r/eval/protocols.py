"""The paper's evaluation protocols: one sequence's prediction against its ground truth.

A :class:`Prediction` holds what a method produced for every frame of a
sequence; :func:`evaluate_pose`, :func:`evaluate_depth` and
:func:`evaluate_recon` turn it into JSON-ready metric dicts, following the
original TTT3R/CUT3R evaluation code (``eval/relpose``, ``eval/video_depth``,
``eval/mv_recon``):

* Camera pose (Sintel, TUM-dynamics, ScanNet and their long splits): ATE and
  RPE (translation, rotation in degrees) after Sim(3) Umeyama alignment, RPE
  over all pairs at a distance of 1 frame (evo's definitions); frames with an
  unknown ground-truth pose are dropped.
* Video depth (Sintel, Bonn, KITTI and long splits): the predicted depth of each
  frame (on the network's cropped grid) is resized with bicubic interpolation
  (OpenCV's ``INTER_CUBIC`` kernel, a = -0.75) to the *full* ground-truth
  resolution, as the original does (the crop margins are stretched over; see
  ``resize="crop"`` for the geometrically exact alternative that maps the
  ground truth onto the crop). One alignment per sequence over all valid
  pixels, for each mode asked (the original scripts report ``metric``,
  ``scale`` = :data:`scale_l1` here, and ``scale&shift`` = ``scale_shift``).
  Caps and clips per benchmark (:data:`DEPTH_PROTOCOLS`): Sintel max depth 70 m
  and prediction clipped at 70 m, Bonn max depth 70 m, KITTI none.
* Reconstruction (7-Scenes, NRGBD): ground-truth depth is mapped onto the
  prediction grid (nearest pixel through the same resize and crop); the
  ground truth is expressed in its first camera, the prediction in its own
  first camera (the network's world-frame head as is, as the original does, or
  depth unprojected with the predicted poses), the median depth of
  each is subtracted (over valid pixels of all frames), the prediction is
  scaled by ``gt_scale / pred_scale`` (median distance to the median point),
  the centre 224x224 pixels of each frame are kept, the ground-truth median
  depth is added back to both and both go to the ground-truth world frame;
  then point-to-point ICP (0.1 m) and accuracy / completeness / normal
  consistency (:func:`ttt3r.eval.metrics_recon.reconstruction_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import TTT3RError
from ..geometry import transform_points, unproject
from .align import AlignMode
from .datasets.base import Sequence
from .metrics_depth import DEPTH_ALIGN_MODES, depth_metrics
from .metrics_pose import pose_metrics
from .metrics_recon import reconstruction_metrics

DepthResize = Literal["original", "crop"]

#: the depth alignments the original scripts run (metric, scale, scale&shift)
DEFAULT_DEPTH_ALIGNS: tuple[str, ...] = ("metric", "scale_l1", "scale_shift")


@dataclass(frozen=True)
class DepthProtocol:
    """Depth-evaluation cap (ground truth at or beyond is ignored) and post-alignment clip, metres."""

    max_depth: float | None
    clip_max: float | None


#: per benchmark family (loader name), as in the original ``eval_depth.py``
DEPTH_PROTOCOLS: dict[str, DepthProtocol] = {
    "sintel": DepthProtocol(70.0, 70.0),
    "bonn": DepthProtocol(70.0, None),
    "kitti": DepthProtocol(None, None),  # the original passes max_depth=None for KITTI
    "synth": DepthProtocol(None, None),
}


# ---------------------------------------------------------------------------
# the prediction and its pixel grid


@dataclass(frozen=True)
class CropView:
    """How a prediction grid sits in the source image: :func:`ttt3r.preprocess.resize_and_crop`.

    The source (``src_hw`` = (H0, W0)) is resized to ``resized_wh`` = (W1, H1)
    and cropped to ``box`` = (left, top, right, bottom) in resized pixels; the
    prediction grid is the crop, ``hw`` = (bottom - top, right - left).
    """

    src_hw: tuple[int, int]
    resized_wh: tuple[int, int]
    box: tuple[int, int, int, int]

    @property
    def hw(self) -> tuple[int, int]:
        l, t, r, b = self.box
        return b - t, r - l

    @staticmethod
    def identity(hw: tuple[int, int]) -> CropView:
        h, w = int(hw[0]), int(hw[1])
        return CropView((h, w), (w, h), (0, 0, w, h))

    @staticmethod
    def for_size(src_hw: tuple[int, int], size: int) -> CropView:
        """The geometry of :func:`ttt3r.preprocess.resize_and_crop` for a source of ``src_hw`` = (H0, W0)."""
        from ..preprocess import crop_geometry

        h0, w0 = int(src_hw[0]), int(src_hw[1])
        resized, box = crop_geometry(w0, h0, size)
        return CropView((h0, w0), resized, box)

    def source_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(h, w) float64 source-image x and y of each prediction pixel centre (pixel-centre convention)."""
        h0, w0 = self.src_hw
        w1, h1 = self.resized_wh
        l, t, _, _ = self.box
        h, w = self.hw
        x = (np.arange(w) + l + 0.5) * (w0 / w1) - 0.5
        y = (np.arange(h) + t + 0.5) * (h0 / h1) - 0.5
        xx, yy = np.meshgrid(x, y)
        return xx, yy

    def map_depth(self, depth: np.ndarray) -> np.ndarray:
        """Source-resolution (H0, W0) depth sampled (nearest pixel) on the prediction grid: (h, w)."""
        d = np.asarray(depth)
        if d.shape != self.src_hw:
            raise TTT3RError(f"ground-truth depth is {d.shape}, expected the source image size {self.src_hw}")
        xx, yy = self.source_coords()
        xi = np.clip(np.floor(xx + 0.5).astype(int), 0, self.src_hw[1] - 1)
        yi = np.clip(np.floor(yy + 0.5).astype(int), 0, self.src_hw[0] - 1)
        return d[yi, xi]

    def map_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """(3, 3) source-pixel intrinsics -> intrinsics of the prediction grid."""
        h0, w0 = self.src_hw
        w1, h1 = self.resized_wh
        l, t, _, _ = self.box
        sx, sy = w1 / w0, h1 / h0
        K2 = np.array(K, dtype=np.float64, copy=True)
        K2[0, 0] *= sx
        K2[0, 1] *= sx
        K2[1, 1] *= sy
        K2[0, 2] = (K[0, 2] + 0.5) * sx - 0.5 - l
        K2[1, 2] = (K[1, 2] + 0.5) * sy - 0.5 - t
        return K2


@dataclass
class Prediction:
    """What a method produced for the N frames of one sequence.

    Attributes:
        depth: (N, h, w) float32 depth along each camera's z axis, in the
            prediction's unit (any global scale).
        poses: (N, 4, 4) float64 camera-to-world, OpenCV axes, in the
            prediction's world frame (usually the first camera's).
        intrinsics: (N, 3, 3) float64 pinhole matrices in pixels of the (h, w) grid.
        view: how the (h, w) grid relates to the source images (None: the
            grid *is* the source image, e.g. ground truth fed back).
        points_world: optional (N, h, w, 3) float32 world points (the
            network's world-frame head, which the original reconstruction
            protocol uses); None: depth unprojected with intrinsics and poses.
        seconds: wall time spent predicting.
    """

    depth: np.ndarray
    poses: np.ndarray
    intrinsics: np.ndarray
    view: CropView | None = None
    points_world: np.ndarray | None = None
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)

    def check(self, n: int, where: str) -> None:
        """Raise a one-line :class:`TTT3RError` unless shapes match ``n`` frames."""
        d, p, k = np.shape(self.depth), np.shape(self.poses), np.shape(self.intrinsics)
        if len(d) != 3 or d[0] != n or p != (n, 4, 4) or k != (n, 3, 3):
            raise TTT3RError(
                f"{where}: prediction has depth {d}, poses {p}, intrinsics {k}; expected {n} frames "
                "of (N, h, w), (N, 4, 4), (N, 3, 3)"
            )
        if self.view is not None and tuple(self.view.hw) != tuple(d[1:]):
            raise TTT3RError(f"{where}: predicted depth grid {d[1:]} does not match its crop {self.view.hw}")
        if self.points_world is not None and np.shape(self.points_world) != (*d, 3):
            raise TTT3RError(f"{where}: points_world has shape {np.shape(self.points_world)}, expected {(*d, 3)}")

    def grid_view(self, src_hw: tuple[int, int]) -> CropView:
        return self.view if self.view is not None else CropView.identity(src_hw)


# ---------------------------------------------------------------------------
# bicubic resize with OpenCV's INTER_CUBIC kernel


def _cubic_weights(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """(n, 4) weights of taps at offsets -1, 0, 1, 2 for fractional positions ``t`` in [0, 1)."""
    x0, x1, x2 = t + 1.0, t, 1.0 - t
    w0 = ((a * x0 - 5 * a) * x0 + 8 * a) * x0 - 4 * a
    w1 = ((a + 2) * x1 - (a + 3)) * x1 * x1 + 1
    w2 = ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1
    return np.stack([w0, w1, w2, 1.0 - w0 - w1 - w2], axis=-1)


def _resize_axis(img: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = img.shape[axis]
    if n_in == n_out:
        return img
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    i0 = np.floor(x).astype(int)
    wts = _cubic_weights(x - i0)
    out = 0.0
    for k in range(4):
        idx = np.clip(i0 + k - 1, 0, n_in - 1)
        shape = [1] * img.ndim
        shape[axis] = n_out
        out = out + np.take(img, idx, axis=axis) * wts[:, k].reshape(shape)
    return out


def resize_cubic(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize an (h, w) float map to ``hw`` with bicubic interpolation (a = -0.75, replicated border).

    The kernel and pixel-centre mapping of OpenCV's ``cv2.resize(..., INTER_CUBIC)``,
    which the original evaluation uses for predicted depth.
    """
    a = np.asarray(img, dtype=np.float64)
    out = _resize_axis(_resize_axis(a, int(hw[0]), 0), int(hw[1]), 1)
    return np.asarray(out, dtype=np.float32)


# ---------------------------------------------------------------------------
# protocols


def _where(seq: Sequence) -> str:
    return f"{seq.dataset}/{seq.name}"


def evaluate_pose(seq: Sequence, pred: Prediction, align: AlignMode = "sim3") -> dict:
    """ATE / RPE of the predicted trajectory against ``seq.poses`` (pairs by frame index).

    Returns ``{"metrics": PoseMetrics.to_dict(), "trajectory": {"gt", "est"}}``
    with the evaluated (valid) poses as nested lists, for plots.
    """
    if seq.poses is None:
        raise TTT3RError(f"{_where(seq)}: this dataset has no ground-truth poses for the pose protocol")
    n = len(seq)
    pred.check(n, _where(seq))
    est = np.asarray(pred.poses, dtype=np.float64)
    keep = np.isfinite(seq.poses).all(axis=(1, 2))
    if seq.pose_valid is not None:
        keep &= np.asarray(seq.pose_valid, dtype=bool)
    if not np.isfinite(est[keep]).all():
        raise TTT3RError(f"{_where(seq)}: the predicted trajectory has non-finite poses")
    m = pose_metrics(seq.poses, est, align=align, delta=1, all_pairs=True, valid=keep)
    return {
        "metrics": m.to_dict(),
        "trajectory": {"gt": seq.poses[keep].tolist(), "est": est[keep].tolist()},
    }


def ground_truth_depths(seq: Sequence) -> np.ndarray:
    """(N, H, W) float32 ground-truth depth (metres, 0 = missing) of the whole sequence."""
    if seq.depth_paths is None:
        raise TTT3RError(f"{_where(seq)}: this dataset has no ground-truth depth for the depth protocol")
    depths = [seq.read_depth(i) for i in range(len(seq))]
    shapes = {d.shape for d in depths}
    if len(shapes) != 1:
        raise TTT3RError(f"{_where(seq)}: ground-truth depth maps differ in size: {sorted(shapes)}")
    return np.stack(depths)


def depth_protocol(seq: Sequence, family: str | None = None) -> DepthProtocol:
    """The cap and clip of ``family`` (loader name) per :data:`DEPTH_PROTOCOLS`, else the sequence's own."""
    if family in DEPTH_PROTOCOLS:
        return DEPTH_PROTOCOLS[family]  # type: ignore[index]
    return DepthProtocol(seq.max_depth, seq.depth_clip_max)


def evaluate_depth(
    seq: Sequence,
    pred: Prediction,
    aligns: tuple[str, ...] = DEFAULT_DEPTH_ALIGNS,
    resize: DepthResize = "original",
    family: str | None = None,
) -> dict:
    """Depth metrics for each alignment mode: ``{"metrics": {mode: DepthMetrics.to_dict()}, ...}``.

    ``resize="original"``: prediction resized (bicubic) to the full ground-truth
    resolution (the original protocol). ``"crop"``: ground truth sampled onto
    the prediction grid through the preprocessing crop (no stretching).
    """
    for a in aligns:
        if a not in DEPTH_ALIGN_MODES:
            raise TTT3RError(f"unknown depth alignment {a!r}; choose from {', '.join(DEPTH_ALIGN_MODES)}")
    n = len(seq)
    pred.check(n, _where(seq))
    gt = ground_truth_depths(seq)
    src_hw = gt.shape[1:]
    view = pred.grid_view(src_hw)
    if tuple(view.src_hw) != tuple(src_hw):
        raise TTT3RError(f"{_where(seq)}: prediction was made from {view.src_hw} images, ground-truth depth is {src_hw}")
    if resize == "original":
        p = np.stack([resize_cubic(d, src_hw) for d in pred.depth])
        g = gt
    elif resize == "crop":
        p = np.asarray(pred.depth, dtype=np.float32)
        g = np.stack([view.map_depth(d) for d in gt])
    else:
        raise TTT3RError(f"unknown depth resize mode {resize!r}; use original or crop")
    proto = depth_protocol(seq, family)
    out = {}
    for a in aligns:
        m = depth_metrics(p, g, align=a, max_depth=proto.max_depth, clip_max=proto.clip_max)  # type: ignore[arg-type]
        out[a] = m.to_dict()
    return {
        "metrics": out,
        "protocol": {"max_depth": proto.max_depth, "clip_max": proto.clip_max, "resize": resize},
    }


def _nanmedian_z(pts: np.ndarray, mask: np.ndarray) -> float:
    return float(np.median(pts[..., 2][mask]))


def _center_scale(pts: np.ndarray, mask: np.ndarray) -> float:
    p = pts[mask]
    center = np.median(p, axis=0)
    return float(np.median(np.linalg.norm(p - center, axis=1)))


def recon_point_clouds(seq: Sequence, pred: Prediction, crop: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """The (M, 3) predicted and ground-truth clouds the original feeds to ICP (see the module docstring)."""
    if seq.poses is None or seq.intrinsics is None:
        raise TTT3RError(f"{_where(seq)}: reconstruction needs ground-truth poses and intrinsics")
    n = len(seq)
    pred.check(n, _where(seq))
    gt_depth = ground_truth_depths(seq)
    view = pred.grid_view(gt_depth.shape[1:])
    h, w = view.hw
    valid = np.ones(n, bool) if seq.pose_valid is None else np.asarray(seq.pose_valid, bool)
    valid &= np.isfinite(seq.poses).all(axis=(1, 2))
    if not valid[0]:
        raise TTT3RError(f"{_where(seq)}: the first frame has no ground-truth pose")
    gt0 = seq.poses[0]
    to_cam1 = np.linalg.inv(gt0)
    gt_pts = np.empty((n, h, w, 3))
    masks = np.zeros((n, h, w), bool)
    for i in range(n):
        d = view.map_depth(gt_depth[i])
        masks[i] = np.isfinite(d) & (d > 0) & valid[i]
        cam = unproject(np.where(masks[i], d, 0.0), view.map_intrinsics(seq.intrinsics[i]))
        gt_pts[i] = transform_points(to_cam1 @ seq.poses[i] if valid[i] else np.eye(4), cam)
    if pred.points_world is not None:
        # the network's world head: already in its first camera's frame (used as is, like the original)
        pr_pts = np.asarray(pred.points_world, dtype=np.float64)
    else:
        pw = np.stack([transform_points(pred.poses[i], unproject(np.asarray(pred.depth[i]), pred.intrinsics[i])) for i in range(n)])
        pr_pts = transform_points(np.linalg.inv(pred.poses[0]), pw)  # in the predicted first camera
    if not masks.any():
        raise TTT3RError(f"{_where(seq)}: no valid ground-truth depth pixels")
    masks &= np.isfinite(pr_pts).all(axis=-1)
    gt_shift = _nanmedian_z(gt_pts, masks)
    pr_shift = _nanmedian_z(pr_pts, masks)
    gt_pts[..., 2] -= gt_shift
    pr_pts[..., 2] -= pr_shift
    gt_scale = _center_scale(gt_pts, masks)
    pr_scale = min(max(_center_scale(pr_pts, masks), 1e-3), 1e3)
    pr_pts *= gt_scale / pr_scale
    cy, cx = h // 2, w // 2
    half = crop // 2
    t, b, l, r = max(cy - half, 0), min(cy + half, h), max(cx - half, 0), min(cx + half, w)
    sl = (slice(None), slice(t, b), slice(l, r))
    gt_pts, pr_pts, masks = gt_pts[sl], pr_pts[sl], masks[sl]
    gt_pts[..., 2] += gt_shift
    pr_pts[..., 2] += gt_shift
    gt_pts = transform_points(gt0, gt_pts)
    pr_pts = transform_points(gt0, pr_pts)
    return pr_pts[masks], gt_pts[masks]


def evaluate_recon(seq: Sequence, pred: Prediction, crop: int = 224, icp_threshold: float = 0.1) -> dict:
    """Accuracy, completeness and normal consistency: ``{"metrics": ReconMetrics.to_dict()}``."""
    pr, gt = recon_point_clouds(seq, pred, crop)
    m = reconstruction_metrics(pr, gt, icp_threshold=icp_threshold)
    d = m.to_dict()
    d["num_points_pred"] = int(len(pr))
    d["num_points_gt"] = int(len(gt))
    return {"metrics": d, "protocol": {"crop": crop, "icp_threshold": icp_threshold}}
