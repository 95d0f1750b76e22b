"""Seeded scene descriptions and building them in pybullet.

A scene is first drawn as a plain, JSON-able :class:`SceneSpec` (pure numpy, no
pybullet): an enclosing box (a ``room`` or a long ``corridor``: floor, ceiling
and four walls, so every camera ray hits geometry), textured objects placed on
the floor or on tables, and a light. :func:`build_scene` then creates it in a
pybullet client. The same ``scene_seed`` always gives the same spec.

World frame: pybullet's, z up, metres; the floor is ``z = 0``.

Objects come from two sources:

* meshes that ``pybullet_data`` ships (duck, teddy, soccer ball, tray, torus,
  mug, lego, toys, bunny and the 1000 ``random_urdfs`` shapes), with their own
  texture when they have one, else a random texture or colour;
* procedural primitives with tiled random textures: boxes, tables (top + legs),
  shelves, pillars, spheres and cylinders.

Camera safety: every *low* object's top stays below ``camera_zone["min_height"]
- 0.3`` so cameras flying above it never enter geometry; *tall* objects (pillars,
shelves) are placed only outside the region cameras may visit.
"""

from __future__ import annotations

import functools
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np

from .textures import random_texture_spec, texture_image

LAYOUTS = ("room", "corridor")

# Mesh catalogue: name -> (path in pybullet_data, up axis, (min, max) largest
# extent in metres, keeps its own mtl texture, has UVs).
MESHES: dict[str, tuple[str, str, tuple[float, float], bool, bool]] = {
    "duck": ("duck.obj", "y", (0.3, 0.8), True, True),
    "teddy": ("teddy2_VHACD_CHs.obj", "y", (0.4, 0.9), False, False),
    "soccerball": ("soccerball.obj", "z", (0.25, 0.6), True, True),
    "sphere": ("textured_sphere_smooth.obj", "z", (0.25, 0.8), False, True),
    "tray": ("tray/tray_textured.obj", "z", (0.4, 0.9), True, True),
    "torus": ("torus/torus_textured.obj", "y", (0.4, 0.9), True, True),
    "mug": ("objects/mug.obj", "z", (0.2, 0.5), False, False),
    "lego": ("lego/lego.obj", "y", (0.25, 0.6), False, False),
    "shape_sorter": ("toys/shape_sorter.obj", "z", (0.3, 0.7), True, True),
    "toy_prism": ("toys/prism.obj", "z", (0.25, 0.6), True, True),
    "toy_cylinder": ("toys/cylinder.obj", "z", (0.25, 0.6), True, True),
    "concave_box": ("toys/concave_box.obj", "z", (0.5, 1.0), True, True),
    "bunny": ("bunny.obj", "y", (0.3, 0.8), False, False),
}
N_RANDOM_URDFS = 1000  # random_urdfs/000 .. 999


@dataclass
class ObjectSpec:
    """One object. ``position`` is the body origin (world, m); ``yaw`` about z (rad).

    ``kind`` is ``mesh`` (``source`` = path in pybullet_data, scaled by ``scale``,
    rotated so its ``up`` axis is world z) or a primitive (``box``, ``table``,
    ``shelf``, ``pillar``, ``sphere``, ``cylinder``; ``dims`` in metres).
    ``top`` is the highest point (m); ``radius`` the footprint radius (m).
    For meshes ``dims`` is the offset (m) from ``position`` (the footprint centre
    on its support) to the body origin.
    """

    name: str
    kind: str
    position: tuple[float, float, float]
    yaw: float
    top: float
    radius: float
    source: str = ""
    up: str = "z"
    scale: float = 1.0
    dims: tuple[float, ...] = ()
    texture: dict | None = None
    color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    tile: float = 0.5


@dataclass
class LightSpec:
    """TinyRenderer light: direction toward the light (world), colour, coefficients."""

    direction: tuple[float, float, float]
    color: tuple[float, float, float]
    distance: float
    ambient: float
    diffuse: float
    specular: float
    shadow: bool


