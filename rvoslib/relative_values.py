"""Relative offset codes added to the values of cube attention (``value_position="relative"``).

Queries and keys of the spatio-temporal encoder carry a 3-D sine position code, so attention
can *choose* tokens by where they are; but plain values carry only content, so the output
cannot say *where* the chosen tokens were. Motion is exactly that: "the same thing sits one
patch to my left in the next frame". With relative codes every value read by query ``i`` from
key ``j`` gets a learned vector of their offset ``(dt, dy, dx) = pos_j - pos_i`` added
(Shaw et al., 2018, "Self-Attention with Relative Position Representations"):

    out_i = sum_j a_ij (W_v x_j + r[dt, dy, dx])

so ``sum_j a_ij r[...]`` is the attention-weighted mean offset of what ``i`` looked at: when a
head attends to the same object in the other frames, that is the object's motion.

The table holds one vector per head for every offset a cube can contain: ``dy, dx`` in
``[-(k-1), k-1]`` and ``dt`` in ``[-(max_frames-1), max_frames-1]`` (longer clips share the
last entry). By default it starts at zero, so a new model computes what plain cube attention
computes. ``init_std > 0`` (``spatiotemporal.relative_init_std``) draws it from N(0, init_std^2)
instead. Why one might: grounding a motion sentence needs two learned parts at once, this table
(to carry which way the attended object went) and a readout that matches that direction with the
sentence's words; while both are near zero neither gets much gradient from the other, a saddle
that a random start at the values' own scale (about 0.59 for pre-norm tokens through a default
``nn.Linear(d, d)``, measured at init) may leave sooner. Measured at toy scale
(docs/toy_scale_findings.md, session 16): with 0.5, the loss of two init seeds left its plateau at
steps 5650 and 3250 instead of 8450 and 5500; that the saddle is the reason was not tested.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class RelativeOffsetCode(nn.Module):
    """Learned per-head value offsets for the tokens of one cube: (heads, Q, Q, c), Q = T*k*k.

    Args:
        dim: d (heads * c).
        heads: attention heads.
        cube_size: k.
        max_frames: offsets in time are clamped to +-(max_frames - 1).
        init_std: std of the table's normal init (0: zeros).
    """

    def __init__(self, dim: int, heads: int, cube_size: int, max_frames: int = 8, init_std: float = 0.0):
        super().__init__()
        if init_std < 0:
            raise ValueError(f"spatiotemporal.relative_init_std must be >= 0, got {init_std}")
        self.heads, self.cube_size, self.max_frames = heads, cube_size, max_frames
        span_t, span_s = 2 * max_frames - 1, 2 * cube_size - 1
        self.table = nn.Parameter(torch.zeros(span_t, span_s, span_s, dim))  # (2M-1, 2k-1, 2k-1, d)
        if init_std > 0:
            nn.init.normal_(self.table, std=init_std)

    def forward(self, T: int) -> torch.Tensor:
        """Codes for a T-frame cube, tokens ordered (t kh kw): (heads, T*k*k, T*k*k, c)."""
        k, device = self.cube_size, self.table.device
        t, y, x = torch.meshgrid(torch.arange(T, device=device), torch.arange(k, device=device),
                                 torch.arange(k, device=device), indexing="ij")
        t, y, x = t.flatten(), y.flatten(), x.flatten()  # (Q,) each
        dt = (t[None, :] - t[:, None]).clamp(-(self.max_frames - 1), self.max_frames - 1) + self.max_frames - 1
        dy = y[None, :] - y[:, None] + k - 1
        dx = x[None, :] - x[:, None] + k - 1
        codes = self.table[dt, dy, dx]  # (Q, Q, d): row = query, column = key
        return rearrange(codes, "q s (h c) -> h q s c", h=self.heads)
