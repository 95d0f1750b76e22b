"""Transformer building blocks with the parameter names of the released checkpoints.

Token tensors are ``(B, N, C)``; positions are ``(B, N, 2)`` integer ``(y, x)``
patch coordinates (the pose token uses ``(-1, -1)``). Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention`, so no attention matrix
is materialised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _compiling() -> bool:
    """True while torch.compile traces (torch >= 2.3; older: never)."""
    check = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(check()) if check is not None else False


class RoPE2D:
    """2D rotary position embedding (no parameters).

    The head dimension ``D`` is split in a y half and an x half; in each half of
    size ``D/2`` the channel pairs ``(j, j + D/4)`` are rotated by the angle
    ``pos * base**(-j / (D/4))``. Any position is allowed, including -1.
    """

    def __init__(self, base: float = 100.0):
        self.base = float(base)
        # (pos, head dim, inference mode, cos, signed sin): the tables of the last few
        # position tensors, so that the layers of one frame share them. Keyed by the
        # tensor's identity (kept alive here, so the id cannot be reused).
        self._cache: list[tuple[Tensor, int, bool, Tensor, Tensor]] = []

    def clear_cache(self) -> None:
        """Forget the cached tables (before a CUDA-graph capture, whose kernels must not
        read tensors that the cache may later free)."""
        self._cache = []

    def _cos_sin(self, pos: Tensor, quarter: int) -> tuple[Tensor, Tensor]:
        j = torch.arange(quarter, device=pos.device, dtype=torch.float32)
        inv_freq = 1.0 / (self.base ** (j / quarter))
        ang = pos.to(torch.float32)[..., None] * inv_freq  # (B, N, Q)
        ang = torch.cat((ang, ang), dim=-1)[:, None]  # (B, 1, N, 2Q)
        return ang.cos(), ang.sin()

    def tables(self, pos: Tensor, d: int) -> tuple[Tensor, Tensor]:
        """(B, 1, N, D) float32 ``cos`` and signed ``sin`` tables for ``pos`` (D % 4 == 0).

        With ``swap(t)`` exchanging the quarters ``(u, v) -> (v, u)`` inside each half,
        ``rotate(t) = t * cos + swap(t) * sin``: the same products and sums as the
        half-by-half formula, so float32 results are identical.
        """
        if _compiling():  # traced code computes the tables inline: the Python cache would break the graph
            return self._tables(pos, d)
        inference = torch.is_inference_mode_enabled()
        for p, dd, inf, cos, sin in self._cache:
            if p is pos and dd == d and inf == inference:
                return cos, sin
        cos, sin = self._tables(pos, d)
        self._cache = [(pos, d, inference, cos, sin), *self._cache[:3]]
        return cos, sin

    def _tables(self, pos: Tensor, d: int) -> tuple[Tensor, Tensor]:
        q = d // 4
        cy, sy = self._cos_sin(pos[..., 0], q)
        cx, sx = self._cos_sin(pos[..., 1], q)
        cos = torch.cat((cy, cx), dim=-1)
        sin = torch.cat((-sy[..., :q], sy[..., q:], -sx[..., :q], sx[..., q:]), dim=-1)
        return cos, sin

    def __call__(self, t: Tensor, pos: Tensor) -> Tensor:
        """Rotate ``t`` of shape (..., B, heads, N, D) by ``pos`` of shape (B, N, 2); fp32 math."""
        dtype = t.dtype
        d = t.shape[-1]
        if d % 4:
            return self._rotate_halves(t, pos)
        cos, sin = self.tables(pos, d)
        t = t.float()
        swapped = t.unflatten(-1, (2, 2, d // 4)).flip(-2).flatten(-3)
        return (t * cos + swapped * sin).to(dtype)

    def _rotate_halves(self, t: Tensor, pos: Tensor) -> Tensor:
        """Reference formula, half by half (any even head dimension)."""
        dtype = t.dtype
        t = t.float()
        d = t.shape[-1]
        quarter = d // 4
        out = []
        for axis, half in enumerate(t.chunk(2, dim=-1)):
            cos, sin = self._cos_sin(pos[..., axis], quarter)
            u, v = half[..., :quarter], half[..., quarter:]
            out.append(half * cos + torch.cat((-v, u), dim=-1) * sin)
        return torch.cat(out, dim=-1).to(dtype)


class Mlp(nn.Module):
    """Two linear layers with GELU (``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int | None = None, out: int | None = None):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden or dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden or dim, out or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Scaled dot-product attention (B, h, N, d) -> (B, h, Nq, d).

    Under CPU bfloat16 autocast with gradients on (``precision = "bf16"`` training)
    it runs in float32: PyTorch's bfloat16 attention backward on CPU is several times
    slower than the float32 one at these sizes (measured: 0.63 s against 0.15 s of a
    1.9 s training step), while the matrix products around it gain from bfloat16.
    """
    if q.device.type == "cpu" and torch.is_grad_enabled() and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), scale=scale)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def _heads(x: Tensor, n: int) -> Tensor:
    b, t, c = x.shape
    return x.view(b, t, n, c // n).transpose(1, 2)  # (B, h, N, d)


def _merge(x: Tensor) -> Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class Attention(nn.Module):
    """Multi-head self-attention with fused ``qkv`` projection and optional RoPE."""

    def __init__(self, dim: int, num_heads: int, rope: RoPE2D | None = None, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: Tensor, pos: Tensor | None) -> Tensor:
        b, n, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).view(b, n, 3, h, c // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.rope is not None and pos is not None:
            q, k = self.rope(qkv[:2], pos).unbind(0)  # q and k in one pass
        y = _attend(q, k, v, self.scale)
        return self.proj(_merge(y))


class CrossAttention(nn.Module):
    """Multi-head cross-attention (``projq``, ``projk``, ``projv``, ``proj``).

    With ``mean_logit=True`` it also returns, per query token, the mean over heads
    and keys of the pre-softmax logit ``scale * q . k`` (shape (B, Nq)), computed as
    ``scale * q . mean_j(k_j)`` so that no attention matrix is built.
    """

    def __init__(self, dim: int, num_heads: int, rope: RoPE2D | None = None, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.projq = nn.Linear(dim, dim, bias=qkv_bias)
        self.projk = nn.Linear(dim, dim, bias=qkv_bias)
        self.projv = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(
        self, query: Tensor, key: Tensor, qpos: Tensor | None, kpos: Tensor | None, mean_logit: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        h = self.num_heads
        q = _heads(self.projq(query), h)
        k = _heads(self.projk(key), h)
        v = _heads(self.projv(key), h)
        if self.rope is not None:
            if qpos is not None:
                q = self.rope(q, qpos)
            if kpos is not None:
                k = self.rope(k, kpos)
        stat = None
        if mean_logit:
            k_mean = k.float().mean(dim=2, keepdim=True)  # (B, h, 1, d)
            stat = (q.float() * k_mean).sum(-1).mean(dim=1) * self.scale  # (B, Nq)
        y = _attend(q, k, v, self.scale)
        return self.proj(_merge(y)), stat


class Block(nn.Module):
    """Pre-norm ViT block: self-attention then MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: RoPE2D | None = None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, pos: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class DecoderBlock(nn.Module):
    """Self-attention on ``x``, cross-attention from ``x`` to ``y``, then MLP.

    ``y`` is layer-normalised (``norm_y``) before it serves as keys and values.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: RoPE2D | None = None,
                 norm_mem: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, rope)
        self.cross_attn = CrossAttention(dim, num_heads, rope)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm_y = nn.LayerNorm(dim, eps=1e-6) if norm_mem else nn.Identity()

    def forward(self, x: Tensor, y: Tensor, xpos: Tensor | None, ypos: Tensor | None,
                mean_logit: bool = False) -> tuple[Tensor, Tensor | None]:
        x = x + self.attn(self.norm1(x), xpos)
        y = self.norm_y(y)
        c, stat = self.cross_attn(self.norm2(x), y, xpos, ypos, mean_logit)
        x = x + c
        return x + self.mlp(self.norm3(x)), stat


class ModLN(nn.Module):
    """LayerNorm modulated by a conditioning vector (adaLN: shift and scale from an MLP)."""

    def __init__(self, dim: int, mod_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(mod_dim, 2 * dim))

    def forward(self, x: Tensor, mod: Tensor) -> Tensor:
        shift, scale = self.mlp(mod).chunk(2, dim=-1)  # (B, C) each
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


class ModulatedBlock(nn.Module):
    """ViT block whose norms are modulated by a vector (the pose token)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, rope: RoPE2D | None = None):
        super().__init__()
        self.norm1 = ModLN(dim, dim)
        self.attn = Attention(dim, num_heads, rope)
        self.norm2 = ModLN(dim, dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, mod: Tensor, pos: Tensor | None) -> Tensor:
        x = x + self.attn(self.norm1(x, mod), pos)
        return x + self.mlp(self.norm2(x, mod))


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection; returns tokens (B, N, C) and (y, x) positions (B, N, 2)."""

    def __init__(self, in_chans: int, dim: int, patch_size: int = 16):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b, _, hgt, wid = x.shape
        p = self.patch_size
        if hgt % p or wid % p:
            raise ValueError(f"input size {hgt}x{wid} is not a multiple of the patch size {p}")
        x = self.proj(x)
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        return x, grid_positions(b, gh, gw, x.device)


def grid_positions(b: int, h: int, w: int, device: torch.device | str) -> Tensor:
    """(B, h*w, 2) int64 ``(y, x)`` positions of a row-major patch grid."""
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    pos = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).view(1, h * w, 2)
    return pos.expand(b, -1, -1)
