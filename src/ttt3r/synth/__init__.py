"""Synthetic sequences with exact ground truth (depth, poses, intrinsics).

Scenes are enclosed rooms or corridors (floor, ceiling, four walls) filled with
textured objects: meshes that ``pybullet_data`` ships (duck, teddy, soccer ball,
tray, torus, mug, lego, toys, bunny, the 1000 ``random_urdfs`` shapes) and
procedural boxes, tables, shelves, pillars, spheres and cylinders, with
procedural or pybullet_data textures and a seeded light. They are rendered on
the CPU by pybullet's TinyRenderer (``p.DIRECT``, no OpenGL). pybullet is the
optional extra ``ttt3r[synth]``; it is imported only when rendering.

Seeds: ``seed`` drives the camera motion, ``scene_seed`` (default: ``seed``)
drives the layout, objects, textures and light. The same arguments always
give the same files (same pybullet version).

Output layout (``DIR`` = ``out_dir``)::

    DIR/
      rgb/%06d.png        uint8 RGB, H x W
      depth/%06d.npy      float32 (H, W) metric depth: z along the optical axis
                          in metres. 0 would mean "no geometry", but scenes are
                          enclosed so every pixel hits a surface (none expected).
      camera/%06d.npz     pose: (4, 4) float64 camera-to-world, OpenCV axes
                          (x right, y down, z forward); intrinsics: (3, 3)
                          float64 in pixels (fx = fy, principal point at the
                          exact centre ((W - 1) / 2, (H - 1) / 2))
      trajectory.txt      TUM: "t tx ty tz qx qy qz qw" per frame, t = index / fps
                          (camera-to-world, same axes; '#' comment first line)
      meta.json           generator_version, seed, scene_seed, motion, frames,
                          width, height, fov_deg (horizontal), near, far, fps,
                          intrinsics, layout, bounds, light, surfaces, objects,
                          camera_zone, versions, complete (false while rendering)

World frame: pybullet's, z up, metres, floor at z = 0 (not the first camera's
frame: evaluation aligns trajectories anyway). Depth is exact: TinyRenderer
samples each pixel at its centre with the projection built from ``K``, so
unprojecting a pixel's depth with ``K`` and the pose lands on the surface (to
~1e-6 relative, float32 z-buffer precision).

Each file is written atomically; a frame counts as done when its three files
exist, so an interrupted render resumes by skipping them (re-run the same
command). ``workers > 1`` renders in parallel processes with identical output.
Command line: ``ttt3r synth --out DIR --frames N --seed S --motion orbit``
(``ttt3r synth --help``). Python API::

    from ttt3r.synth import render_sequence, load_sequence
    seq = load_sequence(render_sequence("out/orbit", frames=48, seed=0, motion="orbit"))
    f = seq[0]  # SynthFrame: rgb (H, W, 3) uint8, depth (H, W) float32, pose, intrinsics
"""

from __future__ import annotations

from .dataset import SynthFrame, SynthSequence, load_sequence
from .motion import MOTIONS
from .render import GENERATOR_VERSION, render_sequence

__all__ = ["GENERATOR_VERSION", "MOTIONS", "SynthFrame", "SynthSequence", "load_sequence", "render_sequence"]
