"""Atomic writes: complete files with the usual permissions, or nothing."""

from __future__ import annotations

import pytest

from helpers import normal_file_mode
from ttt3r.io.atomic import atomic_open, atomic_path, atomic_write_text


def test_atomic_files_get_normal_permissions(tmp_path):
    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_path(tmp_path / "b.bin") as tmp:
        # a library writing to a file name, as safetensors' save_file and torch.save do
        tmp.write_bytes(b"payload")
    for name in ("a.txt", "b.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == normal_file_mode()
    assert (tmp_path / "b.bin").read_bytes() == b"payload"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


@pytest.mark.parametrize("how", ["path", "open"])
def test_failed_write_leaves_the_old_file(tmp_path, how):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old weights")
    with pytest.raises(RuntimeError, match="writer failed"):
        if how == "path":
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"half of the new")
                raise RuntimeError("writer failed")
        else:
            with atomic_open(target) as f:
                f.write(b"half of the new")
                raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_staged_writes_and_one_sync(tmp_path, monkeypatch):
    """Staged files: written in place without a sync; ``sync_files`` flushes them all at once
    (one ``os.sync``), or one fsync each where there is no ``os.sync``."""
    from ttt3r.io import atomic

    calls = []
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: calls.append(fd))
    target = tmp_path / "stage" / "a.bin"
    with atomic.staged_open(target) as f:
        f.write(b"abc")
    assert target.read_bytes() == b"abc" and calls == []
    with atomic_open(tmp_path / "b.bin") as f:  # atomic writes still sync each file
        f.write(b"x")
    assert len(calls) == 1
    synced = []
    monkeypatch.setattr(atomic.os, "sync", lambda: synced.append(1), raising=False)
    atomic.sync_files([target])
    assert synced == [1] and len(calls) == 1
    monkeypatch.delattr(atomic.os, "sync")
    atomic.sync_files([target, tmp_path / "b.bin"])
    assert len(calls) == 3


def test_staged_write_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno

    from ttt3r.errors import TTT3RError
    from ttt3r.io import atomic

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "open", full, raising=False)
    with pytest.raises(TTT3RError, match=r"x\.npy: no space left on device"), atomic.staged_open(tmp_path / "x.npy"):
        pass
