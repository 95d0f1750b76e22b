"""Seeded texture images: procedural patterns and the images pybullet_data ships.

Every texture is described by a small JSON-able spec (``{"kind": ..., "seed": ...}``
or ``{"kind": "file", "path": ...}``) so ``meta.json`` can record it and the same
spec always yields the same pixels. Procedural textures get a fine noise layer so
that no surface is flat-coloured (the data also trains a matching network).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

#: Images inside pybullet_data usable as textures (relative paths).
FILE_TEXTURES = (
    "checker_grid.jpg",
    "tex256.png",
    "uvmap.png",
    "cube.png",
    "checker_blue.png",
    "duckCM.png",
    "tray/tray.jpg",
    "table/table.png",
    "jenga/jenga.png",
    "domino/domino.jpg",
    "roboschool/models_outdoor/stadium/stadium_grass.jpg",
    "laikago/laikago_tex.jpg",
    "heightmaps/Maze.png",
)

PROCEDURAL = ("checker", "stripes", "noise", "bricks", "tiles", "dots", "rings", "plaid")

_SIZE = 256


def random_texture_spec(rng: np.random.Generator, file_prob: float = 0.25) -> dict:
    """Draw a texture spec: a pybullet_data image with ``file_prob``, else procedural."""
    if rng.random() < file_prob:
        return {"kind": "file", "path": FILE_TEXTURES[int(rng.integers(len(FILE_TEXTURES)))]}
    return {"kind": PROCEDURAL[int(rng.integers(len(PROCEDURAL)))], "seed": int(rng.integers(2**31))}


def texture_image(spec: dict, data_path: str | None = None) -> np.ndarray:
    """(S, S, 3) uint8 RGB image for a texture spec (S = 256 for procedural ones)."""
    if spec["kind"] == "file":
        if data_path is None:
            raise ValueError("file textures need pybullet_data's path")
        with Image.open(f"{data_path}/{spec['path']}") as im:
            return np.asarray(im.convert("RGB"))
    rng = np.random.default_rng(spec["seed"])
    img = _PATTERNS[spec["kind"]](rng)
    # fine grain everywhere: helps matching, never flat
    grain = rng.normal(0.0, rng.uniform(4.0, 14.0), size=(_SIZE, _SIZE, 1))
    img = img.astype(np.float64) + grain + 0.5 * _value_noise(rng, 32)[..., None] * rng.uniform(10, 40)
    return np.clip(img, 0, 255).astype(np.uint8)


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) float colours with a random but coherent hue family."""
    base = rng.uniform(0, 1)
    hues = (base + rng.uniform(-0.25, 0.25, n) + (rng.random(n) < 0.3) * 0.5) % 1.0
    sat = rng.uniform(0.15, 0.9, n)
    val = rng.uniform(0.25, 1.0, n)
    return np.stack([_hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sat, val)]) * 255.0


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def _value_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """(S, S) smooth noise in about [-1, 1] (bicubic-upsampled random grid, tileable)."""
    g = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    g = np.tile(g, (3, 3))  # tile so the crop wraps seamlessly
    im = Image.fromarray(g, mode="F").resize((3 * _SIZE, 3 * _SIZE), Image.BICUBIC)
    return np.asarray(im)[_SIZE : 2 * _SIZE, _SIZE : 2 * _SIZE].astype(np.float64)


def _grid(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(_SIZE) / _SIZE, np.arange(_SIZE) / _SIZE)


def _checker(rng):
    x, y = _grid(rng)
    n = int(rng.choice([2, 4, 8, 16]))
    c = _palette(rng, 2)
    idx = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(int)
    return c[idx]


def _stripes(rng):
    x, y = _grid(rng)
    k = int(rng.integers(2, 4))
    c = _palette(rng, k)
    n = int(rng.choice([2, 4, 6, 8, 12]))
    axis = x if rng.random() < 0.5 else (x + y) % 1.0 if rng.random() < 0.5 else y
    idx = (np.floor(axis * n * k) % k).astype(int)
    return c[idx]


