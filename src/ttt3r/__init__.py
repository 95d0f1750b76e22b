"""ttt3r: streaming 3D reconstruction with CUT3R and the TTT3R state update.

    >>> import ttt3r
    >>> model = ttt3r.load_model("cut3r_512_dpt_4_64")          # doctest: +SKIP
    >>> for frame in ttt3r.Session(model, update="ttt3r").run(paths):  # doctest: +SKIP
    ...     frame.depth, frame.pose, frame.intrinsics

A :class:`Session` streams frames to :class:`FrameResult` objects in memory;
:func:`reconstruct` is the whole ``ttt3r reconstruct`` job into a folder:

    >>> ttt3r.reconstruct("video.mp4", "out/", ttt3r.ReconstructOptions(reset_every=100))  # doctest: +SKIP

The public names are loaded on first use, so that ``import ttt3r`` (and the
command line's ``--help``) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "load_model": "api",
    "reconstruct": "pipeline",
    "render_views": "render_view",
    "ReconstructOptions": "pipeline",
    "ModelConfig": "config",
    "TTT3RError": "errors",
    "FrameResult": "results",
    "Session": "session",
}

__all__ = ["FrameResult", "ModelConfig", "ReconstructOptions", "Session", "TTT3RError", "__version__", "load_model",
           "reconstruct", "render_views"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ttt3r' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from .api import load_model
    from .config import ModelConfig
    from .errors import TTT3RError
    from .pipeline import ReconstructOptions, reconstruct
    from .render_view import render_views
    from .results import FrameResult
    from .session import Session
