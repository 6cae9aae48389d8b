"""Attention building blocks shared by stage 2 (``fusion``) and stage 3 (``spatiotemporal``).

``MultiHeadAttention`` runs ``F.scaled_dot_product_attention``; with ``record=True`` it
uses a manual softmax (``attention_with_weights``) that also returns the head-averaged
attention map, for the notebooks' visualisations. Both paths give the same outputs.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def never_empty(allowed: torch.Tensor) -> torch.Tensor:
    """Let a query row that may attend to nothing attend to everything instead.

    allowed: bool (..., Nq, Nk), True = may attend. Such rows only occur for queries
    that are themselves padding (their outputs are dropped); attending to everything
    keeps them finite, where an all-masked softmax would give NaN in forward and backward.
    """
    return allowed | ~allowed.any(dim=-1, keepdim=True)


def softmax_weights(q: torch.Tensor, k: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-head attention weights: q (B, heads, Nq, c), k (B, heads, Nk, c) -> (B, heads, Nq, Nk).

    mask: bool broadcastable to (B, heads, Nq, Nk), True = may attend; masked keys get exactly 0.
    """
    logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5  # (B, heads, Nq, Nk)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    return logits.softmax(dim=-1)


def attention_with_weights(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Manual softmax attention, used only to record attention maps.

    q (B, heads, Nq, c), k and v (B, heads, Nk, c), mask as in ``softmax_weights``. Returns
    out (B, heads, Nq, c) and the weights averaged over heads (B, Nq, Nk).
    Equals ``F.scaled_dot_product_attention`` on the same inputs.
    """
    weights = softmax_weights(q, k, mask)
    out = F.dropout(weights, p=dropout_p) @ v  # (B, heads, Nq, c)
    return out, weights.mean(dim=1)


def attention_with_offsets(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor,
                           mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention whose values get a per-pair offset vector: out_i = sum_j a_ij (v_j + r_ij).

    q (B, heads, Nq, c), k and v (B, heads, Nk, c), offsets r (heads, Nq, Nk, c), mask as in
    ``softmax_weights``. Returns out (B, heads, Nq, c) and weights averaged over heads (B, Nq, Nk).
    """
    weights = softmax_weights(q, k, mask)
    dropped = F.dropout(weights, p=dropout_p)
    out = dropped @ v + torch.einsum("bhqk,hqkc->bhqc", dropped, offsets)  # (B, heads, Nq, c)
    return out, weights.mean(dim=1)


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate query, key and value inputs (all width d).

    Uses ``F.scaled_dot_product_attention``; with ``record=True`` a manual softmax that
    also returns the head-averaged attention weights.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"MultiHeadAttention: width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.dropout = dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                allowed: Optional[torch.Tensor] = None, record: bool = False,
                value_offsets: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """query (B, Nq, d), key and value (B, Nk, d).

        allowed: bool broadcastable to (B, Nq, Nk), True = may attend (None: all).
        value_offsets: (heads, Nq, Nk, c) vectors added to the value query q reads from key k
            (``rvoslib.relative_values``); needs the explicit weights, so it takes the manual path.
        Returns out (B, Nq, d) and, when ``record``, weights (B, Nq, Nk) averaged over heads.
        """
        q = rearrange(self.q_proj(query), "b n (h c) -> b h n c", h=self.heads)
        k = rearrange(self.k_proj(key), "b n (h c) -> b h n c", h=self.heads)
        v = rearrange(self.v_proj(value), "b n (h c) -> b h n c", h=self.heads)
        mask = None if allowed is None else never_empty(allowed)[:, None]  # (B, 1, Nq|1, Nk)
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if value_offsets is not None:
            out, weights = attention_with_offsets(q, k, v, value_offsets, mask, dropout_p)
            weights = weights if record else None
        elif record:
            out, weights = attention_with_weights(q, k, v, mask, dropout_p)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        out = rearrange(out, "b h n c -> b n (h c)")  # (B, Nq, d)
        return self.out_proj(out), weights


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear with dropout; (..., d) -> (..., d)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
