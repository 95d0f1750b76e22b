"""``preview.png``: a picture of the reconstruction that needs no 3D viewer.

Top: the fused point cloud seen from above (x right, z forward up the page;
OpenCV world, so "up" is -y) and from an oblique view behind and above the
first camera, with the camera path drawn over both (green: first camera, red:
last; cyan diamonds: where chunks begin, for ``--chunk`` runs). Bottom: a strip of a few input frames and their depth maps (turbo
colour map, near = warm, each map on its own 2-98 percentile range).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_bytes
from ..results import FrameResult
from .base import pose_is_valid
from .fusion import VoxelFusion

__all__ = ["PreviewWriter", "render_preview"]

_BG = "#101114"
_FG = "#d8dadf"


def _thumb(a: np.ndarray, max_w: int) -> np.ndarray:
    """Nearest-neighbour downsample of an (H, W[, C]) array to at most ``max_w`` columns."""
    step = max(1, int(np.ceil(a.shape[1] / max_w)))
    return np.ascontiguousarray(a[::step, ::step])


class _Reservoir:
    """Keeps a bounded, evenly spaced subset of items from a stream of unknown length."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.stride = 1
        self.items: list[tuple[int, object]] = []
        self.n = 0

    def want(self) -> bool:
        return self.n % self.stride == 0

    def push(self, item: object | None) -> None:
        if item is not None:
            self.items.append((self.n, item))
            if len(self.items) > 2 * self.keep:
                self.stride *= 2
                self.items = [(i, x) for i, x in self.items if i % self.stride == 0]
        self.n += 1


