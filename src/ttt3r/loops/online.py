"""Loop closure while a chunked run streams: ``--loop-every M``.

Every ``M`` finished chunks (between a chunk's last frame and the next chunk's
first), :meth:`OnlineLoops.between_chunks`

1. finds loop candidates among the frames so far (their descriptors are
   collected as the frames stream, :meth:`OnlineLoops.add`);
2. measures and verifies only the pairs not measured before, within the run's
   one verification budget (:meth:`OnlineLoops.remaining`: the whole run, these
   optimisations and the final one, measures at most
   ``settings.candidate_cap(N)`` pairs, N the run's frames); every measurement,
   kept or rejected, is kept (O(loops)): it is never measured again, and every
   one of them is used again by later optimisations and the final one;
3. solves the chunk pose graph over the chunks so far
   (:func:`~ttt3r.loops.refine.detect_and_close`), and
4. returns the latest chunk's correction ``C = T' T^-1`` (world to world, Sim(3)),
   which :class:`~ttt3r.chunking.ChunkedSession` gives to the chunk aligner
   (:meth:`~ttt3r.chunking.aligner.ChunkAligner.correct`): the next chunk is
   aligned to the corrected map instead of drifting on from the uncorrected one.

Frames already emitted (written) stay as they are: the graph's nodes are the
transforms the frames were written with (the aligner's records, ``run.json``'s
chunk records), its sequential edges what each overlap measured
(``aligned_to^-1 T``), so every optimisation, and the final one after the last
frame, solves for corrections of the frames as written, and corrections
compose. The poses as written are kept in memory (128 bytes a frame) with the
descriptors.

Each optimisation is recorded (:meth:`OnlineLoops.record`): the chunk it
followed, the frames, candidates, pairs newly measured, loops used and kept by
the graph, and its seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import TTT3RError
from .refine import LoopSettings, alignment_graph, detect_and_close
from .retrieval import DescriptorStore
from .verify import PairMeasurement, VerifiedLoop

__all__ = ["OnlineLoops", "check_loop_every"]


def check_loop_every(every: int | None, loop_closure: bool, flag: str = "--loop-every",
                     closure_flag: str = "--loop-closure") -> None:
    """One-line :class:`TTT3RError` for a bad ``--loop-every M`` (None: not given): M must be an
    integer >= 1, and it needs loop closure."""
    from ..checks import check_int

    if every is None:
        return
    check_int(flag, every, minimum=1)
    if not loop_closure:
        raise TTT3RError(f"{flag} needs {closure_flag} (it optimises the loop-closure pose graph during the run)")


@dataclass
class OnlineLoops:
    """Loop closure every ``every`` chunks of a streaming chunked run (see the module doc).

    Args:
        measure: ``(frame_i, frame_j) -> PairMeasurement | None`` (e.g.
            :func:`~ttt3r.loops.refine.pair_measure`); it may read the frames as written.
        settings: :class:`~ttt3r.loops.refine.LoopSettings` (``min_gap`` None: twice the largest chunk).
        every: M >= 1, optimise after every M-th finished chunk.
        scene_scale: the unit of the verification's translation check.
        before: called before each optimisation (e.g. to let a background writer finish
            the frames so far, which ``measure`` reads).
        graph_options: passed to :func:`~ttt3r.loops.pose_graph.optimize_pose_graph`.
        kind: the descriptors' kind, ``"encoder"`` or ``"image"`` (their default threshold).

    Attributes:
        measured: every pair measured so far, ``(i, j) -> VerifiedLoop`` (frame indices), kept
            by verification or not: ``len(measured)`` is the calls of ``measure`` so far.
        optimisations: one JSON record per optimisation during the run.
    """

    measure: Callable[[int, int], PairMeasurement | None]
    settings: LoopSettings
    every: int
    scene_scale: float = 1.0
    before: Callable[[], None] | None = None
    graph_options: dict | None = None
    kind: str = "encoder"
    measured: dict[tuple[int, int], VerifiedLoop] = field(default_factory=dict)
    optimisations: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_loop_every(self.every, True, "every")
        self.store = DescriptorStore()
        self._poses: list[np.ndarray] = []
        self._frames: list[int] = []

    def add(self, frame: int, pose: np.ndarray, descriptor: np.ndarray | None) -> None:
        """A frame as emitted (written): its index, (4, 4) camera-to-world pose, (D,) descriptor
        (None: none; then no optimisation runs during the run)."""
        self._frames.append(int(frame))
        self._poses.append(np.array(pose, np.float64))
        if descriptor is not None:
            self.store.add(frame, descriptor)

    @property
    def frames(self) -> int:
        """Frames added so far."""
        return len(self._frames)

    @property
    def poses(self) -> np.ndarray:
        """(N, 4, 4) the frames' poses as emitted."""
        return np.stack(self._poses) if self._poses else np.empty((0, 4, 4))

    def remaining(self, frames: int) -> int | None:
        """New pairs an optimisation over ``frames`` frames may measure: the verification budget
        ``settings.candidate_cap(frames)`` less the pairs measured so far (at least 0); None
        without a budget (``verify_budget`` None: each optimisation measures up to its cap)."""
        if self.settings.verify_budget is None:
            return None
        return max(self.settings.candidate_cap(frames) - len(self.measured), 0)

    def between_chunks(self, alignments, completed: int) -> np.ndarray | None:
        """After ``completed`` chunks (``alignments``: their records, chunk 0 first): the latest
        chunk's (4, 4) correction when this is an M-th chunk and the graph moved, else None."""
        if completed % self.every or not self._frames:
            return None
        t0 = time.perf_counter()
        rec: dict = {"chunk": completed - 1, "frames": len(self._frames)}
        if len(self.store) != len(self._frames):
            self.optimisations.append(rec | {"skipped": "a frame has no descriptor"})
            return None
        if self.before is not None:
            self.before()
        nodes, starts, weights, aligned = alignment_graph(alignments[:completed])
        frames = np.asarray(self._frames)
        chunk_of = np.searchsorted(starts, frames, side="right") - 1
        if len(chunk_of) and chunk_of.min() < 0:
            raise TTT3RError("loop closure during the run: a frame before chunk 0's first frame")
        limit = self.remaining(len(self._frames))
        closed, records, n_cands = detect_and_close(
            nodes, chunk_of, self.poses, self.store.descriptors, self.measure, self.settings,
            frames=list(self._frames), scene_scale=self.scene_scale, sequential_weights=weights,
            graph_options=self.graph_options, aligned_to=aligned, known=self.measured, kind=self.kind,
            measure_limit=limit)
        for v in closed.loops:
            self.measured.setdefault((v.i, v.j), v)
        correction = None if closed.graph is None else closed.graph.corrections(nodes)[-1]
        rec |= {"candidates": n_cands, "measured": closed.measured, "measure_limit": limit,
                "loops": sum(1 for r in records if r["accepted"]),
                "kept": sum(1 for r in records if r["rejected_by_graph"] is False),
                "moved": correction is not None, "seconds": round(time.perf_counter() - t0, 3)}
        self.optimisations.append(rec)
        return correction

    def record(self) -> dict:
        """The JSON record of the optimisations during the run (``run.json``'s
        ``loop_closure.during_run``, an evaluation's ``loop_closure.during_run``)."""
        return {"every": self.every, "optimisations": list(self.optimisations),
                "measured": len(self.measured),
                "seconds": round(sum(r.get("seconds", 0.0) for r in self.optimisations), 3)}
