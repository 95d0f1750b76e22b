"""``ttt3r metrics``: trajectory metrics between two files, printed as JSON.

    ttt3r metrics pose GT EST [--format tum|kitti|euroc] [--align sim3|se3|none]
                              [--delta 1] [--all-pairs | --no-all-pairs]
                              [--max-diff 0.01] [--match time|index]

ATE and RPE (translation, rotation in degrees) follow evo's definitions; the
defaults are the TTT3R paper's protocol (Sim(3) alignment, delta 1 frame, all
pairs). TUM and EuRoC poses are paired by nearest timestamp within
``--max-diff`` seconds; KITTI files (no timestamps) are paired by line.
"""

from __future__ import annotations

import argparse
import json

from ..errors import TTT3RError
from ..eval.align import ALIGN_MODES
from ..eval.metrics_pose import pose_metrics
from ..eval.trajectory import associate
from ..io.trajectory import FORMATS, Trajectory, read_trajectory


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ttt3r metrics", description="Trajectory metrics printed as JSON.")
    sub = p.add_subparsers(dest="what", metavar="METRIC", required=True)
    q = sub.add_parser("pose", help="ATE and RPE of an estimated trajectory against ground truth")
    q.add_argument("gt", metavar="GT", help="ground-truth trajectory file")
    q.add_argument("est", metavar="EST", help="estimated trajectory file")
    q.add_argument("--format", choices=FORMATS, default="tum", help="format of both files (default: tum)")
    q.add_argument("--est-format", choices=FORMATS, default=None, help="format of EST if it differs from GT")
    q.add_argument("--align", choices=ALIGN_MODES, default="sim3", help="alignment of EST to GT (default: sim3)")
    q.add_argument("--delta", type=int, default=1, help="RPE frame distance (default: 1)")
    q.add_argument(
        "--all-pairs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="RPE over every pair (i, i+delta) rather than consecutive pairs of the subsampled sequence",
    )
    q.add_argument("--max-diff", type=float, default=0.01, help="max timestamp difference in seconds (default: 0.01)")
    q.add_argument(
        "--match",
        choices=("time", "index"),
        default=None,
        help="pair poses by timestamp or by position in the file (default: time, index for KITTI)",
    )
    return p


def _pair(gt: Trajectory, est: Trajectory, match: str, max_diff: float, gt_path: str, est_path: str):
    if match == "index":
        if len(gt) != len(est):
            raise TTT3RError(f"{est_path} has {len(est)} poses but {gt_path} has {len(gt)}; cannot pair by index")
        return gt, est
    return associate(gt, est, max_diff=max_diff)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    est_format = args.est_format or args.format
    gt = read_trajectory(args.gt, args.format)
    est = read_trajectory(args.est, est_format)
    match = args.match or ("index" if "kitti" in (args.format, est_format) else "time")
    gt_m, est_m = _pair(gt, est, match, args.max_diff, args.gt, args.est)
    result = pose_metrics(gt_m.poses, est_m.poses, args.align, args.delta, args.all_pairs)
    out = {"gt": args.gt, "est": args.est, "match": match, **result.to_dict()}
    print(json.dumps(out, indent=2))
    return 0
