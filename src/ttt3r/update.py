"""State-update rules: how the recurrent state absorbs the decoder's proposal.

After each frame the decoder proposes a new state ``new`` (B, S, C) from the old
state ``old``. A rule returns the state carried to the next frame. A new rule is
one function registered here; the decoder does not change.

* ``cut3r``: ``new`` replaces ``old`` (the original CUT3R).
* ``ttt3r``: TTT3R's closed-form, per-token learning rate
  ``beta = sigmoid(a)`` where ``a`` (B, S) is the mean, over decoder layers,
  heads and image tokens (the pose token included), of the pre-softmax
  cross-attention logit from each state token's query to the image keys; the
  state becomes ``beta * new + (1 - beta) * old``.

The first frame of a sequence (and of every chunk after a reset) always takes the
full update. The pose memory is always fully updated (it is not a rule's concern).

This module does not import torch (rules use tensor methods), so that the
command line can list the registered rules (``ttt3r reconstruct --help``) without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from torch import Tensor


@dataclass(frozen=True)
class UpdateContext:
    """What a rule may look at besides the old and new state.

    Attributes:
        first: True for the first frame of a sequence or chunk.
        attn_logit_mean: (B, S) mean pre-softmax cross-attention logit of each
            state token over layers, heads and image keys; None unless the rule
            asked for it (``needs_attention``).
    """

    first: bool
    attn_logit_mean: Tensor | None = None


RuleFn = Callable[["Tensor", "Tensor", UpdateContext], "Tensor"]


@dataclass(frozen=True)
class UpdateRule:
    name: str
    fn: RuleFn
    needs_attention: bool = False

    def __call__(self, old: Tensor, new: Tensor, ctx: UpdateContext) -> Tensor:
        return self.fn(old, new, ctx)


_RULES: dict[str, UpdateRule] = {}


def register_rule(name: str, needs_attention: bool = False) -> Callable[[RuleFn], RuleFn]:
    """Decorator: make ``fn(old, new, ctx) -> state`` available as ``update=name``."""

    def deco(fn: RuleFn) -> RuleFn:
        _RULES[name] = UpdateRule(name, fn, needs_attention)
        return fn

    return deco


def get_rule(rule: str | UpdateRule) -> UpdateRule:
    if isinstance(rule, UpdateRule):
        return rule
    try:
        return _RULES[rule]
    except KeyError:
        from .errors import TTT3RError

        raise TTT3RError(f"unknown update rule {rule!r}; known: {', '.join(sorted(_RULES))}") from None


def available_rules() -> list[str]:
    return sorted(_RULES)


@register_rule("cut3r")
def cut3r_update(old: Tensor, new: Tensor, ctx: UpdateContext) -> Tensor:
    """Overwrite: the decoder's proposal becomes the state."""
    return new


@register_rule("ttt3r", needs_attention=True)
def ttt3r_update(old: Tensor, new: Tensor, ctx: UpdateContext) -> Tensor:
    """Per-token learning rate from the state-to-image attention (TTT3R)."""
    if ctx.first:
        return new
    if ctx.attn_logit_mean is None:
        raise ValueError("ttt3r needs the attention statistic")
    beta = ctx.attn_logit_mean.float().sigmoid()[..., None]
    return (new.float() * beta + old.float() * (1 - beta)).to(new.dtype)
