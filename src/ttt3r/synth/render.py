"""Rendering a sequence to disk, frame by frame, resumable (see :mod:`ttt3r.synth`)."""

from __future__ import annotations

import collections
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import TTT3RError
from ..io.atomic import atomic_write_text
from ..io.layout import FrameLayout
from ..io.strict_json import dumps
from ..io.trajectory import Trajectory, format_tum
from . import camera as cam
from .motion import LAYOUT_FOR_MOTION, MOTIONS, camera_path, corridor_length
from .scene import SceneSpec, build_scene, make_scene

#: bump when the same arguments would render different pixels or poses
GENERATOR_VERSION = "1"
NEAR = 0.05
FAR = 100.0
TUM_HEADER = "# ttt3r synth ground truth: timestamp tx ty tz qx qy qz qw (camera-to-world, OpenCV axes)"
DEFAULT_SIZE = (512, 288)
DEFAULT_FOV = 70.0  # horizontal, degrees
DEFAULT_FPS = 30.0

# settings that must match for a resumed render to continue an existing folder
_IDENTITY_KEYS = ("generator_version", "seed", "scene_seed", "motion", "frames", "width", "height", "fov_deg", "near", "far", "fps")


def import_pybullet():
    """Import pybullet lazily; a one-line :class:`TTT3RError` when it is missing."""
    try:
        import pybullet
        import pybullet_data
    except ImportError as e:
        raise TTT3RError(f"synthetic rendering needs pybullet ({e}); install it with: pip install 'ttt3r[synth]'") from None
    return pybullet, pybullet_data


