"""Mask head and pixel-text similarity (DESIGN section 5).

``MaskHead``: 1x1 conv d -> hidden; a 3x3 conv + GroupNorm + ReLU block at the patch
stride; then ``n`` blocks of (x2 bilinear upsampling, 3x3 conv + GroupNorm + ReLU)
until the feature stride is <= ``output_stride``; a 1x1 conv to one logit; bilinear
upsampling to the input size.

Number of x2 upsamplings: ``n = ceil(log2(patch_size / output_stride))`` (0 when the
patch is already <= the output stride), i.e. "halve the stride until it is <= the
target". For a power-of-two patch the stride lands exactly on the target (16 -> 4
with n = 2, 8 -> 4 with n = 1). For other patches it lands just below it (14 -> 7
-> 3.5 with n = 2), never above, and the final bilinear resize to the input size
absorbs the non-integer ratio (a 24 x 24 grid of ViT-L/14 at S=336 becomes 96 x 96,
then 336 x 336).

Optional pixel refinement (``head.pixel_dim`` > 0; off in the paper's presets): after
the conv stack, a 1x1 conv narrows the features to ``pixel_dim`` channels, they are
upsampled x2 and concatenated with the RGB frame seen through a small conv path at
that stride (3x3 conv + GroupNorm + ReLU at full size, strided 3x3 conv blocks
down), and a 3x3 conv block mixes the two before the logit. Why: at toy scale (S=64,
patch 8) an object is one or two patches wide, so a mask read off the patch grid
alone cannot follow its outline; real RVOS objects span many patches at S=352. The
path sees pixels, not words, so it can sharpen a boundary but cannot choose which
object is meant: the choice still comes from the features. It works at narrow
width because it runs at the largest size.

``PixelTextSimilarity``: cosine between projected per-pixel features and the
projected sentence feature, in [-1, 1].
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from rvoslib.config import HeadConfig

logger = logging.getLogger(__name__)


def num_upsamplings(patch_size: int, output_stride: int) -> int:
    """x2 upsamplings needed to bring the stride from ``patch_size`` to <= ``output_stride``."""
    if patch_size <= 0 or output_stride <= 0:
        raise ValueError(f"MaskHead: patch_size ({patch_size}) and output_stride ({output_stride}) "
                         "must be > 0")
    if patch_size <= output_stride:
        return 0
    return math.ceil(math.log2(patch_size / output_stride))


def conv_block(in_channels: int, out_channels: int, groups: int) -> nn.Sequential:
    """3x3 conv + GroupNorm + ReLU: (N, in, h, w) -> (N, out, h, w)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.GroupNorm(groups, out_channels), nn.ReLU(inplace=True))


