"""``ttt3r synth``: render a synthetic sequence with exact ground truth.

Example::

    ttt3r synth --out data/synth/orbit0 --frames 300 --seed 0 --motion orbit --size 512x288

Layout of the output folder: see :mod:`ttt3r.synth`. Re-running the same
command resumes an interrupted render.
"""

from __future__ import annotations

import argparse
import re

from ..errors import TTT3RError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise TTT3RError(message)


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"size must look like 512x288, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def build_parser() -> argparse.ArgumentParser:
    from ..synth.motion import MOTIONS
    from ..synth.render import DEFAULT_FOV, DEFAULT_FPS, DEFAULT_SIZE

    p = _Parser(prog="ttt3r synth", description="Render a synthetic sequence with exact depth, poses and intrinsics (needs ttt3r[synth]).")
    p.add_argument("--out", required=True, help="output folder (rgb/, depth/, camera/, trajectory.txt, meta.json)")
    p.add_argument("--frames", type=int, default=100, help="number of frames (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the camera motion (and of the scene unless --scene-seed)")
    p.add_argument("--motion", choices=MOTIONS, default="orbit", help="camera motion (default orbit)")
    p.add_argument("--size", type=_size, default=DEFAULT_SIZE, help=f"WxH in pixels (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    p.add_argument("--fov", type=float, default=DEFAULT_FOV, help=f"horizontal field of view in degrees (default {DEFAULT_FOV:g})")
    p.add_argument("--scene-seed", type=int, default=None, help="seed of objects, textures, light and layout (default: --seed)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, help=f"frame rate for trajectory timestamps (default {DEFAULT_FPS:g})")
    p.add_argument("--workers", type=int, default=1, help="parallel rendering processes (default 1; same output)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..synth.render import render_sequence

    out = render_sequence(
        args.out,
        frames=args.frames,
        seed=args.seed,
        motion=args.motion,
        size=args.size,
        fov_deg=args.fov,
        scene_seed=args.scene_seed,
        fps=args.fps,
        progress=not args.no_progress,
        workers=args.workers,
    )
    print(out)
    return 0
