"""The main job: any video or image folder to depth, cameras and a fused point cloud in a folder.

Each frame is read, inferred and written before the next (streaming, constant
memory). :func:`reconstruct` is what ``ttt3r reconstruct`` runs, and the one
Python function for the folder job::

    import ttt3r
    summary = ttt3r.reconstruct("video.mp4", "out/", ttt3r.ReconstructOptions(update="ttt3r"))

To get the per-frame results in memory instead of files, stream the frames
through a :class:`ttt3r.Session`.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import DownloadError, TTT3RError
from .results import FrameResult

#: Where the bundled small model lives inside the package (if it is shipped).
BUNDLED_MODEL = Path(__file__).parent / "assets" / "models" / "synth_small"
DEFAULT_RELEASED = "cut3r_512_dpt_4_64"


@dataclass
class ReconstructOptions:
    """Settings of a reconstruction run (the command's options)."""

    weights: str | None = None
    update: str = "ttt3r"
    reset_every: int = 0
    frame_interval: int = 1
    max_frames: int | None = None
    size: int | None = None
    device: str = "auto"
    dtype: str = "fp32"
    conf_threshold: float = 1.5
    exports: tuple[str, ...] | None = None
    overwrite: bool = False
    skip_bad: bool = False
    voxel_size: float | None = None
    max_points: int = 2_000_000
    colmap_res: str = "source"
    colmap_max_reproj_error: float = 1.0
    want: tuple[str, ...] = field(default_factory=tuple)
    view: bool = False
    view_port: int = 8080
    quiet: bool = False
    #: overlapping chunks (see :mod:`ttt3r.chunking`): reset every ``chunk`` frames (0: no chunks),
    #: re-feed ``overlap`` frames (None: the default), align by ``chunk_align`` (sim3 | se3)
    chunk: int = 0
    overlap: int | None = None
    chunk_align: str = "sim3"
    #: feed the sequence ``revisit`` times, outputs from the last pass (see :mod:`ttt3r.revisit`)
    revisit: int = 1
    revisit_update: bool = True
    intrinsics: str | None = None  # known cameras (ttt3r.known): "fx,fy,cx,cy", a 3x3 file, COLMAP cameras.txt
    poses: str | None = None  # camera-to-world pose file (TUM, KITTI, EuRoC, COLMAP images.txt)
    poses_format: str = "auto"
    #: with ``chunk``: close loops after the last frame and rewrite the outputs (see :mod:`ttt3r.loops`)
    loop_closure: bool = False
    #: with ``loop_closure``: also optimise every M chunks during the run, the next chunks aligned to the
    #: corrected map (None: only after the last frame; see :mod:`ttt3r.loops.online`)
    loop_every: int | None = None

    def validate(self, cli: bool = False) -> None:
        """Check every setting before anything is read or written.

        Raises :class:`TTT3RError` with one line naming the setting (its
        command-line flag, e.g. ``--max-frames``, when ``cli``) and the rule it breaks.
        """
        from .checks import check_choice, check_int, check_number
        from .device import resolve_device, resolve_dtype
        from .update import available_rules

        def name(field_name: str) -> str:
            return option_flag(field_name) if cli else field_name

        if self.weights is not None and not str(self.weights).strip():
            raise TTT3RError(f"{name('weights')}: must name a checkpoint (file, folder or known name), got ''")
        check_int(name("reset_every"), self.reset_every, minimum=0)
        check_int(name("frame_interval"), self.frame_interval, minimum=1)
        check_int(name("max_frames"), self.max_frames, minimum=1, optional=True)
        check_choice(name("size"), self.size, (512, 224), optional=True)
        check_number(name("conf_threshold"), self.conf_threshold)
        check_number(name("voxel_size"), self.voxel_size, positive=True, optional=True)
        check_int(name("max_points"), self.max_points, minimum=1)
        check_number(name("colmap_max_reproj_error"), self.colmap_max_reproj_error, positive=True)
        check_int(name("view_port"), self.view_port, minimum=0, maximum=65535)  # 0: any free port
        check_int(name("chunk"), self.chunk, minimum=0)
        from .chunking import check_chunk_options

        check_chunk_options(self.chunk, self.overlap, self.chunk_align, self.reset_every, self.revisit)
        from .loops.online import check_loop_every

        check_loop_every(self.loop_every, self.loop_closure, name("loop_every"), name("loop_closure"))
        check_choice(name("update"), self.update, available_rules())
        for field_name, resolve in (("device", resolve_device), ("dtype", resolve_dtype)):
            try:
                resolve(getattr(self, field_name))
            except TTT3RError as e:
                raise TTT3RError(f"{name(field_name)}: {e}") from None
        if self.exports is not None:
            from .writers.exports import available_exports

            for e in self.exports:
                check_choice(name("exports"), e, available_exports())


#: Command-line flags of the options whose flag is not ``--`` + the field name with dashes.
_FLAGS = {"view_port": "--port", "exports": "--export", "want": "--world-points",
          "colmap_max_reproj_error": "--colmap-max-error"}


def option_flag(field_name: str) -> str:
    """The ``ttt3r reconstruct`` flag of a :class:`ReconstructOptions` field (``max_frames`` -> ``--max-frames``)."""
    return _FLAGS.get(field_name, "--" + field_name.replace("_", "-"))


def choose_weights(weights: str | None, quiet: bool = False,
                   notice: Callable[[str], None] | None = None) -> str:
    """Resolve ``--weights``; with none given, the released 512 checkpoint (cache, then
    download), else the bundled small synthetic-scene model with a one-line notice.

    A failed download is remembered (:func:`ttt3r.hub.remember_no_network`: in this
    process and for an hour in the cache), and not tried again meanwhile.
    """
    from .hub import is_cached, no_network_recently, remember_no_network, resolve_weights

    if weights:
        return str(resolve_weights(weights, quiet=quiet))
    cached = is_cached(DEFAULT_RELEASED)
    recent = None if cached else no_network_recently()
    try:  # a cached checkpoint is returned without any download
        return str(resolve_weights(DEFAULT_RELEASED, download=recent is None, quiet=quiet))
    except DownloadError as e:
        if not (BUNDLED_MODEL / "model.safetensors").is_file():
            raise
        why = recent or str(e).split(";")[0]
        if recent is None and not cached:
            remember_no_network(why)
        msg = (f"notice: the released checkpoint {DEFAULT_RELEASED} is not available ({why}); "
               f"using the bundled small model for synthetic scenes. For real footage get the released weights: "
               f"ttt3r weights download {DEFAULT_RELEASED}")
        (notice or (lambda m: print(m, file=sys.stderr)))(msg)
        return str(BUNDLED_MODEL)


def _session(opts: ReconstructOptions, model=None):
    """The :class:`Session` (a :class:`ttt3r.chunking.ChunkedSession` with ``opts.chunk``) for ``opts``
    and a description of its weights (loads them if needed)."""
    from .api import load_model
    from .chunking import ChunkedSession, check_chunk_options, chunk_settings
    from .session import Session

    check_chunk_options(opts.chunk, opts.overlap, opts.chunk_align, opts.reset_every, opts.revisit)
    weights = "(given model)"
    if model is None:
        weights = choose_weights(opts.weights, opts.quiet)
        model = load_model(weights, opts.device, opts.dtype, quiet=opts.quiet)
    chunks = chunk_settings(opts.chunk, opts.overlap, opts.chunk_align)
    if chunks is not None:
        return ChunkedSession.for_network(model, chunks, update=opts.update, size=opts.size, want=opts.want), weights
    sess = Session(model, update=opts.update, reset_every=opts.reset_every, size=opts.size, want=opts.want)
    return sess, weights


def _revisit(sess, input_path, opts: ReconstructOptions) -> None:
    """The passes before the last of ``--revisit`` (frames re-read from the source each time)."""
    from .io.frames import open_frames
    from .revisit import warm_up

    warm_up(sess, lambda: open_frames(input_path, opts.frame_interval, opts.max_frames, opts.skip_bad),
            opts.revisit, opts.revisit_update, lambda s, frame: s.step(frame.image, frame.name))


def _step(sess, frame, source, given=None) -> FrameResult:
    """One frame through ``sess``; with ``given`` (:class:`ttt3r.known.GivenCameras`) its ray
    map is fed with the image and the result is put in the user's frame."""
    from .results import SourceRef

    result = sess.step(frame.image, frame.name) if given is None else given.step(sess, frame)
    result.timestamp = frame.timestamp  # a video's presentation time, a numeric file name's number
    result.source_index = frame.source_index
    h0, w0 = frame.image.shape[:2]
    result.source = SourceRef(os.fspath(source.source_path(frame)), (int(h0), int(w0)),
                              frame.source_index if source.kind == "video" else None, sess.size)
    return result


@dataclass
class ReconstructSummary:
    """What a :func:`reconstruct` run did.

    Attributes:
        frames: frames reconstructed and written.
        seconds: wall time of the frame loop (reading, network, writing).
        out_dir: the output folder.
        viewer: the live viewer of a ``view=True`` run, still serving (close it when done).
        loop_closure: the :class:`ttt3r.loops.refine.RefineSummary` of a ``loop_closure`` run
            (its time is not in ``seconds``).
    """

    frames: int
    seconds: float
    out_dir: Path
    viewer: object | None = None
    loop_closure: object | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def reconstruct(input_path: str | os.PathLike, out_dir: str | os.PathLike,
                opts: ReconstructOptions | None = None, model=None) -> ReconstructSummary:
    """Reconstruct ``input_path`` (a video, an image folder or a ``.txt`` list of images) into
    ``out_dir`` (see :mod:`ttt3r.writers.exports` for the layout), with the settings ``opts``.

    ``model``: an already loaded network (see :func:`ttt3r.load_model`); then
    ``opts.weights``, ``opts.device`` and ``opts.dtype`` are not used to load one.

    Ctrl-C (KeyboardInterrupt) or SIGTERM stops after the current frame; every finished
    frame stays valid on disk and ``run.json`` says the run was interrupted (a stop before
    the first frame leaves nothing, see :class:`ttt3r.writers.RunWriter`). Then
    :class:`ttt3r.interrupts.Interrupted`, a KeyboardInterrupt that says how many frames
    were kept, is raised.
    """
    from .interrupts import Interrupted, graceful_interrupts

    writers: list = []  # the run's RunWriter, once made
    note = "ttt3r: stopping after the current frame; finishing its files (a moment)"
    try:
        with graceful_interrupts(note):
            return _reconstruct(input_path, out_dir, opts or ReconstructOptions(), model, writers)
    except KeyboardInterrupt as e:
        frames = writers[0].n_frames if writers else 0
        raise Interrupted(getattr(e, "signum", signal.SIGINT), frames, Path(out_dir), kept=frames > 0) from None


def _reconstruct(input_path, out_dir, opts: ReconstructOptions, model, writers: list) -> ReconstructSummary:
    from .io.frames import open_frames
    from .writers import DEFAULT_EXPORTS, RunWriter, WriterOptions
    from .writers.outdir import OutputDir

    opts = opts or ReconstructOptions()
    opts.validate()
    if not os.fspath(out_dir).strip():
        raise TTT3RError("out_dir: must name a folder, got ''")
    exports = tuple(opts.exports or DEFAULT_EXPORTS)
    if opts.loop_closure:
        _check_loop_closure(opts, exports)
    source = open_frames(input_path, opts.frame_interval, opts.max_frames, opts.skip_bad)
    given = _given_cameras(source, opts)
    frames = iter(source)
    first = next(frames, None)  # the first frame is read (and checked) before any folder is made
    OutputDir(out_dir, exports, overwrite=opts.overwrite).check()
    sess, weights = _session(opts, model)
    from .device import dtype_name
    from .hub import checkpoint_sha256

    if given is not None:
        given.at_size(sess.size)
    info = {
        "input": os.fspath(input_path),
        "weights": weights,
        "weights_sha256": checkpoint_sha256(weights) if model is None else None,
        "settings": {k: v for k, v in asdict(opts).items()
                     if k not in ("quiet", "view_port") and not (k == "loop_every" and v is None)}
        | {"size": sess.size, "device": str(sess.model.device), "dtype": dtype_name(sess.model.dtype)},
        "frames_total": source.total,
        **source.counts(),  # frames_expected / frames_read / frames_skipped, updated when reading ends
    }
    wopts = WriterOptions(conf_threshold=opts.conf_threshold, voxel_size=opts.voxel_size, max_points=opts.max_points,
                          colmap_res=opts.colmap_res, colmap_max_reproj_error=opts.colmap_max_reproj_error)
    viewer = None
    if opts.view:
        from .viewer import LiveViewer

        viewer = LiveViewer(port=opts.view_port, conf_threshold=opts.conf_threshold)
        if source.total:
            viewer.expect_frames(source.total)
        if not opts.quiet:
            print(f"viewer: {viewer.url}", file=sys.stderr)
    store = online = None
    if opts.loop_closure:
        import numpy as np

        from .loops.descriptors import encoder_descriptor
        from .loops.retrieval import DescriptorStore

        store = DescriptorStore()  # the network's descriptors, O(frames) floats
    bar = _progress(source.total, opts.quiet)
    t0 = time.perf_counter()
    n = 0
    interrupted = False
    try:
        with RunWriter(out_dir, exports, fps=source.sequence_fps, overwrite=opts.overwrite,
                       options=wopts, info=info, background=True) as writer:
            writers.append(writer)
            online = _online_loops(sess, writer, opts) if opts.loop_every is not None else None
            if online is not None:
                store = online.store
            try:
                _revisit(sess, input_path, opts)
                for frame in itertools.chain([first] if first is not None else [], frames):
                    result = _step(sess, frame, source, given)
                    if store is not None:
                        feat = result.extras.get("global_feat")
                        desc = None if feat is None else encoder_descriptor(feat)
                        if online is not None:
                            if n == 0:  # the verification's translation unit, as the final closure's
                                online.scene_scale = float(np.median(result.depth))
                            online.add(result.index, result.pose, desc)
                        elif desc is not None:
                            store.add(result.index, desc)
                    writer.add(result)
                    if viewer is not None:
                        viewer.add(result)
                    n += 1
                    bar.update(1)
            except KeyboardInterrupt:
                interrupted = True
                raise
            finally:
                writer.info.update(source.counts())
    finally:
        bar.close()
        if viewer is not None and interrupted:
            viewer.close()
    seconds = time.perf_counter() - t0
    closed = _close_loops(out_dir, sess, store, opts, online) if store is not None and n else None
    return ReconstructSummary(n, seconds, Path(out_dir), viewer, closed)


def _check_loop_closure(opts: ReconstructOptions, exports: tuple[str, ...]) -> None:
    from .errors import TTT3RError

    if not opts.chunk:
        raise TTT3RError("--loop-closure needs --chunk N (the pose graph's nodes are the chunks)")
    if "demo" not in exports:
        raise TTT3RError("--loop-closure needs the 'demo' export (the rewrite re-reads depth, conf, color and camera)")


def _network_measure(sess, run_dir, opts: ReconstructOptions):
    """Loop verification by the run's network on a two-frame session of the run's saved images,
    in the units of its saved depth (:func:`ttt3r.loops.refine.pair_measure`)."""
    from .loops.refine import network_pair, pair_measure, run_depth_reader

    return pair_measure(network_pair(sess.model, run_dir, opts.update, sess.size), run_depth_reader(run_dir),
                        opts.conf_threshold)


def _online_loops(sess, writer, opts: ReconstructOptions):
    """``--loop-every M``: an :class:`ttt3r.loops.online.OnlineLoops` hooked into the chunked session,
    measuring pairs from the files written so far (the writer is waited for first)."""
    from dataclasses import replace

    from .loops.online import OnlineLoops
    from .loops.refine import LoopSettings

    settings = replace(LoopSettings(conf_threshold=opts.conf_threshold), min_gap=2 * opts.chunk)  # as refine_run's
    online = OnlineLoops(_network_measure(sess, writer.write_dir, opts), settings, opts.loop_every,
                         before=writer.wait)
    sess.between_chunks = lambda done: online.between_chunks(sess.alignments, done)
    return online


def _close_loops(out_dir, sess, store, opts: ReconstructOptions, online=None):
    """Loop closure after the last frame (:func:`ttt3r.loops.refine.refine_run`) with the run's network;
    with ``online`` (``--loop-every``) its verified pairs are reused and its optimisations recorded."""
    from .loops.refine import LoopSettings, refine_run

    desc = store.descriptors if len(store) else None
    known = during = limit = None
    if online is not None:  # its measurements are reused and count against the run's one budget
        known, during, limit = online.measured, online.record(), online.remaining(online.frames)
        if len(store) != online.frames:  # a frame without the pooled token: image descriptors instead
            desc = None
    return refine_run(out_dir, _network_measure(sess, out_dir, opts), LoopSettings(conf_threshold=opts.conf_threshold),
                      descriptors=desc, known=known, during_run=during, measure_limit=limit,
                      progress=not opts.quiet)


def _given_cameras(source, opts: ReconstructOptions):
    """The known cameras of ``opts`` checked against ``source`` (:func:`ttt3r.known.given_cameras`)."""
    if opts.intrinsics is None and opts.poses is None:
        return None
    from .errors import TTT3RError
    from .known import given_cameras

    if opts.poses is not None and opts.reset_every:
        raise TTT3RError("--poses with --reset-every is not supported (each chunk would need its own "
                         "reference camera); drop --reset-every")
    if opts.chunk or opts.revisit > 1:
        flag = "--chunk" if opts.chunk else "--revisit"
        raise TTT3RError(f"--intrinsics/--poses with {flag} is not supported yet (known cameras are fed to a "
                         f"single session); drop {flag}")
    return given_cameras(source, opts.intrinsics, opts.poses, opts.poses_format)


def _progress(total: int | None, quiet: bool):
    from .progress import progress_bar

    return progress_bar(total, "reconstruct", enabled=not quiet)
