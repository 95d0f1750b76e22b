"""Streaming reconstruction: one frame in, one :class:`FrameResult` out.

A :class:`Session` owns the recurrent state and applies, per frame: preprocessing,
the network step with the chosen update rule, optional periodic resets with
chunk chaining, and post-processing (depth, confidence, camera-to-world pose,
intrinsics from the Weiszfeld focal fit). Memory is constant in the number of
frames: only the state, the pose memory and a 4x4 chunk base are kept.

Resets (``reset_every=N``) follow the original demo: after every N-th frame the
state and pose memory return to their initial values and that frame is fed again
(its output discarded; its encoder tokens are reused, so only the decoder and
heads run again) to open the next chunk; the new chunk's poses are
expressed in the previous chunk's frame by left-multiplying with the shared
frame's pose. The re-feed happens lazily, when the next frame arrives, so a
sequence that ends on a reset does no wasted work.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .geometry import intrinsics_from_focal
from .model.cut3r import CUT3R, EncodedView, State, StepOutput
from .model.pose_encoding import estimate_focal_weiszfeld, pose_encoding_to_matrix
from .preprocess import Preprocessed, preprocess
from .results import FrameResult
from .step_graph import StepGraphMode, make_stepper
from .update import UpdateRule, get_rule

Image = Any  # path, PIL image or HxWx3 array


class Session:
    """Stream frames through a CUT3R network with a chosen update rule.

    Args:
        model: a loaded network (see :func:`ttt3r.load_model`).
        update: state-update rule name (``"ttt3r"``, ``"cut3r"``) or rule object.
        reset_every: reset the state after every N frames (0: never).
        size: preprocessing size (512 or 224); default: the checkpoint's.
        want: extra outputs: ``"world"`` (world-frame pointmap head), ``"rgb"``.
        raw_hook: called with each fed view's raw :class:`StepOutput` (including
            the re-fed reset frames), for debugging and parity checks.
        step_graph: ``"none"`` (eager, the default), ``"compile"`` (torch.compile) or
            ``"cudagraph"`` (CUDA only): how non-fresh image frames run (see
            :mod:`ttt3r.step_graph`).
    """

    def __init__(self, model: CUT3R, update: str | UpdateRule = "ttt3r", reset_every: int = 0,
                 size: int | None = None, want: Iterable[str] = (),
                 raw_hook: Callable[[StepOutput], None] | None = None, step_graph: StepGraphMode = "none"):
        if reset_every < 0:
            raise ValueError("reset_every must be >= 0")
        self.model = model
        self.rule = get_rule(update)
        self.reset_every = int(reset_every)
        self.size = int(size or model.cfg.default_size)
        self.want = frozenset(want)
        self.raw_hook = raw_hook
        self._step = make_stepper(model, step_graph)
        self.state: State | None = None
        self._base = np.eye(4)
        self._pending: tuple[Preprocessed, torch.Tensor | None, EncodedView | None] | None = None
        #: the encoder output of the last view fed (None under ``step_graph``): pass it
        #: back as ``step(..., encoded=)`` to feed that view again without re-encoding it
        self.last_encoded: EncodedView | None = None
        self.frames_done = 0
        #: False: frames read the state without changing it (state and pose memory;
        #: the later passes of ``--no-revisit-update``)
        self.update_state = True

    # ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything: the next frame starts a new sequence."""
        self.state = None
        self._base = np.eye(4)
        self._pending = None
        self.frames_done = 0

    @torch.inference_mode()
    def _feed(self, pre: Preprocessed, rays: torch.Tensor | None = None,
              encoded: EncodedView | None = None) -> tuple[StepOutput, float]:
        """Run the network on one view (from its encoder output when ``encoded`` is given);
        returns its output and the seconds of the network step."""
        m = self.model
        img = pre.tensor.to(device=m.device, dtype=m.dtype) if pre.tensor is not None and encoded is None else None
        if rays is not None and encoded is None:
            rays = rays.to(device=m.device, dtype=m.dtype)
        else:
            rays = None
        if self.state is None:
            self.state = m.init_state(1)
        has_image = encoded.has_image if encoded is not None else img is not None
        want = self.want if has_image else self.want | {"rgb"}
        t0 = time.perf_counter()
        out, new_state = self._step(img, self.state, self.rule, rays=rays, want=want, encoded=encoded)
        if m.device.type == "cuda":  # CUDA kernels run asynchronously: wait for them to finish
            torch.cuda.synchronize(m.device)
        seconds = time.perf_counter() - t0
        self.last_encoded = out.encoded
        if has_image and self.update_state:
            self.state = new_state
        # a ray-map-only frame queries the state without updating it (as the original:
        # its update mask is its image mask)
        if self.raw_hook is not None:
            self.raw_hook(out)
        return out, seconds

    def flush(self) -> None:
        """Feed a pending reset re-open now (normally done when the next frame comes)."""
        if self._pending is not None:
            (pre, rays, encoded), self._pending = self._pending, None
            self._feed(pre, rays, encoded)

    def step(self, image: Image | Preprocessed | None, name: str | None = None,
             rays: np.ndarray | None = None, *, encoded: EncodedView | None = None) -> FrameResult:
        """Process one frame: an image (path, PIL image, HxWx3 array, :class:`Preprocessed`),
        a ray map (H, W, 6) of a known camera (see :func:`ttt3r.cameras.ray_map`), or both.

        With both, the ray map's encoder tokens are added to the image's and the state
        is updated, as the original does with image and ray masks on.
        A ray-map-only frame has no pixels; it reads the state without changing it,
        and its ``rgb`` is the network's RGB prediction (:meth:`query` does the same
        without counting it as a frame of the sequence).
        Ray maps are given at the network's input resolution (multiples of 16).

        ``encoded``: this view's encoder output from when it was fed before
        (:attr:`last_encoded` then): the encoder is skipped, with bit-identical
        outputs; ``image`` (a :class:`Preprocessed`, its tensor may be None) then
        only gives the result's colours, and ``rays`` must be None.
        """
        t0 = time.perf_counter()
        rays_t = _rays_tensor(rays)
        if encoded is not None and (rays_t is not None or not isinstance(image, Preprocessed)):
            raise ValueError("a step from encoder output takes the Preprocessed view and no ray map")
        if image is None:
            if rays_t is None:
                raise ValueError("a frame needs an image, a ray map, or both")
            pre = _ray_only(rays_t)
        else:
            pre = image if isinstance(image, Preprocessed) else preprocess(image, self.size, name)
            if rays_t is not None and tuple(rays_t.shape[-2:]) != pre.rgb.shape[:2]:
                raise InputError(f"{name or 'frame'}: ray map is {rays_t.shape[-2]}x{rays_t.shape[-1]}, "
                                 f"the preprocessed image {pre.rgb.shape[0]}x{pre.rgb.shape[1]}")
        self.flush()
        out, t_net = self._feed(pre, rays_t, encoded)
        if image is None:
            _fill_rgb(pre, out)
        index = self.frames_done
        self.frames_done += 1
        result = self._postprocess(out, pre, index, name)
        if self.reset_every and self.frames_done % self.reset_every == 0:
            self._base = result.pose.copy()
            self.state = self.state.reset() if self.state is not None else None
            self._pending = (pre, rays_t, out.encoded)
        result.time_s = t_net
        result.total_s = time.perf_counter() - t0
        return result

    def query(self, rays: np.ndarray, name: str | None = None) -> FrameResult:
        """What the network predicts for an unseen camera, given only its ray map.

        ``rays``: (H, W, 6) ray map (see :func:`ttt3r.cameras.ray_map`) relative to the
        first frame's camera. The state, the pose memory and the frame count are left
        untouched (the original's ray-only view: image mask off, no update), so the
        next frame's outputs are as if the query never happened. The result's ``rgb``
        and ``rgb_pred`` are the network's RGB prediction, ``pose`` its pose-head pose
        in the world frame; ``index`` is the number of frames seen before the query.
        """
        t0 = time.perf_counter()
        rays_t = _rays_tensor(rays)
        if rays_t is None:
            raise ValueError("a query needs a ray map")
        pre = _ray_only(rays_t)
        self.flush()
        out, t_net = self._feed(pre, rays_t)
        _fill_rgb(pre, out)
        result = self._postprocess(out, pre, self.frames_done, name or f"query{self.frames_done:06d}")
        result.time_s = t_net
        result.total_s = time.perf_counter() - t0
        return result

    def run(self, frames: Iterable[Image], names: Iterable[str] | None = None) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per frame, as each is produced."""
        names_it = iter(names) if names is not None else None
        for frame in frames:
            name = next(names_it) if names_it is not None else None
            if name is None and isinstance(frame, (str, os.PathLike)):
                name = os.path.basename(os.fspath(frame))
            yield self.step(frame, name)

    # ------------------------------------------------------------------
    def _postprocess(self, out: StepOutput, pre: Preprocessed, index: int, name: str | None) -> FrameResult:
        pts = out.pts3d_self.float()
        h, w = pts.shape[1:3]
        pp = torch.tensor([[w // 2, h // 2]], dtype=torch.float32, device=pts.device)
        focal = estimate_focal_weiszfeld(pts, pp)[0]
        raw_pose = pose_encoding_to_matrix(out.pose.float())[0].double().cpu().numpy()
        pose = self._base @ raw_pose
        extras: dict[str, np.ndarray] = {}
        world = None
        if out.pts3d_world is not None:
            world = out.pts3d_world[0].float().cpu().numpy()
            world = (world.astype(np.float64) @ self._base[:3, :3].T + self._base[:3, 3]).astype(np.float32)
            extras["conf_world"] = out.conf_world[0].float().cpu().numpy()
        if out.global_feat is not None:  # (enc_dim,) the loop-detection descriptor's source
            extras["global_feat"] = out.global_feat[0].float().cpu().numpy()
        rgb_pred = None
        if out.rgb is not None:
            rgb_pred = ((out.rgb[0].float().cpu().numpy() + 1.0) / 2.0).clip(0, 1)
        return FrameResult(
            index=index,
            name=name or f"frame{index:06d}",
            pts3d_cam=pts[0].cpu().numpy(),
            conf=out.conf_self[0].float().cpu().numpy(),
            pose=pose,
            intrinsics=intrinsics_from_focal(focal.item(), h, w),
            rgb=pre.rgb,
            pts3d_world=world,
            rgb_pred=rgb_pred,
            extras=extras,
        )


def _rays_tensor(rays: np.ndarray | None) -> torch.Tensor | None:
    """(H, W, 6) ray map -> (1, 6, H, W) float32 tensor (None stays None)."""
    if rays is None:
        return None
    a = np.asarray(rays, dtype=np.float32)
    if a.ndim != 3 or a.shape[-1] != 6:
        raise InputError(f"ray map must be (H, W, 6), got shape {a.shape}")
    return torch.from_numpy(a).permute(2, 0, 1)[None]


def _ray_only(rays: torch.Tensor) -> Preprocessed:
    """A pixel-less frame of the ray map's size (its rgb is filled from the RGB head)."""
    h, w = rays.shape[-2:]
    return Preprocessed(None, np.zeros((h, w, 3), np.uint8), (h, w))


def _fill_rgb(pre: Preprocessed, out: StepOutput) -> None:
    if out.rgb is not None:
        pre.rgb = ((out.rgb[0].float().cpu().numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
