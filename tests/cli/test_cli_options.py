"""``ttt3r reconstruct`` options: every bad value is one line naming the flag, exit 2, before anything is made.

Run in-process (``ttt3r.cli.main``). Each case checks the exit status, that stderr
is exactly one line naming the option as typed, that there is no traceback, that
the output folder was not created, and that the user's files are untouched.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from ttt3r.cli import main as cli
from ttt3r.errors import TTT3RError
from ttt3r.pipeline import ReconstructOptions, option_flag


def _snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def user(tmp_path):
    """A user's folder: two images and an unrelated file."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), np.uint8)).save(imgs / f"{i:06d}.png")
    (tmp_path / "notes.txt").write_text("mine\n")
    return tmp_path


def run_cli(argv: list[str]) -> int:
    """``ttt3r ARGV`` in this process: its exit status (argparse's usage errors exit via SystemExit)."""
    try:
        return cli(argv)
    except SystemExit as e:
        return int(e.code)


def _run_bad(user: Path, capsys, *args: str) -> str:
    """Run with ``args``; assert the failure contract; return the one stderr line."""
    capsys.readouterr()
    before = _snapshot(user)
    out = user / "out"
    rc = run_cli(["reconstruct", str(user / "imgs"), "--out", str(out), *args])
    err = capsys.readouterr().err
    assert rc == 2, (args, err)
    lines = err.splitlines()
    assert len(lines) == 1, (args, err)
    assert "Traceback" not in err and lines[0].startswith("ttt3r reconstruct: error: ")
    assert not out.exists(), args
    assert _snapshot(user) == before
    return lines[0]


# each of these exited 1 with a traceback, or was accepted, before options were checked at the door
@pytest.mark.parametrize("args,flag", [
    (("--voxel-size=0",), "--voxel-size"),
    (("--voxel-size=-1",), "--voxel-size"),
    (("--voxel-size=nan",), "--voxel-size"),
    (("--max-points=0",), "--max-points"),
    (("--device=foo",), "--device"),
    (("--device=mps",), "--device"),
    (("--device=meta",), "--device"),
    (("--conf-threshold=nan",), "--conf-threshold"),
    (("--conf-threshold=inf",), "--conf-threshold"),
    (("--max-frames=0",), "--max-frames"),
    (("--frame-interval=0",), "--frame-interval"),
    (("--max-frames=abc",), "--max-frames"),
    (("--size=300",), "--size"),
    (("--port=70000",), "--port"),
    (("--port=-1",), "--port"),
    (("--dtype=fp8",), "--dtype"),
])
def test_bad_option_is_one_line_naming_the_flag(user, capsys, args, flag):
    line = _run_bad(user, capsys, *args)
    assert flag in line
    field = flag.lstrip("-").replace("-", "_")
    assert "_" not in field or field not in line  # the flag as typed, never the field name


def test_empty_paths_are_refused(user, capsys):
    assert "--out" in _run_bad(user, capsys, "--out=")  # not the current folder
    assert "--weights" in _run_bad(user, capsys, "--weights=")  # not the default checkpoint
    before = _snapshot(user)
    assert run_cli(["reconstruct", "", "--out", str(user / "out")]) == 2
    assert "INPUT" in capsys.readouterr().err and not (user / "out").exists() and _snapshot(user) == before


def test_missing_out_is_one_line(tmp_path, capsys):
    rc = run_cli(["reconstruct", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.splitlines()) == 1 and "--out" in err


# -- property: generated bad values for every numeric option ------------------------------------------------------

_NOT_A_NUMBER = st.sampled_from(["", " ", "abc", "1,5", "0x", "--", "one", "1e", "..", "None"])
_NON_FINITE = st.sampled_from(["nan", "inf", "-inf", "NaN", "+inf", "1e400", "-1e999"])
_NON_INT = st.one_of(_NOT_A_NUMBER, _NON_FINITE, st.floats(allow_nan=False, allow_infinity=False)
                     .filter(lambda x: not float(x).is_integer()).map(repr))


def _ints_below(minimum: int) -> st.SearchStrategy[str]:
    return st.integers(max_value=minimum - 1, min_value=minimum - 10**12).map(str)


# option -> strategy of values it must refuse
_BAD_VALUES = {
    "--frame-interval": st.one_of(_ints_below(1), _NON_INT),
    "--max-frames": st.one_of(_ints_below(1), _NON_INT),
    "--reset-every": st.one_of(_ints_below(0), _NON_INT),
    "--max-points": st.one_of(_ints_below(1), _NON_INT),
    "--port": st.one_of(_ints_below(0), st.integers(65536, 10**9).map(str), _NON_INT),
    "--size": st.one_of(st.integers(-10**6, 10**6).filter(lambda v: v not in (224, 512)).map(str), _NON_INT),
    "--conf-threshold": st.one_of(_NOT_A_NUMBER, _NON_FINITE),
    "--voxel-size": st.one_of(_NOT_A_NUMBER, _NON_FINITE,
                              st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(repr)),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_bad_numeric_values_exit_2_one_line(user, capsys, data):
    flag = data.draw(st.sampled_from(sorted(_BAD_VALUES)), label="flag")
    value = data.draw(_BAD_VALUES[flag], label="value")
    line = _run_bad(user, capsys, f"{flag}={value}")
    assert flag in line


def test_api_options_name_the_field():
    with pytest.raises(TTT3RError, match=r"^max_frames: must be an integer >= 1, got 0$"):
        ReconstructOptions(max_frames=0).validate()
    with pytest.raises(TTT3RError, match=r"^--max-frames: "):
        ReconstructOptions(max_frames=True).validate(cli=True)
    with pytest.raises(TTT3RError, match=r"^voxel_size: "):
        ReconstructOptions(voxel_size=math.nan).validate()
    assert option_flag("view_port") == "--port" and option_flag("exports") == "--export"
    ReconstructOptions().validate()  # the defaults are valid
