"""Stage 1: the cross-attention from a ViT block's visual tokens to the words.

In the blocks listed by ``vision.stage1_layers``, right after the block's frozen
self-attention, the frame's CLS and patch tokens attend to the words; the update is added
through ``tanh(alpha_l)`` with alpha_l = 0 at init, so at step 0 the block computes exactly
what CLIP computes. It is a bottleneck adapter of inner width r = ``vision.stage1_dim``
(default D_v // 4): LayerNorm, queries D_v -> r, words D_t -> r (one projection shared by
all blocks, the encoder's ``word_proj``) -> keys/values r -> 2r per block, attention,
output r -> D_v. :class:`~rvoslib.vision_encoder.PromptedVisionEncoder` builds one
:class:`Stage1CrossAttention` per listed block and calls it (its module docstring gives the
whole block).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .vit_attention import _split_heads, attend


class Stage1CrossAttention(nn.Module):
    """Visual tokens attend to (projected) words through a bottleneck; the output is gated by
    tanh(alpha), alpha = 0 at init.

    Args:
        width: D_v.
        heads: attention heads (must divide ``inner``).
        inner: r, the inner width of queries, keys and values (default D_v). The words arrive
            already projected to r (the encoder's shared ``word_proj``, D_t -> r).
    """

    def __init__(self, width: int, heads: int, inner: Optional[int] = None):
        super().__init__()
        inner = width if inner is None else inner
        if inner < 1 or inner % heads:
            raise ValueError(f"vision.stage1_heads={heads} must divide the stage-1 inner width "
                             f"(vision.stage1_dim) {inner}")
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.q = nn.Linear(width, inner)  # D_v -> r
        self.kv = nn.Linear(inner, 2 * inner)  # r -> 2r (words)
        self.out = nn.Linear(inner, width)  # r -> D_v
        self.alpha = nn.Parameter(torch.zeros(1))  # gate tanh(alpha): 0 at step 0

    def forward(self, x: torch.Tensor, words: torch.Tensor, keep: torch.Tensor, record: bool = False
                ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Gated update for the visual tokens.

        Every visual token attends to the words on its own, so a row of ``x`` may hold a whole
        clip (M = T * (1 + N)) or one frame (M = 1 + N, words repeated per frame): same result.

        Args:
            x: ``(B, M, D_v)`` visual tokens.
            words: ``(B, L, r)`` projected word features.
            keep: ``(B, 1, 1, L)`` bool, True at real words.
            record: also return the head-averaged weights.

        Returns:
            ``(update (B, M, D_v), weights (B, M, L) or None)``.
        """
        q = _split_heads(self.q(self.norm(x)), self.heads)  # (B, heads, M, r / heads)
        k, v = (_split_heads(t, self.heads) for t in self.kv(words).chunk(2, dim=-1))  # (B, heads, L, r / heads)
        out, weights = attend(q, k, v, keep, record)
        gate = torch.tanh(self.alpha)  # folded into the output projection: r x D_v products, not M x D_v
        update = F.linear(rearrange(out, "b h m c -> b m (h c)"), gate * self.out.weight, gate * self.out.bias)
        return update, (weights.mean(dim=1) if weights is not None else None)