class PixelRefinement(nn.Module):
    """Sharpen a feature map with the pixels: (N, hidden, h', w') + RGB (N, 3, H, W) -> (N, c, 2h', 2w').

    Args:
        hidden: channels of the incoming features.
        channels: c, the narrow width of the refinement (``head.pixel_dim``).
        stride: the output stride (input pixels per output position), a power of two >= 1.
        groups: GroupNorm groups.
    """

    def __init__(self, hidden: int, channels: int, stride: float, groups: int):
        super().__init__()
        if channels % groups:
            raise ValueError(f"head.groups ({groups}) must divide head.pixel_dim ({channels}) for GroupNorm")
        downs = int(round(math.log2(stride))) if stride >= 1 else -1
        if downs < 0 or 2 ** downs != stride:
            raise ValueError(f"the pixel refinement needs a power-of-two stride >= 1 after the conv stack, got {stride} "
                             "(head.output_stride / 2)")
        self.narrow = nn.Conv2d(hidden, channels, 1)
        layers = [conv_block(3, channels, groups)]
        for _ in range(downs):
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
                       nn.GroupNorm(groups, channels), nn.ReLU(inplace=True)]
        self.pixels = nn.Sequential(*layers)
        self.mix = conv_block(2 * channels, channels, groups)

    def forward(self, y: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(self.narrow(y), scale_factor=2.0, mode="bilinear", align_corners=False)  # (N, c, 2h', 2w')
        p = self.pixels(frames.to(y.dtype))  # (N, c, H / stride, W / stride)
        if p.shape[-2:] != y.shape[-2:]:
            p = F.interpolate(p, size=y.shape[-2:], mode="bilinear", align_corners=False)
        return self.mix(torch.cat([y, p], dim=1))  # (N, c, 2h', 2w')


class MaskHead(nn.Module):
    """Per-frame mask logits from a feature grid: (B, T, d, h, w) -> (B, T, H, W)."""

    def __init__(self, dim: int, cfg: HeadConfig, patch_size: int):
        super().__init__()
        if cfg.hidden % cfg.groups:
            raise ValueError(f"head.groups ({cfg.groups}) must divide head.hidden ({cfg.hidden}) "
                             "for GroupNorm")
        self.upsamplings = num_upsamplings(patch_size, cfg.output_stride)
        self.output_stride = patch_size / 2 ** self.upsamplings  # final stride of the conv stack
        if self.output_stride != cfg.output_stride:
            logger.debug("MaskHead: patch %d gives stride %.3g after %d upsamplings (target %d)",
                         patch_size, self.output_stride, self.upsamplings, cfg.output_stride)
        self.input_proj = nn.Conv2d(dim, cfg.hidden, 1)
        self.blocks = nn.ModuleList(conv_block(cfg.hidden, cfg.hidden, cfg.groups)
                                    for _ in range(self.upsamplings + 1))
        self.refine = PixelRefinement(cfg.hidden, cfg.pixel_dim, self.output_stride / 2, cfg.groups) \
            if cfg.pixel_dim else None
        self.predict = nn.Conv2d(cfg.pixel_dim or cfg.hidden, 1, 1)

    def forward(self, x: torch.Tensor, out_size: tuple[int, int], frames: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        """x (B, T, d, h, w), out_size (H, W), frames (B, T, 3, H, W) (needed by the pixel path)
        -> mask logits (B, T, H, W)."""
        B = x.shape[0]
        y = self.input_proj(rearrange(x, "b t c h w -> (b t) c h w"))  # (B*T, hidden, h, w)
        y = self.blocks[0](y)
        for block in self.blocks[1:]:
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = block(y)  # (B*T, hidden, 2h', 2w')
        if self.refine is not None:
            if frames is None:
                raise ValueError("MaskHead with head.pixel_dim > 0 needs the frames")
            y = self.refine(y, rearrange(frames, "b t c h w -> (b t) c h w"))  # (B*T, pixel_dim, 2h', 2w')
        logits = self.predict(y)  # (B*T, 1, h', w') at the final stride
        logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
        return rearrange(logits, "(b t) 1 H W -> b t H W", b=B)  # (B, T, H, W)


class PixelTextSimilarity(nn.Module):
    """Cosine between projected pixels and the projected sentence: (B, T, h, w) in [-1, 1]."""

    def __init__(self, dim: int, text_width: int, sim_dim: int):
        super().__init__()
        self.pixel_proj = nn.Linear(dim, sim_dim)
        self.text_proj = nn.Linear(text_width, sim_dim)

    def forward(self, x: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        """x (B, T, d, h, w), sentence (B, D_t) -> cosine map (B, T, h, w)."""
        pixels = self.pixel_proj(rearrange(x, "b t c h w -> b t h w c"))  # (B, T, h, w, sim_dim)
        pixels = F.normalize(pixels, dim=-1)
        text = F.normalize(self.text_proj(sentence), dim=-1)  # (B, sim_dim)
        cosine = torch.einsum("bthwc,bc->bthw", pixels, text)
        return cosine.clamp(-1.0, 1.0)
