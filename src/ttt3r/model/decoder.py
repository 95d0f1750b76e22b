"""The twin decoder: the state stream and the image stream cross-attend layer by layer.

At layer ``l`` both streams read the other's output of layer ``l-1``: the state
tokens (with their own head count) attend to the image tokens (pose token first),
and the image tokens attend to the state tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from .layers import DecoderBlock


@dataclass
class DecoderOutput:
    """Attributes:
        state: (B, S, C) proposed new state (after ``dec_norm_state``).
        image: image-stream outputs of the layers in ``keep`` (B, 1 + N, C), the
            last one after ``dec_norm``; index 0 of each is the pose token.
        attn_logit_mean: (B, S) mean over layers, heads and image tokens of the
            state-to-image pre-softmax logits, or None if not asked for.
    """

    state: Tensor
    image: dict[int, Tensor]
    attn_logit_mean: Tensor | None


def twin_decode(
    state_blocks: Sequence[DecoderBlock],
    image_blocks: Sequence[DecoderBlock],
    state_norm: nn.Module,
    image_norm: nn.Module,
    f_state: Tensor,
    pos_state: Tensor | None,
    f_img: Tensor,
    pos_img: Tensor,
    keep: Sequence[int],
    attn_stat: bool,
) -> DecoderOutput:
    """Run the decoder. ``keep`` lists the layer indices (1..L) whose image tokens to return."""
    depth = len(image_blocks)
    kept: dict[int, Tensor] = {}
    stat_sum = None
    for i, (blk_s, blk_i) in enumerate(zip(state_blocks, image_blocks), start=1):
        new_state, stat = blk_s(f_state, f_img, pos_state, pos_img, mean_logit=attn_stat)
        new_img, _ = blk_i(f_img, f_state, pos_img, pos_state)
        f_state, f_img = new_state, new_img
        if stat is not None:
            stat_sum = stat if stat_sum is None else stat_sum + stat
        if i in keep and i != depth:
            kept[i] = f_img
    kept[depth] = image_norm(f_img)
    mean = stat_sum / depth if stat_sum is not None else None
    return DecoderOutput(state_norm(f_state), kept, mean)
