"""Seeded camera paths (pure numpy): ``orbit``, ``walk``, ``forward``, ``loop``, ``pan``.

Every path is a function of (motion, number of frames, seed, scene camera zone)
only, so it can be computed up front (thousands of poses cost nothing) and the
same arguments always give the same poses. Poses are camera-to-world 4x4
float64, OpenCV axes, in the scene's world frame (z up, metres).

* ``orbit``: a horizontal circle of constant radius and height around the scene
  centre (the world z axis), always looking at a fixed point on that axis. One
  revolution takes ``min(frames, P)`` frames (P from the seed, 240..480).
* ``walk``: a smooth random walk (cubic B-spline through random control points
  every 20..40 frames) around the room, looking at a smoothly wandering target
  near the centre, with a little roll.
* ``forward``: along the corridor (+x) at 2..5 cm per frame (slower when the
  corridor, at most 80 m, would be too short), with smooth sway, bob, yaw and
  pitch jitter; it stops 3 m before the end wall.
* ``loop``: a closed, wobbly loop around the centre; the last frame's pose is
  exactly the first frame's (``laps`` whole turns, one per ~300..600 frames).
* ``pan``: a camera on a fixed point of the room (a tripod) that only turns:
  it sweeps to and fro (35..70 degrees either side of the room's centre, one
  sweep per 90..180 frames) with smooth wander, looks 5..25 degrees down with a
  smooth nod, and rolls a little. Every frame-to-frame motion is a pure
  rotation (zero translation), the classic test of rotation estimation (like
  TUM's ``rpy`` and ``360`` sequences).
"""

from __future__ import annotations

import math

import numpy as np

from .camera import look_at

MOTIONS = ("orbit", "walk", "forward", "loop", "pan")

#: which scene layout each motion needs
LAYOUT_FOR_MOTION = {"orbit": "room", "walk": "room", "forward": "corridor", "loop": "room", "pan": "room"}


def corridor_length(frames: int) -> float:
    """Corridor length (m) for a ``forward`` sequence of ``frames`` frames."""
    return float(np.clip(0.05 * max(frames - 1, 0) + 5.0, 10.0, 80.0))


def camera_path(motion: str, frames: int, seed: int, zone: dict) -> np.ndarray:
    """(frames, 4, 4) float64 camera-to-world poses (OpenCV axes) for ``motion``.

    ``zone`` is :attr:`ttt3r.synth.scene.SceneSpec.camera_zone`.
    """
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}")
    rng = np.random.default_rng([int(seed), MOTIONS.index(motion), 4242])
    return {"orbit": _orbit, "walk": _walk, "forward": _forward, "loop": _loop,
            "pan": _pan}[motion](rng, int(frames), zone)


