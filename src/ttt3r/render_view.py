"""Unseen views of a finished run: what the network predicts for cameras no frame shows.

:func:`render_views` is what ``ttt3r render-view RUN_DIR --poses FILE --intrinsics SPEC
--out DIR`` runs. It re-runs the run's frames with its weights and settings (from its
``run.json``: input, weights, update rule, size, frame selection and given cameras), then
queries each camera with its ray map alone (:meth:`ttt3r.Session.query`: no state
update), and writes per camera, in the per-frame layout of :data:`ttt3r.io.layout.DEMO_LAYOUT`::

    DIR/color/000000.png    the network's RGB prediction, network resolution
    DIR/depth/000000.npy    z of its self-view pointmap
    DIR/conf/000000.npy     its confidence
    DIR/camera/000000.npz   pose (the queried camera), intrinsics (at network
                            resolution), pose_pred (the network's pose for it)

Query poses are camera-to-world in the run's output frame (its ``camera/*.npz``
``pose``: the given poses' world frame, or the first frame's camera without
``--poses``); intrinsics in the source frames' pixels, as ``--intrinsics`` of
``ttt3r reconstruct``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import TTT3RError

_DTYPES = {"torch.float32": "fp32", "torch.bfloat16": "bf16", "torch.float16": "fp16",
           "fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}


def render_views(run_dir: str | os.PathLike, poses: str | os.PathLike, intrinsics: str,
                 out_dir: str | os.PathLike | None = None, poses_format: str = "auto",
                 device: str | None = None, model=None) -> list:
    """Query the cameras of the pose file ``poses`` (with ``intrinsics``) after the run in
    ``run_dir``; returns their :class:`ttt3r.FrameResult` and, with ``out_dir``, writes
    them there (see the module doc). ``model``: an already loaded network."""
    from .api import load_model
    from .cameras import parse_intrinsics
    from .io.frames import open_frames
    from .io.layout import DEMO_LAYOUT
    from .known import GivenCameras, given_cameras, read_pose_file
    from .session import Session

    run_json = Path(run_dir) / "run.json"
    try:
        info = json.loads(run_json.read_text())
        settings, src, weights = info["settings"], info["input"], info["weights"]
    except FileNotFoundError:
        raise TTT3RError(f"{run_json}: not found (RUN_DIR must be a ttt3r reconstruct output folder)") from None
    except (ValueError, KeyError) as e:
        raise TTT3RError(f"{run_json}: not a ttt3r run record ({type(e).__name__}: {e})") from None
    source = open_frames(src, settings.get("frame_interval", 1), settings.get("max_frames"),
                         settings.get("skip_bad", False))
    given = given_cameras(source, settings.get("intrinsics"), settings.get("poses"),
                          settings.get("poses_format", "auto"))
    if given is None:
        first = next(iter(source))
        given = GivenCameras(None, None, (first.image.shape[1], first.image.shape[0]))
    K = parse_intrinsics(intrinsics, given.source_wh).K
    queries = read_pose_file(poses, poses_format)
    if model is None:
        dtype = _DTYPES.get(str(settings.get("dtype", "fp32")), "fp32")  # run.json: the torch dtype's name
        model = load_model(weights, device or settings.get("device", "auto"), dtype, quiet=True)
    sess = Session(model, update=settings.get("update", "ttt3r"), reset_every=settings.get("reset_every", 0),
                   size=settings.get("size"))
    given.at_size(sess.size)
    for frame in source:
        given.step(sess, frame)
    results = [given.query(sess, c2w, K, f"view{i:06d}") for i, c2w in enumerate(queries.c2w)]
    if out_dir is not None:
        for i, r in enumerate(results):
            DEMO_LAYOUT.write(out_dir, i, r.rgb, r.depth, r.pose, r.intrinsics, conf=r.conf, pose_pred=r.pose_pred)
    return results
