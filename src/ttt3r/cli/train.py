"""``ttt3r train``: train a small CUT3R network on rendered synthetic sequences.

Examples::

    ttt3r train --config configs/train_small.toml --out runs/small
    ttt3r train --config configs/train_small.toml --out runs/small --resume
    ttt3r train --config configs/train_small.toml --set optim.lr=1e-4 --set data.clip_max=12 --out runs/lr
    ttt3r train --config configs/train_small.toml --out runs/small --evaluate   # held-out metrics only
    ttt3r train --out runs/small --export src/ttt3r/assets/models/synth_small  # float16 copy of the weights

The training pool (``data.dir``) is rendered on first use; ``--data DIR``
points at another pool folder. Progress lines go to stdout; the run folder
holds ``checkpoint.pt``, ``model/`` (loadable with ``ttt3r.load_model``),
``log.csv`` and ``loss.png`` (see :mod:`ttt3r.train.loop`).
"""

from __future__ import annotations

import argparse

from ..errors import TTT3RError
from ..io.strict_json import dumps


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise TTT3RError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ttt3r train", description="Train a small CUT3R network on synthetic scenes.")
    p.add_argument("--config", help="training config (.toml or .json); defaults when omitted")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting, e.g. optim.lr=1e-4 or model.enc_depth=4 (repeatable)")
    p.add_argument("--out", help="run folder (checkpoint, model/, log.csv, loss.png); needed except with --print-config")
    p.add_argument("--data", help="pool folder of rendered sequences (overrides data.dir)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    p.add_argument("--init", metavar="WEIGHTS",
                   help="start a new run from these weights (e.g. src/ttt3r/assets/models/synth_small)")
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--evaluate", action="store_true",
                   help="do not train: evaluate the run's last weights on the held-out sequences")
    p.add_argument("--eval-frames", type=int, default=16, help="frames per held-out sequence (default 16)")
    p.add_argument("--eval-stride", type=int, default=2, help="take every N-th frame when evaluating (default 2)")
    p.add_argument("--eval-rules", default="cut3r,ttt3r", help="update rules to evaluate (default cut3r,ttt3r)")
    p.add_argument("--export", metavar="DIR",
                   help="do not train: write the run's last weights to DIR as float16 safetensors + config.json")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..train.config import load_config

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data.dir={dumps(args.data)}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(dumps(cfg.to_dict(), indent=1))
        return 0
    if not args.out:
        raise TTT3RError("--out is required (the run folder)")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise TTT3RError("--max-minutes must be positive")

    from pathlib import Path

    out = Path(args.out)
    if args.export:
        from ..train.export import export_weights

        dest = export_weights(out / "model", args.export)
        size = (dest / "model.safetensors").stat().st_size / 1e6
        print(f"exported {out / 'model'} -> {dest} ({size:.1f} MB, float16)")
        return 0
    if args.evaluate:
        from ..train.evaluate import evaluate_run, format_report

        if args.eval_frames < 2 or args.eval_stride < 1:
            raise TTT3RError("--eval-frames must be >= 2 and --eval-stride >= 1")
        rules = tuple(r.strip() for r in args.eval_rules.split(",") if r.strip())
        from ..update import available_rules

        unknown = [r for r in rules if r not in available_rules()]
        if not rules or unknown:
            raise TTT3RError(f"--eval-rules: choose among {', '.join(available_rules())}, got {args.eval_rules!r}")
        report = evaluate_run(out, cfg, frames=args.eval_frames, stride=args.eval_stride, rules=rules)
        print(format_report(report))
        return 0

    from ..train.loop import Trainer

    if not args.resume and (out / "checkpoint.pt").exists():
        raise TTT3RError(f"{out}: already holds a checkpoint; pass --resume to continue or choose another --out")
    if args.init and args.resume:
        raise TTT3RError("--init starts a new run; it cannot be combined with --resume")
    trainer = Trainer(cfg, out, log=lambda s: print(s, flush=True))
    if args.init:
        trainer.init_from(args.init)
        print(f"initialised from {args.init}", flush=True)
    if args.resume:
        if trainer.resume():
            print(f"resumed {out} at step {trainer.step}", flush=True)
        else:
            print(f"{out}: no checkpoint yet, starting from scratch", flush=True)
    print(f"training {trainer.n_params() / 1e6:.2f} M parameters on {trainer.device} ({cfg.precision}) "
          f"({len(trainer.sampler.seqs)} sequences) -> {out}", flush=True)
    trainer.run(max_seconds=None if args.max_minutes is None else args.max_minutes * 60)
    print(f"done at step {trainer.step}; weights in {out / 'model'}", flush=True)
    return 0
