"""The pose-retrieval memory (``pose_retriever`` in the released checkpoints).

A small key/value memory of ``local_mem_size`` tokens of width ``2 * dec_embed_dim``:
each token is ``[key | value]``. ``read`` queries it with the frame's mean encoder
feature and returns a pose token for the decoder; ``write`` updates it with the
frame's mean feature and the decoder's refined pose token. No positional encoding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import DecoderBlock


class PoseMemory(nn.Module):
    def __init__(self, size: int, k_dim: int, v_dim: int, num_heads: int, depth: int = 2):
        super().__init__()
        self.v_dim = v_dim
        self.proj_q = nn.Linear(k_dim, v_dim)
        self.masked_token = nn.Parameter(torch.zeros(1, 1, v_dim))
        self.mem = nn.Parameter(torch.zeros(1, size, 2 * v_dim))
        self.write_blocks = nn.ModuleList([DecoderBlock(2 * v_dim, num_heads) for _ in range(depth)])
        self.read_blocks = nn.ModuleList([DecoderBlock(2 * v_dim, num_heads) for _ in range(depth)])

    def read(self, img_feat: Tensor, mem: Tensor) -> Tensor:
        """img_feat (B, 1, k_dim) mean encoder token, mem (B, M, 2v) -> pose token (B, 1, v)."""
        x = self.proj_q(img_feat)
        x = torch.cat([x, self.masked_token.expand(x.shape[0], -1, -1).to(x.dtype)], dim=-1)
        for blk in self.read_blocks:
            x, _ = blk(x, mem, None, None)
        return x[..., -self.v_dim :]

    def write(self, mem: Tensor, img_feat: Tensor, pose_token: Tensor) -> Tensor:
        """Return the updated memory (B, M, 2v) after attending to ``[key | pose_token]``."""
        feat = torch.cat([self.proj_q(img_feat), pose_token], dim=-1)
        for blk in self.write_blocks:
            mem, _ = blk(mem, feat, None, None)
        return mem
