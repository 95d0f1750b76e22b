"""Bad chunk, overlap and revisit options: one clear line, exit status 2, before any work."""

from __future__ import annotations

import pytest

from ttt3r.chunking import chunk_settings
from ttt3r.cli import main as cli
from ttt3r.errors import TTT3RError

CASES = [
    (["--chunk", "1"], "--chunk must be at least 2 frames, got 1"),
    (["--chunk", "8", "--overlap", "8"], "--overlap (8) must be smaller than --chunk (8)"),
    (["--chunk", "8", "--overlap", "12"], "--overlap (12) must be smaller than --chunk (8)"),
    (["--chunk", "8", "--overlap", "0"], "--overlap must be at least 1 frame"),
    (["--overlap", "2", "--reset-every", "10"], "--overlap cannot be combined with --reset-every"),
    (["--chunk", "8", "--reset-every", "10"], "--chunk cannot be combined with --reset-every"),
    (["--overlap", "2"], "--overlap needs --chunk N"),
    (["--revisit", "0"], "--revisit must be at least 1 pass"),
    (["--revisit", "2", "--chunk", "8"], "--revisit cannot be combined with --chunk"),
]


@pytest.mark.parametrize("args,message", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_reconstruct_rejects(tmp_path, capsys, args, message):
    rc = cli(["reconstruct", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "out"), *args, "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["--oracle-drift", "scale=2", "--chunk", "1"], "--chunk must be at least 2"),
    (["--oracle-drift", "scale=2", "--chunk", "5", "--overlap", "5"], "--overlap (5) must be smaller than --chunk (5)"),
    (["--oracle-drift", "scale=0.5", "--chunk", "5"], "--oracle-drift: scale must be >= 1"),
    (["--oracle-drift", "tilt=3"], "--oracle-drift: 'tilt=3' is not one of"),
    (["--oracle", "--oracle-drift", "scale=2"], "--oracle and --oracle-drift exclude each other"),
])
def test_eval_rejects(tmp_path, capsys, args, message):
    rc = cli(["eval", "pose", "--dataset", "synth", "--root", str(tmp_path), "--out", str(tmp_path / "ev"), *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert message in err and len(err.splitlines()) == 1, err


def test_default_overlap():
    assert chunk_settings(100).overlap == 4
    assert chunk_settings(4).overlap == 3
    assert chunk_settings(0) is None
    with pytest.raises(TTT3RError, match="--chunk-align"):
        chunk_settings(10, 2, "affine")