@dataclass
class SceneSpec:
    """A whole scene. ``bounds`` = ((xmin, ymin, 0), (xmax, ymax, height)) of the enclosure.

    ``surfaces`` maps floor/ceiling/wall_* to ``{"texture": spec or None, "tile": m}``
    (plus an optional ``"color"`` RGBA used when the texture is None);
    ``camera_zone`` tells the motions where cameras may go (see :mod:`.motion`).
    """

    seed: int
    layout: str
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]]
    surfaces: dict[str, dict]
    objects: list[ObjectSpec]
    light: LightSpec
    camera_zone: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- spec drawing


def make_scene(scene_seed: int, layout: str = "room", length: float | None = None, data_path: str | None = None) -> SceneSpec:
    """Draw a :class:`SceneSpec` from ``scene_seed``.

    ``layout`` is ``room`` (a box room, cameras in a ring around the centre) or
    ``corridor`` (a corridor along +x of ``length`` metres, cameras on its
    centre band). ``data_path`` is pybullet_data's folder (for mesh bounds).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}")
    if data_path is None:
        data_path = _pybullet_data_path()
    rng = np.random.default_rng([int(scene_seed), LAYOUTS.index(layout), 7331])
    surfaces = {
        name: {"texture": random_texture_spec(rng, 0.3), "tile": float(rng.uniform(0.6, 3.0))}
        for name in ("floor", "ceiling", "wall_xmin", "wall_xmax", "wall_ymin", "wall_ymax")
    }
    az = rng.uniform(0, 2 * math.pi)
    el = rng.uniform(math.radians(25), math.radians(85))
    tint = 1.0 - rng.uniform(0, 0.25, 3)
    light = LightSpec(
        direction=(math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)),
        color=tuple(float(t) for t in tint),
        distance=float(rng.uniform(5, 15)),
        ambient=float(rng.uniform(0.35, 0.65)),
        diffuse=float(rng.uniform(0.3, 0.7)),
        specular=float(rng.uniform(0.0, 0.3)),
        shadow=bool(rng.random() < 0.25),  # shadows cost ~2.4x render time
    )
    if layout == "room":
        return _make_room(rng, int(scene_seed), surfaces, light, data_path)
    return _make_corridor(rng, int(scene_seed), surfaces, light, data_path, float(length or 20.0))


LOW_MAX_TOP = 1.0  # metres; cameras stay at least CAM_CLEARANCE above
CAM_CLEARANCE = 0.35
WALL_MARGIN = 0.7  # cameras stay this far from walls


def _make_room(rng, seed, surfaces, light, data_path) -> SceneSpec:
    a = float(rng.uniform(3.0, 5.0))
    b = float(a * rng.uniform(0.75, 1.0))
    if rng.random() < 0.5:
        a, b = b, a
    height = float(rng.uniform(2.6, 4.0))
    ea, eb = a - WALL_MARGIN, b - WALL_MARGIN  # camera ellipse semi-axes
    rho_in = 0.45

    def rho(x, y):
        return math.hypot(x / ea, y / eb)

    placed: list[ObjectSpec] = []
    n_low = int(np.clip(round(a * b * 4 * rng.uniform(0.2, 0.4)), 6, 24))
    n_tall = int(rng.integers(0, 5))
    # tall objects: centre disc or the corners outside the camera ellipse
    for _ in range(n_tall):
        obj = _draw_tall(rng, height)
        for _try in range(40):
            if rng.random() < 0.5:
                x, y = rng.uniform(-0.3, 0.3) * ea, rng.uniform(-0.3, 0.3) * eb
                ok = rho(x, y) + obj.radius / min(ea, eb) <= 0.3
            else:
                x = math.copysign(rng.uniform(a * 0.6, a - obj.radius - 0.1), rng.uniform(-1, 1))
                y = math.copysign(rng.uniform(b * 0.6, b - obj.radius - 0.1), rng.uniform(-1, 1))
                ok = rho(x, y) - obj.radius / min(ea, eb) >= 1.08 and abs(x) + obj.radius < a and abs(y) + obj.radius < b
            if ok and _free(placed, x, y, obj.radius):
                placed.append(_at(obj, x, y, 0.0))
                break
    for _ in range(n_low):
        obj = _draw_low(rng, data_path)
        for _try in range(40):
            x = rng.uniform(-a + obj.radius + 0.15, a - obj.radius - 0.15)
            y = rng.uniform(-b + obj.radius + 0.15, b - obj.radius - 0.15)
            if _free(placed, x, y, obj.radius):
                placed.append(_at(obj, x, y, 0.0))
                break
    placed += _on_tables(rng, placed, data_path)
    zone = {
        "type": "ring",
        "ellipse": (ea, eb),
        "rho": (rho_in, 1.0),
        "min_height": _min_cam_height(placed),
        "max_height": min(2.2, height - 0.4),
        "target_radius": 0.3 * min(ea, eb),
    }
    zone["max_height"] = max(zone["max_height"], zone["min_height"] + 0.2)
    return SceneSpec(seed, "room", ((-a, -b, 0.0), (a, b, height)), surfaces, placed, light, zone)


def _make_corridor(rng, seed, surfaces, light, data_path, length) -> SceneSpec:
    w = float(rng.uniform(1.4, 2.2))
    height = float(rng.uniform(2.5, 3.5))
    placed: list[ObjectSpec] = []
    n_tall = int(min(20, round(length * rng.uniform(0.1, 0.3))))
    n_low = int(min(64, max(6, round(length * rng.uniform(0.8, 1.4)))))
    for _ in range(n_tall):
        obj = _draw_tall(rng, height, max_radius=0.27)
        for _try in range(40):
            x = rng.uniform(obj.radius + 0.1, length - obj.radius - 0.1)
            y = math.copysign(w - obj.radius - 0.1, rng.uniform(-1, 1))
            if _free(placed, x, y, obj.radius):
                placed.append(_at(obj, x, y, 0.0))
                break
    for _ in range(n_low):
        obj = _draw_low(rng, data_path)
        for _try in range(40):
            x = rng.uniform(obj.radius + 0.1, length - obj.radius - 0.1)
            y = rng.uniform(-w + obj.radius + 0.1, w - obj.radius - 0.1)
            if _free(placed, x, y, obj.radius):
                placed.append(_at(obj, x, y, 0.0))
                break
    placed += _on_tables(rng, placed, data_path)
    zone = {
        "type": "band",
        "x": (0.8, length - 3.0),  # stop short of the end wall
        "y_half": max(0.1, w - 0.8),
        "min_height": _min_cam_height(placed),
        "max_height": min(2.0, height - 0.4),
    }
    zone["max_height"] = max(zone["max_height"], zone["min_height"] + 0.2)
    return SceneSpec(seed, "corridor", ((0.0, -w, 0.0), (length, w, height)), surfaces, placed, light, zone)


def _min_cam_height(objs: list[ObjectSpec]) -> float:
    low = [o.top for o in objs if o.top <= LOW_MAX_TOP + 0.3]
    return float(max([1.2 - CAM_CLEARANCE, *low]) + CAM_CLEARANCE)


def _free(placed: list[ObjectSpec], x: float, y: float, r: float) -> bool:
    return all(math.hypot(o.position[0] - x, o.position[1] - y) > o.radius + r + 0.1 for o in placed)


def _at(obj: ObjectSpec, x: float, y: float, z: float) -> ObjectSpec:
    obj.position = (float(x), float(y), float(z))
    obj.top = float(obj.top + z)
    return obj


def _color(rng) -> tuple[float, float, float, float]:
    c = rng.uniform(0.15, 1.0, 3)
    return (float(c[0]), float(c[1]), float(c[2]), 1.0)


def _draw_tall(rng, ceiling: float, max_radius: float = 0.6) -> ObjectSpec:
    kind = "shelf" if rng.random() < 0.5 else "pillar"
    tex = random_texture_spec(rng, 0.25)
    if kind == "pillar":
        r = float(rng.uniform(0.12, min(0.35, max_radius)))
        h = min(float(rng.uniform(1.8, 2.6)), ceiling)  # at most floor to ceiling
        square = bool(rng.random() < 0.5)
        dims = (r, h, 1.0 if square else 0.0)
        return ObjectSpec("pillar", "pillar", (0, 0, 0), float(rng.uniform(0, 2 * math.pi)), h, r * (1.42 if square else 1.0), dims=dims, texture=tex, tile=float(rng.uniform(0.3, 1.2)))
    d = float(rng.uniform(0.25, 0.4))
    wdt = float(rng.uniform(0.5, 1.2))
    if max_radius < 0.6:  # along a corridor wall: keep it thin, facing inward
        wdt = min(wdt, 2 * max_radius - 0.02)
        d = min(d, wdt)
    h = min(float(rng.uniform(1.4, 2.2)), ceiling - 0.1)
    shelves = int(rng.integers(2, 6))
    r = 0.5 * math.hypot(wdt, d)
    return ObjectSpec("shelf", "shelf", (0, 0, 0), float(rng.choice([0, math.pi / 2, math.pi, 3 * math.pi / 2]) + rng.normal(0, 0.05)), h, r, dims=(wdt, d, h, shelves), texture=tex, tile=float(rng.uniform(0.3, 1.2)))


def _draw_low(rng, data_path, max_extent: float | None = None) -> ObjectSpec:
    """A low object (top <= LOW_MAX_TOP) centred at the origin on z = 0."""
    u = rng.random()
    yaw = float(rng.uniform(0, 2 * math.pi))
    tile = float(rng.uniform(0.2, 0.8))
    if max_extent is None and u < 0.14:
        w, d = float(rng.uniform(0.8, 1.6)), float(rng.uniform(0.5, 1.0))
        h = float(rng.uniform(0.5, 0.8))
        dims = (w, d, h, float(rng.uniform(0.03, 0.08)), float(rng.uniform(0.04, 0.08)))
        return ObjectSpec("table", "table", (0, 0, 0), yaw, h, 0.5 * math.hypot(w, d), dims=dims, texture=random_texture_spec(rng, 0.3), tile=tile)
    if u < 0.5:
        cap = max_extent or 0.9
        kind = ("box", "box", "sphere", "cylinder")[int(rng.integers(4))]
        tex = random_texture_spec(rng, 0.3)
        if kind == "box":
            dims = tuple(float(x) for x in rng.uniform(0.15, cap, 3))
            dims = (dims[0], dims[1], min(dims[2], LOW_MAX_TOP))
            return ObjectSpec("box", "box", (0, 0, 0), yaw, dims[2], 0.5 * math.hypot(dims[0], dims[1]), dims=dims, texture=tex, tile=tile)
        if kind == "sphere":
            r = float(rng.uniform(0.08, cap / 2))
            return ObjectSpec("ball", "sphere", (0, 0, 0), yaw, 2 * r, r, dims=(r,), texture=tex, tile=tile)
        r, h = float(rng.uniform(0.08, cap / 2)), float(rng.uniform(0.1, min(cap, LOW_MAX_TOP)))
        return ObjectSpec("cylinder", "cylinder", (0, 0, 0), yaw, h, r, dims=(r, h), texture=tex, tile=tile)
    while True:  # a few shipped meshes are broken (e.g. random_urdfs/168 is all NaN): draw again
        if u < 0.7:
            k = int(rng.integers(N_RANDOM_URDFS))
            path, up, rng_ext, own_tex, has_uv = f"random_urdfs/{k:03d}/{k:03d}.obj", "z", (0.25, 0.8), False, False
            name = f"random_urdfs/{k:03d}"
        else:
            names = sorted(MESHES)
            name = names[int(rng.integers(len(names)))]
            path, up, rng_ext, own_tex, has_uv = MESHES[name]
        lo, hi = _mesh_bounds(data_path, path, up)
        ext3 = hi - lo
        if np.isfinite(ext3).all() and ext3.min() > 1e-3 * ext3.max() > 0:
            break
    ext = float(rng.uniform(*rng_ext))
    if max_extent is not None:
        ext = min(ext, max_extent)
    scale = ext / float(np.max(hi - lo))
    scale = min(scale, LOW_MAX_TOP / float(hi[2] - lo[2]))
    tex = None
    color = (1.0, 1.0, 1.0, 1.0)
    if not own_tex:
        if has_uv and rng.random() < 0.7:
            tex = random_texture_spec(rng, 0.3)
        else:
            color = _color(rng)
    # body origin such that the mesh's bbox centre is at x = y = 0, bottom at z = 0
    c = 0.5 * (lo + hi) * scale
    cy, sy = math.cos(yaw), math.sin(yaw)
    off = np.array([cy * c[0] - sy * c[1], sy * c[0] + cy * c[1], lo[2] * scale])
    obj = ObjectSpec(name, "mesh", (0, 0, 0), yaw, float((hi[2] - lo[2]) * scale), float(0.5 * np.hypot(*(hi - lo)[:2]) * scale), source=path, up=up, scale=float(scale), texture=tex, color=color)
    obj.dims = (float(-off[0]), float(-off[1]), float(-off[2]))  # origin offset, applied at placement
    return obj


def _on_tables(rng, placed: list[ObjectSpec], data_path) -> list[ObjectSpec]:
    """Small objects standing on the tables' tops."""
    extra = []
    for t in [o for o in placed if o.kind == "table"]:
        for _ in range(int(rng.integers(0, 3))):
            obj = _draw_low(rng, data_path, max_extent=min(0.35, LOW_MAX_TOP + 0.25 - t.top))
            w, d = t.dims[0], t.dims[1]
            lx = rng.uniform(-0.5, 0.5) * max(w - 2 * obj.radius, 0.0)
            ly = rng.uniform(-0.5, 0.5) * max(d - 2 * obj.radius, 0.0)
            c, s = math.cos(t.yaw), math.sin(t.yaw)
            x, y = t.position[0] + c * lx - s * ly, t.position[1] + s * lx + c * ly
            if _free(extra, x, y, obj.radius):
                extra.append(_at(obj, x, y, t.top))
    return extra


