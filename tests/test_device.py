"""One reader of ``device`` / ``dtype`` settings, the same for load_model, training, benchmark and eval."""

from __future__ import annotations

import pytest
import torch

import ttt3r
from ttt3r.device import resolve_device, resolve_dtype
from ttt3r.errors import TTT3RError

from train_helpers import tiny_cfg


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_names_to_devices():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(TTT3RError, match=r"^unknown device 'gpu' \(use auto, cpu, cuda or cuda:N\)$"):
        resolve_device("gpu")


def test_cuda_without_cuda(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:1", torch.device("cuda:0")):
        with pytest.raises(TTT3RError, match=r"^device 'cuda(:\d)?' was asked for but CUDA is not available"):
            resolve_device(name)


def test_cuda_index_beyond_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(TTT3RError, match=r"^device 'cuda:3': this machine has 1 CUDA device"):
        resolve_device("cuda:3")


def test_names_to_dtypes():
    for names, dtype in ((("fp32", "float32", "FP32"), torch.float32), (("bf16", "bfloat16"), torch.bfloat16),
                         (("fp16", "float16"), torch.float16)):
        for name in names:
            assert resolve_dtype(name) is dtype
        assert resolve_dtype(dtype) is dtype
    with pytest.raises(TTT3RError, match=r"^unknown dtype 'int8' \(use fp32, bf16 or fp16\)$"):
        resolve_dtype("int8")
    with pytest.raises(TTT3RError, match=r"^unsupported dtype torch.int8"):
        resolve_dtype(torch.int8)


def test_every_entry_point_reads_the_device_the_same_way(no_cuda, monkeypatch, tmp_path):
    from ttt3r import hub
    from ttt3r.bench import run_config
    from ttt3r.eval.predictors import SessionPredictor
    from ttt3r.train.loop import Trainer

    def no_download(*args, **kwargs):
        raise AssertionError("the weights were looked up before the device was checked")

    monkeypatch.setattr(hub, "resolve_weights", no_download)
    with pytest.raises(TTT3RError) as want:
        resolve_device("cuda")
    threads = torch.get_num_threads()
    try:
        calls = {
            "load_model": lambda: ttt3r.load_model("cut3r_224_linear_4", device="cuda"),
            "train": lambda: Trainer(tiny_cfg('device="cuda"'), tmp_path / "run"),
            "bench": lambda: run_config({"device": "cuda"}),
            "eval": lambda: SessionPredictor("cut3r_224_linear_4", device="cuda").model(),
        }
        for name, call in calls.items():
            with pytest.raises(TTT3RError) as got:
                call()
            assert str(got.value) == str(want.value), name
    finally:
        torch.set_num_threads(threads)
