"""Export a run's weights for shipping: float16 safetensors + config.json (half the size).

Loading converts back to float32 (``ttt3r.load_model``); the outputs differ from
the float32 weights by about 1e-3 relative.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import TTT3RError
from ..io.atomic import atomic_path, atomic_write_bytes


def export_weights(src: str | os.PathLike, dest: str | os.PathLike, half: bool = True) -> Path:
    """Copy ``src`` (a folder with model.safetensors + config.json) to ``dest``, in float16 when ``half``.

    Returns ``dest``. The copy is checked by loading it.
    """
    from safetensors.torch import load_file, save_file

    src, dest = Path(src), Path(dest)
    if not (src / "model.safetensors").is_file() or not (src / "config.json").is_file():
        raise TTT3RError(f"{src}: no model.safetensors + config.json to export")
    dest.mkdir(parents=True, exist_ok=True)
    sd = load_file(str(src / "model.safetensors"))
    if half:
        sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
    with atomic_path(dest / "model.safetensors") as tmp:
        save_file(sd, str(tmp), metadata={"format": "pt", "producer": "ttt3r", "dtype": "float16" if half else "float32"})
    atomic_write_bytes(dest / "config.json", (src / "config.json").read_bytes())
    from ..api import load_model

    load_model(dest, device="cpu")
    return dest
