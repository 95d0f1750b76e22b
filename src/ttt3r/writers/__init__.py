"""Streaming output writers: ``add(frame)`` per frame, ``close()`` at the end.

:class:`RunWriter` drives all of them for ``ttt3r reconstruct``; the single
writers can be used on their own.
"""

from __future__ import annotations

from .base import Writer
from .colmap import ColmapWriter
from .fusion import VoxelFusion
from .glb import GlbWriter
from .layout import DemoLayoutWriter, read_demo_frame, write_demo_frame
from .outdir import OutputDir
from .ply import PlyWriter, write_ply
from .preview import PreviewWriter, render_preview
from .run import DEFAULT_EXPORTS, EXPORTS, RunWriter, WriterOptions
from .runinfo import RunInfoWriter
from .trajectory import TrajectoryWriter

__all__ = [
    "DEFAULT_EXPORTS",
    "EXPORTS",
    "ColmapWriter",
    "DemoLayoutWriter",
    "GlbWriter",
    "OutputDir",
    "PlyWriter",
    "PreviewWriter",
    "RunInfoWriter",
    "RunWriter",
    "TrajectoryWriter",
    "VoxelFusion",
    "Writer",
    "WriterOptions",
    "read_demo_frame",
    "render_preview",
    "write_demo_frame",
    "write_ply",
]
