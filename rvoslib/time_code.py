"""The temporal capture's time code (``vision.capture_time_code``): :class:`CaptureTimeCode`.

The temporal capture (see ``rvoslib.vision_encoder``) lets the temporal prompts of all T
frames attend to the keys/values of all tokens of all frames with a block's frozen
attention weights. Attention is permutation-invariant over its keys, so without a code the
capture sees the *set* of frames, not their order: it cannot tell "moving left" from
"moving right". (The only order it could see is indirect: frame t's prompts carry the
generator's frame embedding, and frame t's patches read them. At init, in the tests' tiny
model, reversing frames 1..T-1 moves frame 0's features by 1e-5 or less, replacing them by
~1e-2.) We give the capture a per-frame code on both sides of the score, in the space of a
block's ``ln_1`` output: ``e_k(t)`` is added to the keys of frame t's tokens and ``e_q(t)``
to the queries of frame t's temporal prompts, each mapped by the block's frozen projection
(``+ W_k e_k(t)``, ``+ W_q e_q(t)``), only inside the capture (the within-frame attention
never sees them).
The score of a prompt of frame t to a token of frame s then reads

    (q + W_q e_q(t)) . (k + W_k e_k(s)) = q.k + q.W_k e_k(s) + W_q e_q(t).k + W_q e_q(t).W_k e_k(s)

whose last term is a learned function of (query frame, key frame): a prompt can learn to
look at "the next frame", not only a per-key-frame bias (a code on the keys alone gives
``q.W_k e_k(s)``, which does not know the query's own frame). Values get no code: the
capture reads what the frames contain, and where it reads from is decided by the scores.
Why one code shared by all blocks, through each block's frozen projections, rather than a
code per block in query/key space: it costs 2 x max_frames x D_v parameters (98k for
ViT-B/16, against 1.2M for per-block codes), it is an input code like CLIP's own position
embedding (which every block also reads through its frozen projections), not a new
attention weight, and the same code serves both placements (``vision.capture_placement``).
Kinds:

- ``"learned"`` (default): two tables ``(max_frames, D_v)``, zero at init, so at step 0 the
  model computes what it computed without a code; they do get a gradient at step 0
  (d score / d e_k(s) = W_k^T q, non-zero), so they learn from the first step;
- ``"sine"``: a fixed sine table ``(max_frames, D_v)`` (``rvoslib.position``) times a learned
  scalar for keys and one for queries, zero at init (same step-0 argument); fewer
  parameters, and defined for any T up to max_frames whether trained on it or not;
- ``"none"``: no code (the behaviour of checkpoints saved before the option existed).
"""

from __future__ import annotations

import torch
from torch import nn

from .position import sine_position_1d

TIME_CODES = ("learned", "sine", "none")  # values of vision.capture_time_code


class CaptureTimeCode(nn.Module):
    """Per-frame codes that tell the temporal capture which frame a key, and a query, belongs to.

    ``forward(T)`` returns ``(key (T, D_v), query (T, D_v))``, both in the space of a block's
    ``ln_1`` output: the capture of block l adds ``W_k^l key[t]`` to the keys of frame t's tokens
    and ``W_q^l query[t]`` to the queries of frame t's temporal prompts, with block l's frozen
    projections (see the module docstring). Both are zero at init.

    Args:
        kind: "learned": two tables ``(max_frames, D_v)`` (``key_embed``, ``query_embed``), zeros;
            "sine": a fixed sine table ``(max_frames, D_v)`` (``rvoslib.position.sine_position_1d``,
            not saved) times two learned scalars (``key_scale``, ``query_scale``), zeros.
        max_frames: the largest T (``prompts.max_frames``).
        width: D_v.
    """

    def __init__(self, kind: str, max_frames: int, width: int):
        super().__init__()
        if kind not in ("learned", "sine"):
            raise ValueError(f"vision.capture_time_code={kind!r}: a time code is 'learned' or 'sine'")
        self.kind = kind
        if kind == "learned":
            self.key_embed = nn.Parameter(torch.zeros(max_frames, width))  # (max_frames, D_v)
            self.query_embed = nn.Parameter(torch.zeros(max_frames, width))  # (max_frames, D_v)
        else:
            if width % 2:
                raise ValueError(f"vision.capture_time_code='sine' needs an even D_v, got {width}")
            self.register_buffer("table", sine_position_1d(max_frames, width), persistent=False)  # (max_frames, D_v)
            self.key_scale = nn.Parameter(torch.zeros(1))
            self.query_scale = nn.Parameter(torch.zeros(1))

    def forward(self, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(key (T, D_v), query (T, D_v))`` codes of frames ``0 .. T-1``."""
        if self.kind == "learned":
            return self.key_embed[:num_frames], self.query_embed[:num_frames]
        table = self.table[:num_frames]  # (T, D_v)
        return self.key_scale * table, self.query_scale * table
