"""The export registry: what ``ttt3r reconstruct --export`` can write, one class per export.

An export is a subclass of :class:`Export` that declares, as class attributes,
everything the rest of ttt3r needs to know about it, and is registered with
:func:`register_export`::

    @register_export
    class NormalsExport(Export):
        name = "normals"
        files = (r"normals/\\d{6,}\\.npy",)   # regexes of the paths it writes
        path = "normals"                     # its main output
        help = "normals/: per-frame normal maps"

        @classmethod
        def create(cls, ctx):
            return NormalsWriter(ctx.out_dir / "normals")

:class:`~ttt3r.writers.run.RunWriter` builds the writers from this table,
:class:`~ttt3r.writers.outdir.OutputDir` reads the files each export owns
(overwrite, cleanup, manifest), and the command line lists the exports, the
defaults and ``--export all`` from it. Nothing else has to change for a new
export.

Built-in exports, in the order their writers are called (paths relative to the
output folder)::

    demo        depth/%06d.npy conf/%06d.npy color/%06d.png camera/%06d.npz
    trajectory  trajectory.txt            (TUM, camera-to-world)
    ply         points.ply                (fused cloud, binary PLY)
    colmap      colmap/images/, colmap/sparse/0/{cameras,images,points3D}.{txt,bin}  (tracks)
    nerfstudio  nerfstudio/{transforms.json,images/,depth/,sparse_pc.ply}
    glb         scene.glb                 (cloud + cameras, needs ttt3r[glb])
    preview     preview.png
    video       flythrough.mp4            (the cloud growing along the camera path)
    (always)    run.json, frames.csv, .ttt3r-manifest.json

This module imports only the standard library; each writer's module is
imported by its :meth:`Export.create`, so that ``--help`` stays instant.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import TTT3RError

if TYPE_CHECKING:  # pragma: no cover
    from .base import Writer
    from .fusion import VoxelFusion
    from .run import WriterOptions

__all__ = ["DEFAULT_EXPORTS", "EXPORTS", "Export", "ExportContext", "available_exports", "default_exports",
           "get_export", "register_export"]

#: Every registered export name, in the order writers are called (read from the registry on each access).
EXPORTS: tuple[str, ...]
#: What ``ttt3r reconstruct`` writes unless told otherwise (read from the registry on each access).
DEFAULT_EXPORTS: tuple[str, ...]

_FOLDER = re.compile(r"[A-Za-z0-9_-]+")  # a literal folder name inside a file pattern


@dataclass(frozen=True)
class ExportContext:
    """What an export's writer is built from.

    Attributes:
        out_dir: the output folder (checked and prepared by ``OutputDir``).
        options: the run's :class:`~ttt3r.writers.run.WriterOptions`.
        fps: frames per second of the sequence (TUM timestamps), or ``None``.
        fusion: the run's shared voxel grid, fed by ``RunWriter`` before the
            writers see a frame; set when any selected export ``needs_fusion``.
    """

    out_dir: Path
    options: WriterOptions
    fps: float | None = None
    fusion: VoxelFusion | None = None


class Export:
    """One export: its declaration (class attributes) and :meth:`create`.

    Attributes:
        name: the ``--export`` name (lower case letters, digits, ``_``, ``-``).
        files: regular expressions (full match, ``/``-separated) of every path,
            relative to the output folder, that the export writes. Folders are
            the literal leading parts of these patterns (``colmap/sparse/0/x``
            -> ``colmap/sparse/0``, ``colmap/sparse``, ``colmap``).
        path: the main output, relative to the output folder (``""``: the folder
            itself, e.g. for per-frame files).
        needs_fusion: the writer reads the shared fused point cloud
            (``ctx.fusion``).
        needs_tracks: the writer reads the fused points' tracks (the frames and
            pixels each voxel was fused from); implies ``needs_fusion``.
        requires: modules the writer imports that are not core dependencies.
        extra: the pip extra providing ``requires`` (``pip install 'ttt3r[extra]'``).
        default: written by ``ttt3r reconstruct`` without ``--export``.
        help: one line for ``ttt3r reconstruct --help``.
    """

    name: ClassVar[str] = ""
    files: ClassVar[tuple[str, ...]] = ()
    path: ClassVar[str] = ""
    needs_fusion: ClassVar[bool] = False
    needs_tracks: ClassVar[bool] = False
    requires: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str | None] = None
    default: ClassVar[bool] = False
    help: ClassVar[str] = ""

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        """A writer (``add`` / ``flush`` / ``close``) for this run."""
        raise NotImplementedError

    @classmethod
    def folders(cls) -> list[str]:
        """Sub-folders of the output folder that the export creates, deepest first."""
        out: list[str] = []
        for pattern in cls.files:
            parts = pattern.split("/")[:-1]
            out.extend("/".join(parts[:i]) for i in range(len(parts), 0, -1))
        return sorted(dict.fromkeys(out), key=lambda d: -d.count("/"))

    @classmethod
    def check_available(cls) -> None:
        """Raise a one-line error when a module in ``requires`` cannot be imported."""
        for module in cls.requires:
            try:
                importlib.import_module(module)
            except ImportError:
                extra = f" (or pip install 'ttt3r[{cls.extra}]')" if cls.extra else ""
                raise TTT3RError(f"export {cls.name!r} needs {module}: pip install {module}{extra}") from None


_EXPORTS: dict[str, type[Export]] = {}


def register_export(cls: type[Export]) -> type[Export]:
    """Class decorator: make an :class:`Export` subclass available by its ``name``.

    Registering a name again replaces the earlier class (keeping its place in
    the order). Raises ``TTT3RError`` when the declaration is malformed.
    """
    where = f"export class {cls.__name__}"
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", cls.name or "") or cls.name == "all":
        raise TTT3RError(f"{where}: name must be lower case letters, digits, '_' or '-' (and not 'all'), "
                         f"got {cls.name!r}")
    if not cls.files:
        raise TTT3RError(f"{where}: files must list the patterns of the paths it writes")
    for pattern in cls.files:
        try:
            re.compile(pattern)
        except re.error as e:
            raise TTT3RError(f"{where}: file pattern {pattern!r} is not a regular expression ({e})") from None
        bad = [p for p in pattern.split("/")[:-1] if not _FOLDER.fullmatch(p)]
        if bad:
            raise TTT3RError(f"{where}: file pattern {pattern!r}: folder {bad[0]!r} must be a literal name")
    _EXPORTS[cls.name] = cls
    return cls


def get_export(name: str) -> type[Export]:
    """The registered export ``name``; ``TTT3RError`` listing the known ones otherwise."""
    try:
        return _EXPORTS[name]
    except KeyError:
        raise TTT3RError(f"unknown export {name!r} (known: {', '.join(_EXPORTS)})") from None


def available_exports() -> tuple[str, ...]:
    """Every registered export name, in registration order (the order writers are called)."""
    return tuple(_EXPORTS)


def default_exports() -> tuple[str, ...]:
    """The exports ``ttt3r reconstruct`` writes without ``--export``."""
    return tuple(n for n, e in _EXPORTS.items() if e.default)


def __getattr__(name: str) -> tuple[str, ...]:
    # EXPORTS / DEFAULT_EXPORTS (annotated above, never assigned): computed on each access, so that they
    # include exports registered after this module was imported
    if name == "EXPORTS":
        return available_exports()
    if name == "DEFAULT_EXPORTS":
        return default_exports()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- built-in exports ----------------------------------------------------------------------------------------------


@register_export
class DemoExport(Export):
    name = "demo"
    files = (r"depth/\d{6,}\.npy", r"conf/\d{6,}\.npy", r"color/\d{6,}\.png", r"camera/\d{6,}\.npz")
    path = ""
    default = True
    help = "depth/ conf/ color/ camera/, per frame (the CUT3R demo's layout)"

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .layout import DemoLayoutWriter

        return DemoLayoutWriter(ctx.out_dir)


@register_export
class TrajectoryExport(Export):
    name = "trajectory"
    files = (r"trajectory\.txt",)
    path = "trajectory.txt"
    default = True
    help = "trajectory.txt: camera-to-world poses (TUM format)"

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .trajectory import TrajectoryWriter

        return TrajectoryWriter(ctx.out_dir / cls.path, fps=ctx.fps, every=ctx.options.trajectory_every)


@register_export
class PlyExport(Export):
    name = "ply"
    files = (r"points\.ply",)
    path = "points.ply"
    needs_fusion = True
    default = True
    help = "points.ply: the fused, coloured point cloud (binary PLY)"

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .ply import PlyWriter

        return PlyWriter(ctx.out_dir / cls.path, fusion=ctx.fusion, every=ctx.options.flush_every)


@register_export
class ColmapExport(Export):
    name = "colmap"
    files = (
        r"colmap/images/\d{6,}\.png",
        r"colmap/sparse/0/cameras\.txt",
        r"colmap/sparse/0/images\.txt",
        r"colmap/sparse/0/points3D\.txt",
        r"colmap/sparse/0/cameras\.bin",
        r"colmap/sparse/0/images\.bin",
        r"colmap/sparse/0/points3D\.bin",
    )
    path = "colmap"
    needs_fusion = True
    needs_tracks = True
    help = ("colmap/: images/ at source resolution (--colmap-res) and a sparse/0/ model with point tracks "
            "(COLMAP, gsplat, nerfstudio)")

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .colmap import ColmapWriter

        return ColmapWriter(ctx.out_dir / cls.path, fusion=ctx.fusion, max_points=ctx.options.colmap_max_points,
                            every=ctx.options.flush_every, resolution=ctx.options.colmap_res,
                            max_reproj_error=ctx.options.colmap_max_reproj_error)


@register_export
class NerfstudioExport(Export):
    name = "nerfstudio"
    files = (
        r"nerfstudio/transforms\.json",
        r"nerfstudio/images/\d{6,}\.png",
        r"nerfstudio/depth/\d{6,}\.png",
        r"nerfstudio/sparse_pc\.ply",
    )
    path = "nerfstudio"
    needs_fusion = True
    help = ("nerfstudio/: transforms.json, images/ (as --colmap-res), 16-bit depth/ in mm and sparse_pc.ply "
            "(ns-train splatfacto --data OUT/nerfstudio)")

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .nerfstudio import NerfstudioWriter

        o = ctx.options
        return NerfstudioWriter(ctx.out_dir / cls.path, fusion=ctx.fusion, resolution=o.colmap_res,
                                conf_threshold=o.conf_threshold, every=o.flush_every)


@register_export
class GlbExport(Export):
    name = "glb"
    files = (r"scene\.glb",)
    path = "scene.glb"
    needs_fusion = True
    requires = ("trimesh",)
    extra = "glb"
    help = "scene.glb: fused cloud and cameras, glTF binary"

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .glb import GlbWriter

        return GlbWriter(ctx.out_dir / cls.path, fusion=ctx.fusion, max_points=ctx.options.glb_max_points)


@register_export
class PreviewExport(Export):
    name = "preview"
    files = (r"preview\.png",)
    path = "preview.png"
    needs_fusion = True
    default = True
    help = "preview.png: cloud and cameras from above, and a depth strip"

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .preview import PreviewWriter

        return PreviewWriter(ctx.out_dir / cls.path, fusion=ctx.fusion, n_strip=ctx.options.preview_frames)


@register_export
class VideoExport(Export):
    name = "video"
    files = (r"flythrough\.mp4",)
    path = "flythrough.mp4"
    needs_fusion = True
    requires = ("av",)
    help = "flythrough.mp4: the cloud growing along the camera path (at most 120 frames, 480 px wide)"

    @classmethod
    def create(cls, ctx: ExportContext) -> Writer:
        from .video import VideoWriter

        return VideoWriter(ctx.out_dir / cls.path, fusion=ctx.fusion)