def bspline(ctrl: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Uniform cubic B-spline through (M, D) control points at parameters s in [0, M - 3]."""
    ctrl = np.asarray(ctrl, dtype=np.float64)
    s = np.clip(np.asarray(s, dtype=np.float64), 0.0, ctrl.shape[0] - 3 - 1e-9)
    i = np.floor(s).astype(int)
    t = (s - i)[:, None]
    b0 = (1 - t) ** 3 / 6
    b1 = (3 * t**3 - 6 * t**2 + 4) / 6
    b2 = (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6
    b3 = t**3 / 6
    return b0 * ctrl[i] + b1 * ctrl[i + 1] + b2 * ctrl[i + 2] + b3 * ctrl[i + 3]


def _smooth(rng: np.random.Generator, n: int, every: int, sigma: float, dim: int = 1) -> np.ndarray:
    """(n, dim) smooth zero-mean noise: B-spline through N(0, sigma) knots every ``every`` frames."""
    m = n // every + 4
    ctrl = rng.normal(0.0, sigma, size=(m, dim))
    return bspline(ctrl, np.arange(n) / every)


def _orbit(rng, n, zone):
    ea, eb = zone["ellipse"]
    r = rng.uniform(0.65, 0.95) * min(ea, eb)
    h = rng.uniform(zone["min_height"], zone["max_height"])
    target = np.array([0.0, 0.0, rng.uniform(0.2, 0.8)])
    period = min(n, int(rng.integers(240, 481)))
    direction = 1.0 if rng.random() < 0.5 else -1.0
    th0 = rng.uniform(0, 2 * math.pi)
    poses = np.empty((n, 4, 4))
    for k in range(n):
        th = th0 + direction * 2 * math.pi * k / period
        poses[k] = look_at([r * math.cos(th), r * math.sin(th), h], target)
    return poses


def _walk(rng, n, zone):
    ea, eb = zone["ellipse"]
    lo_r, hi_r = zone["rho"]
    every = int(rng.integers(20, 41))
    m = n // every + 4
    th = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(rng.choice([-0.15, 0.15]), 0.35, size=m))
    rho = rng.uniform(lo_r + 0.05, hi_r - 0.05, size=m)
    hgt = rng.uniform(zone["min_height"], zone["max_height"], size=m)
    tr = zone["target_radius"]
    tgt = np.stack([rng.uniform(-tr, tr, m), rng.uniform(-tr, tr, m), rng.uniform(0.1, 1.0, m)], axis=1)
    s = np.arange(n) / every
    pol = bspline(np.stack([th, rho, hgt], axis=1), s)
    tg = bspline(tgt, s)
    roll = _smooth(rng, n, every, math.radians(2.0))[:, 0]
    eye = np.stack([pol[:, 1] * ea * np.cos(pol[:, 0]), pol[:, 1] * eb * np.sin(pol[:, 0]), pol[:, 2]], axis=1)
    return np.stack([look_at(e, t, roll_rad=r) for e, t, r in zip(eye, tg, roll)])


def _forward(rng, n, zone):
    x0, x1 = zone["x"]
    v = min(rng.uniform(0.02, 0.05), (x1 - x0) / max(n - 1, 1))
    x = x0 + v * np.arange(n)
    dist = x - x0
    yh = zone["y_half"]

    def wave(amp, period_m):
        a = rng.uniform(0.3, 1.0, 2)
        a = a / a.sum() * amp
        ph = rng.uniform(0, 2 * math.pi, 2)
        per = period_m * rng.uniform(0.6, 1.4, 2)
        return a[0] * np.sin(2 * math.pi * dist / per[0] + ph[0]) + a[1] * np.sin(2 * math.pi * dist / per[1] + ph[1])

    y = wave(rng.uniform(0.2, 0.9) * yh, rng.uniform(3.0, 8.0))
    h0 = rng.uniform(zone["min_height"] + 0.05, zone["max_height"] - 0.05)
    z = h0 + wave(min(0.05, h0 - zone["min_height"]), rng.uniform(0.8, 1.5))
    yaw = wave(math.radians(rng.uniform(3, 12)), rng.uniform(2.0, 6.0))
    pitch = -math.radians(rng.uniform(0, 15)) + wave(math.radians(3), rng.uniform(2.0, 6.0))
    roll = wave(math.radians(1.5), rng.uniform(1.0, 3.0))
    d = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=1)
    eye = np.stack([x, y, z], axis=1)
    return np.stack([look_at(e, e + dd, roll_rad=r) for e, dd, r in zip(eye, d, roll)])


def _loop(rng, n, zone):
    ea, eb = zone["ellipse"]
    laps = max(1, int(round(n / rng.uniform(300, 600))))
    phi = 2 * math.pi * laps * np.arange(n) / max(n - 1, 1)
    a = rng.uniform(-1, 1, 3)
    a = a / np.abs(a).sum() * rng.uniform(0.05, 0.18)
    psi = rng.uniform(0, 2 * math.pi, 6)
    rho = 0.72 + sum(a[k] * np.cos((k + 1) * phi + psi[k]) for k in range(3))
    th0 = rng.uniform(0, 2 * math.pi)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    th = th0 + sign * phi
    hmin, hmax = zone["min_height"], zone["max_height"]
    h = 0.5 * (hmin + hmax) + 0.5 * (hmax - hmin) * rng.uniform(0, 0.9) * np.sin(phi + psi[3])
    eye = np.stack([rho * ea * np.cos(th), rho * eb * np.sin(th), h], axis=1)
    tr = zone["target_radius"]
    tgt = np.stack(
        [0.5 * tr * np.cos(phi + psi[4]), 0.5 * tr * np.sin(2 * phi + psi[5]), 0.5 + 0.2 * np.sin(phi + psi[3])], axis=1
    )
    # blend looking inward with looking along the path's tangent (periodic too)
    tangent = np.stack([-ea * np.sin(th), eb * np.cos(th), np.zeros_like(th)], axis=1) * sign
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    inward = tgt - eye
    inward /= np.linalg.norm(inward, axis=1, keepdims=True)
    w = rng.uniform(0.0, 0.6)
    d = (1 - w) * inward + w * tangent
    return np.stack([look_at(e, e + dd) for e, dd in zip(eye, d)])


def _pan(rng, n, zone):
    ea, eb = zone["ellipse"]
    lo_r, hi_r = zone["rho"]
    th, rho = rng.uniform(0, 2 * math.pi), lo_r + (hi_r - lo_r) * rng.uniform(0.05, 0.4)
    eye = np.array([rho * ea * math.cos(th), rho * eb * math.sin(th),
                    rng.uniform(zone["min_height"], zone["max_height"])])
    # sweep to and fro about the direction of the room's centre, with smooth wander
    every = int(rng.integers(20, 41))
    amp, period = math.radians(rng.uniform(35, 70)), rng.uniform(90, 180)
    k = np.arange(n)
    yaw = (th + math.pi + amp * np.sin(2 * math.pi * k / period + rng.uniform(0, 2 * math.pi))
           + _smooth(rng, n, every, math.radians(6.0))[:, 0])
    pitch = -math.radians(rng.uniform(5, 25)) + _smooth(rng, n, every, math.radians(4.0))[:, 0]
    roll = _smooth(rng, n, every, math.radians(2.0))[:, 0]
    d = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], axis=1)
    return np.stack([look_at(eye, eye + dd, roll_rad=r) for dd, r in zip(d, roll)])
