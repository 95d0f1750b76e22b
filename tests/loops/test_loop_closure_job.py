"""``reconstruct --chunk N --loop-closure``: the folder job closes loops after the last frame and
rewrites its outputs; without --chunk it is one clear line before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ttt3r
from helpers import PARITY
from ttt3r.cli import main as cli
from ttt3r.io.trajectory import read_tum
from ttt3r.pipeline import ReconstructOptions, reconstruct


@pytest.mark.parametrize("args,message", [
    ([], "--loop-closure needs --chunk N"),
    (["--chunk", "4", "--export", "ply"], "--loop-closure needs the 'demo' export"),
])
def test_loop_closure_needs_chunks_and_the_demo_layout(tmp_path, capsys, args, message):
    rc = cli(["reconstruct", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out"), "--loop-closure",
              *args, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_folder_job_with_loop_closure(released_ckpt, tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = ttt3r.load_model(released_ckpt("tiny224"), device="cpu")
        out = tmp_path / "run"
        opts = ReconstructOptions(chunk=2, overlap=1, exports=("demo", "trajectory", "ply"), quiet=True,
                                  loop_closure=True)
        summary = reconstruct(PARITY / "tiny224" / "frames", out, opts, model=model)
    finally:
        torch.set_num_threads(threads)
    lc = summary.loop_closure
    assert lc is not None and summary.frames == 6 and lc.frames == (6 if lc.kept else 0)
    info = json.loads((out / "run.json").read_text())
    rec = info["loop_closure"]
    assert rec["status"] == "done" and rec["settings"]["min_gap"] == 4 and rec["candidates"] == lc.candidates
    assert rec["rewritten"] is bool(lc.kept)
    assert all(r["i"] - r["j"] >= 4 for r in rec["loops"])
    traj = read_tum(out / "trajectory.txt")
    for i in range(6):
        with np.load(out / "camera" / f"{i:06d}.npz") as z:
            # no loop kept: nothing moved and nothing was rewritten
            assert ("pose_raw" in z.files and "depth_scale" in z.files) is bool(lc.kept)
            np.testing.assert_allclose(traj.poses[i], z["pose"], atol=1e-6)
