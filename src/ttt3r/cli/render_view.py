"""``ttt3r render-view RUN_DIR --poses FILE --intrinsics SPEC --out DIR``: unseen views of a run."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="ttt3r render-view",
        description="Re-run a reconstruction's frames (weights and settings from its run.json), then ask the "
                    "network what each given camera sees from its ray map alone (no state update): RGB, depth, "
                    "confidence per camera, written as color/, depth/, conf/, camera/ under --out.")
    ap.add_argument("run_dir", help="a ttt3r reconstruct output folder (its run.json)")
    ap.add_argument("--poses", required=True, metavar="FILE",
                    help="camera-to-world poses to query (TUM, KITTI, EuRoC, COLMAP images.txt), in the run's "
                         "output frame (its camera/*.npz pose)")
    ap.add_argument("--poses-format", default="auto", choices=["auto", "tum", "kitti", "euroc", "colmap"])
    ap.add_argument("--intrinsics", required=True, metavar="SPEC",
                    help="intrinsics of the queried cameras in the run's source-frame pixels: 'fx,fy,cx,cy', "
                         "a 3x3 file, or a COLMAP cameras.txt")
    ap.add_argument("--out", "-o", required=True, help="output folder")
    ap.add_argument("--device", default=None, help="default: the run's")
    return ap


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..render_view import render_views

    results = render_views(args.run_dir, args.poses, args.intrinsics, args.out, args.poses_format, args.device)
    print(f"{len(results)} views -> {args.out}", file=sys.stderr)
    return 0
