"""Model-config values are checked when a checkpoint loads, in ``reconstruct`` and ``convert`` alike.

Each bad value is one line naming the key and the rule, exit 2, no traceback, and
no output folder made. The checkpoints are the tiny formula-weight preset with one
value of its constructor string (released ``.pth``) or its ``config.json``
(converted folder) changed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import parity_meta, parity_schema, save_released_layout
from PIL import Image

from ttt3r.cli import main as cli
from ttt3r.config import ModelConfig
from ttt3r.errors import CheckpointError

BASE = parity_meta("tiny224")["model"]

# (old text in the constructor, new text, JSON key, JSON value, what the message must name)
CASES = {
    "heads_do_not_divide_width": ("enc_num_heads=4", "enc_num_heads=5", "enc_num_heads", 5, "enc_num_heads"),
    "string_depth": ("enc_depth=3", "enc_depth='3'", "enc_depth", "3", "enc_depth"),
    "unknown_head_type": ("head_type='linear'", "head_type='conv'", "head_type", "conv", "head_type"),
    "null": ("state_size=25", "state_size=None", "state_size", None, "state_size"),
    "dec_heads": ("dec_num_heads=4", "dec_num_heads=3", "dec_num_heads", 3, "dec_num_heads"),
    "negative_size": ("img_size=(224, 224)", "img_size=(224, -224)", "img_size", [224, -224], "img_size"),
    "mode_kind": ("depth_mode=('exp', -inf, inf)", "depth_mode=('log', -inf, inf)", "depth_mode",
                  ["log", "-inf", "inf"], "depth_mode"),
}


@pytest.fixture(scope="module")
def state_dict():
    from ttt3r.formula import formula_state_dict

    return formula_state_dict(parity_schema("tiny224"), parity_meta("tiny224").get("salt", ""))


@pytest.fixture(scope="module")
def converted(tmp_path_factory, released_ckpt):
    out = tmp_path_factory.mktemp("converted") / "tiny224"
    assert cli(["convert", str(released_ckpt("tiny224")), str(out)]) == 0
    return out


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    return d


def _bad_pth(tmp_path, state_dict, case):
    old, new, *_ = CASES[case]
    assert old in BASE
    return save_released_layout(tmp_path / f"{case}.pth", BASE.replace(old, new), state_dict)


def _bad_folder(tmp_path, converted, case):
    *_, key, value, _ = CASES[case]
    d = tmp_path / f"{case}_converted"
    d.mkdir()
    (d / "model.safetensors").symlink_to(converted / "model.safetensors")
    cfg = json.loads((converted / "config.json").read_text())
    assert key in cfg
    cfg[key] = value
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _one_line_error(capsys, rc: int, must_name: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert must_name in err and "model config" in err, err
    return err


@pytest.mark.parametrize("fmt", ["pth", "folder"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_value_is_refused_at_load(case, fmt, tmp_path, state_dict, converted, images, capsys):
    ckpt = _bad_pth(tmp_path, state_dict, case) if fmt == "pth" else _bad_folder(tmp_path, converted, case)
    name = CASES[case][-1]
    out = tmp_path / "out"
    rc = cli(["reconstruct", str(images), "--out", str(out), "--weights", str(ckpt), "-q"])
    err = _one_line_error(capsys, rc, name)
    assert str(ckpt) in err
    assert not out.exists()
    if fmt == "pth":  # convert reads the same way
        conv = tmp_path / "conv"
        rc = cli(["convert", str(ckpt), str(conv)])
        _one_line_error(capsys, rc, name)
        assert not conv.exists()


def test_rules_name_key_and_rule():
    with pytest.raises(CheckpointError, match=r"^model config: enc_num_heads: must divide enc_embed_dim \(64\), "
                                              r"got 5$"):
        ModelConfig.from_dict({"enc_embed_dim": 64, "enc_num_heads": 5})
    with pytest.raises(CheckpointError, match=r'^model config: enc_depth: must be an integer >= 1, got "3"$'):
        ModelConfig.from_dict({"enc_depth": "3"})
    with pytest.raises(CheckpointError, match=r"^model config: dec_depth: must be an integer >= 1, got null$"):
        ModelConfig.from_json('{"dec_depth": null}')
    with pytest.raises(CheckpointError, match=r"^model config: must be an object"):
        ModelConfig.from_json("[1, 2]")
    with pytest.raises(CheckpointError, match=r"^model config: head_type: must be one of linear, dpt"):
        ModelConfig.from_dict({"head_type": "conv"})
    cfg = ModelConfig.from_constructor(BASE)  # a valid config round-trips
    assert ModelConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("text,key", [("pose_head=True", "pose_head"), ("output_mode='pts3d+pose'", "output_mode")])
def test_unsupported_network_is_one_line(text, key, tmp_path, state_dict, capsys):
    off = {"pose_head": "pose_head=False", "output_mode": "output_mode='pts3d'"}[key]
    ckpt = save_released_layout(tmp_path / "x.pth", BASE.replace(text, off), state_dict)
    rc = cli(["convert", str(ckpt), str(tmp_path / "conv")])
    err = _one_line_error(capsys, rc, key)
    assert str(ckpt) in err and not (tmp_path / "conv").exists()


def test_truncated_pth_is_one_short_line(tmp_path, released_ckpt, capsys, images):
    src = released_ckpt("tiny224").read_bytes()
    for frac in (0.1, 0.5, 0.99):
        p = tmp_path / f"cut{frac}.pth"
        p.write_bytes(src[: int(len(src) * frac)])
        rc = cli(["convert", str(p), str(tmp_path / "conv")])
        err = capsys.readouterr().err
        assert rc == 2
        assert err == f"ttt3r convert: error: {p}: not a complete checkpoint (truncated or corrupt zip archive)\n"
        rc = cli(["reconstruct", str(images), "--out", str(tmp_path / "out"), "--weights", str(p), "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and "miniz" not in err and len(err.splitlines()) == 1
        assert err.endswith(f"{p}: not a complete checkpoint (truncated or corrupt zip archive)\n")
        assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert cli(["convert", str(empty), str(tmp_path / "conv")]) == 2
    assert "empty file" in capsys.readouterr().err
