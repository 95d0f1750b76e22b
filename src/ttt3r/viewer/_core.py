"""The viewer core: a viser server, its GUI, and per-frame scene nodes.

One class, :class:`LiveViewer`, serves both uses: during a reconstruction
(``ttt3r reconstruct --view`` calls :meth:`LiveViewer.add` with each new
:class:`~ttt3r.results.FrameResult`) and for a finished run directory (``ttt3r
view DIR`` reads the frames back from disk and feeds the same ``add``; see
:func:`ttt3r.viewer.view_run`).

Scene, per frame ``i`` (world frame = the run's world frame, OpenCV axes, so
the scene's "up" is -y):

* ``/points/{i:06d}``: a point cloud of at most the per-frame budget of the
  frame's world-frame points (``pose @ pts3d_cam``), coloured by ``rgb``; only
  the points with ``conf >= threshold`` are shown.
* ``/cameras/{i:06d}``: a camera frustum at the pose, showing a small
  thumbnail of the frame.
* ``/trajectory/{k:04d}``: line segments joining the camera centres in the
  order the frames were added (chunks of :data:`TRAJECTORY_CHUNK` segments, so
  adding a frame re-sends at most one chunk).

Memory is bounded. Each frame keeps at most a budget of points (a seeded
random choice of its valid pixels after the ``downsample`` stride, fixed at
``add`` time, so the confidence slider re-filters the same points), about 50
bytes each with viser's own copies, plus one small thumbnail. The budget starts
at ``max_points_per_frame``; whenever all frames together would hold more than
``max_points_total``, it is halved and every frame is thinned to it (never
below :data:`MIN_POINTS_PER_FRAME`), so a run of any length stays within the
total (the browser too). :meth:`LiveViewer.expect_frames` sets the budget up
front when the number of frames is known, which avoids the re-thinning.
"""

from __future__ import annotations

import contextlib
import io
import math
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import TTT3RError
from ..geometry import nearest_rotation, rotation_to_quaternion, transform_points
from ..results import FrameResult

if TYPE_CHECKING:  # pragma: no cover
    import viser

__all__ = ["LiveViewer", "require_viser", "TRAJECTORY_CHUNK", "MIN_POINTS_PER_FRAME"]

#: Trajectory segments per scene node.
TRAJECTORY_CHUNK = 256
#: The total budget never thins a frame below this many points.
MIN_POINTS_PER_FRAME = 500

_VISER_MISSING = "the viewer needs viser: pip install 'ttt3r[viz]'"
_FRUSTUM_COLOR = (255, 120, 20)
_CHUNK_START_COLOR = (40, 200, 255)  # the first new frame of each chunk (--chunk)
_TRAJECTORY_COLOR = (40, 120, 255)


def require_viser() -> Any:
    """Import and return the ``viser`` module, or raise a one-line :class:`TTT3RError`."""
    try:
        import viser
    except ImportError:
        raise TTT3RError(_VISER_MISSING) from None
    return viser


@dataclass
class _Frame:
    """What the viewer keeps of one frame (bounded size)."""

    index: int
    points: np.ndarray  # (N, 3) float32 world frame, sorted by confidence, highest first
    colors: np.ndarray  # (N, 3) uint8
    neg_conf: np.ndarray  # (N,) float32, -confidence, ascending
    center: np.ndarray  # (3,) float64 camera centre in the world frame
    cloud: Any = None  # viser PointCloudHandle, None until it has points to show
    frustum: Any = None  # viser CameraFrustumHandle
    shown: int = 0  # number of points currently in ``cloud``

    def count_at(self, threshold: float) -> int:
        """Number of kept points with ``conf >= threshold``."""
        return int(np.searchsorted(self.neg_conf, -threshold, side="right"))


