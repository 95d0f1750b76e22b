"""Training a small CUT3R network on synthetic sequences (``ttt3r train``).

* :mod:`ttt3r.train.config` -- the typed configuration and ``--set`` overrides;
* :mod:`ttt3r.train.config_file` -- reading a TOML/JSON config file and its ``extends`` chain;
* :mod:`ttt3r.train.data` -- the rendered pool and seeded random clips;
* :mod:`ttt3r.train.losses` -- CUT3R's confidence-aware pointmap, pose and RGB losses;
* :mod:`ttt3r.train.loop` -- the loop, checkpoints, CSV log and loss plot;
* :mod:`ttt3r.train.evaluate` -- held-out depth / pose metrics against trivial baselines.
"""

from __future__ import annotations

from .config import TrainConfig, apply_overrides, load_config

__all__ = ["TrainConfig", "apply_overrides", "load_config"]
