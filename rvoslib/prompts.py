"""Prompt generator (vision / temporal / language prompts) and history tokens.

``PromptGenerator``: P learnable raw tokens (N_v vision, N_tp temporal, N_l language;
only the enabled kinds) pass together through a small shared pre-norm Transformer
encoder, so the three kinds are generated jointly, and are then projected by one
linear layer per kind into the width they are used at:

    raw (P, g) -> encoder -> LayerNorm -> split
        vision   (N_v, g)                 -> Linear -> (N_v, D_v)
        temporal (N_tp, g) + frame_emb[t] -> Linear -> (T, N_tp, D_v)
        language (N_l, g)                 -> Linear -> (N_l, D_t)

Temporal prompts need a distinct identity per frame (they are written back into
frame t's sequence and must not be interchangeable with frame t''s), so a learned
frame embedding ``(max_frames, g)`` is added to the encoded temporal tokens before
their projection. We add it after the encoder, not before, so the encoder runs over
P tokens whatever T is (cheap, and T-independent). The output is batch-independent;
the encoders broadcast it over B.

Projection weights start as N(0, 0.02) with zero bias (as ViT/GPT linear layers),
so prompts start small next to CLIP's own tokens.

``HistoryEncoder``: the first clip gets learned initial tokens ``(N_h, D_v)``. After a
clip, the soft predicted mask pools the final features into N_h tokens with
*mask-weighted attention pooling*: N_h learned queries score every position of all
T frames; the pooling weights are ``softmax_x(q_k . W f(x) / sqrt(d) + log m(x))``,
i.e. proportional to ``m(x) exp(score)``, so only (soft) foreground positions
contribute; then LayerNorm + Linear to D_v. We chose learned queries over fixed
splits of the frames because they work for any T and N_h and can learn to pick
different parts of the object.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .config import PromptConfig


def _linear(in_dim: int, out_dim: int, std: float = 0.02) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


class PromptGenerator(nn.Module):
    """Learnable prompts for the vision encoder (vision, temporal) and the text encoder (language).

    Args:
        cfg: ``PromptConfig`` (counts, generator width/depth/heads, ``max_frames``, ``use_*`` flags).
        vision_width: D_v of the ViT.
        text_width: D_t of the text transformer.

    ``forward(T)`` returns ``dict(vision=(N_v, D_v) | None, temporal=(T, N_tp, D_v) | None,
    language=(N_l, D_t) | None)``; a kind is None when its ``use_*`` flag is False or its count is 0.
    """

    def __init__(self, cfg: PromptConfig, vision_width: int, text_width: int):
        super().__init__()
        self.cfg = cfg
        g = cfg.generator_dim
        if g % cfg.generator_heads:
            raise ValueError(f"prompts.generator_dim={g} must be divisible by prompts.generator_heads="
                             f"{cfg.generator_heads}")
        self.counts = {
            "vision": cfg.num_vision if cfg.use_vision else 0,
            "temporal": cfg.num_temporal if cfg.use_temporal else 0,
            "language": cfg.num_language if cfg.use_language else 0,
        }
        widths = {"vision": vision_width, "temporal": vision_width, "language": text_width}
        total = sum(self.counts.values())
        self.raw = nn.Parameter(torch.randn(total, g) * 0.02) if total else None  # (P, g)
        self.encoder = nn.ModuleList([
            nn.TransformerEncoderLayer(g, cfg.generator_heads, dim_feedforward=4 * g, dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
            for _ in range(cfg.generator_layers if total else 0)
        ])
        self.norm = nn.LayerNorm(g) if total else None
        self.proj = nn.ModuleDict({k: _linear(g, widths[k]) for k, n in self.counts.items() if n})
        self.frame_embed = (nn.Parameter(torch.randn(cfg.max_frames, g) * 0.02)
                            if self.counts["temporal"] else None)  # (max_frames, g)

    def forward(self, num_frames: int) -> dict:
        """Generate the prompts for a clip of ``num_frames`` = T frames (see the class docstring)."""
        if not 1 <= num_frames <= self.cfg.max_frames:
            raise ValueError(f"num_frames T={num_frames} must be in [1, prompts.max_frames={self.cfg.max_frames}]")
        out = {"vision": None, "temporal": None, "language": None}
        if self.raw is None:
            return out
        x = self.raw.unsqueeze(0)  # (1, P, g)
        for layer in self.encoder:
            x = layer(x)
        x = self.norm(x[0])  # (P, g)
        parts = torch.split(x, list(self.counts.values()))
        for (kind, n), part in zip(self.counts.items(), parts):
            if not n:
                continue
            if kind == "temporal":
                part = part.unsqueeze(0) + self.frame_embed[:num_frames, None]  # (T, N_tp, g)
            out[kind] = self.proj[kind](part)
        return out


class HistoryEncoder(nn.Module):
    """History tokens carried from one clip to the next (see the module docstring).

    Args:
        cfg: ``PromptConfig`` (``num_history`` = N_h).
        dim: d, the width of the features that ``pool`` reads.
        vision_width: D_v, the width of the tokens it returns.
    """

    def __init__(self, cfg: PromptConfig, dim: int, vision_width: int):
        super().__init__()
        self.num_tokens = cfg.num_history
        self.initial_tokens = nn.Parameter(torch.randn(cfg.num_history, vision_width) * 0.02)  # (N_h, D_v)
        self.queries = nn.Parameter(torch.randn(cfg.num_history, dim) * dim ** -0.5)  # (N_h, d)
        self.key = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.proj = _linear(dim, vision_width)

    def initial(self, batch_size: int) -> torch.Tensor:
        """Learned tokens for a first clip: ``(B, N_h, D_v)`` (a view; gradients reach them)."""
        return self.initial_tokens.unsqueeze(0).expand(batch_size, -1, -1)

    def pool(self, features: torch.Tensor, mask_logits: torch.Tensor, detach: bool = True) -> torch.Tensor:
        """Mask-weighted attention pooling of a finished clip into history tokens.

        Args:
            features: ``(B, T, d, h, w)`` final features of the clip.
            mask_logits: ``(B, T, H, W)`` predicted mask logits at any size (resized to h x w).
            detach: the inputs are always detached (no gradient flows back into the finished
                clip). With ``detach=True`` (default) the returned tokens are detached too, so the
                pooling's own parameters get no gradient; pass False to train them from the next
                clip's loss (compute the pool after the optimizer step that uses this clip).

        Returns:
            ``(B, N_h, D_v)`` history tokens.
        """
        if features.dim() != 5 or mask_logits.dim() != 4 or mask_logits.shape[:2] != features.shape[:2]:
            raise ValueError(f"pool expects features (B, T, d, h, w) and mask_logits (B, T, H, W) with the same "
                             f"B, T; got {tuple(features.shape)} and {tuple(mask_logits.shape)}")
        b, t, _, h, w = features.shape
        features, mask_logits = features.detach(), mask_logits.detach()
        soft = torch.sigmoid(mask_logits.float())  # (B, T, H, W)
        if soft.shape[-2:] != (h, w):
            soft = F.interpolate(soft, size=(h, w), mode="bilinear", align_corners=False,
                                 antialias=soft.shape[-1] > w)  # (B, T, h, w)
        feats = self.norm(rearrange(features, "b t c h w -> b (t h w) c"))  # (B, T*h*w, d)
        scores = torch.einsum("kc,bnc->bkn", self.queries, self.key(feats)) * feats.shape[-1] ** -0.5
        log_mask = rearrange(soft, "b t h w -> b 1 (t h w)").clamp_min(1e-6).log().to(scores.dtype)
        weights = torch.softmax(scores + log_mask, dim=-1)  # (B, N_h, T*h*w), weights ~ m(x) exp(score)
        tokens = self.proj(torch.einsum("bkn,bnc->bkc", weights, feats))  # (B, N_h, D_v)
        return tokens.detach() if detach else tokens
