"""Cube partition for cube attention: pure functions, no parameters.

A *cube* is a ``k x k`` spatial window extended through all T frames of a clip. The
``h x w`` grid is zero-padded at the bottom and right to ``Hp x Wp`` (multiples of k),
cut into ``nC = (Hp / k) * (Wp / k)`` cubes of ``T * k * k`` tokens, and a key-padding
mask marks the tokens that came from padding so attention never looks at them.

Shifted cubes (Swin-style) cyclically roll the padded grid by ``(-sh, -sw)`` before
cutting. The cubes on the last row/column then mix tokens that are not neighbours
(the wrapped strip); ``shifted_cube_regions`` labels the three strips of each axis so
that a token only attends to tokens of its own strip. In the original coordinates,
this is the same as cutting the grid at ``s, s + k, s + 2k, ...`` instead of at
``0, k, 2k, ...`` (the strip ``[0, s)`` is its own small cube).

Cubes are ordered ``(b nh nw)`` (batch outermost, then cube row, then cube column) and
tokens inside a cube ``(t kh kw)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat


def padded_size(n: int, k: int) -> int:
    """Smallest multiple of ``k`` that is >= ``n``."""
    return -(-n // k) * k


def num_cubes(h: int, w: int, k: int) -> int:
    """Number of cubes ``nC`` for an ``h x w`` grid and cube side ``k`` (after padding)."""
    return (padded_size(h, k) // k) * (padded_size(w, k) // k)


def axis_shift(n: int, k: int, shift: int) -> int:
    """The shift actually used along an axis of length ``n``: 0 when it holds a single cube."""
    return shift if padded_size(n, k) > k else 0


def _padding_map(h: int, w: int, k: int, device: torch.device) -> torch.Tensor:
    """(Hp, Wp) bool, True where the padded grid holds padding."""
    rows = torch.arange(padded_size(h, k), device=device)[:, None] >= h
    cols = torch.arange(padded_size(w, k), device=device)[None, :] >= w
    return rows | cols


def cube_partition(x: torch.Tensor, k: int, shift: tuple[int, int] = (0, 0)
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a clip's grid into cubes.

    x: (B, T, h, w, C). shift: (sh, sw) cyclic shift of the padded grid (0 = plain cubes).
    Returns ``windows`` (B * nC, T * k * k, C), padding filled with zeros, and
    ``key_pad`` (B * nC, T * k * k) bool, True where the token is padding.
    """
    B, T, h, w, _ = x.shape
    hp, wp = padded_size(h, k), padded_size(w, k)
    x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))  # (B, T, Hp, Wp, C)
    pad = _padding_map(h, w, k, x.device)  # (Hp, Wp)
    if any(shift):
        x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(2, 3))
        pad = torch.roll(pad, shifts=(-shift[0], -shift[1]), dims=(0, 1))
    windows = rearrange(x, "b t (nh kh) (nw kw) c -> (b nh nw) (t kh kw) c", kh=k, kw=k)
    key_pad = repeat(pad, "(nh kh) (nw kw) -> (b nh nw) (t kh kw)", kh=k, kw=k, b=B, t=T)
    return windows, key_pad


def cube_unpartition(windows: torch.Tensor, k: int, T: int, h: int, w: int,
                     shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Inverse of ``cube_partition``: (B * nC, T * k * k, C) -> (B, T, h, w, C), padding dropped."""
    nh, nw = padded_size(h, k) // k, padded_size(w, k) // k
    x = rearrange(windows, "(b nh nw) (t kh kw) c -> b t (nh kh) (nw kw) c",
                  nh=nh, nw=nw, t=T, kh=k, kw=k)  # (B, T, Hp, Wp, C)
    if any(shift):
        x = torch.roll(x, shifts=shift, dims=(2, 3))
    return x[:, :, :h, :w]


def _strip_labels(n: int, k: int, shift: int, device: torch.device) -> torch.Tensor:
    """(n,) long: Swin's strips of one rolled axis, 0 = [0, n-k), 1 = [n-k, n-s), 2 = [n-s, n)."""
    labels = torch.zeros(n, dtype=torch.long, device=device)
    if shift:
        labels[n - k:n - shift] = 1
        labels[n - shift:] = 2
    return labels


def shifted_cube_regions(h: int, w: int, k: int, T: int, shift: tuple[int, int],
                         device: torch.device) -> torch.Tensor:
    """Strip label of every token of every (rolled) cube: (nC, T * k * k) long.

    Two tokens of one cube may attend to each other only when their labels match.
    """
    rows = _strip_labels(padded_size(h, k), k, shift[0], device)
    cols = _strip_labels(padded_size(w, k), k, shift[1], device)
    labels = rows[:, None] * 3 + cols[None, :]  # (Hp, Wp)
    return repeat(labels, "(nh kh) (nw kw) -> (nh nw) (t kh kw)", kh=k, kw=k, t=T)


def cube_attention_mask(key_pad: torch.Tensor, h: int, w: int, k: int, T: int,
                        shift: tuple[int, int] = (0, 0)) -> torch.Tensor | None:
    """Which key each query of a cube may attend to (True = allowed), or None for "all".

    key_pad: (B * nC, T * k * k) from ``cube_partition``. Returns None when the grid
    needs neither padding nor shifting; (B * nC, 1, T*k*k) for padding only; and
    (B * nC, T*k*k, T*k*k) when shifted (padding and strip labels combined).
    """
    padded = h % k != 0 or w % k != 0
    if not any(shift):
        return ~key_pad[:, None, :] if padded else None  # (B*nC, 1, T*k*k)
    regions = shifted_cube_regions(h, w, k, T, shift, key_pad.device)  # (nC, T*k*k)
    same = regions[:, :, None] == regions[:, None, :]  # (nC, T*k*k, T*k*k)
    same = repeat(same, "n q s -> (b n) q s", b=key_pad.shape[0] // regions.shape[0])
    return same & ~key_pad[:, None, :]  # (B*nC, T*k*k, T*k*k)
