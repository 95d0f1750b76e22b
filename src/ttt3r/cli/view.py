"""``ttt3r view DIR``: browse a reconstruction's run directory in a web viewer."""

from __future__ import annotations

import argparse
import sys
import time


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ttt3r view",
        description=(
            "Interactive 3D viewer of a run directory (depth/, conf/, color/, camera/): "
            "per-frame point clouds, cameras and trajectory, in the browser. Needs ttt3r[viz]."
        ),
    )
    p.add_argument("run_dir", metavar="DIR", help="run directory written by 'ttt3r reconstruct'")
    p.add_argument("--port", type=int, default=8080, help="port to serve on (the next free one if taken; default 8080)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 for all; default 127.0.0.1)")
    p.add_argument(
        "--conf-threshold", type=float, default=1.5, metavar="T",
        help="initial confidence threshold: points with conf >= T are shown (default 1.5)",
    )
    p.add_argument(
        "--max-points-per-frame", type=int, default=20_000, metavar="N",
        help="random subsample of at most N points per frame (default 20000)",
    )
    p.add_argument(
        "--max-points-total", type=int, default=4_000_000, metavar="N",
        help="at most N points over all frames: long runs get fewer points per frame, "
        "keeping memory and the browser bounded (default 4000000)",
    )
    p.add_argument(
        "--downsample", type=int, default=1, metavar="K",
        help="take every K-th pixel in each direction before the budget (default 1)",
    )
    return p


def _wait_until_interrupted() -> None:
    """Block the main thread while the server runs (tests replace this)."""
    while True:
        time.sleep(3600)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)

    from ..viewer import LiveViewer, list_frames, view_run

    list_frames(args.run_dir)  # fail on a bad DIR before starting a server
    viewer = LiveViewer(
        port=args.port,
        host=args.host,
        conf_threshold=args.conf_threshold,
        max_points_per_frame=args.max_points_per_frame,
        max_points_total=args.max_points_total,
        downsample=args.downsample,
        label=f"ttt3r: {args.run_dir}",
    )
    try:
        print(f"ttt3r view: serving {args.run_dir} at {viewer.url}", flush=True)
        tty = sys.stderr.isatty()
        t0 = time.monotonic()

        def progress(done: int, n: int) -> None:
            if tty:
                print(f"\rloading frames {done}/{n}", end="", file=sys.stderr, flush=True)
            elif done == n or done % max(1, n // 10) == 0:
                print(f"loading frames {done}/{n}", file=sys.stderr, flush=True)

        try:
            n = view_run(args.run_dir, viewer, progress=progress)
        finally:
            if tty:
                print(file=sys.stderr)
        print(
            f"ttt3r view: {n} frames loaded in {time.monotonic() - t0:.1f} s; "
            f"open {viewer.url}, Ctrl+C to stop",
            flush=True,
        )
        try:
            _wait_until_interrupted()
        except KeyboardInterrupt:
            pass
    finally:
        viewer.close()
    return 0
