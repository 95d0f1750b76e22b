"""A failed download is remembered (process and cache), checkpoint hashes are computed once,
and ``python -m ttt3r`` is the command."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ttt3r import hub, pipeline
from ttt3r.errors import DownloadError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TTT3R_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TTT3R_NO_NETWORK_TTL", raising=False)
    monkeypatch.setattr(hub, "_no_network_at", {})
    return tmp_path / "cache"


@pytest.fixture
def attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every download attempt, each failing as without a network."""
    calls: list[str] = []

    def fake_download(checkpoint, **kw):
        calls.append(str(checkpoint))
        raise DownloadError("cannot download cut3r_512_dpt_4_64.pth (network unreachable); get it from ...")

    monkeypatch.setattr(hub, "_download", fake_download)
    return calls


def test_a_failed_download_is_not_tried_again(cache: Path, attempts: list[str], monkeypatch) -> None:
    notices: list[str] = []
    first = pipeline.choose_weights(None, quiet=True, notice=notices.append)
    assert first == str(pipeline.BUNDLED_MODEL) and len(attempts) == 1
    assert "network unreachable" in notices[0]
    marker = json.loads((cache / "no-network.json").read_text())
    assert "network unreachable" in marker["reason"] and abs(marker["since"] - time.time()) < 60

    assert pipeline.choose_weights(None, quiet=True, notice=notices.append) == first
    assert len(attempts) == 1  # remembered in this process
    assert "not retried for another" in notices[1] and "TTT3R_NO_NETWORK_TTL=0" in notices[1]

    monkeypatch.setattr(hub, "_no_network_at", {})  # a new process: the marker in the cache answers
    pipeline.choose_weights(None, quiet=True, notice=notices.append)
    assert len(attempts) == 1

    monkeypatch.setenv("TTT3R_NO_NETWORK_TTL", "0")  # overridden: tried again
    pipeline.choose_weights(None, quiet=True, notice=notices.append)
    assert len(attempts) == 2


def test_the_marker_expires(cache: Path, attempts: list[str], monkeypatch) -> None:
    cache.mkdir(parents=True)
    (cache / "no-network.json").write_text(json.dumps({"since": time.time() - 7200, "reason": "old"}))
    pipeline.choose_weights(None, quiet=True, notice=lambda m: None)
    assert len(attempts) == 1  # two hours ago is past the default hour
    monkeypatch.setattr(hub, "_no_network_at", {})
    monkeypatch.setenv("TTT3R_NO_NETWORK_TTL", "36000")
    (cache / "no-network.json").write_text(json.dumps({"since": time.time() - 7200, "reason": "old"}))
    pipeline.choose_weights(None, quiet=True, notice=lambda m: None)
    assert len(attempts) == 1  # within ten hours


def test_a_bad_ttl_is_one_line(cache: Path, monkeypatch) -> None:
    from ttt3r.errors import TTT3RError

    monkeypatch.setenv("TTT3R_NO_NETWORK_TTL", "soon")
    with pytest.raises(TTT3RError, match="TTT3R_NO_NETWORK_TTL='soon': must be a number of seconds"):
        hub.no_network_recently()


def test_checkpoint_hash_is_computed_once(cache: Path, tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "w.pth"
    f.write_bytes(b"weights" * 1000)
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert hub.checkpoint_sha256(f) == want
    calls = []
    monkeypatch.setattr(hub, "_sha256_file", lambda p: calls.append(p) or "x")
    assert hub.checkpoint_sha256(f) == want and not calls  # from the record
    f.write_bytes(b"other" * 1000)  # changed: size and mtime differ, hashed again
    assert hub.checkpoint_sha256(f) == "x" and len(calls) == 1
    # a converted folder: its model.safetensors
    d = tmp_path / "conv"
    d.mkdir()
    (d / "model.safetensors").write_bytes(b"abc")
    monkeypatch.undo()
    monkeypatch.setenv("TTT3R_CACHE", str(cache))
    assert hub.checkpoint_sha256(d) == hashlib.sha256(b"abc").hexdigest()
    assert hub.checkpoint_sha256(tmp_path / "missing.pth") is None


def test_checkpoint_hash_reuses_the_verification_record(cache: Path, monkeypatch) -> None:
    entry = hub.get_checkpoint("cut3r_512_dpt_4_64")
    path = hub.cached_path(entry)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not really 3 GB")
    hub._stamp(entry, path, "ab" * 32)  # what a verified download records
    monkeypatch.setattr(hub, "_sha256_file", lambda p: pytest.fail("hashed again"))
    assert hub.checkpoint_sha256(path) == "ab" * 32


def test_python_dash_m_ttt3r() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-m", "ttt3r", "--version"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("ttt3r ")
    r = subprocess.run([sys.executable, "-m", "ttt3r", "nonsense"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode != 0 and "unknown command 'nonsense'" in r.stderr
