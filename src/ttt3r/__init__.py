"""ttt3r: streaming 3D reconstruction with CUT3R and the TTT3R state update."""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import TTT3RError
from .results import FrameResult

__all__ = ["FrameResult", "TTT3RError", "__version__"]