def _view_oblique(elev_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    e = np.deg2rad(elev_deg)
    right = np.array([1.0, 0.0, 0.0])
    up = np.array([0.0, -np.cos(e), np.sin(e)])
    fwd = np.array([0.0, np.sin(e), np.cos(e)])
    return right, up, fwd


def _limits(a: np.ndarray, extra: np.ndarray) -> tuple[float, float]:
    lo, hi = (np.percentile(a, [1, 99]) if len(a) else (0.0, 1.0))
    if len(extra):
        lo, hi = min(lo, float(extra.min())), max(hi, float(extra.max()))
    pad = 0.06 * (hi - lo) if hi > lo else 1.0
    return float(lo - pad), float(hi + pad)


def _panel(ax, sx, sy, order, rgb, cx, cy, title: str, xlabel: str, ylabel: str, heading=None,
           marks=()) -> None:
    ax.set_facecolor(_BG)
    if len(sx):
        size = float(np.clip(4e4 / len(sx), 0.4, 6.0))
        ax.scatter(sx[order], sy[order], c=rgb[order] / 255.0, s=size, linewidths=0, rasterized=True)
    if len(cx):
        ax.plot(cx, cy, "-", color="#ffffff", lw=2.6, alpha=0.9, solid_capstyle="round")
        ax.plot(cx, cy, "-", color="#ff9f1c", lw=1.4, solid_capstyle="round")
        if heading is not None:
            hx, hy = heading
            step = max(1, len(cx) // 12)
            ax.quiver(cx[::step], cy[::step], hx[::step], hy[::step], color="#ffd166", angles="xy",
                      scale_units="xy", scale=1.0, width=0.004, headwidth=4, zorder=4)
        marks = [m for m in marks if 0 < m < len(cx)]
        if marks:
            ax.plot(cx[marks], cy[marks], "D", ms=5, mfc="#28c8ff", mec="white", mew=0.6, zorder=5,
                    label="chunk start")
        ax.plot(cx[:1], cy[:1], "o", ms=8, mfc="#2ec4b6", mec="white", zorder=5, label="first camera")
        ax.plot(cx[-1:], cy[-1:], "s", ms=7, mfc="#e71d36", mec="white", zorder=5, label="last camera")
    (x0, x1), (y0, y1) = _limits(sx, cx), _limits(sy, cy)
    # widen the shorter range so that equal axis scales fill the panel
    pos = ax.get_position()
    fw, fh = ax.figure.get_size_inches()
    box = (pos.height * fh) / max(pos.width * fw, 1e-9)
    dx, dy = x1 - x0, y1 - y0
    if dy / dx < box:
        mid, dy = (y0 + y1) / 2, dx * box
        y0, y1 = mid - dy / 2, mid + dy / 2
    else:
        mid, dx = (x0 + x1) / 2, dy / box
        x0, x1 = mid - dx / 2, mid + dx / 2
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_title(title, color=_FG, fontsize=12, pad=6)
    ax.set_xlabel(xlabel, color=_FG, fontsize=9)
    ax.set_ylabel(ylabel, color=_FG, fontsize=9)
    ax.tick_params(colors="#8a8f98", labelsize=8)
    for s in ax.spines.values():
        s.set_color("#3a3d45")


def render_preview(xyz: np.ndarray, rgb: np.ndarray, poses: np.ndarray,
                   strip: list[tuple[int, np.ndarray, np.ndarray]], subtitle: str = "",
                   max_points: int = 120_000, chunk_starts=()) -> bytes:
    """Render the preview as PNG bytes.

    Args:
        xyz: (N, 3) world points; rgb: (N, 3) uint8 colours.
        poses: (M, 4, 4) camera-to-world poses (OpenCV axes).
        strip: a few ``(frame index, (h, w, 3) uint8 rgb, (h, w) float depth)``.
        subtitle: one line printed under the title.
        max_points: points drawn at most (random subset).
        chunk_starts: indices into ``poses`` where chunks begin (diamonds on the path).
    """
    # Figure without pyplot: renders with Agg, touches no global backend state
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    xyz = np.asarray(xyz, np.float64).reshape(-1, 3)
    rgb = np.asarray(rgb, np.uint8).reshape(-1, 3)
    if len(xyz) > max_points:
        idx = np.random.default_rng(0).choice(len(xyz), max_points, replace=False)
        xyz, rgb = xyz[idx], rgb[idx]
    poses = np.asarray(poses, np.float64).reshape(-1, 4, 4)
    centres = poses[:, :3, 3]
    fwd_axis = poses[:, :3, 2]  # camera z axis in world

    if len(xyz):
        span = float(np.linalg.norm(np.percentile(xyz, 95, axis=0) - np.percentile(xyz, 5, axis=0)))
    else:
        span = float(np.ptp(centres, axis=0).max()) if len(centres) > 1 else 1.0
    arrow = 0.06 * (span if span > 0 else 1.0)

    n_strip = len(strip)
    fig_w, top_h = 15.0, 6.4
    if n_strip:
        ncol = max(n_strip, 2)
        aspect = max(float(np.mean([im.shape[0] / im.shape[1] for _, im, _ in strip])), 0.2)
        cell_h = min(fig_w * 0.93 / ncol * aspect, 3.0)
        fig_h = top_h + 2 * cell_h + 1.9
        fig = Figure(figsize=(fig_w, fig_h), dpi=110, facecolor=_BG)
        gs = fig.add_gridspec(3, ncol, height_ratios=[top_h, cell_h, cell_h], hspace=0.18, wspace=0.1,
                              left=0.05, right=0.98, top=1 - 1.0 / fig_h, bottom=0.2 / fig_h)
        half = max(n_strip, 2) // 2
        ax_top = fig.add_subplot(gs[0, :half])
        ax_obl = fig.add_subplot(gs[0, half:])
    else:
        fig = Figure(figsize=(fig_w, 7.5), dpi=110, facecolor=_BG)
        gs = fig.add_gridspec(1, 2, left=0.05, right=0.98, top=0.88, bottom=0.08, wspace=0.12)
        ax_top = fig.add_subplot(gs[0, 0])
        ax_obl = fig.add_subplot(gs[0, 1])

    # top-down: screen x = world x, screen y = world z; higher points (more negative y) painted last
    order = np.argsort(-xyz[:, 1]) if len(xyz) else np.zeros(0, int)
    _panel(ax_top, xyz[:, 0], xyz[:, 2], order, rgb, centres[:, 0], centres[:, 2],
           "top-down view", "x", "z (forward)", heading=(fwd_axis[:, 0] * arrow, fwd_axis[:, 2] * arrow),
           marks=list(chunk_starts))
    # oblique: from behind and above the first camera, far points painted first
    r, u, f = _view_oblique(30.0)
    sx, sy, depth = xyz @ r, xyz @ u, xyz @ f
    order = np.argsort(-depth) if len(xyz) else np.zeros(0, int)
    _panel(ax_obl, sx, sy, order, rgb, centres @ r, centres @ u, "oblique view (30° above)", "x", "up",
           heading=((fwd_axis @ r) * arrow, (fwd_axis @ u) * arrow), marks=list(chunk_starts))
    if len(centres):
        leg = ax_obl.legend(loc="upper right", fontsize=8, facecolor="#1b1d22", edgecolor="#3a3d45",
                            labelcolor=_FG)
        leg.get_frame().set_alpha(0.8)

    cmap = colormaps["turbo_r"]
    for j, (idx, img, dep) in enumerate(strip):
        a1 = fig.add_subplot(gs[1, j])
        a1.imshow(img, interpolation="bilinear")
        a1.set_title(f"frame {idx}", color=_FG, fontsize=9, pad=3)
        a2 = fig.add_subplot(gs[2, j])
        d = np.asarray(dep, np.float64)
        ok = np.isfinite(d) & (d > 0)
        lo, hi = (np.percentile(d[ok], [2, 98]) if ok.any() else (0.0, 1.0))
        a2.imshow(np.where(ok, d, np.nan), cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1e-6,
                  interpolation="bilinear")
        a2.text(0.02, 0.04, f"{lo:.2g}–{hi:.2g}", transform=a2.transAxes, color="white", fontsize=7,
                bbox=dict(facecolor="black", alpha=0.5, lw=0, pad=1.5))
        for a in (a1, a2):
            a.set_xticks([])
            a.set_yticks([])
            a.set_facecolor(_BG)
            for s in a.spines.values():
                s.set_color("#3a3d45")
    fh = fig.get_size_inches()[1]
    fig.text(0.05, 1 - 0.25 / fh, "ttt3r reconstruction", color="white", fontsize=16, ha="left", va="top")
    if subtitle:
        fig.text(0.05, 1 - 0.62 / fh, subtitle, color="#9aa0aa", fontsize=10, ha="left", va="top")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=_BG)
    return buf.getvalue()


class PreviewWriter:
    """Writes ``preview.png`` at :meth:`close` (see module doc).

    Keeps every pose (16 floats) and a bounded, evenly spaced set of small
    thumbnails (at most ``2 * n_strip`` of at most ``thumb_width`` px).

    Args:
        path: output file.
        fusion: the fused cloud (shared, fed elsewhere); ``None``: owned and fed here.
        n_strip: frames shown in the bottom strip.
        thumb_width: width of the kept thumbnails in pixels.
    """

    def __init__(self, path: str | os.PathLike, fusion: VoxelFusion | None = None, n_strip: int = 6,
                 thumb_width: int = 256, **fusion_kwargs) -> None:
        self.path = Path(path)
        self.owns_fusion = fusion is None
        self.fusion = fusion if fusion is not None else VoxelFusion(**fusion_kwargs)
        self.n_strip = int(n_strip)
        self.thumb_width = int(thumb_width)
        self._poses: list[np.ndarray] = []
        self._chunk_starts: list[int] = []  # indices into _poses
        self._res = _Reservoir(max(self.n_strip, 1))

    def add(self, frame: FrameResult) -> None:
        if self.owns_fusion:
            self.fusion.add_frame(frame)
        if pose_is_valid(frame.pose):
            if "chunk" in frame.extras:
                self._chunk_starts.append(len(self._poses))
            self._poses.append(np.asarray(frame.pose, np.float64).copy())
        item = None
        if self.n_strip > 0 and self._res.want():
            item = (frame.index, _thumb(frame.rgb, self.thumb_width),
                    _thumb(np.asarray(frame.depth, np.float32), self.thumb_width))
        self._res.push(item)

    def flush(self) -> None:
        pass

    def strip(self) -> list[tuple[int, np.ndarray, np.ndarray]]:
        items = [x for _, x in self._res.items]
        if len(items) > self.n_strip:
            pick = np.unique(np.linspace(0, len(items) - 1, self.n_strip).round().astype(int))
            items = [items[i] for i in pick]
        return items  # type: ignore[return-value]

    def close(self, interrupted: bool = False) -> None:
        xyz, rgb = self.fusion.sample(200_000)
        n = self._res.n
        sub = f"{n} frames · {len(self.fusion)} fused points"
        if self.fusion.voxel_size:
            sub += f" · voxel {self.fusion.voxel_size:.3g}"
        if self._chunk_starts:
            sub += f" · {len(self._chunk_starts)} chunks"
        if interrupted:
            sub += " · INTERRUPTED (partial)"
        poses = np.stack(self._poses) if self._poses else np.empty((0, 4, 4))
        atomic_write_bytes(self.path, render_preview(xyz, rgb, poses, self.strip(), sub,
                                                      chunk_starts=self._chunk_starts))
