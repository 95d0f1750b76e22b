"""Cross-view completion: hide most of every frame after the first (CroCo-style).

CUT3R starts from DUSt3R/MASt3R weights, whose decoder learnt to match two views
through CroCo's pretext task: reconstruct a heavily masked image from a second,
unmasked view of the same scene. Trained from scratch, our small decoder never
learnt that matching (docs/training_log.md, stage 7). ``loss.mask_ratio`` brings the
pretext task into the recurrent setting without new parameters: the first frame
of a clip is seen whole and written into the state; in every later frame a
random ``mask_ratio`` of the ``patch x patch`` squares is set to 0 (mid-grey in
the network's [-1, 1] input range) before the encoder sees it, so nothing of
them leaks through attention. The losses still compare with the whole,
unmasked frame (its colours, points and pose), which only the state can supply
for the hidden squares.
"""

from __future__ import annotations

import torch
from torch import Tensor


def mask_later_frames(img: Tensor, ratio: float, patch: int, seed: int) -> Tensor:
    """A copy of ``img`` (B, L, 3, H, W) with patches of frames 1..L-1 greyed out.

    Each of those frames loses exactly ``round(ratio * n)`` of its ``n = (H/patch) *
    (W/patch)`` squares, drawn independently per clip and frame from a generator
    seeded with ``seed`` (the same ``seed`` gives the same masks on any device).
    Frame 0 is never touched; ``ratio == 0`` or one-frame clips return ``img`` itself.
    """
    b, length, c, h, w = img.shape
    if ratio <= 0 or length < 2:
        return img
    gh, gw = h // patch, w // patch
    n = gh * gw
    k = int(round(ratio * n))
    if k == 0:
        return img
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.rand(b, length - 1, n, generator=gen).argsort(dim=-1)
    hidden = torch.zeros(b, length - 1, n, dtype=torch.bool)
    hidden.scatter_(-1, order[..., :k], True)
    hidden = hidden.view(b, length - 1, 1, gh, 1, gw, 1).expand(-1, -1, c, -1, patch, -1, patch)
    hidden = hidden.reshape(b, length - 1, c, gh * patch, gw * patch).to(img.device)
    out = img.clone()
    later = out[:, 1:, :, : gh * patch, : gw * patch]
    later.masked_fill_(hidden, 0.0)
    return out
