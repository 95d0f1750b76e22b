"""Compiled and CUDA-graph frame steps (``Session(..., step_graph=...)``).

The state has a fixed size, so once a sequence is under way (the state is not
``fresh``) a frame step is the same computation every frame: image (B, 3, H, W),
state tokens (B, S, C), their positions (B, S, 2) and pose memory (B, M, 2C) in;
outputs, new state tokens and new memory out, all of fixed shapes. That lets it be

* ``"compile"``: compiled with ``torch.compile(dynamic=False, fullgraph=True)`` (any
  device; the step traces as one graph, so a change that breaks it fails loudly), or
* ``"cudagraph"``: captured once per input shape as a CUDA graph and replayed
  (CUDA only; inference only).

Both wrap the one function :class:`TensorStep`, which calls :meth:`CUT3R.step`
itself, so the graph path computes exactly what the eager path computes. Fresh
frames (the first of a sequence or chunk) and ray-map frames run the eager
:meth:`CUT3R.step`; each new input shape gets its own compiled function or graph. ``"none"`` (the default) is the plain eager step:
capture costs two extra steps plus a second memory pool per shape, and compilation
takes minutes, so neither is switched on by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from .errors import TTT3RError
from .model.cut3r import CUT3R, EncodedView, State, StepOutput
from .update import UpdateRule, get_rule

StepGraphMode = Literal["none", "compile", "cudagraph"]
MODES: tuple[str, ...] = ("none", "compile", "cudagraph")
StepFn = Callable[..., tuple[StepOutput, State]]
#: order of the tensors a :class:`TensorStep` returns
OUTPUTS = ("pts3d_self", "conf_self", "pose", "pts3d_world", "conf_world", "rgb", "pose_raw", "global_feat", "feat",
           "mem")


class TensorStep:
    """One non-fresh image step as a function of tensors only (what is compiled or captured).

    ``__call__(img (B, 3, H, W), feat (B, S, C), pos (B, S, 2) or None, mem (B, M, 2C))``
    returns the tensors named in :data:`OUTPUTS` (None where a head is not asked for).
    """

    def __init__(self, model: CUT3R, rule: str | UpdateRule, want: frozenset[str]):
        self.model, self.rule, self.want = model, get_rule(rule), frozenset(want)

    def __call__(self, img: Tensor, feat: Tensor, pos: Tensor | None, mem: Tensor) -> tuple[Tensor | None, ...]:
        state = State(feat, pos, mem, feat, mem, fresh=False)
        out, new = self.model.step(img, state, self.rule, want=self.want)
        return (out.pts3d_self, out.conf_self, out.pose, out.pts3d_world, out.conf_world, out.rgb,
                out.pose_raw, out.global_feat, new.feat, new.mem)


class CapturedStep:
    """A function of tensors captured as a CUDA graph on example inputs and replayed.

    The inputs are copied into static buffers, the graph is replayed and the outputs
    are cloned (so results stay valid after the next replay). ``fn`` is run twice
    on a side stream before capture (allocator and library warm-up). ``forget`` is
    called just before and after the capture: it must drop any cache of tensors that
    ``fn`` keeps between calls, since the graph would read those tensors' memory at
    every replay while the cache may free it (here: the RoPE tables).
    """

    def __init__(self, fn: Callable[..., tuple[Tensor | None, ...]], example: tuple[Tensor | None, ...],
                 warmup: int = 2, forget: Callable[[], None] = lambda: None):
        self.fn = fn
        self.inputs = tuple(None if t is None else t.clone() for t in example)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                fn(*self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        forget()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = fn(*self.inputs)
        forget()

    def __call__(self, *inputs: Tensor | None) -> tuple[Tensor | None, ...]:
        for dst, src in zip(self.inputs, inputs):
            if dst is not None:
                dst.copy_(src)
        self.graph.replay()
        return tuple(None if t is None else t.clone() for t in self.outputs)


class GraphStepper:
    """A drop-in for :meth:`CUT3R.step` that runs non-fresh image frames compiled or
    from a CUDA graph (one per input shape, dtype, rule and head set)."""

    def __init__(self, model: CUT3R, mode: StepGraphMode):
        if mode not in ("compile", "cudagraph"):
            raise TTT3RError(f"step_graph={mode!r}: use one of {', '.join(MODES)}")
        if mode == "cudagraph" and model.device.type != "cuda":
            raise TTT3RError(f"step_graph='cudagraph' needs a network on CUDA (it is on {model.device.type})")
        self.model, self.mode = model, mode
        self._runners: dict[tuple, Callable[..., tuple[Tensor | None, ...]]] = {}

    def _runner(self, key: tuple, rule: UpdateRule, want: frozenset[str], example: tuple):
        run = self._runners.get(key)
        if run is None:
            fn = TensorStep(self.model, rule, want)
            if self.mode == "compile":
                run = torch.compile(fn, dynamic=False, fullgraph=True)
            else:
                run = CapturedStep(fn, example, forget=self.model.rope.clear_cache)
            self._runners[key] = run
        return run

    def __call__(self, img: Tensor | None, state: State, rule: str | UpdateRule = "ttt3r",
                 rays: Tensor | None = None, want: frozenset[str] | set[str] = frozenset(),
                 encoded: EncodedView | None = None):
        rule, want = get_rule(rule), frozenset(want)
        if state.fresh or img is None or rays is not None or encoded is not None:
            return self.model.step(img, state, rule, rays=rays, want=want, encoded=encoded)
        img = img.to(self.model.dtype)
        ins = (img, state.feat, state.pos, state.mem)
        key = (rule.name, want, *((None if t is None else (tuple(t.shape), t.dtype)) for t in ins))
        run = self._runner(key, rule, want, ins)
        # every call starts from an empty RoPE cache: the compiled code's guards then see
        # the same Python state each frame (no recompiles), and no capture reads the cache
        self.model.rope.clear_cache()
        outs = dict(zip(OUTPUTS, run(*ins)))
        feat, mem = outs.pop("feat"), outs.pop("mem")
        return StepOutput(**outs), State(feat, state.pos, mem, state.init_feat, state.init_mem, fresh=False)


def make_stepper(model: CUT3R, mode: StepGraphMode = "none") -> StepFn:
    """``model.step`` itself for ``"none"``, else a :class:`GraphStepper` (same signature)."""
    if mode == "none":
        return model.step
    return GraphStepper(model, mode)
