"""Benchmark dataset loaders of the TTT3R paper, by name.

    >>> from ttt3r.eval.datasets import get_dataset
    >>> ds = get_dataset("tum_s1_500", data_root="data")      # data/long_tum_s1
    >>> for seq in ds:                                        # doctest: +SKIP
    ...     seq.image_paths, seq.poses, seq.intrinsics

Names (``N`` = clip length of the long splits):

* camera pose: ``sintel``, ``tum`` (90 frames), ``tum_s1_<N>`` (N = 50..1000),
  ``scannet`` (90 frames), ``scannet_s3_<N>`` (every 3rd frame, N = 50..1000);
* video depth: ``sintel``, ``bonn`` (110 frames), ``bonn_s1_<N>`` (N = 50..500),
  ``kitti``, ``kitti_s1_<N>`` (N = 50..500);
* reconstruction: ``7scenes``, ``nrgbd``;
* synthetic (pose, depth): ``synth``, folders written by ``ttt3r synth``.

Each loader documents its folder layout; :data:`DEFAULT_ROOTS` gives the folder
under a data root where the paper's preprocessing puts it.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import TTT3RError
from .base import DatasetLoader, Sequence, read_png_depth
from .kitti import KITTI_LONG_FRAMES, KittiDepth
from .nrgbd import NRGBD
from .scannet import SCANNET_LONG_FRAMES, ScanNet
from .sevenscenes import SevenScenes
from .sintel import SINTEL_SEQUENCES, Sintel, read_sintel_cam, read_sintel_depth
from .synth import SynthDataset
from .tum import BONN_LONG_FRAMES, BONN_SEQUENCES, TUM_LONG_FRAMES, Bonn, TumDynamics


@dataclass(frozen=True)
class DatasetSpec:
    """How to build one named dataset: loader class, fixed options, default folder under a data root."""

    loader: type[DatasetLoader]
    default_root: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.loader.tasks


def _registry() -> dict[str, DatasetSpec]:
    reg: dict[str, DatasetSpec] = {
        "sintel": DatasetSpec(Sintel, "sintel"),
        "tum": DatasetSpec(TumDynamics, "tum", {"num_frames": 90}),
        "scannet": DatasetSpec(ScanNet, "scannetv2", {"num_frames": 90}),
        "bonn": DatasetSpec(Bonn, "bonn/rgbd_bonn_dataset", {"num_frames": 110}),
        "kitti": DatasetSpec(KittiDepth, "kitti/depth_selection/val_selection_cropped"),
        "7scenes": DatasetSpec(SevenScenes, "7scenes"),
        "nrgbd": DatasetSpec(NRGBD, "neural_rgbd"),
        "synth": DatasetSpec(SynthDataset, "synth"),  # folders written by `ttt3r synth`
    }
    for n in TUM_LONG_FRAMES:
        reg[f"tum_s1_{n}"] = DatasetSpec(TumDynamics, "long_tum_s1", {"num_frames": n})
    for n in SCANNET_LONG_FRAMES:
        reg[f"scannet_s3_{n}"] = DatasetSpec(ScanNet, "long_scannet_s3", {"num_frames": n})
    for n in BONN_LONG_FRAMES:
        reg[f"bonn_s1_{n}"] = DatasetSpec(Bonn, "long_bonn_s1/rgbd_bonn_dataset", {"num_frames": n})
    for n in KITTI_LONG_FRAMES:
        reg[f"kitti_s1_{n}"] = DatasetSpec(
            KittiDepth, "long_kitti_s1/depth_selection/val_selection_cropped", {"num_frames": n}
        )
    return reg


DATASETS: dict[str, DatasetSpec] = _registry()
DEFAULT_ROOTS: dict[str, str] = {k: v.default_root for k, v in DATASETS.items()}


def dataset_names(task: str | None = None) -> list[str]:
    """Registered dataset names, optionally only those serving ``task`` (pose, depth or recon)."""
    return [k for k, v in DATASETS.items() if task is None or task in v.tasks]


def get_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    data_root: str | os.PathLike = "data",
    **options: Any,
) -> DatasetLoader:
    """Build the loader for dataset ``name``.

    Args:
        name: a registered name (see :func:`dataset_names`).
        root: the dataset's folder; default ``data_root / DEFAULT_ROOTS[name]``.
        data_root: parent folder of the preprocessed datasets.
        options: loader options, e.g. ``full=True`` (Sintel, Bonn) or
            ``kf_every``/``max_frames`` (7-Scenes, NRGBD).
    """
    spec = DATASETS.get(name)
    if spec is None:
        families = sorted({re.sub(r"_s\d+_\d+$", "_s*_N", k) for k in DATASETS})
        raise TTT3RError(f"unknown dataset {name!r}; known: {', '.join(families)}")
    folder = Path(root) if root is not None else Path(data_root) / spec.default_root
    opts = {**spec.options, **options}
    try:
        inspect.signature(spec.loader).bind(folder, **opts)
    except TypeError as e:
        raise TTT3RError(f"{name}: bad dataset option ({e})") from None
    return spec.loader(folder, **opts)


__all__ = [
    "BONN_SEQUENCES",
    "DATASETS",
    "DEFAULT_ROOTS",
    "SINTEL_SEQUENCES",
    "Bonn",
    "DatasetLoader",
    "DatasetSpec",
    "KittiDepth",
    "NRGBD",
    "ScanNet",
    "Sequence",
    "SevenScenes",
    "Sintel",
    "SynthDataset",
    "TumDynamics",
    "dataset_names",
    "get_dataset",
    "read_png_depth",
    "read_sintel_cam",
    "read_sintel_depth",
]
