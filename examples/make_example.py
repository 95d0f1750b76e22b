"""Render the example video ``examples/synthetic_orbit.mp4`` (needs ``ttt3r[synth]``).

A 48-frame orbit at 512x288 around a seeded synthetic room, encoded with PyAV
(H.264 via libx264 when available, else MPEG-4 Part 2), kept under 2 MB. The
ground truth (depth, poses, intrinsics) is left in ``--gt`` when given, so a
reconstruction of the video can be scored against it::

    python examples/make_example.py                     # -> examples/synthetic_orbit.mp4
    python examples/make_example.py --gt /tmp/orbit_gt  # also keep the ground truth
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_BYTES = 2 * 1024 * 1024


def encode(seq_dir: Path, out: Path, fps: int = 30, quality: int = 0) -> str:
    """Encode ``seq_dir/rgb/*.png`` into ``out``; returns the codec used.

    ``quality`` 0 is the best; each step up lowers the bit rate (to fit a size cap).
    """
    import av
    import numpy as np

    from ttt3r.io.atomic import atomic_open
    from ttt3r.synth import load_sequence

    seq = load_sequence(seq_dir)
    width, height = seq.size
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with atomic_open(out, "wb") as f:
        with av.open(f, mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(20 + 3 * quality), "preset": "slow"}
            else:
                stream.bit_rate = int(2_500_000 / (1.5**quality))
            for i in range(len(seq)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(seq.rgb(i)), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return codec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "synthetic_orbit.mp4")
    ap.add_argument("--gt", type=Path, default=None, help="keep the rendered ground truth here")
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    from ttt3r.synth import render_sequence

    with tempfile.TemporaryDirectory(prefix="ttt3r-example-") as tmp:
        gt = args.gt or Path(tmp) / "gt"
        render_sequence(gt, frames=args.frames, seed=args.seed, motion="orbit", size=(512, 288))
        for quality in range(6):  # lower the quality until the file fits
            codec = encode(gt, args.out, quality=quality)
            size = args.out.stat().st_size
            if size <= MAX_BYTES:
                break
    print(f"{args.out}: {args.frames} frames 512x288, {codec}, {size / 1e6:.2f} MB")
    if size > MAX_BYTES:
        print(f"warning: {args.out} is larger than 2 MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
