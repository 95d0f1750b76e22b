"""``ttt3r refine RUN_DIR``: loop closure on a finished chunked run (``reconstruct --chunk N``).

    ttt3r refine RUN_DIR [--weights W] [--device auto] [--min-gap F] [--min-similarity S]
                         [--per-frame --top-k K] [--max-candidates M] [--verify-budget B]

Revisits are found from the run's saved images (``color/``), each measured by
the network on a two-frame session, verified, and closed in a Sim(3) pose
graph over the chunks; then the camera files (old pose kept as ``pose_raw``),
depth, trajectory, PLY, COLMAP, GLB and preview are rewritten and ``run.json``
lists the loops with their residuals (docs/loop_closure.md).

A refined run is refined again from its raw outputs (``pose_raw``, the depth
before the recorded ``depth_scale``, the chunk records): the same options give
the same result, other options replace the first refinement.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..io.strict_json import dumps


def _budget(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        b = float(text)
    except ValueError:
        b = -1.0
    if not 0.0 <= b <= 2.0:
        raise argparse.ArgumentTypeError(f"must be a share in [0, 2] or 'none', got {text!r}")
    return b


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ttt3r refine", description="Loop closure on a finished chunked ttt3r run.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="output folder of 'ttt3r reconstruct --chunk N'")
    p.add_argument("--weights", default=None,
                   help="checkpoint for the two-frame verification (default: as reconstruct)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, mps or auto (default)")
    p.add_argument("--update", default="ttt3r", help="state-update rule of the two-frame sessions (default: ttt3r)")
    p.add_argument("--min-gap", type=int, default=None, metavar="F",
                   help="frames a loop's two frames must be apart (default: twice the chunk size)")
    p.add_argument("--min-similarity", type=float, default=None, metavar="S",
                   help="descriptor cosine similarity a candidate needs (default: 0.6, for the image "
                        "descriptors of the saved images)")
    p.add_argument("--top-k", type=int, default=1, metavar="K",
                   help="with --per-frame: candidates per frame (default: 1)")
    p.add_argument("--per-frame", action="store_true",
                   help="each frame's --top-k most similar frames, most similar first, instead of the best "
                        "pair of each chunk pair spread over the chunks (the default)")
    p.add_argument("--max-candidates", type=int, default=200, metavar="M",
                   help="candidates verified at most (default: 200)")
    p.add_argument("--verify-budget", type=_budget, default=0.04, metavar="B",
                   help="two-frame verifications cost at most this share of the run's frames: at most "
                        "floor(B * frames / 2) candidates (default: 0.04; 'none': only --max-candidates)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, no summary line")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from ..api import load_model
    from ..loops.refine import LoopSettings, chunk_graph, network_pair, pair_measure, refine_run, run_depth_reader
    from ..pipeline import choose_weights

    chunk_graph(args.run_dir)  # a chunked run? (one line if not, before loading any weights)
    model = load_model(choose_weights(args.weights, args.quiet), args.device, quiet=args.quiet)
    info = json.loads((Path(args.run_dir) / "run.json").read_text(encoding="utf-8"))
    size = (info.get("settings") or {}).get("size")
    measure = pair_measure(network_pair(model, args.run_dir, args.update, size), run_depth_reader(args.run_dir))
    st = LoopSettings(min_gap=args.min_gap, top_k=args.top_k, min_similarity=args.min_similarity,
                      max_candidates=args.max_candidates, verify_budget=args.verify_budget,
                      per_chunk_pair=not args.per_frame)
    s = refine_run(args.run_dir, measure, st, progress=not args.quiet)
    if not args.quiet:
        print(dumps({"candidates": s.candidates, "verified": s.verified, "kept": s.kept, "frames": s.frames,
                          "seconds": round(s.seconds, 3), "rewrite_s": round(s.rewrite_s, 3)}), file=sys.stdout)
    return 0
