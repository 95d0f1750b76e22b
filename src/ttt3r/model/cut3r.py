"""The CUT3R recurrent network: assembles encoder, twin decoder, pose memory and head.

Streaming use::

    state = model.init_state(batch_size=1)
    for img in frames:                      # img: (B, 3, H, W) in [-1, 1]
        out, state = model.step(img, state, rule="ttt3r")

Nothing in ``state`` grows with the sequence: it holds the state tokens (B, S, C),
their positions, the pose memory (B, M, 2C) and the initial values for resets.
Attribute names follow the released checkpoints so that their state dicts load
without renaming.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from ..update import UpdateContext, UpdateRule, get_rule
from .decoder import twin_decode
from .heads import build_head
from .layers import Block, DecoderBlock, PatchEmbed, RoPE2D
from .memory import PoseMemory


@dataclass
class State:
    """The recurrent state carried from frame to frame (constant size).

    Attributes:
        feat: (B, S, C) state tokens.
        pos: (B, S, 2) their (y, x) positions, or None (``state_pe='none'``).
        mem: (B, M, 2C) pose-retrieval memory.
        init_feat, init_mem: the initial values, restored by :meth:`CUT3R.reset`.
        fresh: True until the first frame of the sequence/chunk has been fed: that
            frame uses the learned pose token and takes a full state update.
    """

    feat: Tensor
    pos: Tensor | None
    mem: Tensor
    init_feat: Tensor
    init_mem: Tensor
    fresh: bool = True

    def reset(self) -> State:
        return replace(self, feat=self.init_feat, mem=self.init_mem, fresh=True)


@dataclass(frozen=True)
class EncodedView:
    """One view's encoder output, kept to feed the same view again without re-encoding it.

    The encoder does not depend on the state, so a view fed twice (a chunk's
    re-fed overlap frames, a ``reset_every`` re-open) has the same tokens both
    times; :meth:`CUT3R.step` with ``encoded=`` skips the encoder and gives
    bit-identical outputs.

    Attributes:
        feat: (B, N, enc_dim) encoder tokens (image tokens, plus the ray map's when
            both were given).
        pos: (B, N, 2) their (y, x) patch positions.
        hw: (H, W) of the view in pixels.
        has_image: False for a ray-map-only view (it reads the state, never updates it).
    """

    feat: Tensor
    pos: Tensor
    hw: tuple[int, int]
    has_image: bool = True


@dataclass
class StepOutput:
    """Raw per-frame network outputs (batch-first, float32).

    ``pts3d_self`` (B, H, W, 3) camera-frame points; ``conf_self`` (B, H, W);
    ``pose`` (B, 7) camera-to-world encoding ``(tx, ty, tz, qw, qx, qy, qz)``;
    optional ``pts3d_world`` (B, H, W, 3) / ``conf_world`` (world = first frame's
    camera) and ``rgb`` (B, H, W, 3) in [-1, 1]; ``pose_raw`` (B, 7) the pose MLP's
    output before ``pose_mode`` and quaternion normalisation (for training losses);
    ``global_feat`` (B, enc_dim) the frame's mean encoder token (after the encoder's
    final norm), the query the pose memory is read with, kept as a free global
    image descriptor (loop detection, :mod:`ttt3r.loops.descriptors`); ``encoded``
    the view's :class:`EncodedView` (eager steps only), to feed the view again.
    """

    pts3d_self: Tensor
    conf_self: Tensor
    pose: Tensor
    pts3d_world: Tensor | None = None
    conf_world: Tensor | None = None
    rgb: Tensor | None = None
    pose_raw: Tensor | None = None
    global_feat: Tensor | None = None
    encoded: EncodedView | None = None


class CUT3R(nn.Module):
    """CUT3R with a pluggable state-update rule (``cut3r``, ``ttt3r``, ...)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.pose_head:
            raise ValueError("only configurations with a pose head are supported")
        self.cfg = cfg
        ed, dd = cfg.enc_embed_dim, cfg.dec_embed_dim
        self.rope = RoPE2D(cfg.rope_base)
        # own parameters first: this keeps the released state-dict order
        self.pose_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.masked_img_token = nn.Parameter(torch.zeros(1, ed))
        self.masked_ray_map_token = nn.Parameter(torch.zeros(1, ed))
        self.patch_embed = PatchEmbed(3, ed, cfg.patch_size)
        self.patch_embed_ray_map = PatchEmbed(6, ed, cfg.patch_size)
        self.enc_blocks = nn.ModuleList(
            [Block(ed, cfg.enc_num_heads, cfg.mlp_ratio, self.rope) for _ in range(cfg.enc_depth)])
        self.enc_norm = nn.LayerNorm(ed, eps=1e-6)
        self.decoder_embed = nn.Linear(ed, dd)
        self.dec_blocks = nn.ModuleList(
            [DecoderBlock(dd, cfg.dec_num_heads, cfg.mlp_ratio, self.rope, cfg.norm_im2_in_dec)
             for _ in range(cfg.dec_depth)])
        self.dec_norm = nn.LayerNorm(dd, eps=1e-6)
        self.enc_blocks_ray_map = nn.ModuleList(
            [Block(ed, cfg.ray_enc_num_heads, 4.0, self.rope) for _ in range(cfg.ray_enc_depth)])
        self.enc_norm_ray_map = nn.LayerNorm(ed, eps=1e-6)
        self.pose_retriever = PoseMemory(cfg.local_mem_size, ed, dd, cfg.dec_num_heads)
        self.register_tokens = nn.Embedding(cfg.state_size, ed)
        self.decoder_embed_state = nn.Linear(ed, dd)
        self.dec_blocks_state = nn.ModuleList(
            [DecoderBlock(dd, cfg.state_dec_num_heads, cfg.mlp_ratio, self.rope, cfg.norm_im2_in_dec)
             for _ in range(cfg.dec_depth)])
        self.dec_norm_state = nn.LayerNorm(dd, eps=1e-6)
        self.downstream_head = build_head(cfg, self.rope)
        depth = cfg.dec_depth
        self._hooks = (depth * 2 // 4, depth * 3 // 4, depth)

    # -- properties ---------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.pose_token.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pose_token.dtype

    # -- encoders -----------------------------------------------------------
    def encode_image(self, img: Tensor) -> tuple[Tensor, Tensor]:
        """img (B, 3, H, W) in [-1, 1] -> tokens (B, N, enc_dim), positions (B, N, 2)."""
        x, pos = self.patch_embed(img)
        for blk in self.enc_blocks:
            x = blk(x, pos)
        return self.enc_norm(x), pos

    def encode_rays(self, rays: Tensor) -> tuple[Tensor, Tensor]:
        """rays (B, 6, H, W) ray map (origins, directions) -> tokens, positions."""
        x, pos = self.patch_embed_ray_map(rays)
        for blk in self.enc_blocks_ray_map:
            x = blk(x, pos)
        return self.enc_norm_ray_map(x), pos

    # -- state ----------------------------------------------------------------
    def state_positions(self, batch_size: int) -> Tensor | None:
        s = self.cfg.state_size
        if self.cfg.state_pe == "none":
            return None
        idx = torch.arange(s, device=self.device)
        if self.cfg.state_pe == "1d":
            pos = torch.stack([idx, idx], dim=-1)
        else:
            width = int(s**0.5)
            width += width % 2
            pos = torch.stack([idx // width, idx % width], dim=-1)
        return pos[None].expand(batch_size, -1, -1)

    def init_state(self, batch_size: int = 1) -> State:
        """The initial state: embedded learned tokens and the learned pose memory."""
        feat = self.decoder_embed_state(self.register_tokens.weight)[None].expand(batch_size, -1, -1)
        mem = self.pose_retriever.mem.expand(batch_size, -1, -1)
        return State(feat, self.state_positions(batch_size), mem, feat, mem, fresh=True)

    # -- one frame ------------------------------------------------------------
    def step(
        self,
        img: Tensor | None,
        state: State,
        rule: str | UpdateRule = "ttt3r",
        rays: Tensor | None = None,
        want: frozenset[str] | set[str] = frozenset(),
        encoded: EncodedView | None = None,
    ) -> tuple[StepOutput, State]:
        """Process one frame and return its outputs and the next state.

        Args:
            img: (B, 3, H, W) image in [-1, 1], H and W multiples of the patch size;
                or None when the frame is given as a ray map only.
            state: from :meth:`init_state` or the previous step.
            rule: the state-update rule (see :mod:`ttt3r.update`).
            rays: optional (B, 6, H, W) ray map; added to the image tokens when
                both are given.
            want: extra outputs to compute: ``"world"`` (world-frame pointmap head),
                ``"rgb"`` (RGB head). Depth, confidence and pose are always computed.
            encoded: this view's encoder output from an earlier step (``out.encoded``):
                the encoder is skipped and ``img`` / ``rays`` are not read.
        """
        rule = get_rule(rule)
        if encoded is None:
            feat, pos = self._encode(img, rays)
            encoded = EncodedView(feat, pos, self._hw(img, rays), img is not None)
        feat, pos, hw = encoded.feat, encoded.pos, encoded.hw
        b, dt = feat.shape[0], feat.dtype
        global_feat = feat.mean(dim=1, keepdim=True)
        if state.fresh:
            pose_feat = self.pose_token.expand(b, -1, -1)
        else:
            pose_feat = self.pose_retriever.read(global_feat, state.mem)
        pose_pos = torch.full((b, 1, 2), -1, dtype=pos.dtype, device=pos.device)
        f_img = torch.cat([pose_feat.to(dt), self.decoder_embed(feat)], dim=1)
        pos_img = torch.cat([pose_pos, pos], dim=1)
        need_stat = rule.needs_attention and not state.fresh
        dec = twin_decode(self.dec_blocks_state, self.dec_blocks, self.dec_norm_state, self.dec_norm,
                          state.feat.to(dt), state.pos, f_img, pos_img, self._hooks, need_stat)
        last = dec.image[self.cfg.dec_depth]
        pose_token = last[:, 0]
        new_mem = self.pose_retriever.write(state.mem.to(dt), global_feat, last[:, :1])
        feats = [feat, dec.image[self._hooks[0]][:, 1:], dec.image[self._hooks[1]][:, 1:], last[:, 1:]]
        res = self.downstream_head(feats, pose_token, pos, hw, frozenset(want))
        ctx = UpdateContext(first=state.fresh, attn_logit_mean=dec.attn_logit_mean)
        new_feat = rule(state.feat, dec.state, ctx)
        out = StepOutput(
            pts3d_self=res["pts3d_self"], conf_self=res["conf_self"], pose=res["pose"],
            pts3d_world=res.get("pts3d_world"), conf_world=res.get("conf_world"), rgb=res.get("rgb"),
            pose_raw=res.get("pose_raw"), global_feat=global_feat[:, 0], encoded=encoded,
        )
        return out, replace(state, feat=new_feat, mem=new_mem, fresh=False)

    def _encode(self, img: Tensor | None, rays: Tensor | None) -> tuple[Tensor, Tensor]:
        if img is None and rays is None:
            raise ValueError("a frame needs an image, a ray map, or both")
        feat = pos = None
        if img is not None:
            feat, pos = self.encode_image(img.to(self.dtype))
        if rays is not None:
            rfeat, rpos = self.encode_rays(rays.to(self.dtype))
            feat, pos = (rfeat, rpos) if feat is None else (feat + rfeat, pos)
        return feat, pos

    @staticmethod
    def _hw(img: Tensor | None, rays: Tensor | None) -> tuple[int, int]:
        x = img if img is not None else rays
        return int(x.shape[-2]), int(x.shape[-1])
