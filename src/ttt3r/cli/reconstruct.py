"""``ttt3r reconstruct INPUT --out DIR``: video / image folder / list -> depth, cameras, point cloud."""

from __future__ import annotations

import argparse
import sys
import textwrap

_DESCRIPTION = ("Stream a video, an image folder or a text list of images through CUT3R/TTT3R and write "
                "per-frame depth, confidence, cameras, a TUM trajectory, a fused point cloud and a preview.")


def exports_epilog() -> str:
    """The ``exports:`` table of ``--help``: every registered export, its one-line help and what it needs."""
    from ..writers.exports import available_exports, get_export

    names = available_exports()
    width = max(map(len, names))
    lines = ["exports (--export, * = default):"]
    for name in names:
        e = get_export(name)
        needs = f" (needs ttt3r[{e.extra}])" if e.extra else ""
        head = f"  {name:<{width}} {'*' if e.default else ' '} "
        lines.append(textwrap.fill(e.help + needs, 79, initial_indent=head, subsequent_indent=" " * len(head)))
    lines.append("  (always: run.json, frames.csv, .ttt3r-manifest.json)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The parser; the ``--update`` rules and the exports are read from their registries when it is built."""
    from ..update import available_rules
    from ..writers.exports import default_exports
    from .parser import ArgumentParser

    ap = ArgumentParser(
        prog="ttt3r reconstruct", description=textwrap.fill(_DESCRIPTION, 79), epilog=exports_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("input", help="video (mp4, mov, mkv, avi, webm), image folder, or .txt list of image paths")
    ap.add_argument("--out", "-o", required=True, help="output folder")
    ap.add_argument("--weights", "-w", default=None,
                    help="checkpoint path (.pth or converted folder) or known name; default: the released "
                         "cut3r_512_dpt_4_64 (cache or download), else the bundled small synthetic model")
    ap.add_argument("--update", choices=available_rules(), default="ttt3r",
                    help="state-update rule, registered in ttt3r.update (default ttt3r)")
    ap.add_argument("--reset-every", type=int, default=0, metavar="N",
                    help="reset the state every N frames, chaining chunk poses (0: never)")
    ap.add_argument("--chunk", type=int, default=0, metavar="N",
                    help="long sequences: reset the state every N frames and align each chunk to the previous one "
                         "on re-fed overlap frames (0: no chunks; see docs/long_sequences.md)")
    ap.add_argument("--overlap", type=int, default=None, metavar="K",
                    help="with --chunk: re-feed the last K frames of each chunk at the start of the next "
                         "(1 <= K < N; default min(4, N-1))")
    ap.add_argument("--loop-closure", action="store_true",
                    help="with --chunk: after the last frame, find revisits, close them in a Sim(3) pose graph over "
                         "the chunks and rewrite the outputs (old poses kept as pose_raw; docs/loop_closure.md)")
    ap.add_argument("--loop-every", type=int, default=None, metavar="M",
                    help="with --loop-closure: also close loops every M chunks during the run and align the next "
                         "chunks to the corrected map (frames written stay as written until the final rewrite; "
                         "default: only after the last frame)")
    ap.add_argument("--chunk-align", choices=["sim3", "se3"], default="sim3",
                    help="with --chunk: sim3 = robust confidence-weighted Sim(3) on the overlap's point maps "
                         "(default); se3 = chain through the first overlap frame's pose (--overlap 1 --chunk-align "
                         "se3 is --reset-every N)")
    ap.add_argument("--revisit", type=int, default=1, metavar="R",
                    help="feed the sequence R times; outputs from the last pass (default 1)")
    ap.add_argument("--revisit-update", action=argparse.BooleanOptionalAction, default=True,
                    help="whether passes after the first update the state (default: yes)")
    ap.add_argument("--frame-interval", type=int, default=1, metavar="K", help="use every K-th frame")
    ap.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    ap.add_argument("--size", type=int, choices=[512, 224], default=None,
                    help="preprocessing size (default: the checkpoint's)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    ap.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="compute precision")
    ap.add_argument("--intrinsics", default=None, metavar="SPEC",
                    help="known intrinsics of the source frames: 'fx,fy,cx,cy' (pixels, pixel centres at "
                         "integers), a file with a 3x3 matrix, or a COLMAP cameras.txt (docs/known_cameras.md)")
    ap.add_argument("--poses", default=None, metavar="FILE",
                    help="known camera-to-world poses (TUM, KITTI, EuRoC .csv, COLMAP images.txt), matched to "
                         "frames by timestamp or name, else by order; needs --intrinsics. Outputs are in this "
                         "file's world frame; camera/*.npz pose_pred keeps the network's own pose")
    ap.add_argument("--poses-format", default="auto", choices=["auto", "tum", "kitti", "euroc", "colmap"],
                    help="format of --poses (default: from the file)")
    ap.add_argument("--conf-threshold", type=float, default=1.5,
                    help="keep fused points with confidence above this (default 1.5)")
    ap.add_argument("--export", default=None, metavar="NAMES",
                    help=f"comma list of exports (below), or 'all' (default: {','.join(default_exports())})")
    ap.add_argument("--colmap-res", choices=["source", "network"], default="source",
                    help="colmap export: images and intrinsics at the source frames' size (default) or the "
                         "network's")
    ap.add_argument("--colmap-max-error", type=float, default=1.0, metavar="PX",
                    help="colmap export: leave out observations that reproject farther than PX pixels of the "
                         "written images (default 1)")
    ap.add_argument("--voxel-size", type=float, default=None, help="fusion voxel size (default: automatic)")
    ap.add_argument("--max-points", type=int, default=2_000_000, help="upper bound of the fused cloud")
    ap.add_argument("--world-points", action="store_true",
                    help="also run the world-frame pointmap head (slower; stored in FrameResult only)")
    ap.add_argument("--overwrite", action="store_true",
                    help="write into a non-empty folder, replacing only files of an earlier ttt3r run")
    ap.add_argument("--skip-bad", action="store_true", help="skip unreadable frames with a warning")
    ap.add_argument("--view", action="store_true", help="show the reconstruction growing live (needs ttt3r[viz])")
    ap.add_argument("--port", type=int, default=8080, help="viewer port (with --view)")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    return ap


def parse_exports(text: str | None) -> tuple[str, ...] | None:
    """``--export`` text -> export names (``all``: every registered export); ``None`` -> ``None`` (defaults)."""
    from ..errors import TTT3RError
    from ..writers.exports import available_exports

    if text is None:
        return None
    known = available_exports()
    if text.strip() == "all":
        return known
    items = tuple(e.strip() for e in text.split(",") if e.strip())
    bad = [e for e in items if e not in known]
    if bad or not items:
        raise TTT3RError(f"--export: unknown export {bad[0] if bad else text!r} (known: {', '.join(known)}, all)")
    return items


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from ..errors import TTT3RError
    from ..pipeline import ReconstructOptions, reconstruct

    for what, value in (("INPUT", args.input), ("--out", args.out)):
        if not value.strip():  # an empty path would mean the current folder
            raise TTT3RError(f"{what}: must name a {'file or folder' if what == 'INPUT' else 'folder'}, got ''")

    opts = ReconstructOptions(
        weights=args.weights, update=args.update, reset_every=args.reset_every,
        frame_interval=args.frame_interval, max_frames=args.max_frames, size=args.size, device=args.device,
        dtype=args.dtype, conf_threshold=args.conf_threshold, exports=parse_exports(args.export),
        overwrite=args.overwrite, skip_bad=args.skip_bad, voxel_size=args.voxel_size, max_points=args.max_points,
        colmap_res=args.colmap_res, colmap_max_reproj_error=args.colmap_max_error,
        want=("world",) if args.world_points else (), view=args.view, view_port=args.port, quiet=args.quiet,
        chunk=args.chunk, overlap=args.overlap, chunk_align=args.chunk_align, revisit=args.revisit,
        revisit_update=args.revisit_update, loop_closure=args.loop_closure, loop_every=args.loop_every,
        intrinsics=args.intrinsics, poses=args.poses, poses_format=args.poses_format,
    )
    opts.validate(cli=True)  # every option, named as typed, before any file is read or folder made
    from ..interrupts import Interrupted

    try:
        summary = reconstruct(args.input, args.out, opts)
    except Interrupted as e:
        if e.kept:
            print(f"ttt3r reconstruct: interrupted; the {e.frames} frames finished are complete in {args.out} "
                  "(run.json says interrupted)", file=sys.stderr)
        else:
            print("ttt3r reconstruct: interrupted before the first frame was finished; nothing was written",
                  file=sys.stderr)
        return e.exit_code
    if not args.quiet:
        print(f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.2f} frames/s) -> {summary.out_dir}",
              file=sys.stderr)
        lc = summary.loop_closure
        if lc is not None:
            done = f"outputs rewritten in {lc.rewrite_s:.1f} s" if lc.frames else "outputs unchanged"
            print(f"loop closure: {lc.kept} loops kept ({lc.verified} verified of {lc.candidates} candidates) "
                  f"in {lc.seconds:.1f} s; {done}", file=sys.stderr)
    if summary.viewer is not None:
        print("viewer running; press Ctrl-C to stop", file=sys.stderr)
        try:
            import time

            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            summary.viewer.close()
    return 0