def _check_bindable(host: str) -> None:
    """Fail fast on a host we cannot listen on (viser would retry ports forever)."""
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except OSError as e:
        raise TTT3RError(f"cannot resolve host {host!r}: {e.strerror or e}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr[0], 0))
        except OSError as e:
            raise TTT3RError(f"cannot listen on host {host!r}: {e.strerror or e}") from None


def _rotation_to_wxyz(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation (orthonormalised first) -> (4,) unit quaternion (w, x, y, z), viser's order."""
    x, y, z, w = rotation_to_quaternion(nearest_rotation(R))
    return np.array([w, x, y, z])


def _as_uint8(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) image as uint8; float images are taken to be in [0, 1]."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        return rgb
    return (np.clip(rgb.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _thumbnail(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """(H, W, 3) uint8 -> the same image shrunk so its longer side is <= ``max_side``."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return np.ascontiguousarray(rgb)
    from PIL import Image

    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


class LiveViewer:
    """An interactive viser scene that frames are added to as they come.

    Starting it starts a web server in a background thread (non-blocking);
    :meth:`close` stops it. GUI: confidence threshold, frame range (start/end),
    point size (relative to an automatic size), show cameras, show trajectory.

    Args:
        port: TCP port; if taken, viser tries the next ones (see :attr:`port`).
            0 picks a free port.
        host: interface to listen on (``0.0.0.0`` for all).
        conf_threshold: initial confidence threshold; points with
            ``conf >= conf_threshold`` are shown.
        max_points_per_frame: point budget per frame.
        max_points_total: budget for all frames together (memory and browser
            load stay bounded for thousands of frames); ``None`` = no total cap.
        downsample: pixel stride applied before the budget (1 = every pixel).
        point_size: point size in world units; ``None`` = from the first frame
            (the spacing of the kept points at its median depth).
        frustum_scale: frustum size in world units; ``None`` = 5 % of the first
            frame's median depth.
        thumbnail_size: longer side, in pixels, of the image on each frustum.
        label: title of the GUI panel.

    Raises:
        TTT3RError: viser is not installed, a setting is invalid, or the host
            cannot be listened on.
    """

    def __init__(
        self,
        port: int = 8080,
        host: str = "127.0.0.1",
        conf_threshold: float = 1.5,
        max_points_per_frame: int = 20_000,
        max_points_total: int | None = 4_000_000,
        downsample: int = 1,
        point_size: float | None = None,
        frustum_scale: float | None = None,
        thumbnail_size: int = 128,
        label: str = "ttt3r",
    ) -> None:
        if not (isinstance(max_points_per_frame, int) and max_points_per_frame >= 1):
            raise TTT3RError(f"max points per frame must be a positive integer, got {max_points_per_frame!r}")
        if max_points_total is not None and not (isinstance(max_points_total, int) and max_points_total >= 1):
            raise TTT3RError(f"max points total must be a positive integer, got {max_points_total!r}")
        if not (isinstance(downsample, int) and downsample >= 1):
            raise TTT3RError(f"downsample must be a positive integer, got {downsample!r}")
        if not (math.isfinite(conf_threshold) and conf_threshold >= 0):
            raise TTT3RError(f"confidence threshold must be a finite number >= 0, got {conf_threshold!r}")
        if not (0 <= port <= 65535):
            raise TTT3RError(f"port must be in 0..65535, got {port}")
        if not (isinstance(thumbnail_size, int) and thumbnail_size >= 1):
            raise TTT3RError(f"thumbnail size must be a positive integer, got {thumbnail_size!r}")
        for name, v in (("point size", point_size), ("frustum scale", frustum_scale)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise TTT3RError(f"{name} must be a positive number, got {v!r}")
        viser_mod = require_viser()
        _check_bindable(host)

        self.max_points_per_frame = max_points_per_frame
        self.max_points_total = max_points_total
        self._budget = max_points_per_frame  # current per-frame budget
        self._stored = 0  # points kept over all frames
        self._thinned_to = max_points_per_frame  # every frame holds at most this many
        self.downsample = downsample
        self.thumbnail_size = thumbnail_size
        self._base_point_size = point_size
        self._frustum_scale = frustum_scale
        self._lock = threading.RLock()
        self._frames: dict[int, _Frame] = {}
        self._centers: list[np.ndarray] = []
        self._trajectory: list[Any] = []  # LineSegmentsHandle per chunk
        self._closed = False
        self._following = False  # the range slider is being moved by add()
        self._status_text = ""

        # viser prints a banner with the URL unconditionally; we print our own line.
        with contextlib.redirect_stdout(io.StringIO()):
            self._server = viser_mod.ViserServer(host=host, port=port, label=label, verbose=False)
        try:
            self._build_gui(float(conf_threshold))
        except BaseException:
            self._server.stop()
            raise

    # ------------------------------------------------------------------ setup
    def _build_gui(self, conf_threshold: float) -> None:
        server = self._server
        with contextlib.suppress(Exception):  # only cosmetic
            server.scene.set_up_direction("-y")
        gui = server.gui
        with gui.add_folder("Points"):
            self.conf_slider = gui.add_slider(
                "Confidence >=",
                min=1.0 if conf_threshold >= 1.0 else 0.0,
                max=max(10.0, math.ceil(2 * conf_threshold)),
                step=0.1,
                initial_value=conf_threshold,
                hint="Show only points whose confidence is at least this.",
            )
            self.point_size_slider = gui.add_slider(
                "Point size (x auto)", min=0.1, max=5.0, step=0.1, initial_value=1.0
            )
        with gui.add_folder("Frames"):
            self.range_slider = gui.add_multi_slider(
                "Frame range", min=0, max=0, step=1, initial_value=(0, 0),
                hint="First and last frame shown.",
            )
            self.cameras_checkbox = gui.add_checkbox("Show cameras", initial_value=True)
            self.trajectory_checkbox = gui.add_checkbox("Show trajectory", initial_value=True)
        self._status = gui.add_markdown("No frames yet.")

        self.conf_slider.on_update(lambda _: self._refilter())
        self.point_size_slider.on_update(lambda _: self._resize_points())
        self.range_slider.on_update(lambda _: self._apply_visibility())
        self.cameras_checkbox.on_update(lambda _: self._apply_visibility())
        self.trajectory_checkbox.on_update(lambda _: self._apply_trajectory_visibility())

    # ------------------------------------------------------------ properties
    @property
    def server(self) -> "viser.ViserServer":
        """The underlying ``viser.ViserServer`` (for extra scene content)."""
        return self._server

    @property
    def host(self) -> str:
        return self._server.get_host()

    @property
    def port(self) -> int:
        """The port actually listened on (may differ from the one asked for)."""
        return self._server.get_port()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` to open in a browser (``localhost`` for ``0.0.0.0``)."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    @property
    def point_size(self) -> float:
        """Current point size in world units (automatic size x the GUI factor)."""
        base = self._base_point_size if self._base_point_size is not None else 0.01
        return float(base * self.point_size_slider.value)

    # ----------------------------------------------------------- inspection
    def point_clouds(self) -> dict[int, Any]:
        """Frame index -> viser ``PointCloudHandle`` (frames with points shown at some point)."""
        with self._lock:
            return {i: f.cloud for i, f in self._frames.items() if f.cloud is not None}

    def frustums(self) -> dict[int, Any]:
        """Frame index -> viser ``CameraFrustumHandle``."""
        with self._lock:
            return {i: f.frustum for i, f in self._frames.items()}

    def trajectory_segments(self) -> np.ndarray:
        """(N - 1, 2, 3) float32 world-frame segments of the trajectory, as sent to viser."""
        with self._lock:
            if not self._trajectory:
                return np.zeros((0, 2, 3), dtype=np.float32)
            return np.concatenate([np.asarray(h.points) for h in self._trajectory], axis=0)

    def visible_points(self) -> tuple[np.ndarray, np.ndarray]:
        """((M, 3) float32 world points, (M, 3) uint8 colours) of the visible clouds."""
        with self._lock:
            clouds = [f.cloud for f in self._frames.values() if f.cloud is not None and f.cloud.visible]
            if not clouds:
                return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
            pts = np.concatenate([np.asarray(c.points, dtype=np.float32) for c in clouds])
            cols = np.concatenate([np.asarray(c.colors, dtype=np.uint8) for c in clouds])
            return pts, cols

    # ------------------------------------------------------------------ add
    def add(self, frame: FrameResult) -> None:
        """Add one frame: its (subsampled) world points, its camera frustum, and
        the trajectory segment from the previously added camera.

        Thread-safe; frames should come in index order (the frame range slider
        follows the newest frame while its end is at the last frame).

        Raises:
            ValueError: a frame with this index was already added, or the
                viewer is closed.
        """
        kept = self._subsample(frame)  # numpy work outside the lock
        with self._lock:
            if self._closed:
                raise ValueError("the viewer is closed")
            if frame.index in self._frames:
                raise ValueError(f"frame {frame.index} was already added")
            first = not self._frames
            if first:
                self._init_scales(frame, kept)
            self._frames[frame.index] = kept
            self._stored += kept.points.shape[0]
            self._thin(kept)  # the budget may have dropped while it was subsampled
            with self._server.atomic():
                self._grow_sliders(kept)
                self._update_cloud(kept, float(self.conf_slider.value))
                self._add_frustum(kept, frame)
                self._extend_trajectory(kept.center)
                if first:
                    self._set_initial_camera(frame)
                self._enforce_total()
                self._update_status()

    @property
    def points_per_frame(self) -> int:
        """The current per-frame point budget (lowered by the total budget)."""
        return self._budget

    def expect_frames(self, n: int) -> None:
        """Lower the per-frame budget so ``n`` frames fit in ``max_points_total``.

        Call before adding frames when their number is known (a video, a run
        directory): the frames are then subsampled once instead of being
        thinned again as the total fills up.
        """
        with self._lock:
            if self.max_points_total is None or n < 1:
                return
            floor = min(self.max_points_per_frame, MIN_POINTS_PER_FRAME)
            self._budget = max(floor, min(self._budget, self.max_points_total // n))
            self._enforce_total()

    def set_status(self, text: str) -> None:
        """Show a line (e.g. loading progress) above the frame/point counts in the GUI."""
        with self._lock:
            self._status_text = text
            self._update_status()

    def close(self) -> None:
        """Stop the server (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.redirect_stdout(io.StringIO()):
            self._server.stop()

    def __enter__(self) -> "LiveViewer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals
    def _subsample(self, frame: FrameResult) -> _Frame:
        s = self.downsample
        pts = np.asarray(frame.pts3d_cam)[::s, ::s].reshape(-1, 3)  # camera frame
        conf = np.asarray(frame.conf, dtype=np.float32)[::s, ::s].reshape(-1)
        rgb = _as_uint8(np.asarray(frame.rgb)[::s, ::s]).reshape(-1, 3)
        depth = np.asarray(frame.depth)[::s, ::s].reshape(-1)
        valid = np.isfinite(conf) & np.isfinite(depth) & (depth > 0)  # (N,) bool
        idx = np.flatnonzero(valid)
        budget = self._budget
        if idx.size > budget:
            rng = np.random.default_rng(frame.index)
            idx = np.sort(rng.choice(idx, size=budget, replace=False))
        idx = idx[np.isfinite(pts[idx]).all(axis=1)]  # x, y too (checked on the kept few)
        order = np.argsort(-conf[idx], kind="stable")
        idx = idx[order]
        pose = np.asarray(frame.pose, dtype=np.float64)
        # world = pose @ cam (as FrameResult.points_world), only for the kept points
        world = transform_points(pose, pts[idx].astype(np.float64))
        return _Frame(
            index=int(frame.index),
            points=np.ascontiguousarray(world, dtype=np.float32),
            colors=np.ascontiguousarray(rgb[idx]),
            neg_conf=np.ascontiguousarray(-conf[idx]),
            center=pose[:3, 3].copy(),
        )

    def _init_scales(self, frame: FrameResult, kept: _Frame) -> None:
        depth = np.asarray(frame.depth)
        good = depth[np.isfinite(depth) & (depth > 0)]
        median = float(np.median(good)) if good.size else 1.0
        if self._frustum_scale is None:
            self._frustum_scale = 0.05 * median
        if self._base_point_size is None:
            fx = float(frame.intrinsics[0, 0])
            h, w = frame.hw
            s = self.downsample
            n_grid = math.ceil(h / s) * math.ceil(w / s)
            spacing_px = s * math.sqrt(n_grid / max(1, kept.points.shape[0]))
            self._base_point_size = max(1e-6, median / fx * spacing_px)

    def _grow_sliders(self, f: _Frame) -> None:
        rs = self.range_slider
        start, end = rs.value
        old_max = rs.max
        if f.index > old_max:
            follow = end >= old_max
            rs.max = f.index
            if follow:
                # Extending the end past every existing frame changes no existing
                # node's visibility, so skip the O(frames) callback; the new
                # frame's nodes read the range when they are created.
                self._following = True
                try:
                    rs.value = (start, f.index)
                finally:
                    self._following = False
        if f.neg_conf.size:
            top = float(np.percentile(-f.neg_conf, 99))
            if math.isfinite(top) and top > self.conf_slider.max:
                self.conf_slider.max = float(min(math.ceil(top), 1e6))

    def _in_range(self, index: int) -> bool:
        start, end = self.range_slider.value
        return start <= index <= end

    def _enforce_total(self) -> None:
        """Halve the per-frame budget and thin every frame until the total fits."""
        cap = self.max_points_total
        floor = min(self.max_points_per_frame, MIN_POINTS_PER_FRAME)
        if cap is not None and self._stored > cap:
            sizes = np.array([f.points.shape[0] for f in self._frames.values()])
            while np.minimum(sizes, self._budget).sum() > cap and self._budget > floor:
                self._budget = max(floor, self._budget // 2)
        if self._budget >= self._thinned_to:
            return  # every frame already fits the budget
        self._thinned_to = self._budget
        t = float(self.conf_slider.value)
        for f in self._frames.values():
            n = f.points.shape[0]
            if n <= self._budget:
                continue
            self._thin(f)
            self._update_cloud(f, t, force=True)

    def _thin(self, f: _Frame) -> None:
        """Keep a random ``self._budget`` of the frame's points (in confidence order)."""
        n = f.points.shape[0]
        if n <= self._budget:
            return
        rng = np.random.default_rng([f.index, n])
        keep = np.sort(rng.choice(n, size=self._budget, replace=False))
        f.points, f.colors, f.neg_conf = f.points[keep], f.colors[keep], f.neg_conf[keep]
        self._stored -= n - self._budget

    def _update_cloud(self, f: _Frame, threshold: float, force: bool = False) -> None:
        n = f.count_at(threshold)
        show = n > 0 and self._in_range(f.index)
        if f.cloud is None:
            if n == 0:
                return
            f.cloud = self._server.scene.add_point_cloud(
                f"/points/{f.index:06d}",
                points=f.points[:n],
                colors=f.colors[:n],
                point_size=self.point_size,
                precision="float32",
                visible=show,
            )
            f.shown = n
            return
        if (force or n != f.shown) and n > 0:
            f.cloud.points = f.points[:n]
            f.cloud.colors = f.colors[:n]
            f.shown = n
        elif force:
            f.shown = -1  # stale points (hidden): resend when some pass again
        f.cloud.visible = show

    def _add_frustum(self, f: _Frame, frame: FrameResult) -> None:
        h, w = frame.hw
        fy = float(frame.intrinsics[1, 1])
        fov = 2.0 * math.atan2(h / 2.0, fy)
        f.frustum = self._server.scene.add_camera_frustum(
            f"/cameras/{f.index:06d}",
            fov=fov,
            aspect=w / h,
            scale=float(self._frustum_scale or 0.1),
            color=_CHUNK_START_COLOR if "chunk" in frame.extras else _FRUSTUM_COLOR,
            thickness=1.5,
            thickness_units="screen",
            image=_thumbnail(_as_uint8(frame.rgb), self.thumbnail_size),
            format="jpeg",
            jpeg_quality=80,
            wxyz=_rotation_to_wxyz(np.asarray(frame.pose)[:3, :3]),
            position=f.center,
            visible=bool(self.cameras_checkbox.value) and self._in_range(f.index),
        )

    def _extend_trajectory(self, center: np.ndarray) -> None:
        self._centers.append(np.asarray(center, dtype=np.float64))
        n_seg = len(self._centers) - 1
        if n_seg < 1:
            return
        chunk = (n_seg - 1) // TRAJECTORY_CHUNK
        first_seg = chunk * TRAJECTORY_CHUNK
        c = np.asarray(self._centers[first_seg:], dtype=np.float32)
        segs = np.stack([c[:-1], c[1:]], axis=1)  # (k, 2, 3)
        if chunk < len(self._trajectory):
            self._trajectory[chunk].points = segs
        else:
            self._trajectory.append(
                self._server.scene.add_line_segments(
                    f"/trajectory/{chunk:04d}",
                    points=segs,
                    colors=_TRAJECTORY_COLOR,
                    thickness=2.0,
                    thickness_units="screen",
                    visible=bool(self.trajectory_checkbox.value),
                )
            )

    def _set_initial_camera(self, frame: FrameResult) -> None:
        """Look at the first frame from a little behind and above its camera."""
        cam = getattr(self._server, "initial_camera", None)
        if cam is None:
            return
        depth = np.asarray(frame.depth)
        good = depth[np.isfinite(depth) & (depth > 0)]
        d = float(np.median(good)) if good.size else 1.0
        pose = np.asarray(frame.pose, dtype=np.float64)
        with contextlib.suppress(Exception):  # only cosmetic
            cam.position = tuple(pose[:3, :3] @ np.array([0.0, -0.5 * d, -1.0 * d]) + pose[:3, 3])
            cam.look_at = tuple(pose[:3, :3] @ np.array([0.0, 0.0, d]) + pose[:3, 3])

    def _update_status(self) -> None:
        shown = sum(f.shown for f in self._frames.values() if f.cloud is not None and f.cloud.visible)
        lines = []
        if self._status_text:
            lines.append(self._status_text)
        lines.append(f"{len(self._frames)} frames, {shown:,} points shown")
        self._status.content = "  \n".join(lines)

    # ------------------------------------------------------------ callbacks
    def _refilter(self) -> None:
        with self._lock:
            if self._closed:
                return
            t = float(self.conf_slider.value)  # read inside the lock: the latest value wins
            with self._server.atomic():
                for f in self._frames.values():
                    self._update_cloud(f, t)
                self._update_status()

    def _resize_points(self) -> None:
        with self._lock:
            if self._closed:
                return
            size = self.point_size
            with self._server.atomic():
                for f in self._frames.values():
                    if f.cloud is not None:
                        f.cloud.point_size = size

    def _apply_visibility(self) -> None:
        with self._lock:
            if self._closed or self._following:
                return
            cams = bool(self.cameras_checkbox.value)
            t = float(self.conf_slider.value)
            with self._server.atomic():
                for f in self._frames.values():
                    inside = self._in_range(f.index)
                    if f.cloud is not None:
                        f.cloud.visible = inside and f.count_at(t) > 0
                    if f.frustum is not None:
                        f.frustum.visible = cams and inside
                self._update_status()

    def _apply_trajectory_visibility(self) -> None:
        with self._lock:
            if self._closed:
                return
            show = bool(self.trajectory_checkbox.value)
            for h in self._trajectory:
                h.visible = show