class Renderer:
    """A pybullet DIRECT client holding one scene, rendering with TinyRenderer (CPU).

    ``render(pose)`` returns ``(rgb, depth)``: (H, W, 3) uint8 and (H, W) float32
    metric depth along the optical axis (0 where nothing was drawn). ``pose`` is a
    (4, 4) camera-to-world OpenCV matrix; the intrinsics are ``self.K``.
    Use as a context manager (or call :meth:`close`).
    """

    def __init__(self, spec: SceneSpec, size: tuple[int, int], K: np.ndarray, near: float = NEAR, far: float = FAR) -> None:
        self.p, pd = import_pybullet()
        self.spec = spec
        self.width, self.height = int(size[0]), int(size[1])
        self.K = np.asarray(K, dtype=np.float64)
        self.near, self.far = float(near), float(far)
        self._proj = cam.projection_matrix(self.K, self.width, self.height, self.near, self.far)
        self.client = self.p.connect(self.p.DIRECT)
        try:
            build_scene(self.p, self.client, spec, pd.getDataPath())
        except BaseException:
            self.close()
            raise

    def render(self, pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lt = self.spec.light
        out = self.p.getCameraImage(
            self.width,
            self.height,
            viewMatrix=cam.view_matrix(pose),
            projectionMatrix=self._proj,
            renderer=self.p.ER_TINY_RENDERER,
            lightDirection=list(lt.direction),
            lightColor=list(lt.color),
            lightDistance=lt.distance,
            lightAmbientCoeff=lt.ambient,
            lightDiffuseCoeff=lt.diffuse,
            lightSpecularCoeff=lt.specular,
            shadow=int(lt.shadow),
            physicsClientId=self.client,
        )
        rgb = np.asarray(out[2], dtype=np.uint8).reshape(self.height, self.width, 4)[..., :3].copy()
        zbuf = np.asarray(out[3], dtype=np.float64).reshape(self.height, self.width)
        return rgb, cam.zbuffer_to_depth(zbuf, self.near, self.far)

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            try:
                self.p.disconnect(physicsClientId=self.client)
            finally:
                self.client = None

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: the per-frame files (:mod:`ttt3r.io.layout`): rgb/%06d.png, depth/%06d.npy, camera/%06d.npz
SYNTH_LAYOUT = FrameLayout(color="rgb", conf=None, png_level=3)


def render_sequence(
    out_dir: str | os.PathLike,
    frames: int,
    seed: int = 0,
    motion: str = "orbit",
    size: tuple[int, int] = DEFAULT_SIZE,
    fov_deg: float = DEFAULT_FOV,
    scene_seed: int | None = None,
    fps: float = DEFAULT_FPS,
    progress: bool = True,
    workers: int = 1,
) -> Path:
    """Render a synthetic sequence with exact ground truth into ``out_dir``; returns it.

    Args:
        out_dir: output folder (created; layout in :mod:`ttt3r.synth`).
        frames: number of frames (>= 1).
        seed: drives the camera motion (and the scene when ``scene_seed`` is None).
        motion: one of ``orbit``, ``walk``, ``forward``, ``loop``, ``pan``.
        size: (width, height) in pixels.
        fov_deg: horizontal field of view in degrees (fx = fy, centred principal point).
        scene_seed: drives objects, textures, light and layout; defaults to ``seed``.
        fps: frame rate used for the TUM timestamps (``t = index / fps``).
        progress: show a tqdm bar (frames, fps, ETA) on stderr.
        workers: processes rendering in parallel (each builds the scene once);
            the files are identical to a serial render.

    Frames are streamed to disk as they are rendered (each file written
    atomically); frames already complete on disk are skipped, so an interrupted
    render resumes where it stopped. An existing folder rendered with other
    settings is refused with a :class:`TTT3RError`.
    """
    settings = _check_args(out_dir, frames, seed, motion, size, fov_deg, scene_seed, fps)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise TTT3RError(f"{out_dir}: workers must be a positive integer, got {workers!r}")
    out = Path(out_dir)
    frames, seed, scene_seed = settings["frames"], settings["seed"], settings["scene_seed"]
    width, height = settings["width"], settings["height"]
    _check_existing(out, settings)
    import_pybullet()

    layout = LAYOUT_FOR_MOTION[motion]
    spec = make_scene(scene_seed, layout, corridor_length(frames) if layout == "corridor" else None)
    poses = camera_path(motion, frames, seed, spec.camera_zone)
    K = cam.intrinsics_from_fov(width, height, settings["fov_deg"])

    meta = dict(settings)
    meta.update(
        generator="ttt3r.synth",
        complete=False,
        intrinsics=K.tolist(),
        fov_axis="horizontal",
        world_frame="z up, metres, floor at z = 0 (pybullet world)",
        camera_axes="OpenCV (x right, y down, z forward); poses camera-to-world",
        depth="float32 metres along the optical axis; 0 = no geometry (enclosed scenes: none expected)",
        layout=layout,
        bounds=[list(b) for b in spec.bounds],
        light=spec.to_json()["light"],
        surfaces=spec.surfaces,
        objects=[_object_meta(o) for o in spec.objects],
        camera_zone=spec.camera_zone,
        versions=_versions(),
    )
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "meta.json", dumps(meta, indent=1) + "\n")
        atomic_write_text(out / "trajectory.txt", tum_text(poses, fps))

        for folder in (p.parent for p in SYNTH_LAYOUT.paths(out, 0).values()):  # temporaries of a killed run
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                tmp.unlink(missing_ok=True)
        todo = [i for i in range(frames) if not all(p.exists() for p in SYNTH_LAYOUT.paths(out, i).values())]
        if todo:
            bar = _progress(frames, frames - len(todo), progress)
            try:
                if workers > 1 and len(todo) > 1:
                    _render_parallel(out, spec, (width, height), K, poses, todo, workers, bar)
                else:
                    _render_serial(out, spec, (width, height), K, poses, todo, bar)
            finally:
                bar.close()
        meta["complete"] = True
        atomic_write_text(out / "meta.json", dumps(meta, indent=1) + "\n")
    except TTT3RError:
        raise
    except OSError as e:  # permissions, read-only or full disk: one line naming the file
        where = e.filename or out
        raise TTT3RError(f"{where}: cannot write ({e.strerror or e})") from None
    return out


def _render_serial(out, spec, size, K, poses, todo, bar) -> None:
    # encoding + fsync run in one writer thread, overlapping the next render;
    # at most a few frames are in flight, so memory stays bounded
    pending: collections.deque = collections.deque()
    with Renderer(spec, size, K) as r, ThreadPoolExecutor(max_workers=1) as pool:
        for i in todo:
            rgb, depth = r.render(poses[i])
            pending.append(pool.submit(write_frame, out, i, rgb, depth, poses[i], K))
            while len(pending) > 2 or (pending and pending[0].done()):
                pending.popleft().result()
                bar.update(1)
        while pending:
            pending.popleft().result()
            bar.update(1)


_WORKER: dict = {}


def _worker_init(out, spec, size, K) -> None:
    _WORKER.update(out=out, K=K, renderer=Renderer(spec, size, K))


def _worker_render(indices: list[int], poses: np.ndarray) -> int:
    r = _WORKER["renderer"]
    for i, pose in zip(indices, poses):
        rgb, depth = r.render(pose)
        write_frame(_WORKER["out"], i, rgb, depth, pose, _WORKER["K"])
    return len(indices)


