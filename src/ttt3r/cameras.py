"""Known cameras: intrinsics and poses a user supplies, and the ray maps CUT3R reads.

CUT3R takes, with each image, an optional 6-channel *ray map* of that frame's
camera, and a ray map alone asks the network what a camera that no image shows
would see (:meth:`ttt3r.Session.query`). This module turns user inputs into ray
maps; it is pure numpy (no torch at import).

Conventions: OpenCV camera axes (x right, y down, z forward); camera-to-world
4x4 poses; pixel centres at integer coordinates ((0, 0) is the centre of the
top-left pixel). The reference frame of every ray map is the first frame's
camera (:func:`relative_poses`).

The pipeline for a frame ``i`` of a sequence with source intrinsics ``K`` and
poses ``c2w``::

    K_net = intrinsics_to_network(K, source_wh, size)       # source -> network pixels
    h, w = network_hw(source_wh, size)
    rel = relative_poses(c2w)                                # first camera = identity
    rays = ray_map(rel[i], K_net, h, w)                      # (h, w, 6) for Session.step
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from .errors import TTT3RError

RayConvention = Literal["training", "unit_direction"]
RAY_CONVENTIONS: tuple[str, ...] = get_args(RayConvention)
ROTATION_TOL = 1e-3  # max |R^T R - I| and |det R - 1| accepted in a pose file


# ---------------------------------------------------------------- ray maps


def ray_map(cam_to_ref: np.ndarray, K: np.ndarray, h: int, w: int,
            convention: RayConvention = "training") -> np.ndarray:
    """The (H, W, 6) ray map of one camera, as CUT3R's ray encoder reads it.

    Args:
        cam_to_ref: (4, 4) camera-to-reference pose, the reference being the first
            frame's camera (see :func:`relative_poses`); translation in the scene's unit.
        K: (3, 3) intrinsics in pixels of the network input (see
            :func:`intrinsics_to_network`), pixel centres at integers.
        h, w: the network input size in pixels.
        convention: how the direction channels are made:

            * ``"training"`` (default, what the released weights were trained
              with: the original's ``get_ray_map``): the pixel's ray point at unit
              depth, ``d = inv(K) @ [u, v, 1]``, transformed *as a point*, then
              normalised: ``normalize(R @ d + t)``. For a camera away from the
              reference origin this is not the ray's direction.
            * ``"unit_direction"``: the geometric ray direction ``normalize(R @ d)``.
              NOT what the network saw in training: its outputs for these maps
              are far from the original's (see ``docs/known_cameras.md``).

    Returns:
        (H, W, 6) float32: channels 0-2 the ray origin (the camera centre ``t``,
        the same at every pixel), channels 3-5 the unit direction, both in the
        reference frame.
    """
    T = _matrix(cam_to_ref, (4, 4), "cam_to_ref")
    K = _matrix(K, (3, 3), "K")
    if convention not in RAY_CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(RAY_CONVENTIONS)}, got {convention!r}")
    if int(h) <= 0 or int(w) <= 0:
        raise ValueError(f"ray map size must be positive, got {h}x{w}")
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1).reshape(-1, 3)
    d = pix @ np.linalg.inv(K).T @ T[:3, :3].T
    if convention == "training":
        d = d + T[:3, 3]
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = np.broadcast_to(T[:3, 3], d.shape)
    return np.concatenate([o, d], axis=-1).reshape(h, w, 6).astype(np.float32)


# ---------------------------------------------------------------- intrinsics


def crop_intrinsics(K: np.ndarray, source_wh: tuple[int, int], resized_wh: tuple[int, int],
                    box: tuple[int, int, int, int]) -> np.ndarray:
    """(3, 3) intrinsics after resizing ``source_wh`` to ``resized_wh`` and cropping ``box``.

    The resize maps pixel edges to edges (scales ``sx = W1/W0``, ``sy = H1/H0``), the
    crop ``(left, top, right, bottom)`` shifts by its top-left corner; with pixel
    centres at integers: ``fx' = fx*sx``, ``cx' = (cx + 0.5)*sx - 0.5 - left`` (the
    same for y; a skew scales with x). Returns float64.
    """
    K = _matrix(K, (3, 3), "K")
    (w0, h0), (w1, h1) = source_wh, resized_wh
    sx, sy = w1 / w0, h1 / h0
    A = np.array([[sx, 0.0, 0.5 * sx - 0.5 - box[0]],
                  [0.0, sy, 0.5 * sy - 0.5 - box[1]],
                  [0.0, 0.0, 1.0]])
    return A @ K


def intrinsics_to_network(K_source: np.ndarray, source_wh: tuple[int, int], size: int,
                          square_ok: bool = False) -> np.ndarray:
    """Source-image intrinsics -> intrinsics of the preprocessed network input.

    Uses the crop geometry of :func:`ttt3r.preprocess.crop_geometry` (the original's
    resize and centre crop) for a ``source_wh`` = (W0, H0) image at ``size`` (512,
    224, ...). Returns (3, 3) float64 in network pixels.
    """
    from .preprocess import crop_geometry  # preprocess imports torch: only when called

    w0, h0 = (int(x) for x in source_wh)
    resized, box = crop_geometry(w0, h0, size=size, square_ok=square_ok)
    return crop_intrinsics(K_source, (w0, h0), resized, box)


def network_hw(source_wh: tuple[int, int], size: int, square_ok: bool = False) -> tuple[int, int]:
    """(H, W) of the network input that a ``source_wh`` = (W0, H0) image becomes at ``size``."""
    from .preprocess import crop_geometry

    _, (left, top, right, bottom) = crop_geometry(int(source_wh[0]), int(source_wh[1]), size=size,
                                                  square_ok=square_ok)
    return bottom - top, right - left


@dataclass(frozen=True, eq=False)  # holds an array
class Intrinsics:
    """One pinhole camera as a user gave it, in source-image pixels.

    Attributes:
        K: (3, 3) float64, pixel centres at integers (COLMAP's half-pixel offset removed).
        where: where it came from, for error messages (``file:line`` or the option text).
        size_wh: the image size (W, H) the source declares (COLMAP), or None.
    """

    K: np.ndarray
    where: str
    size_wh: tuple[int, int] | None = None

    def check_image(self, image_wh: tuple[int, int]) -> None:
        """Raise :class:`TTT3RError` unless these intrinsics fit frames of ``image_wh`` = (W, H)."""
        w, h = (int(x) for x in image_wh)
        if self.size_wh is not None and tuple(self.size_wh) != (w, h):
            raise TTT3RError(f"{self.where}: camera is {self.size_wh[0]}x{self.size_wh[1]} but the frames are {w}x{h}")
        cx, cy = self.K[0, 2], self.K[1, 2]
        if not (-0.5 <= cx <= w - 0.5 and -0.5 <= cy <= h - 0.5):
            raise TTT3RError(f"{self.where}: principal point ({cx:g}, {cy:g}) is outside the {w}x{h} image")


COLMAP_MODELS = {"SIMPLE_PINHOLE": 3, "PINHOLE": 4}  # name -> number of parameters


def parse_intrinsics(spec: str | os.PathLike, image_wh: tuple[int, int] | None = None) -> Intrinsics:
    """One camera for all frames, from ``spec``:

    * ``"fx,fy,cx,cy"`` (pixels, pixel centres at integers);
    * a text file holding a 3x3 matrix (``np.loadtxt``; ``#`` comments allowed);
    * a COLMAP text model: its ``cameras.txt`` or the folder holding it, with one
      camera of model ``PINHOLE`` or ``SIMPLE_PINHOLE`` (COLMAP puts pixel centres
      at half-integers; the 0.5 offset is removed). For one camera per image see
      :func:`colmap_intrinsics_per_image`.

    With ``image_wh`` = (W, H), the principal point is checked to lie in the image
    (otherwise call :meth:`Intrinsics.check_image` once the size is known).
    Bad input raises :class:`TTT3RError` naming the file and line.
    """
    text = os.fspath(spec)
    path = Path(text)
    if path.is_dir():
        path = path / "cameras.txt"
    if path.is_file():
        cams = read_colmap_cameras(path) if _looks_colmap(path) else None
        if cams is None:
            intr = _read_matrix_file(path)
        elif len(cams) != 1:
            raise TTT3RError(f"{path}: holds {len(cams)} cameras; one camera for all frames needs exactly one "
                             f"(per-image intrinsics: colmap_intrinsics_per_image)")
        else:
            intr = next(iter(cams.values()))
    elif "," in text:
        intr = _parse_numbers(text)
    else:
        raise TTT3RError(f"intrinsics {text!r}: no such file, and not 'fx,fy,cx,cy'")
    if image_wh is not None:
        intr.check_image(image_wh)
    elif intr.size_wh is not None:
        intr.check_image(intr.size_wh)
    return intr


def read_colmap_cameras(path: str | os.PathLike) -> dict[int, Intrinsics]:
    """COLMAP ``cameras.txt`` (``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...`` a line) -> id -> camera.

    Only the pinhole models (``PINHOLE``: fx fy cx cy, ``SIMPLE_PINHOLE``: f cx cy);
    any other model (with distortion) is an error naming the line.
    """
    path = Path(path)
    cams: dict[int, Intrinsics] = {}
    for lineno, fields in data_lines(path):
        where = f"{path}:{lineno}"
        if len(fields) < 4:
            raise TTT3RError(f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., got {len(fields)} fields")
        model = fields[1]
        if model not in COLMAP_MODELS:
            raise TTT3RError(f"{where}: camera model {model} is not supported (only "
                             f"{', '.join(COLMAP_MODELS)}; undistort the images first)")
        if len(fields) != 4 + COLMAP_MODELS[model]:
            raise TTT3RError(f"{where}: {model} takes {COLMAP_MODELS[model]} parameters, got {len(fields) - 4}")
        try:
            cam_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
        except ValueError:
            raise TTT3RError(f"{where}: camera id, width and height must be integers") from None
        if cam_id in cams:
            raise TTT3RError(f"{where}: camera id {cam_id} appears twice")
        p = _floats(fields[4:], where)
        fx, fy, cx, cy = (p[0], p[0], p[1], p[2]) if model == "SIMPLE_PINHOLE" else p
        cams[cam_id] = _checked(fx, fy, cx - 0.5, cy - 0.5, where, (width, height))
    if not cams:
        raise TTT3RError(f"{path}: no cameras found")
    return cams


def colmap_intrinsics_per_image(model_dir: str | os.PathLike) -> dict[str, Intrinsics]:
    """Image name -> camera, from a COLMAP text model folder (``cameras.txt`` + ``images.txt``)."""
    folder = Path(model_dir)
    cams = read_colmap_cameras(folder / "cameras.txt")
    path = folder / "images.txt"
    lines = _read_text(path).splitlines()
    out: dict[str, Intrinsics] = {}
    i = 0
    while i < len(lines):
        s, lineno = lines[i].strip(), i + 1
        i += 1
        if not s or s.startswith("#"):
            continue
        fields = s.split(maxsplit=9)
        if len(fields) != 10:
            raise TTT3RError(f"{path}:{lineno}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        try:
            cam_id = int(fields[8])
        except ValueError:
            raise TTT3RError(f"{path}:{lineno}: camera id {fields[8]!r} is not an integer") from None
        if cam_id not in cams:
            raise TTT3RError(f"{path}:{lineno}: camera {cam_id} is not in {folder / 'cameras.txt'}")
        out[fields[9]] = cams[cam_id]
        i += 1  # the POINTS2D line that follows every image line (possibly empty)
    if not out:
        raise TTT3RError(f"{path}: no images found")
    return out


# ---------------------------------------------------------------- poses


def relative_poses(c2w: np.ndarray, where: str = "poses") -> np.ndarray:
    """(N, 4, 4) camera-to-world poses -> the same relative to the first camera.

    Returns ``inv(c2w[0]) @ c2w[i]`` (float64), so that pose 0 is the identity: the
    reference frame of :func:`ray_map` and of the network's world frame. Each pose
    must be rigid (see :func:`check_rigid`); errors name ``where`` and the pose.
    """
    c2w = check_rigid(c2w, where)
    R0, t0 = c2w[0, :3, :3], c2w[0, :3, 3]
    inv0 = np.eye(4)
    inv0[:3, :3], inv0[:3, 3] = R0.T, -R0.T @ t0
    return inv0 @ c2w


def check_rigid(c2w: np.ndarray, where: str = "poses") -> np.ndarray:
    """Check (N, 4, 4) poses: finite, last row ``0 0 0 1``, rotation orthonormal with det +1.

    Tolerance :data:`ROTATION_TOL` on ``max |R^T R - I|`` and ``|det R - 1|``.
    Returns the poses as float64; raises :class:`TTT3RError` naming ``where`` and the
    1-based pose number (the row of the pose file when it has no comment lines).
    """
    a = np.asarray(c2w, dtype=np.float64)
    if a.ndim != 3 or a.shape[1:] != (4, 4) or len(a) == 0:
        raise TTT3RError(f"{where}: expected (N, 4, 4) camera-to-world poses, got shape {a.shape}")
    for i, T in enumerate(a):
        at = f"{where}: pose {i + 1}"
        if not np.isfinite(T).all():
            raise TTT3RError(f"{at}: non-finite value")
        if np.abs(T[3] - [0, 0, 0, 1]).max() > 1e-9:
            raise TTT3RError(f"{at}: last row must be 0 0 0 1, got {' '.join(f'{x:g}' for x in T[3])}")
        problem = rotation_problem(T[:3, :3])
        if problem:
            raise TTT3RError(f"{at}: {problem}")
    return a


def rotation_problem(R: np.ndarray) -> str | None:
    """Why the (3, 3) matrix ``R`` is not a rotation (within :data:`ROTATION_TOL`), or None."""
    ortho = np.abs(R.T @ R - np.eye(3)).max()
    if ortho > ROTATION_TOL:
        return f"rotation is not orthonormal (max |R^T R - I| = {ortho:.3g})"
    det = np.linalg.det(R)
    if abs(det - 1) > ROTATION_TOL:
        return f"rotation has determinant {det:.4g}, expected +1 (a reflection?)"
    return None


def read_poses(path: str | os.PathLike, fmt: str = "tum") -> np.ndarray:
    """Camera-to-world poses from a trajectory file (``tum``, ``kitti``, ``euroc``).

    Reads with :func:`ttt3r.io.trajectory.read_trajectory` (the package's one
    place for trajectory formats) and checks each pose with :func:`check_rigid`.
    Returns (N, 4, 4) float64, as in the file (see :func:`relative_poses`).
    """
    from .io.trajectory import read_trajectory

    return check_rigid(read_trajectory(path, fmt).poses, os.fspath(path))


# ---------------------------------------------------------------- parsing helpers


def _matrix(a: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    m = np.asarray(a, dtype=np.float64)
    if m.shape != shape:
        raise ValueError(f"{name} must be {shape[0]}x{shape[1]}, got shape {m.shape}")
    return m


def _checked(fx: float, fy: float, cx: float, cy: float, where: str,
             size_wh: tuple[int, int] | None = None, skew: float = 0.0) -> Intrinsics:
    vals = (fx, fy, cx, cy, skew)
    if not np.isfinite(vals).all():
        raise TTT3RError(f"{where}: non-finite intrinsics")
    if fx <= 0 or fy <= 0:
        raise TTT3RError(f"{where}: focal length must be positive, got fx={fx:g}, fy={fy:g}")
    if size_wh is not None and (size_wh[0] <= 0 or size_wh[1] <= 0):
        raise TTT3RError(f"{where}: image size must be positive, got {size_wh[0]}x{size_wh[1]}")
    K = np.array([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return Intrinsics(K, where, size_wh)


def _parse_numbers(text: str) -> Intrinsics:
    where = f"intrinsics {text!r}"
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise TTT3RError(f"{where}: expected 4 numbers fx,fy,cx,cy, got {len(parts)}")
    return _checked(*_floats(parts, where), where)


def _read_matrix_file(path: Path) -> Intrinsics:
    lines = [n for n, _ in data_lines(path)]
    try:
        K = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise TTT3RError(f"{path}: not a 3x3 matrix of numbers ({str(e).splitlines()[0]})") from None
    if K.shape != (3, 3):
        raise TTT3RError(f"{path}: expected a 3x3 intrinsics matrix, got {K.shape[0]}x{K.shape[1]} numbers")
    if not np.isfinite(K).all():
        raise TTT3RError(f"{path}: non-finite value in the intrinsics matrix")
    if K[1, 0] != 0:
        raise TTT3RError(f"{path}:{lines[1]}: the second row must start with 0, got {K[1, 0]:g}")
    if np.abs(K[2] - [0, 0, 1]).max() > 1e-9:
        raise TTT3RError(f"{path}:{lines[2]}: the last row must be 0 0 1")
    row = 1 if K[0, 0] > 0 and K[1, 1] <= 0 else 0  # the line of the offending focal
    return _checked(K[0, 0], K[1, 1], K[0, 2], K[1, 2], f"{path}:{lines[row]}", skew=K[0, 1])


def _looks_colmap(path: Path) -> bool:
    """A COLMAP cameras file: named ``cameras.txt`` or its first data line's 2nd field is a word."""
    if path.name == "cameras.txt":
        return True
    first = next(iter(data_lines(path)), None)
    if first is None or len(first[1]) < 2:
        return False
    model = first[1][1]
    return model[:1].isalpha() and not _is_float(model)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TTT3RError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise TTT3RError(f"{path}: not a text file") from None
    except OSError as e:
        raise TTT3RError(f"{path}: cannot read ({e.strerror})") from None


def data_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(1-based line number, fields) of each line that is neither blank nor a ``#`` comment."""
    out = []
    for n, line in enumerate(_read_text(path).splitlines(), start=1):
        s = line.split("#", 1)[0].strip()
        if s:
            out.append((n, s.split()))
    return out


def _floats(fields: list[str], where: str) -> list[float]:
    try:
        return [float(f) for f in fields]
    except ValueError:
        bad = next(f for f in fields if not _is_float(f))
        raise TTT3RError(f"{where}: {bad!r} is not a number") from None


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
