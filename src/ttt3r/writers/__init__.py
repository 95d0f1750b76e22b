"""Streaming output writers: ``add(frame)`` per frame, ``close()`` at the end.

:class:`RunWriter` drives all of them for ``ttt3r reconstruct``; the single
writers can be used on their own. What each export is (its files, its writer,
what it needs) is registered in :mod:`ttt3r.writers.exports`.

The names are loaded on first use, so that reading the export registry (the
command line's ``--help``) imports no writer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "DEFAULT_EXPORTS": "exports",
    "EXPORTS": "exports",
    "ColmapWriter": "colmap",
    "DemoLayoutWriter": "layout",
    "Export": "exports",
    "GlbWriter": "glb",
    "OutputDir": "outdir",
    "PlyWriter": "ply",
    "PreviewWriter": "preview",
    "RunInfoWriter": "runinfo",
    "RunWriter": "run",
    "TrajectoryWriter": "trajectory",
    "VoxelFusion": "fusion",
    "Writer": "base",
    "WriterOptions": "run",
    "read_demo_frame": "layout",
    "register_export": "exports",
    "render_preview": "preview",
    "write_demo_frame": "layout",
    "write_ply": "ply",
}
_LIVE = {"DEFAULT_EXPORTS", "EXPORTS"}  # read from the registry on each access, never cached

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        if name not in _LIVE:
            globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from .base import Writer
    from .colmap import ColmapWriter
    from .exports import DEFAULT_EXPORTS, EXPORTS, Export, register_export
    from .fusion import VoxelFusion
    from .glb import GlbWriter
    from .layout import DemoLayoutWriter, read_demo_frame, write_demo_frame
    from .outdir import OutputDir
    from .ply import PlyWriter, write_ply
    from .preview import PreviewWriter, render_preview
    from .run import RunWriter, WriterOptions
    from .runinfo import RunInfoWriter
    from .trajectory import TrajectoryWriter