@functools.lru_cache(maxsize=2048)
def _mesh_bounds_cached(path: str, up: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    verts = []
    with open(path) as f:
        for line in f:
            if line.startswith("v "):
                verts.append(line.split()[1:4])
    v = np.asarray(verts, dtype=np.float64)
    v = v @ _up_rotation(up).T
    return tuple(v.min(0)), tuple(v.max(0))


def _mesh_bounds(data_path: str, rel: str, up: str) -> tuple[np.ndarray, np.ndarray]:
    """Bounds (lo, hi) of an OBJ's vertices after turning ``up`` to world z."""
    lo, hi = _mesh_bounds_cached(os.path.join(data_path, rel), up)
    return np.array(lo), np.array(hi)


def _up_rotation(up: str) -> np.ndarray:
    if up == "y":  # +90 deg about x: y -> z
        return np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    return np.eye(3)


def _pybullet_data_path() -> str:
    import pybullet_data

    return pybullet_data.getDataPath()


# ---------------------------------------------------------------- meshes


class _Mesh:
    """Accumulates triangles with per-vertex normals and UVs (UV units: metres / tile)."""

    def __init__(self) -> None:
        self.v: list = []
        self.n: list = []
        self.uv: list = []
        self.i: list = []

    def quad(self, p0, p1, p2, p3, normal, tile: float) -> None:
        """Quad p0-p1-p2-p3 (counter-clockwise seen from ``normal``), UVs tiled by ``tile`` m."""
        p = [np.asarray(x, dtype=np.float64) for x in (p0, p1, p2, p3)]
        e1, e2 = p[1] - p[0], p[3] - p[0]
        if np.dot(np.cross(e1, e2), normal) < 0:  # TinyRenderer culls back faces
            p = [p[0], p[3], p[2], p[1]]
            e1, e2 = e2, e1
        lu, lv = np.linalg.norm(e1) / tile, np.linalg.norm(e2) / tile
        k = len(self.v)
        self.v += [x.tolist() for x in p]
        self.n += [list(normal)] * 4
        self.uv += [[0.0, 0.0], [lu, 0.0], [lu, lv], [0.0, lv]]
        self.i += [k, k + 1, k + 2, k, k + 2, k + 3]

    def box(self, lo, hi, tile: float) -> None:
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        self.quad((x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1), (0, 0, 1), tile)
        self.quad((x0, y1, z0), (x1, y1, z0), (x1, y0, z0), (x0, y0, z0), (0, 0, -1), tile)
        self.quad((x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1), (0, -1, 0), tile)
        self.quad((x1, y1, z0), (x0, y1, z0), (x0, y1, z1), (x1, y1, z1), (0, 1, 0), tile)
        self.quad((x0, y1, z0), (x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (-1, 0, 0), tile)
        self.quad((x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1), (1, 0, 0), tile)

    def cylinder(self, r: float, z0: float, z1: float, tile: float, seg: int = 24) -> None:
        k0 = len(self.v)
        circ = 2 * math.pi * r
        for j in range(seg + 1):
            a = 2 * math.pi * j / seg
            c, s = math.cos(a), math.sin(a)
            for z in (z0, z1):
                self.v.append([r * c, r * s, z])
                self.n.append([c, s, 0.0])
                self.uv.append([circ * j / seg / tile, (z - z0) / tile])
        for j in range(seg):
            a, b = k0 + 2 * j, k0 + 2 * j + 2
            self.i += [a, b, b + 1, a, b + 1, a + 1]
        for z, nz in ((z1, 1.0), (z0, -1.0)):  # caps
            kc = len(self.v)
            self.v.append([0.0, 0.0, z])
            self.n.append([0.0, 0.0, nz])
            self.uv.append([0.0, 0.0])
            for j in range(seg + 1):
                a = 2 * math.pi * j / seg
                self.v.append([r * math.cos(a), r * math.sin(a), z])
                self.n.append([0.0, 0.0, nz])
                self.uv.append([r * math.cos(a) / tile, r * math.sin(a) / tile])
            for j in range(seg):
                self.i += [kc, kc + 1 + j, kc + 2 + j] if nz > 0 else [kc, kc + 2 + j, kc + 1 + j]

    def sphere(self, r: float, tile: float, seg: int = 24, rings: int = 12) -> None:
        k0 = len(self.v)
        for i in range(rings + 1):
            th = math.pi * i / rings
            for j in range(seg + 1):
                ph = 2 * math.pi * j / seg
                n = [math.sin(th) * math.cos(ph), math.sin(th) * math.sin(ph), math.cos(th)]
                self.v.append([r * n[0], r * n[1], r + r * n[2]])
                self.n.append(n)
                self.uv.append([2 * math.pi * r * j / seg / tile, math.pi * r * i / rings / tile])
        for i in range(rings):
            for j in range(seg):
                a = k0 + i * (seg + 1) + j
                b = a + seg + 1
                self.i += [a, b, b + 1, a, b + 1, a + 1]


def _primitive_mesh(o: ObjectSpec) -> _Mesh:
    m = _Mesh()
    t = o.tile
    if o.kind == "box":
        w, d, h = o.dims
        m.box((-w / 2, -d / 2, 0), (w / 2, d / 2, h), t)
    elif o.kind == "table":
        w, d, h, th, leg = o.dims
        m.box((-w / 2, -d / 2, h - th), (w / 2, d / 2, h), t)
        for sx in (-1, 1):
            for sy in (-1, 1):
                cx, cy = sx * (w / 2 - leg), sy * (d / 2 - leg)
                m.box((cx - leg / 2, cy - leg / 2, 0), (cx + leg / 2, cy + leg / 2, h - th), t)
    elif o.kind == "shelf":
        w, d, h, n = o.dims
        n = int(n)
        side = 0.03
        for sx in (-1, 1):
            m.box((sx * w / 2 - side / 2, -d / 2, 0), (sx * w / 2 + side / 2, d / 2, h), t)
        m.box((-w / 2, d / 2 - 0.01, 0), (w / 2, d / 2, h), t)  # back
        for k in range(n + 1):
            z = (h - side) * k / n
            m.box((-w / 2, -d / 2, z), (w / 2, d / 2, z + side), t)
    elif o.kind == "pillar":
        r, h, square = o.dims
        if square:
            m.box((-r, -r, 0), (r, r, h), t)
        else:
            m.cylinder(r, 0.0, h, t)
    elif o.kind == "sphere":
        m.sphere(o.dims[0], t)
    elif o.kind == "cylinder":
        r, h = o.dims
        m.cylinder(r, 0.0, h, t)
    else:  # pragma: no cover - spec drawing only makes the kinds above
        raise ValueError(f"unknown primitive {o.kind!r}")
    return m


def _enclosure_meshes(spec: SceneSpec) -> dict[str, _Mesh]:
    (x0, y0, z0), (x1, y1, z1) = spec.bounds
    out = {}
    for name, (quad, normal) in {
        "floor": (((x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0)), (0, 0, 1)),
        "ceiling": (((x0, y1, z1), (x1, y1, z1), (x1, y0, z1), (x0, y0, z1)), (0, 0, -1)),
        "wall_xmin": (((x0, y1, z0), (x0, y0, z0), (x0, y0, z1), (x0, y1, z1)), (1, 0, 0)),
        "wall_xmax": (((x1, y0, z0), (x1, y1, z0), (x1, y1, z1), (x1, y0, z1)), (-1, 0, 0)),
        "wall_ymin": (((x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1)), (0, 1, 0)),
        "wall_ymax": (((x1, y1, z0), (x0, y1, z0), (x0, y1, z1), (x1, y1, z1)), (0, -1, 0)),
    }.items():
        m = _Mesh()
        m.quad(*quad, normal, spec.surfaces[name]["tile"])
        out[name] = m
    return out


# ---------------------------------------------------------------- building


def build_scene(p, client: int, spec: SceneSpec, data_path: str | None = None) -> list[int]:
    """Create ``spec`` in pybullet client ``client`` (module ``p``); returns the body ids."""
    if data_path is None:
        data_path = _pybullet_data_path()
    bodies: list[int] = []
    textures: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ttt3r-synth-tex-") as tmp:

        def tex_id(tspec: dict) -> int:
            key = repr(sorted(tspec.items()))
            if key not in textures:
                if tspec["kind"] == "file":
                    path = os.path.join(data_path, tspec["path"])
                    if not path.lower().endswith((".png", ".jpg", ".jpeg")):
                        path = _to_png(texture_image(tspec, data_path), tmp, len(textures))
                else:
                    path = _to_png(texture_image(tspec, data_path), tmp, len(textures))
                textures[key] = p.loadTexture(path, physicsClientId=client)
            return textures[key]

        def add(mesh: _Mesh, pos, orn, tspec: dict | None, color=(1, 1, 1, 1)) -> int:
            vs = p.createVisualShape(
                p.GEOM_MESH,
                vertices=mesh.v,
                indices=mesh.i,
                uvs=mesh.uv,
                normals=mesh.n,
                rgbaColor=list(color),
                physicsClientId=client,
            )
            body = p.createMultiBody(0, -1, vs, list(pos), list(orn), physicsClientId=client)
            if tspec is not None:
                p.changeVisualShape(body, -1, textureUniqueId=tex_id(tspec), rgbaColor=[1, 1, 1, 1], physicsClientId=client)
            return body

        for name, mesh in _enclosure_meshes(spec).items():
            surf = spec.surfaces[name]
            bodies.append(add(mesh, (0, 0, 0), (0, 0, 0, 1), surf.get("texture"), surf.get("color", (1, 1, 1, 1))))
        for o in spec.objects:
            yaw_q = _quat_z(o.yaw)
            if o.kind == "mesh":
                q = _quat_mul(yaw_q, (math.sqrt(0.5), 0, 0, math.sqrt(0.5)) if o.up == "y" else (0, 0, 0, 1))
                vs = p.createVisualShape(
                    p.GEOM_MESH,
                    fileName=os.path.join(data_path, o.source),
                    meshScale=[o.scale] * 3,
                    rgbaColor=list(o.color),
                    physicsClientId=client,
                )
                pos = np.add(o.position, o.dims)
                body = p.createMultiBody(0, -1, vs, pos.tolist(), list(q), physicsClientId=client)
                if o.texture is not None:
                    p.changeVisualShape(body, -1, textureUniqueId=tex_id(o.texture), physicsClientId=client)
                bodies.append(body)
            else:
                bodies.append(add(_primitive_mesh(o), o.position, yaw_q, o.texture, o.color))
    return bodies


def _to_png(img: np.ndarray, folder: str, k: int) -> str:
    from PIL import Image

    path = os.path.join(folder, f"tex{k:04d}.png")
    Image.fromarray(img).save(path)
    return path


def _quat_z(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def _quat_mul(a, b) -> tuple[float, float, float, float]:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )
