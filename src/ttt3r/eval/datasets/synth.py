"""Synthetic sequences written by ``ttt3r synth`` as a benchmark: exact depth, poses, intrinsics.

Layout under ``root``: one folder per sequence, each in the layout of
:mod:`ttt3r.synth` (``rgb/%06d.png``, ``depth/%06d.npy``, ``camera/%06d.npz``,
``trajectory.txt``, ``meta.json``)::

    root/orbit_a/meta.json ...
    root/walk_b/meta.json ...

A ``root`` that is itself a sequence folder (has ``meta.json``) is a dataset of
that one sequence. Folders without ``meta.json`` are ignored.

* ``Sequence.poses``: (N, 4, 4) float64 camera-to-world from ``camera/*.npz``
  (exact, OpenCV axes, metres, world z up);
* ``Sequence.intrinsics``: (N, 3, 3) float64 in pixels of the stored images;
* depth: (H, W) float32 metres along the optical axis (0 = no geometry), exact.

There is no depth cap or clip (scenes are enclosed rooms of a few metres).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...errors import TTT3RError
from ...io.layout import load_camera
from .base import DatasetLoader, Sequence


def read_npy_depth(path: Path) -> np.ndarray:
    """(H, W) float32 depth in metres from a synth ``depth/%06d.npy`` file; 0 = missing."""
    try:
        d = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise TTT3RError(f"{path}: depth file not found") from None
    except (OSError, ValueError) as e:
        raise TTT3RError(f"{path}: cannot read depth ({e})") from None
    if d.ndim != 2 or d.dtype.kind != "f":
        raise TTT3RError(f"{path}: expected an (H, W) float depth map, got {d.dtype} {d.shape}")
    return d.astype(np.float32, copy=False)


class SynthDataset(DatasetLoader):
    """Folders rendered by ``ttt3r synth`` (see the module docstring)."""

    name = "synth"
    tasks = ("pose", "depth")

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root)
        if (self.root / "meta.json").is_file():
            self._folders = {self.root.name: self.root}
        else:
            self._folders = {p.name: p for p in sorted(self.root.iterdir()) if (p / "meta.json").is_file()}
        if not self._folders:
            raise TTT3RError(f"{self.name}: no 'ttt3r synth' sequence folders (with meta.json) in {self.root}")

    def sequence_names(self) -> list[str]:
        return list(self._folders)

    def load(self, name: str) -> Sequence:
        from ...synth.dataset import load_sequence
        from ...synth.render import SYNTH_LAYOUT

        folder = self._folders.get(name)
        if folder is None:
            raise TTT3RError(f"{self.name}: no sequence {name!r} in {self.root}")
        synth = load_sequence(folder)  # checks meta.json, completeness, trajectory.txt
        n = len(synth)
        paths = [SYNTH_LAYOUT.paths(folder, i) for i in range(n)]
        images = [self._file(p["color"], "image") for p in paths]
        depths = [self._file(p["depth"], "depth map") for p in paths]
        cams = [load_camera(self._file(p["camera"], "camera file")) for p in paths]
        return self._sequence(
            name,
            images,
            poses=np.stack([c[0] for c in cams]),
            timestamps=np.asarray(synth.timestamps, dtype=np.float64),
            depth_paths=depths,
            depth_reader=read_npy_depth,
            intrinsics=np.stack([c[1] for c in cams]),
        )