def process_context():
    """The multiprocessing context for rendering processes: fork on Linux, which works
    from any caller (scripts without a ``__main__`` guard, stdin); elsewhere spawn, which
    needs the caller under ``if __name__ == "__main__":``."""
    import multiprocessing

    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _render_parallel(out, spec, size, K, poses, todo, workers, bar, chunk: int = 4) -> None:
    """Render ``todo`` in ``workers`` processes (each builds the scene once); same files as serial."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = process_context()
    chunks = [todo[k : k + chunk] for k in range(0, len(todo), chunk)]
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(out, spec, size, K)) as ex:
        pending = set()
        try:
            for c in chunks:
                pending.add(ex.submit(_worker_render, c, poses[c]))
                if len(pending) >= 4 * workers:  # bounded queue
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        bar.update(f.result())
            for f in pending:
                bar.update(f.result())
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)
            raise


def write_frame(out: Path, index: int, rgb: np.ndarray, depth: np.ndarray, pose: np.ndarray, K: np.ndarray) -> None:
    """Write one frame's three files atomically (camera last: it marks the frame complete)."""
    SYNTH_LAYOUT.write(out, index, rgb, depth, pose, K)


def tum_text(poses: np.ndarray, fps: float) -> str:
    """TUM trajectory text (``t tx ty tz qx qy qz qw`` per line), t = index / fps."""
    traj = Trajectory(np.arange(len(poses)) / fps, poses)
    return format_tum(traj, TUM_HEADER, digits=(9, 12))


def _check_args(out_dir, frames, seed, motion, size, fov_deg, scene_seed, fps) -> dict:
    def bad(msg):
        raise TTT3RError(f"{out_dir}: {msg}")

    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        bad(f"frames must be a positive integer, got {frames!r}")
    if motion not in MOTIONS:
        bad(f"unknown motion {motion!r} (choose from {', '.join(MOTIONS)})")
    try:
        width, height = (int(x) for x in size)
    except (TypeError, ValueError):
        bad(f"size must be (width, height), got {size!r}")
    if not (8 <= width <= 8192 and 8 <= height <= 8192):
        bad(f"size {width}x{height} out of range (8..8192 pixels per side)")
    if not (isinstance(fov_deg, (int, float)) and 5.0 <= float(fov_deg) <= 160.0):
        bad(f"fov must be between 5 and 160 degrees, got {fov_deg!r}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        bad(f"fps must be positive, got {fps!r}")
    for name, s in (("seed", seed), ("scene seed", scene_seed)):
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0):
            bad(f"{name} must be a non-negative integer, got {s!r}")
    return {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "scene_seed": int(seed if scene_seed is None else scene_seed),
        "motion": motion,
        "frames": int(frames),
        "width": width,
        "height": height,
        "fov_deg": float(fov_deg),
        "near": NEAR,
        "far": FAR,
        "fps": float(fps),
    }


def _check_existing(out: Path, settings: dict) -> None:
    if out.exists() and not out.is_dir():
        raise TTT3RError(f"{out}: exists and is not a folder")
    meta_path = out / "meta.json"
    if not meta_path.exists():
        if out.is_dir() and (out / SYNTH_LAYOUT.color).exists():
            raise TTT3RError(f"{out}: has frames but no meta.json; use an empty or new folder")
        return
    try:
        old = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise TTT3RError(f"{meta_path}: unreadable ({e}); use an empty or new folder") from None
    for k in _IDENTITY_KEYS:
        if old.get(k) != settings[k]:
            raise TTT3RError(
                f"{out}: was rendered with {k}={old.get(k)!r}, not {settings[k]!r}; use another output folder to render different settings"
            )


def _object_meta(o) -> dict:
    d = {"name": o.name, "kind": o.kind, "position": list(o.position), "yaw": o.yaw, "top": o.top}
    if o.kind == "mesh":
        d.update(source=o.source, scale=o.scale)
    else:
        d["dims"] = list(o.dims)
    if o.texture is not None:
        d["texture"] = o.texture
    else:
        d["color"] = list(o.color)
    return d


def _versions() -> dict:
    from .. import __version__

    try:
        from importlib.metadata import version

        pb = version("pybullet")
    except Exception:  # noqa: BLE001 - metadata is informative only
        pb = "unknown"
    return {"ttt3r": __version__, "pybullet": pb, "numpy": np.__version__}


def _progress(total: int, done: int, enabled: bool):
    from ..progress import progress_bar

    return progress_bar(total, "synth", enabled=enabled, initial=done)

