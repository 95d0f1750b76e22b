"""Deterministic "formula" weights: each parameter is a pure function of its name.

Used to build networks of the released shapes without a download (tests, parity
with the original implementation's fixtures, benchmarks). Recipe (as the parity
fixtures define it), for key ``k`` of shape ``s`` with ``n`` elements:

1. ``h = crc32(salt + k)``;
2. ``z_i = splitmix64(i + h * 0x9E3779B97F4A7C15)`` for ``i < n`` (wrapping uint64),
   ``u_i = (z_i >> 11) / 2**53 * 2 - 1`` in [-1, 1);
3. 1-D ``*.weight`` (norm gains): ``1 + 0.1 u``; other 1-D (biases): ``0.02 u``;
   else ``u / sqrt(prod(s[1:]))``. float32, C order.

``...scratch.layer_rn.{j}.weight`` aliases take the value of ``...layer{j+1}_rn.weight``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def formula_values(key: str, shape: Sequence[int], salt: str = "") -> np.ndarray:
    """The float32 array of ``shape`` that the recipe assigns to ``key``."""
    n = int(np.prod(shape)) if len(shape) else 1
    h = np.uint64(zlib.crc32((salt + key).encode("utf-8")))
    out = np.empty(n, dtype=np.float32)
    chunk = 1 << 22
    with np.errstate(over="ignore"):
        base = h * _GOLDEN
        for start in range(0, n, chunk):
            i = np.arange(start, min(n, start + chunk), dtype=np.uint64)
            z = i + base
            z = (z ^ (z >> np.uint64(30))) * _M1
            z = (z ^ (z >> np.uint64(27))) * _M2
            z = z ^ (z >> np.uint64(31))
            u = (z >> np.uint64(11)).astype(np.float64) / 2.0**53 * 2.0 - 1.0
            if len(shape) == 1 and key.endswith(".weight"):
                v = 1.0 + 0.1 * u
            elif len(shape) == 1:
                v = 0.02 * u
            else:
                v = u / math.sqrt(float(np.prod(shape[1:])))
            out[start : start + len(i)] = v
    return out.reshape(tuple(shape))


def formula_state_dict(schema: Mapping[str, Sequence[int]] | Iterable[tuple[str, Sequence[int]]],
                       salt: str = "") -> dict[str, torch.Tensor]:
    """State dict for an ordered ``key -> shape`` schema, with the DPT aliases shared."""
    items = list(schema.items() if isinstance(schema, Mapping) else schema)
    sd: dict[str, torch.Tensor] = {}
    for key, shape in items:
        canon = _alias_source(key)
        if canon is not None and canon in sd:
            sd[key] = sd[canon]
            continue
        sd[key] = torch.from_numpy(formula_values(key, shape, salt))
    return sd


def _alias_source(key: str) -> str | None:
    if ".scratch.layer_rn." not in key:
        return None
    pre, rest = key.split(".scratch.layer_rn.")
    j, tail = rest.split(".", 1)
    return f"{pre}.scratch.layer{int(j) + 1}_rn.{tail}"
