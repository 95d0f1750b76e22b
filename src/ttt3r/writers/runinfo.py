"""``run.json``: what was run, with which settings, how fast, and whether it finished.

Written at start (``"status": "running"``, ``"interrupted": true`` so that a
killed process leaves a file that says so), updated periodically, and final at
close (``"status": "finished"`` or ``"interrupted"``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_text
from ..results import FrameResult

__all__ = ["RunInfoWriter", "package_versions", "peak_memory"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str | None]:
    """Versions of ttt3r, torch, numpy and Python (torch is not imported for this)."""
    from .. import __version__

    return {"ttt3r": __version__, "torch": _version("torch"), "numpy": np.__version__,
            "python": platform.python_version()}


def peak_memory() -> dict[str, float | None]:
    """Peak host RSS (MiB, from ``getrusage``) and peak CUDA memory allocated (MiB) if torch uses CUDA."""
    host = None
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        host = r / 2**20 if sys.platform == "darwin" else r / 2**10  # bytes on macOS, KiB on Linux
    except (ImportError, OSError):  # pragma: no cover - Windows
        pass
    cuda = None
    torch = sys.modules.get("torch")  # only if the caller already uses torch
    if torch is not None:
        try:
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                cuda = torch.cuda.max_memory_allocated() / 2**20
        except Exception:  # pragma: no cover
            cuda = None
    return {"host_rss_peak_mib": None if host is None else round(host, 1),
            "cuda_peak_mib": None if cuda is None else round(cuda, 1)}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return str(x)


class RunInfoWriter:
    """Maintains ``run.json``.

    Args:
        path: output file.
        info: what to record about the run, e.g. ``{"input": ..., "weights": ...,
            "settings": {...}}`` (made JSON-safe: paths and unknown objects become strings).
        every: rewrite every ``every`` frames (and at close).
    """

    def __init__(self, path: str | os.PathLike, info: dict[str, Any] | None = None, every: int = 10) -> None:
        self.path = Path(path)
        self.info = _jsonable(dict(info or {}))
        self.every = max(1, int(every))
        self.started = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self.n_frames = 0
        self._net_time = 0.0
        self._net_min = float("inf")
        self._net_max = 0.0
        self.chunks: list[dict] = []  # alignment records of --chunk runs (FrameResult.extras["chunk"])
        self.status = "running"
        self.write()

    def add(self, frame: FrameResult) -> None:
        self.n_frames += 1
        t = float(frame.time_s or 0.0)
        self._net_time += t
        self._net_min = min(self._net_min, t)
        self._net_max = max(self._net_max, t)
        if "chunk" in frame.extras:
            self.chunks.append(_jsonable(frame.extras["chunk"]))
        if self.n_frames % self.every == 0:
            self.write()

    def flush(self) -> None:
        self.write()

    def record(self) -> dict[str, Any]:
        """The JSON object as it would be written now."""
        wall = time.perf_counter() - self._t0
        n = self.n_frames
        return {
            **self.info,
            "status": self.status,
            "interrupted": self.status != "finished",
            "frames_done": n,
            "started": self.started.isoformat(timespec="seconds"),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(wall, 3),
            "fps": round(n / wall, 3) if wall > 0 and n else None,
            "per_frame_s": {
                "network_mean": round(self._net_time / n, 5) if n else None,
                "network_min": round(self._net_min, 5) if n else None,
                "network_max": round(self._net_max, 5) if n else None,
                "wall_mean": round(wall / n, 5) if n else None,
            },
            "memory": peak_memory(),
            **({"chunks": self.chunks} if self.chunks else {}),
            "versions": package_versions(),
            "host": {"platform": platform.platform(), "machine": platform.machine()},
        }

    def write(self) -> None:
        atomic_write_text(self.path, json.dumps(self.record(), indent=2) + "\n")

    def close(self, interrupted: bool = False) -> None:
        self.status = "interrupted" if interrupted else "finished"
        self.write()
