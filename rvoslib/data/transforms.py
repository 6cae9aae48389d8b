"""Clip transforms: square resize, CLIP normalisation, flip (with left/right words), jitter.

Frames and masks of one clip always receive the same geometric transform, so they
stay aligned. Frames are float tensors ``(T, 3, H, W)`` in [0, 1] until normalised;
masks are id / binary maps ``(T, H, W)`` uint8 (255 = void) resized with
"nearest-exact", the nearest-neighbour rule whose sample points are the pixel
centres used by the bilinear frame resize (plain "nearest" is shifted by half a pixel).
"""

from __future__ import annotations

import functools
import re

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange


@functools.lru_cache(maxsize=1)
def clip_mean_std() -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """CLIP's RGB mean and std (open_clip.constants OPENAI_DATASET_MEAN / STD), imported on first use."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return tuple(OPENAI_DATASET_MEAN), tuple(OPENAI_DATASET_STD)


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 3, H, W) float32 in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3), got shape {frames.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    return rearrange(tensor, "t h w c -> t c h w").contiguous()


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, H, W) float -> (T, 3, S, S) by bilinear interpolation with antialiasing (S = size)."""
    if frames.shape[-2:] == (size, size):
        return frames
    resized = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp_(0.0, 1.0)


def resize_masks(masks: torch.Tensor | np.ndarray, size: int) -> torch.Tensor:
    """(T, H, W) uint8 id/binary masks -> (T, S, S) uint8, nearest neighbour at pixel centres."""
    masks = torch.as_tensor(np.asarray(masks) if isinstance(masks, np.ndarray) else masks)
    if masks.shape[-2:] == (size, size):
        return masks
    resized = F.interpolate(masks[:, None].float(), size=(size, size), mode="nearest-exact")
    return resized[:, 0].round().to(torch.uint8)


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror the last (width) axis: frames (T, 3, H, W) or masks (T, H, W)."""
    return torch.flip(x, dims=(-1,))


_SWAPS = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost"}
_SWAP_PATTERN = re.compile(r"\b(" + "|".join(_SWAPS) + r")\b", flags=re.IGNORECASE)


def swap_left_right(sentence: str) -> str:
    """Swap the whole words left <-> right (and leftmost <-> rightmost), keeping their case.

    "the dog on the Left" -> "the dog on the Right"; "leftover" and "bright" are unchanged.
    """

    def replace(match: re.Match) -> str:
        word = match.group(0)
        swapped = _SWAPS[word.lower()]
        if word.isupper():
            return swapped.upper()
        return swapped.capitalize() if word[0].isupper() else swapped

    return _SWAP_PATTERN.sub(replace, sentence)


def _grayscale(frames: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) -> (T, 1, H, W) luma (ITU-R 601 weights)."""
    weights = frames.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (frames * weights).sum(dim=1, keepdim=True)


def color_jitter(
    frames: torch.Tensor,
    rng: np.random.Generator,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
) -> torch.Tensor:
    """Photometric jitter with one random factor per property for the whole clip.

    Each factor is drawn uniformly from [1 - s, 1 + s]; applied in the order brightness
    (scale), contrast (blend with each frame's mean luma), saturation (blend with luma).
    Args:
        frames: (T, 3, H, W) float in [0, 1].
    Returns:
        (T, 3, H, W) float in [0, 1].
    """
    b, c, s = (float(rng.uniform(1 - v, 1 + v)) if v > 0 else 1.0 for v in (brightness, contrast, saturation))
    out = frames * b
    mean = _grayscale(out).mean(dim=(-2, -1), keepdim=True)  # (T, 1, 1, 1)
    out = (out - mean) * c + mean
    gray = _grayscale(out)
    out = (out - gray) * s + gray
    return out.clamp_(0.0, 1.0)


def normalize(frames: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) in [0, 1] -> CLIP-normalised ((x - mean) / std per channel)."""
    mean, std = (frames.new_tensor(v).view(1, 3, 1, 1) for v in clip_mean_std())
    return (frames - mean) / std


def denormalize(frames: torch.Tensor) -> torch.Tensor:
    """Inverse of ``normalize``: (..., 3, H, W) CLIP-normalised -> [0, 1] (clamped), for display."""
    mean, std = (frames.new_tensor(v).view(3, 1, 1) for v in clip_mean_std())
    return (frames * std + mean).clamp(0.0, 1.0)


def transform_clip(
    frames: np.ndarray,
    masks: np.ndarray,
    sentence: str,
    size: int,
    rng: np.random.Generator | None = None,
    flip_prob: float = 0.0,
    jitter: tuple[float, float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, str, bool]:
    """The full per-clip pipeline: resize -> (optional flip) -> (optional jitter) -> normalise.

    Args:
        frames: (T, H, W, 3) uint8.
        masks: (T, H, W) uint8 (0/1, 255 = void).
        sentence: the expression (left/right swapped when flipped).
        size: output side S.
        rng: random generator (needed when flip_prob > 0 or jitter is set).
        flip_prob: probability of a horizontal flip.
        jitter: (brightness, contrast, saturation) strengths, or None.
    Returns:
        frames (T, 3, S, S) float32 normalised, masks (T, S, S) uint8, sentence, flipped.
    """
    video = resize_frames(frames_to_tensor(frames), size)  # (T, 3, S, S)
    labels = resize_masks(torch.from_numpy(np.ascontiguousarray(masks)), size)  # (T, S, S)
    flipped = bool(flip_prob > 0 and rng is not None and rng.random() < flip_prob)
    if flipped:  # after the resize, so a flipped clip is the exact mirror of the unflipped one
        video, labels, sentence = hflip(video), hflip(labels), swap_left_right(sentence)
    if jitter is not None and rng is not None:
        video = color_jitter(video, rng, *jitter)
    return normalize(video), labels, sentence, flipped
