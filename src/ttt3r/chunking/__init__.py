"""Long sequences: overlapping chunks aligned by a robust Sim(3) (``--chunk N --overlap K``).

* :mod:`~ttt3r.chunking.settings`: the schedule and the option checks;
* :mod:`~ttt3r.chunking.sim3`: the confidence-weighted IRLS/Huber Sim(3) fit;
* :mod:`~ttt3r.chunking.aligner`: per-chunk predictions -> one world frame, streaming;
* :mod:`~ttt3r.chunking.stream`: :class:`ChunkedSession` (the network or an oracle, chunked);
* :mod:`~ttt3r.chunking.oracle`: the drift-simulating ground-truth predictor.
"""

from __future__ import annotations

from .aligner import ChunkAligner, ChunkAlignment
from .settings import CHUNK_ALIGNS, ChunkSettings, check_chunk_options, chunk_settings
from .sim3 import RobustFit, robust_sim3
from .stream import ChunkedSession, NetworkChunks

__all__ = ["CHUNK_ALIGNS", "ChunkAligner", "ChunkAlignment", "ChunkSettings", "ChunkedSession", "NetworkChunks",
           "RobustFit", "check_chunk_options", "chunk_settings", "robust_sim3"]
