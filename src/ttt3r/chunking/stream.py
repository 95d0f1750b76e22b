"""Chunked streaming: reset every N frames, re-feed the last K, align each chunk as it comes.

A :class:`ChunkedSession` drives a *chunk predictor* (anything with
``prepare`` / ``new_chunk`` / ``predict``, see :class:`ChunkPredictor`):

* :class:`NetworkChunks`: the network through a :class:`ttt3r.Session` whose
  state is reset at each chunk start (exactly as ``reset_every`` resets it);
* :class:`ttt3r.chunking.oracle.DriftOracle`: the ground truth made into what
  a chunked feed-forward network gives (evaluation and tests).

Both go through the same schedule (:mod:`ttt3r.chunking.settings`) and the
same :class:`ttt3r.chunking.aligner.ChunkAligner`. ``step`` returns one
world-frame :class:`FrameResult` per frame, at once: a chunk's transform is
known after its K overlap frames, before its first new frame is predicted.
The first new frame of each chunk carries its alignment record in
``extras["chunk"]`` (for ``run.json`` and the preview); its ``total_s``
includes the overlap re-feed and the fit (``time_s`` stays the frame's own
network step).

Memory: the K last frames kept for the re-feed, each as its encoder output
(a re-feed then skips the encoder: see :class:`NetworkChunks`) and its colours;
at 512 x 288 that is 576 x 1,024 float32 tokens (2.25 MiB) plus a 0.42 MiB
uint8 image, 2.68 MiB a frame; and the aligner's point grids (at most
``max_points`` points of the previous chunk and as many of the overlap, 32
bytes each: 0.6 MiB at 10,000). So 22.0 MiB for K = 8 and 43.5 MiB for K = 16
at 512 x 288, whatever N and the sequence length (the bound, K = N - 1 = 99 for
N = 100, is 266 MiB).
No chunk's outputs are held back. See docs/long_sequences.md.

Between two chunks, before the next one opens, :attr:`ChunkedSession.between_chunks`
(when set) is called with the number of chunks finished; a (4, 4) Sim(3) it
returns moves the finished chunk in the aligner
(:meth:`~ttt3r.chunking.aligner.ChunkAligner.correct`), so the next chunk is
aligned to the moved map: loop closure during the run (:mod:`ttt3r.loops.online`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..results import FrameResult
from .aligner import ChunkAligner, ChunkAlignment
from .settings import ChunkSettings

__all__ = ["ChunkPredictor", "ChunkedSession", "NetworkChunks"]


class ChunkPredictor(Protocol):
    """Per-chunk predictions: each chunk in its own frame (its first fed frame's camera)."""

    def prepare(self, frame: Any, name: str | None) -> Any:
        """What :meth:`predict` takes for ``frame`` (kept for a re-feed: must be reusable)."""
        ...

    def new_chunk(self) -> None:
        """Forget the state: the next :meth:`predict` opens a new chunk."""
        ...

    def predict(self, prepared: Any, name: str | None) -> FrameResult:
        """The prediction for one prepared frame, in the current chunk's frame."""
        ...

    def keep(self, prepared: Any) -> Any:
        """What to keep of a frame just predicted, for re-feeding it (``predict`` takes it)."""
        ...


@dataclass(frozen=True)
class _Refeed:
    """A frame kept for re-feeding: its colours and its encoder output (no input tensor)."""

    pre: Any  # Preprocessed, tensor None
    encoded: Any  # EncodedView


class NetworkChunks:
    """The network as a :class:`ChunkPredictor`: a :class:`ttt3r.Session` (no ``reset_every``)
    whose state is reset at each chunk start.

    A re-fed overlap frame runs from its kept encoder output (the encoder does not
    depend on the state), so a re-feed costs the decoder and the self-view head
    only (no world or RGB head: re-fed outputs serve the alignment alone). Under a
    ``step_graph`` session no encoder output is exposed and re-feeds run in full.
    """

    def __init__(self, session) -> None:
        if session.reset_every:
            raise ValueError("NetworkChunks needs a Session without reset_every")
        self.session = session

    @property
    def size(self) -> int:
        return self.session.size

    @property
    def model(self):
        return self.session.model

    def prepare(self, frame: Any, name: str | None):
        from ..preprocess import Preprocessed, preprocess

        return frame if isinstance(frame, Preprocessed) else preprocess(frame, self.session.size, name)

    def new_chunk(self) -> None:
        s = self.session
        s.state = s.state.reset() if s.state is not None else None

    def predict(self, prepared, name: str | None) -> FrameResult:
        if not isinstance(prepared, _Refeed):
            return self.session.step(prepared, name)
        s, want = self.session, self.session.want
        s.want = frozenset()
        try:
            return s.step(prepared.pre, name, encoded=prepared.encoded)
        finally:
            s.want = want

    def keep(self, prepared):
        enc = self.session.last_encoded
        if enc is None:
            return prepared
        return _Refeed(dataclasses.replace(prepared, tensor=None), enc)


class ChunkedSession:
    """Stream frames chunk by chunk and put the chunks into one world frame.

    Args:
        predictor: a :class:`ChunkPredictor`.
        settings: the chunking; None: one chunk (never reset), results passed through.

    Use like :class:`ttt3r.Session`: ``step(frame, name)`` or ``run(frames)``;
    :attr:`alignments` lists each chunk's :class:`ChunkAlignment` so far.
    """

    def __init__(self, predictor: ChunkPredictor, settings: ChunkSettings | None) -> None:
        self.predictor = predictor
        self.settings = settings
        self.aligner = ChunkAligner(settings) if settings is not None else None
        self._recent: deque[tuple[int, Any, str | None]] = deque(maxlen=settings.overlap if settings else 1)
        self.frames_done = 0
        #: ``completed_chunks -> (4, 4) correction | None``, called between chunks (see the module doc)
        self.between_chunks: Callable[[int], np.ndarray | None] | None = None

    @classmethod
    def for_network(cls, model, settings: ChunkSettings | None, update: str = "ttt3r", size: int | None = None,
                    want: Iterable[str] = (), raw_hook=None) -> ChunkedSession:
        """The network, chunked: a :class:`ttt3r.Session` built from these arguments."""
        from ..session import Session

        return cls(NetworkChunks(Session(model, update=update, size=size, want=want, raw_hook=raw_hook)), settings)

    @property
    def size(self) -> int | None:
        """The predictor's preprocessing size (None for the oracle)."""
        return getattr(self.predictor, "size", None)

    @property
    def model(self):
        """The network of a :class:`NetworkChunks` predictor (None for the oracle)."""
        return getattr(self.predictor, "model", None)

    @property
    def alignments(self) -> list[ChunkAlignment]:
        return self.aligner.records if self.aligner is not None else []

    def step(self, frame: Any, name: str | None = None) -> FrameResult:
        """Process one frame; returns its world-frame result."""
        t0 = time.perf_counter()
        i = self.frames_done
        if name is None and isinstance(frame, (str, os.PathLike)):
            name = os.path.basename(os.fspath(frame))
        prepared = self.predictor.prepare(frame, name)
        opened = None
        if self.aligner is not None:
            n = self.settings.size
            if i == 0:
                self.aligner.open_chunk(0)
                opened = self.aligner.records[-1]
            elif i % n == 0:
                if self.between_chunks is not None:
                    correction = self.between_chunks(i // n)
                    if correction is not None:
                        self.aligner.correct(correction)
                self.predictor.new_chunk()
                self.aligner.open_chunk(i)
                for j, prep, nm in self._recent:
                    r = self.predictor.predict(prep, nm)
                    r.index = j
                    self.aligner.add_overlap(r)
                opened = self.aligner.records[-1]
        r = self.predictor.predict(prepared, name)
        r.index = i
        if name is None:
            r.name = f"frame{i:06d}"
        if self.aligner is not None:
            r = self.aligner.emit(r)
            self._recent.append((i, self.predictor.keep(prepared), name))
        if opened is not None:
            r.extras["chunk"] = opened.to_json()
        self.frames_done += 1
        r.total_s = time.perf_counter() - t0
        return r

    def run(self, frames: Iterable[Any], names: Iterable[str] | None = None) -> Iterator[FrameResult]:
        """Yield one world-frame :class:`FrameResult` per frame, as each is produced."""
        names_it = iter(names) if names is not None else None
        for frame in frames:
            yield self.step(frame, next(names_it) if names_it is not None else None)
