"""Checkpoint loading: released layout, our format, and every way a file can be wrong."""

from __future__ import annotations

import json
import os

import pytest
import torch

import ttt3r
from ttt3r.cli import main as cli_main
from ttt3r.config import ModelConfig
from ttt3r.errors import CheckpointError
from ttt3r.weights import build_model, read_checkpoint
from helpers import PARITY, normal_file_mode, parity_meta, parity_schema, save_released_layout


@pytest.mark.parametrize("name", ["cut3r_512_dpt_4_64", "cut3r_224_linear_4"])
def test_full_size_keys_and_shapes_equal_released(name):
    official = json.loads((PARITY / "official_schema.json").read_text())[name]
    model = build_model(ModelConfig.from_constructor(official["model"]), "meta")
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == [(k, v) for k, v in official["state_dict"].items()]
    assert len(got) == official["state_dict"].__len__()
    # the released "numbers" count the DPT alias keys twice, as the state dict lists them
    assert sum(v.numel() for v in model.state_dict().values()) == official["params"]


def test_constructor_roundtrip_and_no_eval():
    text = parity_meta("tiny512")["model"]
    cfg = ModelConfig.from_constructor(text)
    assert cfg.head_type == "dpt" and cfg.img_size == (512, 512) and cfg.depth_mode[1] == float("-inf")
    assert ModelConfig.from_constructor(cfg.to_constructor()) == cfg
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    for bad in ["__import__('os').system('echo hi')",
                "ARCroco3DStereo(ARCroco3DStereoConfig(state_size=__import__('os').getpid()))",
                "ARCroco3DStereo(ARCroco3DStereoConfig(bogus_option=1))"]:
        with pytest.raises(CheckpointError):
            ModelConfig.from_constructor(bad)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_pickle_with_code_is_refused(tmp_path, released_ckpt):
    p = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": _Evil()}, p)
    with pytest.raises(CheckpointError, match=r"refused to load.*os\.system|refused to load.*posix\.system"):
        read_checkpoint(p)


def test_truncated_and_garbage_files(tmp_path, released_ckpt):
    src = released_ckpt("tiny224").read_bytes()
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(src[: len(src) // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"<html>quota exceeded</html>" * 10)
    for p in (trunc, garbage):
        with pytest.raises(CheckpointError) as e:
            ttt3r.load_model(p, device="cpu")
        assert str(p) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ttt3r.TTT3RError, match="absent.pth: no such file"):
        ttt3r.load_model(tmp_path / "absent.pth", device="cpu")


def test_wrong_architecture_and_key_mismatches(tmp_path):
    from ttt3r.formula import formula_state_dict

    sd = formula_state_dict(parity_schema("tiny224"))
    # the tiny512 (DPT) constructor with tiny224 (linear) weights
    wrong = save_released_layout(tmp_path / "wrong.pth", parity_meta("tiny512")["model"], sd)
    with pytest.raises(CheckpointError, match="missing key.*unexpected key"):
        ttt3r.load_model(wrong, device="cpu")
    extra = dict(sd, **{"bogus.weight": torch.zeros(3)})
    p = save_released_layout(tmp_path / "extra.pth", parity_meta("tiny224")["model"], extra)
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\) \(bogus\.weight\)"):
        ttt3r.load_model(p, device="cpu")
    missing = {k: v for k, v in sd.items() if k != "pose_token"}
    p = save_released_layout(tmp_path / "missing.pth", parity_meta("tiny224")["model"], missing)
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\) \(pose_token\)"):
        ttt3r.load_model(p, device="cpu")
    shaped = dict(sd, pose_token=torch.zeros(1, 1, 32))
    p = save_released_layout(tmp_path / "shape.pth", parity_meta("tiny224")["model"], shaped)
    with pytest.raises(CheckpointError, match=r"pose_token \(1, 1, 32\) != \(1, 1, 64\)"):
        ttt3r.load_model(p, device="cpu")


def test_compatibility_steps(tmp_path):
    """`module.` prefixes are stripped; missing dec_blocks_state take the dec_blocks weights."""
    from ttt3r.formula import formula_state_dict

    sd = formula_state_dict(parity_schema("tiny224"))
    legacy = {("module." + k): v for k, v in sd.items() if not k.startswith("dec_blocks_state.")}
    p = save_released_layout(tmp_path / "legacy.pth", parity_meta("tiny224")["model"], legacy)
    model = ttt3r.load_model(p, device="cpu")
    assert torch.equal(model.dec_blocks_state[0].attn.qkv.weight, sd["dec_blocks.0.attn.qkv.weight"])
    assert torch.equal(model.dec_blocks[1].mlp.fc2.bias, sd["dec_blocks.1.mlp.fc2.bias"])


def test_convert_roundtrip_cli(tmp_path, released_ckpt, capsys):
    src = released_ckpt("tiny512")
    out = tmp_path / "converted"
    assert cli_main(["convert", str(src), str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "model.safetensors").stat().st_mode & 0o777 == normal_file_mode()  # not mkstemp's 0600
    a = ttt3r.load_model(src, device="cpu").state_dict()
    for path in (out, out / "model.safetensors"):
        b = ttt3r.load_model(path, device="cpu").state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # converting onto an existing folder is refused without --overwrite
    assert cli_main(["convert", str(src), str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_corrupt_safetensors(tmp_path, released_ckpt):
    out = tmp_path / "conv"
    ttt3r.weights.convert_checkpoint(released_ckpt("tiny224"), out)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        ttt3r.load_model(out, device="cpu")
    (out / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        ttt3r.load_model(out, device="cpu")


def test_bf16_and_fp16_load(released_ckpt):
    for dt, tdt in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        m = ttt3r.load_model(released_ckpt("tiny224"), device="cpu", dtype=dt)
        assert m.dtype == tdt and not any(p.requires_grad for p in m.parameters())
