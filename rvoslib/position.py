"""Fixed sine position encodings (no parameters) for the spatio-temporal encoder.

``sine_position_3d(T, h, w, d)`` gives every (frame, row, column) of a clip its own
d-dimensional code: the channels are split into three groups (time, y, x), and each
group holds ``[sin(p * f_i) | cos(p * f_i)]`` of the integer position ``p`` along that
axis, with frequencies ``f_i = temperature ** (-2 i / c)`` as in "Attention is all you
need". Positions are integers, not normalised to [0, 1], so a frame or a patch keeps
the same code whatever the clip length or grid size.
"""

from __future__ import annotations

from typing import Optional

import torch


def split_channels_3d(dim: int) -> tuple[int, int, int]:
    """Channels given to (time, y, x): y and x get ``2 * (dim // 6)`` each, time the rest.

    ``dim`` must be even and at least 6 so every group is even and non-empty.
    """
    if dim % 2 or dim < 6:
        raise ValueError(f"sine_position_3d: dim must be even and >= 6, got {dim}")
    spatial = 2 * (dim // 6)
    return dim - 2 * spatial, spatial, spatial


def sine_position_1d(n: int, channels: int, temperature: float = 10000.0,
                     device: Optional[torch.device] = None) -> torch.Tensor:
    """Sine code of positions ``0 .. n-1``: (n, channels), channels even, ``[sin | cos]``."""
    if channels % 2:
        raise ValueError(f"sine_position_1d: channels must be even, got {channels}")
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]  # (n, 1)
    exponent = torch.arange(channels // 2, dtype=torch.float32, device=device) * 2 / channels
    angles = pos * temperature ** (-exponent)  # (n, channels / 2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (n, channels)


def sine_position_3d(T: int, h: int, w: int, dim: int, temperature: float = 10000.0,
                     device: Optional[torch.device] = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Fixed 3-D sine position encoding: (T, h, w, dim), channels ``[time | y | x]``.

    Deterministic and distinct for every (t, y, x): the first frequency of each group
    is 1, and ``(sin p, cos p)`` never repeats for integer ``p``.
    """
    c_t, c_y, c_x = split_channels_3d(dim)
    code_t = sine_position_1d(T, c_t, temperature, device)[:, None, None, :].expand(T, h, w, c_t)
    code_y = sine_position_1d(h, c_y, temperature, device)[None, :, None, :].expand(T, h, w, c_y)
    code_x = sine_position_1d(w, c_x, temperature, device)[None, None, :, :].expand(T, h, w, c_x)
    return torch.cat([code_t, code_y, code_x], dim=-1).to(dtype)  # (T, h, w, dim)