def _noise(rng):
    n = sum(_value_noise(rng, c) / (i + 1) for i, c in enumerate((4, 8, 16, 32)))
    n = (n - n.min()) / (np.ptp(n) + 1e-9)
    c = _palette(rng, 3)
    t = n[..., None]
    return np.where(t < 0.5, c[0] + (c[1] - c[0]) * (t * 2), c[1] + (c[2] - c[1]) * (t * 2 - 1))


def _bricks(rng):
    rows = int(rng.choice([4, 8, 16]))
    cols = rows // 2
    c = _palette(rng, 2)
    img = np.empty((_SIZE, _SIZE, 3))
    h = _SIZE // rows
    w = _SIZE // cols
    for r in range(rows):
        off = (w // 2) * (r % 2)
        for k in range(-1, cols + 1):
            col = c[0] * rng.uniform(0.75, 1.2)
            x0 = k * w + off
            img[r * h : (r + 1) * h, max(x0, 0) : max(min(x0 + w, _SIZE), 0)] = col
    mortar = max(1, h // 8)
    for r in range(rows):
        img[r * h : r * h + mortar] = c[1]
        off = (w // 2) * (r % 2)
        for k in range(cols + 1):
            x0 = (k * w + off) % _SIZE
            img[r * h : (r + 1) * h, x0 : x0 + mortar] = c[1]
    return img


def _tiles(rng):
    n = int(rng.choice([4, 8, 16]))
    c = _palette(rng, 6)
    idx = rng.integers(0, 6, size=(n, n))
    img = c[np.kron(idx, np.ones((_SIZE // n, _SIZE // n), dtype=int))]
    gap = max(1, _SIZE // n // 12)
    for k in range(n):
        img[k * (_SIZE // n) : k * (_SIZE // n) + gap] *= 0.4
        img[:, k * (_SIZE // n) : k * (_SIZE // n) + gap] *= 0.4
    return img


def _dots(rng):
    c = _palette(rng, 4)
    img = np.empty((_SIZE, _SIZE, 3))
    img[:] = c[0]
    x, y = np.meshgrid(np.arange(_SIZE), np.arange(_SIZE))
    for _ in range(int(rng.integers(20, 80))):
        cx, cy, r = rng.uniform(0, _SIZE), rng.uniform(0, _SIZE), rng.uniform(4, 28)
        dx = np.minimum(np.abs(x - cx), _SIZE - np.abs(x - cx))  # wrap: tileable
        dy = np.minimum(np.abs(y - cy), _SIZE - np.abs(y - cy))
        img[dx * dx + dy * dy < r * r] = c[1 + int(rng.integers(3))]
    return img


def _rings(rng):
    x, y = _grid(rng)
    c = _palette(rng, 2)
    f = int(rng.integers(3, 12))
    warp = _value_noise(rng, 8) * rng.uniform(0.5, 3.0)
    t = 0.5 + 0.5 * np.sin(2 * math.pi * (f * np.hypot(x - 0.5, y - 0.5) * 2 + warp))
    return c[0] + (c[1] - c[0]) * t[..., None]


def _plaid(rng):
    x, y = _grid(rng)
    c = _palette(rng, 3)
    n = int(rng.choice([2, 4, 8]))
    a = (np.sin(2 * math.pi * n * x) > rng.uniform(-0.5, 0.5)).astype(float)
    b = (np.sin(2 * math.pi * n * y) > rng.uniform(-0.5, 0.5)).astype(float)
    return c[0] * (1 - a[..., None]) * (1 - b[..., None]) + c[1] * a[..., None] * 0.7 + c[2] * b[..., None] * 0.5


_PATTERNS = {
    "checker": _checker,
    "stripes": _stripes,
    "noise": _noise,
    "bricks": _bricks,
    "tiles": _tiles,
    "dots": _dots,
    "rings": _rings,
    "plaid": _plaid,
}
