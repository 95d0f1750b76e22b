"""ttt3r: streaming 3D reconstruction with CUT3R and the TTT3R state update.

    >>> import ttt3r
    >>> model = ttt3r.load_model("cut3r_512_dpt_4_64")          # doctest: +SKIP
    >>> for frame in ttt3r.Session(model, update="ttt3r").run(paths):  # doctest: +SKIP
    ...     frame.depth, frame.pose, frame.intrinsics
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import load_model, reconstruct
from .config import ModelConfig
from .errors import TTT3RError
from .results import FrameResult
from .session import Session

__all__ = ["FrameResult", "ModelConfig", "Session", "TTT3RError", "__version__", "load_model", "reconstruct"]
