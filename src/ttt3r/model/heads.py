"""Prediction heads: DPT (512 checkpoint) and linear (224 checkpoint), plus the pose MLP.

Each head turns the decoder outputs of one frame into:

* ``pts3d_self`` (B, H, W, 3): pointmap in the frame's own camera (OpenCV axes),
* ``conf_self`` (B, H, W): its confidence (>= 1 with the released conf mode),
* ``pose`` (B, 7): camera-to-world pose encoding, translation then quaternion
  ``(qw, qx, qy, qz)`` (real part first, standardised to qw >= 0),
* optionally ``pts3d_world`` / ``conf_world`` (the world-frame pointmap head; the
  world frame is the first frame's camera) and ``rgb`` (B, H, W, 3) in [-1, 1].

Heads are only run for the outputs asked for (``want``): the world-frame and RGB
branches cost as much as the self-view branch and most runs do not need them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from .layers import Mlp, ModulatedBlock, RoPE2D

# ---------------------------------------------------------------------------
# output post-processing (pure functions)


def reg_dense_depth(xyz: Tensor, mode: tuple[str, float, float], pos_z: bool = False) -> Tensor:
    """Map raw (..., 3) outputs to points: direction times ``expm1(norm)`` (mode 'exp')."""
    kind, vmin, vmax = mode
    if kind == "linear":
        return xyz.clip(min=vmin, max=vmax) if (vmin, vmax) != (-float("inf"), float("inf")) else xyz
    if pos_z:
        xyz = xyz * torch.sign(xyz[..., -1:])
    d = xyz.norm(dim=-1, keepdim=True)
    xyz = xyz / d.clip(min=1e-8)
    if kind == "square":
        return xyz * d.square()
    if kind == "exp":
        return xyz * torch.expm1(d)
    raise ValueError(f"unknown depth mode {kind!r}")


def reg_dense_conf(x: Tensor, mode: tuple[str, float, float]) -> Tensor:
    """Map raw confidence logits to confidences: ``vmin + exp(x)`` (mode 'exp')."""
    kind, vmin, vmax = mode
    if kind == "exp":
        return vmin + x.exp().clip(max=vmax - vmin)
    if kind == "sigmoid":
        return (vmax - vmin) * torch.sigmoid(x) + vmin
    raise ValueError(f"unknown conf mode {kind!r}")


def reg_pose(out: Tensor, mode: tuple[str, float, float]) -> Tensor:
    """Map the raw (B, 7) pose output to translation (scaled like depth) + unit quaternion."""
    kind = mode[0]
    trans, quat = out[..., :3], out[..., 3:7]
    if kind == "linear":
        return trans
    d = trans.norm(dim=-1, keepdim=True)
    if kind == "square":
        scale = d.square() / d.clip(min=1e-8)
    elif kind == "exp":
        scale = torch.expm1(d) / d.clip(min=1e-8)
    else:
        raise ValueError(f"unknown pose mode {kind!r}")
    quat = F.normalize(quat, p=2, dim=-1)
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    return torch.cat([trans * scale, quat], dim=-1)


def split_points(fmap: Tensor, cfg: ModelConfig, pos_z: bool = False) -> tuple[Tensor, Tensor]:
    """(B, 4, H, W) raw map -> points (B, H, W, 3) and confidence (B, H, W)."""
    fmap = fmap.permute(0, 2, 3, 1).float()
    return reg_dense_depth(fmap[..., :3], cfg.depth_mode, pos_z), reg_dense_conf(fmap[..., 3], cfg.conf_mode)


def rgb_from_raw(fmap: Tensor, eps: float = 1e-6) -> Tensor:
    """(B, 3, H, W) raw map -> (B, H, W, 3) colours in [-1, 1]."""
    x = torch.sigmoid(fmap.permute(0, 2, 3, 1).float()) * (1 - 2 * eps) + eps
    return (x - 0.5) * 2


# ---------------------------------------------------------------------------
# DPT


class _ResidualConvUnit(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class _FusionBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.out_conv = nn.Conv2d(c, c, 1)
        self.resConfUnit1 = _ResidualConvUnit(c)
        self.resConfUnit2 = _ResidualConvUnit(c)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _Scratch(nn.Module):
    """Holds the ``layer{i}_rn`` convolutions (also exposed as ``layer_rn.{i-1}``) and refinenets."""

    def __init__(self, layer_dims: Sequence[int], c: int):
        super().__init__()
        self.layer1_rn = nn.Conv2d(layer_dims[0], c, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(layer_dims[1], c, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(layer_dims[2], c, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(layer_dims[3], c, 3, padding=1, bias=False)
        # the same modules under a second name, as the released state dict lists them
        self.layer_rn = nn.ModuleList([self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn])
        self.refinenet1 = _FusionBlock(c)
        self.refinenet2 = _FusionBlock(c)
        self.refinenet3 = _FusionBlock(c)
        self.refinenet4 = _FusionBlock(c)


class _Interp2x(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


class DPT(nn.Module):
    """Dense prediction transformer head on four token maps (strides 16 -> full resolution)."""

    def __init__(self, dims_in: Sequence[int], out_channels: int, layer_dims: Sequence[int] = (96, 192, 384, 768),
                 feature_dim: int = 256, last_dim: int = 128, patch_size: int = 16):
        super().__init__()
        self.patch_size = patch_size
        self.scratch = _Scratch(layer_dims, feature_dim)
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1),
            _Interp2x(),
            nn.Conv2d(feature_dim // 2, last_dim, 3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(last_dim, out_channels, 1),
        )
        ld = layer_dims
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dims_in[0], ld[0], 1), nn.ConvTranspose2d(ld[0], ld[0], 4, stride=4)),
            nn.Sequential(nn.Conv2d(dims_in[1], ld[1], 1), nn.ConvTranspose2d(ld[1], ld[1], 2, stride=2)),
            nn.Sequential(nn.Conv2d(dims_in[2], ld[2], 1)),
            nn.Sequential(nn.Conv2d(dims_in[3], ld[3], 1), nn.Conv2d(ld[3], ld[3], 3, stride=2, padding=1)),
        ])

    def forward(self, tokens: Sequence[Tensor], hw: tuple[int, int]) -> Tensor:
        """tokens: four (B, N, C_i) maps of the (H/16)x(W/16) grid -> (B, out, H, W)."""
        gh, gw = hw[0] // self.patch_size, hw[1] // self.patch_size
        s = self.scratch
        feats = []
        for t, post, rn in zip(tokens, self.act_postprocess, s.layer_rn):
            # (B, N, C) tokens -> (B, C, gh, gw) as a channels-last view (no copy): the
            # convolutions then run in NHWC, which oneDNN does without layout reorders
            x = t.reshape(t.shape[0], gh, gw, t.shape[2]).permute(0, 3, 1, 2)
            feats.append(rn(post(x)))
        p4 = s.refinenet4(feats[3])[:, :, : feats[2].shape[2], : feats[2].shape[3]]
        p3 = s.refinenet3(p4, feats[2])
        p2 = s.refinenet2(p3, feats[1])
        p1 = s.refinenet1(p2, feats[0])
        return self.head(p1)


class PoseDecoder(nn.Module):
    """MLP from the refined pose token (B, C) to the raw 7-vector."""

    def __init__(self, dim: int):
        super().__init__()
        self.mlp = Mlp(dim, 4 * dim, 7)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class DPTHead(nn.Module):
    """The 512 checkpoint's head: DPT for self-view points, world points (after two
    pose-modulated blocks) and RGB, and the pose MLP."""

    def __init__(self, cfg: ModelConfig, rope: RoPE2D):
        super().__init__()
        self.cfg = cfg
        ed, dd = cfg.enc_embed_dim, cfg.dec_embed_dim
        dims = (ed, dd, dd, dd)
        self.dpt_self = DPT(dims, 4, patch_size=cfg.patch_size)
        self.final_transform = nn.ModuleList(
            [ModulatedBlock(dd, cfg.dec_num_heads, 4.0, rope) for _ in range(2)]
        )
        self.dpt_cross = DPT(dims, 4, patch_size=cfg.patch_size)
        if cfg.rgb_head:
            self.dpt_rgb = DPT(dims, 3, patch_size=cfg.patch_size)
        self.pose_head = PoseDecoder(dd)

    def forward(self, feats: Sequence[Tensor], pose_token: Tensor, pos: Tensor, hw: tuple[int, int],
                want: frozenset[str]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        out["pts3d_self"], out["conf_self"] = split_points(self.dpt_self(feats, hw), self.cfg)
        out["pose_raw"] = self.pose_head(pose_token).float()
        out["pose"] = reg_pose(out["pose_raw"], self.cfg.pose_mode)
        if "world" in want:
            t = feats[-1]
            for blk in self.final_transform:
                t = blk(t, pose_token, pos)
            out["pts3d_world"], out["conf_world"] = split_points(
                self.dpt_cross([*feats[:-1], t], hw), self.cfg)
        if "rgb" in want and self.cfg.rgb_head:
            out["rgb"] = rgb_from_raw(self.dpt_rgb(feats, hw))
        return out


def _unpatchify(x: Tensor, hw: tuple[int, int], p: int) -> Tensor:
    """(B, N, C*p*p) per-patch outputs -> (B, C, H, W)."""
    b = x.shape[0]
    return F.pixel_shuffle(x.transpose(1, 2).reshape(b, -1, hw[0] // p, hw[1] // p), p)


class LinearHead(nn.Module):
    """The 224 checkpoint's head: per-token MLPs unpatchified to pixels."""

    def __init__(self, cfg: ModelConfig, rope: RoPE2D):
        super().__init__()
        self.cfg = cfg
        dd, p = cfg.dec_embed_dim, cfg.patch_size
        hidden = int(4 * dd)
        self.proj = Mlp(dd, hidden, 4 * p * p)
        if cfg.rgb_head:
            self.rgb_proj = Mlp(dd, hidden, 3 * p * p)
        self.pose_head = PoseDecoder(dd)
        self.final_transform = nn.ModuleList(
            [ModulatedBlock(dd, cfg.dec_num_heads, 4.0, rope) for _ in range(2)]
        )
        self.cross_proj = Mlp(dd, hidden, 4 * p * p)

    def forward(self, feats: Sequence[Tensor], pose_token: Tensor, pos: Tensor, hw: tuple[int, int],
                want: frozenset[str]) -> dict[str, Tensor]:
        p = self.cfg.patch_size
        tokens = feats[-1]
        out: dict[str, Tensor] = {}
        out["pts3d_self"], out["conf_self"] = split_points(
            _unpatchify(self.proj(tokens), hw, p), self.cfg, pos_z=True)
        out["pose_raw"] = self.pose_head(pose_token).float()
        out["pose"] = reg_pose(out["pose_raw"], self.cfg.pose_mode)
        if "world" in want:
            t = tokens
            for blk in self.final_transform:
                t = blk(t, pose_token, pos)
            out["pts3d_world"], out["conf_world"] = split_points(
                _unpatchify(self.cross_proj(t), hw, p), self.cfg)
        if "rgb" in want and self.cfg.rgb_head:
            out["rgb"] = rgb_from_raw(_unpatchify(self.rgb_proj(tokens), hw, p))
        return out


def build_head(cfg: ModelConfig, rope: RoPE2D) -> nn.Module:
    if cfg.output_mode != "pts3d+pose" or not cfg.pose_head:
        raise ValueError(f"unsupported head: output_mode={cfg.output_mode!r}, pose_head={cfg.pose_head}")
    if cfg.head_type == "dpt":
        return DPTHead(cfg, rope)
    if cfg.head_type == "linear":
        return LinearHead(cfg, rope)
    raise ValueError(f"unknown head_type {cfg.head_type!r}")
