"""Does a model estimate camera rotation? Predicted against true turns on held-out pairs.

For every held-out sequence of a training config's pool (rendered first when
missing) and every gap ``g``, the frames ``start`` and ``start + g`` are streamed
as a two-frame sequence (cut3r rule). With ``R`` the true rotation of the second
camera to the first and ``R'`` the predicted one, it reports, per gap, the mean of

* ``gt_deg``: the true angle of ``R`` (degrees);
* ``along_deg``: the predicted rotation vector projected on the true axis, the part
  of the true turn the model predicts (a perfect model: ``gt_deg``; one that never
  turns: 0; one that turns the wrong way: negative);
* ``err_deg``: the angle of ``R'^T R`` (the identity's error is ``gt_deg``);
* ``swap_deg``: how far the predicted rotation moves when the first frame is replaced
  by the first frame of the next sequence (another scene). A model that compares the
  two frames changes its answer; one whose rotation output ignores the first frame
  does not.

With ``--mask R`` it also measures whether the network fills what it cannot see
from the state (the cross-view completion of ``loss.mask_ratio``): a share ``R`` of
the second frame's 16x16 squares is greyed out (:func:`ttt3r.train.masking.mask_later_frames`)
and the depth Abs Rel over the hidden pixels (median-scaled over them) is reported
with the true first frame (``hidden_true``), the next sequence's first frame
(``hidden_swap``) and a grey one (``hidden_grey``). A network that reads the
hidden squares off the state does best with the true first frame; one that
guesses them from the visible squares scores the same with all three.

Example (the bundled model on its held-out pool, a minute on two threads)::

    python benchmarks/rotation_probe.py --config configs/train_small_stage4.toml \\
        --model src/ttt3r/assets/models/synth_small --out runs/rotation_probe

Writes ``OUT/results.json`` and ``OUT/rotation_probe.png`` (predicted against true
angle, one colour per gap) and prints the table. ``--set KEY=VALUE`` overrides the
config as in ``ttt3r train`` (e.g. ``--set data.dir=...``); ``--skip forward`` leaves
out a motion (corridors turn little).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def rotation_rows(model, seqs: list, names: list[str], gaps: list[int], start: int) -> list[dict]:
    """One row per (sequence, gap): true / predicted angles (degrees), see the module doc."""
    from scipy.spatial.transform import Rotation

    from ttt3r.train.evaluate import predict_sequence

    rows = []
    for i, (seq, name) in enumerate(zip(seqs, names)):
        other = seqs[(i + 1) % len(seqs)]
        for g in gaps:
            a, b = start, start + g
            if b >= len(seq.rgb):
                raise SystemExit(f"rotation_probe: {name} has {len(seq.rgb)} frames, gap {g} from {start} needs {b + 1}")
            gt = np.linalg.inv(seq.poses[a]) @ seq.poses[b]
            _, pred = predict_sequence(model, seq.rgb[[a, b]], "cut3r")
            _, swapped = predict_sequence(model, np.stack([other.rgb[a], seq.rgb[b]]), "cut3r")
            r_gt = Rotation.from_matrix(gt[:3, :3])
            r_pr = Rotation.from_matrix(pred[1, :3, :3])
            r_sw = Rotation.from_matrix(swapped[1, :3, :3])
            v = r_gt.as_rotvec()
            axis = v / max(np.linalg.norm(v), 1e-12)
            rows.append(dict(
                sequence=name, gap=g,
                gt_deg=float(np.degrees(r_gt.magnitude())),
                pred_deg=float(np.degrees(r_pr.magnitude())),
                along_deg=float(np.degrees(r_pr.as_rotvec() @ axis)),
                err_deg=float(np.degrees((r_pr.inv() * r_gt).magnitude())),
                swap_deg=float(np.degrees((r_sw.inv() * r_pr).magnitude())),
            ))
    return rows


def second_depth(model, img: torch.Tensor) -> np.ndarray:
    """Self-view depth (H, W) of the second of two frames ``img`` (2, 3, H, W) in [-1, 1] (cut3r rule)."""
    from ttt3r.train.loop import forward_clip

    model.eval()
    with torch.no_grad():
        pred = forward_clip(model, img[None].to(model.device, model.dtype), want_rgb=False)
    return pred.pts_self[0, 1, ..., 2].float().cpu().numpy()


def completion_rows(model, seqs: list, names: list[str], gaps: list[int], start: int, ratio: float,
                    seed: int = 0) -> list[dict]:
    """One row per (sequence, gap): hidden-pixel depth Abs Rel with the true / another / a grey first frame."""
    from ttt3r.preprocess import normalize
    from ttt3r.train.masking import mask_later_frames

    def as_input(rgb: np.ndarray) -> torch.Tensor:  # (3, H, W) in [-1, 1], as the streamed pairs above
        return normalize(rgb)[0]

    rows = []
    for i, (seq, name) in enumerate(zip(seqs, names)):
        other = seqs[(i + 1) % len(seqs)]
        for g in gaps:
            a, b = start, start + g
            pair = torch.stack([as_input(seq.rgb[a]), as_input(seq.rgb[b])])
            masked = mask_later_frames(pair[None], ratio, 16, seed=seed * 7919 + i * 131 + g)[0]
            hidden = (masked[1] == 0).all(0).numpy() & (seq.depth[b] > 0)
            gt = seq.depth[b][hidden].astype(np.float64)
            row = dict(sequence=name, gap=g)
            for key, first in (("hidden_true", masked[0]), ("hidden_swap", as_input(other.rgb[a])),
                               ("hidden_grey", torch.zeros_like(masked[0]))):
                d = second_depth(model, torch.stack([first, masked[1]]))[hidden].astype(np.float64)
                d = np.maximum(d, 1e-6) * (np.median(gt) / max(np.median(d), 1e-6))
                row[key] = float(np.mean(np.abs(d - gt) / gt))
            rows.append(row)
    return rows


def summarise(rows: list[dict], gaps: list[int],
              keys: tuple[str, ...] = ("gt_deg", "pred_deg", "along_deg", "err_deg", "swap_deg")) -> dict:
    return {str(g): {k: float(np.mean([r[k] for r in rows if r["gap"] == g])) for k in keys} for g in gaps}


def plot(rows: list[dict], gaps: list[int], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    top = max(r["gt_deg"] for r in rows) * 1.05
    ax.plot([0, top], [0, top], "k--", lw=1, label="perfect")
    ax.axhline(0.0, color="0.6", lw=1, label="never turns")
    for i, g in enumerate(gaps):
        rs = [r for r in rows if r["gap"] == g]
        ax.scatter([r["gt_deg"] for r in rs], [r["along_deg"] for r in rs], s=14, color=f"C{i}",
                   label=f"gap {g} frames")
    ax.set_xlabel("true rotation between the two frames (deg)")
    ax.set_ylabel("predicted rotation along the true axis (deg)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="training config whose held-out pool is probed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--model", required=True, help="model folder or weights file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--gaps", default="1,2,4", help="frame gaps (default 1,2,4)")
    p.add_argument("--start", type=int, default=20, help="first frame of each pair (default 20)")
    p.add_argument("--skip", default="", help="motions to leave out, comma-separated (e.g. forward)")
    p.add_argument("--mask", type=float, default=0.0,
                   help="also probe cross-view completion with this share of the second frame hidden (0: off)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    import ttt3r
    from ttt3r.errors import TTT3RError
    from ttt3r.train.config import load_config
    from ttt3r.train.data import SeqArrays, prepare_pool, sequence_dirs

    torch.set_num_threads(args.threads)
    try:
        gaps = [int(g) for g in args.gaps.split(",") if g.strip()]
        if not gaps or min(gaps) < 1 or args.start < 0:
            raise ValueError
    except ValueError:
        raise SystemExit(f"rotation_probe: --gaps must be positive whole numbers and --start >= 0, got {args.gaps!r}")
    if not 0.0 <= args.mask < 1.0:
        raise SystemExit(f"rotation_probe: --mask must be in [0, 1), got {args.mask}")
    skip = {m.strip() for m in args.skip.split(",") if m.strip()}
    try:
        cfg = load_config(args.config, args.overrides)
        prepare_pool(cfg.data, splits=("heldout",), log=lambda s: None)
        items = [(path, m) for path, _, m in sequence_dirs(cfg.data, "heldout") if m not in skip]
        if not items:
            raise TTT3RError(f"{args.config}: no held-out sequences left to probe")
        seqs = [SeqArrays.load(path) for path, _ in items]
        model = ttt3r.load_model(args.model, device="cpu")
    except TTT3RError as e:
        raise SystemExit(f"rotation_probe: {e}")
    rows = rotation_rows(model, seqs, [Path(path).name for path, _ in items], gaps, args.start)
    summary = summarise(rows, gaps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"model": str(args.model), "config": str(args.config), "start": args.start, "gaps": gaps,
              "summary": summary, "rows": rows}
    if args.mask > 0:
        ckeys = ("hidden_true", "hidden_swap", "hidden_grey")
        crows = completion_rows(model, seqs, [Path(path).name for path, _ in items], gaps, args.start, args.mask)
        report["completion"] = {"mask": args.mask, "summary": summarise(crows, gaps, ckeys), "rows": crows}
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(out / "results.json")
    plot(rows, gaps, out / "rotation_probe.png", f"{Path(args.model).name}: {len(items)} held-out sequences")
    print(f"{'gap':>4} {'true':>7} {'pred':>7} {'along':>7} {'error':>7} {'swap':>7}   (degrees, mean of {len(items)})")
    for g, m in summary.items():
        print(f"{g:>4} {m['gt_deg']:7.2f} {m['pred_deg']:7.2f} {m['along_deg']:7.2f} {m['err_deg']:7.2f} "
              f"{m['swap_deg']:7.2f}")
    if "completion" in report:
        print(f"depth Abs Rel on the hidden {args.mask:.0%} of the second frame, by first frame:")
        print(f"{'gap':>4} {'true':>7} {'other':>7} {'grey':>7}")
        for g, m in report["completion"]["summary"].items():
            print(f"{g:>4} {m['hidden_true']:7.3f} {m['hidden_swap']:7.3f} {m['hidden_grey']:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
