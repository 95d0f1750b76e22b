"""``ttt3r eval``: run a benchmark protocol of the TTT3R paper, or merge sharded results.

    ttt3r eval pose|depth|recon --dataset NAME[,NAME...] [--root PATH | --data-root data]
               --weights W --update cut3r,ttt3r [--reset-every N] [--frames N[,N...]]
               [--size 512|224] [--device auto] [--dtype fp32] --out DIR
               [--shard i/n] [--ray ADDRESS|auto|local] [--seqs a,b]
               [--depth-align metric,scale_l1,scale_shift] [--depth-resize original|crop]
               [--chunk N [--overlap K] [--chunk-align sim3|se3]] [--known intrinsics|poses]
               [--no-plots] [--oracle | --oracle-drift SPEC]
    ttt3r eval merge DIR

Every update rule runs on every sequence; results are cached per sequence
under ``DIR/cache`` (a rerun resumes), tables go to ``DIR/tables`` (Markdown,
CSV, JSON), plots to ``DIR/plots`` and the means to ``DIR/summary_<task>.md``. With
``--shard i/n`` (i from 0) only every n-th sequence is run and only the cache is
written: run ``ttt3r eval merge DIR`` when all shards are done. ``--oracle``
feeds the ground truth as the prediction (a pipeline check: zero errors);
``--oracle-drift scale=2,rot=0.05,noise=0.01,seed=0`` feeds it drifted as a
chunked network's predictions, put together by the chunk aligner (``--chunk``).
Exit status: 0 when every sequence was evaluated, 1 when some failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import TTT3RError

def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="registered dataset name(s), comma separated")
    p.add_argument("--root", default=None, help="the dataset folder (default: DATA_ROOT/<its usual folder>)")
    p.add_argument("--data-root", default="data", help="parent of the preprocessed benchmarks (default: data)")
    p.add_argument("--weights", "-w", default=None, help="checkpoint path or known name (required unless --oracle)")
    p.add_argument("--update", default="cut3r,ttt3r", help="update rule(s), comma separated (default: cut3r,ttt3r)")
    p.add_argument("--reset-every", type=int, default=0, metavar="N", help="reset the state every N frames (0: never)")
    p.add_argument("--chunk", type=int, default=0, metavar="N",
                   help="overlapping chunks: reset every N frames, align chunks on the overlap (0: none)")
    p.add_argument("--overlap", type=int, default=None, metavar="K",
                   help="with --chunk: frames re-fed from the previous chunk (1 <= K < N; default min(4, N-1))")
    p.add_argument("--chunk-align", choices=["sim3", "se3"], default="sim3",
                   help="with --chunk: robust Sim(3) on the overlap's point maps, or the SE(3) pose chain")
    p.add_argument("--frames", default=None, metavar="N[,N...]",
                   help="evaluate only the first N frames of each sequence; a comma list sweeps lengths")
    p.add_argument("--size", type=int, choices=[512, 224], default=None, help="preprocessing size (default: checkpoint's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="compute precision")
    p.add_argument("--out", "-o", required=True, help="output folder (cache, tables, plots)")
    p.add_argument("--shard", default=None, metavar="i/n", help="run only shard i of n (0 <= i < n)")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="run sequences as Ray tasks: a cluster address, 'auto' or 'local' (needs ttt3r[eval])")
    p.add_argument("--seqs", default=None, help="only these sequences, comma separated")
    p.add_argument("--depth-align", default=None,
                   help="depth alignments, comma separated (default: metric,scale_l1,scale_shift as the paper)")
    p.add_argument("--depth-resize", choices=["original", "crop"], default="original",
                   help="original: prediction resized to the full GT size (the paper); crop: GT mapped onto the crop")
    p.add_argument("--no-plots", action="store_true", help="skip trajectory and length plots")
    p.add_argument("--known", choices=["intrinsics", "poses"], default=None,
                   help="feed the ground-truth cameras as ray maps: intrinsics (first frame conditioned) or poses "
                        "(every frame; the evaluated poses are then the given ones); the paper uses neither")
    p.add_argument("--oracle", action="store_true", help="use the ground truth as the prediction (pipeline check)")
    p.add_argument("--loop-closure", action="store_true",
                   help="with --chunk: close loops (revisits) in a Sim(3) pose graph over the chunks before scoring "
                        "(network or --oracle-drift; docs/loop_closure.md)")
    p.add_argument("--loop-every", type=int, default=None, metavar="M",
                   help="with --loop-closure: also close loops every M chunks while the sequence streams, the next "
                        "chunks aligned to the corrected map (default: only after the last frame)")
    p.add_argument("--oracle-drift", default=None, metavar="SPEC",
                   help="the ground truth drifted as a chunked network's, e.g. scale=2,rot=0.05,noise=0.01,seed=0 "
                        "(per-chunk scale in [1/scale, scale], rot deg/frame drift, noise), put together by the "
                        "same chunk aligner as the network (with --chunk)")
    p.add_argument("--merge", action="store_true", help="only build tables from the cache in --out (no evaluation)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ttt3r eval", description="Run a TTT3R benchmark protocol.")
    from ..eval.tasks import get_task, task_names  # the task registry: names and one-line help

    sub = ap.add_subparsers(dest="task", metavar="TASK", required=True)
    for task in task_names():
        help_ = get_task(task).help
        _add_run_args(sub.add_parser(task, help=help_, description=help_))
    m = sub.add_parser("merge", help="build tables and plots from the cached results of all shards")
    m.add_argument("out", metavar="DIR", help="the --out folder of the shards")
    m.add_argument("--no-plots", action="store_true", help="skip plots")
    return ap


def _list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    return items or None


def _frames(text: str | None) -> tuple[int | None, ...]:
    if text is None:
        return (None,)
    out = []
    for x in _list(text) or ():
        try:
            n = int(x)
        except ValueError:
            raise TTT3RError(f"--frames: {x!r} is not a number of frames") from None
        if n < 2:
            raise TTT3RError(f"--frames: need at least 2 frames, got {n}")
        out.append(n)
    if not out:
        raise TTT3RError("--frames: give at least one number")
    return tuple(dict.fromkeys(out))


def _print_files(files: list[Path], out: Path) -> None:
    tables = [f for f in files if f.suffix == ".md"]
    for f in tables:
        print(f"wrote {f}")
    n_png = sum(1 for f in files if f.suffix == ".png")
    if n_png:
        print(f"wrote {n_png} plot(s) under {out / 'plots'}")


def _print_summaries(files: list[Path], out: Path) -> None:
    _print_files(files, out)
    for f in files:
        if f.name.startswith("summary_") and f.suffix == ".md":
            print(f.read_text())


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..eval import runner
    from ..eval.datasets import DATASETS
    from ..eval.distributed import parse_shard
    from ..eval.metrics_depth import DEPTH_ALIGN_MODES
    from ..eval.predictors import PredictorOptions, create_predictor
    from ..eval.protocols import DEFAULT_DEPTH_ALIGNS

    if args.task == "merge":
        out = Path(args.out)
        files = runner.merge(out, plots=not args.no_plots)
        _print_summaries(files, out)
        return 0

    out = Path(args.out)
    if args.merge:
        _print_summaries(runner.merge(out, plots=not args.no_plots), out)
        return 0
    datasets = _list(args.dataset) or ()
    for d in datasets:
        if d not in DATASETS:
            from ..eval.datasets import get_dataset

            get_dataset(d)  # raises the registry's one-line error listing the known names
    rules = _list(args.update) or ()
    if not rules:
        raise TTT3RError("--update: give at least one rule (cut3r, ttt3r)")
    oracle = args.oracle or args.oracle_drift is not None
    if args.oracle and args.oracle_drift is not None:
        raise TTT3RError("--oracle and --oracle-drift exclude each other")
    if not oracle:
        known = runner.known_rules()
        bad = [r for r in rules if r not in known]
        if bad:
            raise TTT3RError(f"--update: unknown rule {bad[0]!r} (known: {', '.join(known)})")
    if args.chunk < 0:
        raise TTT3RError("--chunk must be >= 0")
    opts = PredictorOptions(weights=args.weights, device=args.device, dtype=args.dtype, size=args.size,
                            reset_every=args.reset_every, chunk=args.chunk, overlap=args.overlap,
                            chunk_align=args.chunk_align, oracle_drift=args.oracle_drift, known=args.known,
                            loop_closure=args.loop_closure, loop_every=args.loop_every)
    name = "oracle_drift" if args.oracle_drift is not None else "oracle" if args.oracle else "session"
    predictor = create_predictor(name, opts)
    if args.reset_every < 0:
        raise TTT3RError("--reset-every must be >= 0")
    aligns = _list(args.depth_align) or DEFAULT_DEPTH_ALIGNS
    bad = [a for a in aligns if a not in DEPTH_ALIGN_MODES]
    if bad:
        raise TTT3RError(f"--depth-align: unknown mode {bad[0]!r} (known: {', '.join(DEPTH_ALIGN_MODES)})")
    cfg = runner.EvalConfig(
        task=args.task, datasets=datasets, out=out, root=args.root, data_root=args.data_root, rules=rules,
        reset_every=args.reset_every, frames=_frames(args.frames), seqs=_list(args.seqs),
        shard=parse_shard(args.shard), depth_aligns=tuple(aligns), depth_resize=args.depth_resize,
        plots=not args.no_plots,
    )
    info = {"argv": ["ttt3r", "eval", *argv], "task": cfg.task, "datasets": list(datasets), "rules": list(rules),
            "predictor": predictor.describe()}
    summary = runner.run_evaluation(cfg, predictor, ray=args.ray, run_info=info)
    if summary.files:
        _print_summaries(summary.files, out)
    for f in summary.failures:
        print(f"ttt3r eval: failed: {f}", file=sys.stderr)
    return 1 if summary.failures else 0
