"""Attention helpers of the prompt-tuned ViT (``rvoslib.vision_encoder``, ``rvoslib.stage1``).

``attend`` is scaled dot-product attention over heads, with a manual-softmax path that also
returns the weights (``record=True``, same outputs); ``_split_heads`` splits the channels into
heads; ``frozen_out_proj`` merges the heads and applies a frozen ``nn.MultiheadAttention``'s
output projection.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return rearrange(x, "b n (h c) -> b h n c", h=heads)  # (B, heads, n, c)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor] = None,
           record: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Scaled dot-product attention over heads.

    Args:
        q: ``(B, heads, Q, c)``; k, v: ``(B, heads, K, c)``.
        mask: bool, broadcastable to ``(B, heads, Q, K)``, True = may attend; or None.
        record: use a manual softmax and also return the weights.

    Returns:
        ``(out (B, heads, Q, c), weights (B, heads, Q, K) or None)``.
    """
    if not record:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask), None
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, heads, Q, K)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights @ v, weights


def frozen_out_proj(attn: nn.MultiheadAttention, out: torch.Tensor) -> torch.Tensor:
    """Merge heads ``(n, heads, S, c) -> (n, S, D)`` and apply the output projection of
    ``attn`` (a frozen ``nn.MultiheadAttention``, whose packed q/k/v projection ``in_proj_*``
    is applied by the caller)."""
    return F.linear(rearrange(out, "n h s c -> n s (h c)"), attn.out_proj.weight, attn.out_proj.bias)
