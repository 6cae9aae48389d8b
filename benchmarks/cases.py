"""The measured cases that may also run alone in a fresh subprocess (for peak memory, ``memory.py``).

A case setup takes plain JSON-able keyword arguments and returns ``(run, reset)``: ``run()`` does
the measured work once; ``reset()`` drops what a run leaves behind (gradients) so that a
measurement starts from the same state. ``CASES`` names them for the subprocess worker.
"""

from __future__ import annotations

from typing import Callable

import torch

from benchmarks.common import autocast, build, clip_inputs, kernel_context



def case_st_layer(mode: str, frames: int, dim: int, heads: int, grid: list, cube: int, ffn: int,
                  kernel: str = "default", device: str = "cpu", **_):
    """One SpatioTemporalLayer forward + backward on a (1, T, h, w, d) clip."""
    from rvoslib.config import SpatioTemporalConfig
    from rvoslib.position import sine_position_3d
    from rvoslib.spatiotemporal import SpatioTemporalLayer

    dev = torch.device(device)
    torch.manual_seed(0)
    layer = SpatioTemporalLayer(dim, SpatioTemporalConfig(attention=mode, heads=heads, cube_size=cube,
                                                          ffn_dim=ffn)).to(dev)
    h, w = grid
    x = torch.randn(1, frames, h, w, dim, device=dev, requires_grad=True)
    pos = sine_position_3d(frames, h, w, dim, device=dev)

    def run():
        with kernel_context(kernel), autocast(dev):
            out, _ = layer(x, pos)
        out.float().square().mean().backward()

    def reset():
        layer.zero_grad(set_to_none=True)
        x.grad = None

    return run, reset


def attention_shapes(mode: str, frames: int, dim: int, heads: int, grid: list, cube: int) -> list:
    """(batch, tokens, mask) of every scaled_dot_product_attention call one layer of ``mode`` makes."""
    from rvoslib.attention import never_empty
    from rvoslib.cubes import cube_attention_mask, cube_partition

    h, w = grid
    calls = []
    for block in {"full": ["full"], "frame": ["frame"], "cube-frame": ["cube", "frame"]}[mode]:
        if block == "full":
            calls.append((1, frames * h * w, None))
        elif block == "frame":
            calls.append((frames, h * w, None))
        else:  # as SpatioTemporalLayer.cube_attention builds it (padded keys masked)
            _, key_pad = cube_partition(torch.zeros(1, frames, h, w, 1), cube)
            allowed = cube_attention_mask(key_pad, h, w, cube, frames)
            mask = None if allowed is None else never_empty(allowed)[:, None]  # (B*nC, 1, 1, T*k*k)
            calls.append((key_pad.shape[0], key_pad.shape[1], mask))
    return calls


def case_attention(mode: str, frames: int, dim: int, heads: int, grid: list, cube: int,
                   kernel: str = "default", device: str = "cpu", **_):
    """The attention kernels alone (forward + backward) with the shapes one layer of ``mode`` uses."""
    dev = torch.device(device)
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    g = torch.Generator().manual_seed(0)
    tensors = []
    for batch, tokens, mask in attention_shapes(mode, frames, dim, heads, grid, cube):
        q, k, v = (torch.randn(batch, heads, tokens, dim // heads, generator=g).to(dev, dtype).requires_grad_()
                   for _ in range(3))
        tensors.append((q, k, v, None if mask is None else mask.to(dev)))

    def run():
        with kernel_context(kernel):
            for q, k, v, mask in tensors:
                torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).float().sum().backward()

    def reset():
        for q, k, v, _ in tensors:
            q.grad = k.grad = v.grad = None

    return run, reset


def case_train_step(preset: str, size: int, frames: int, batch: int, checkpointing: bool = False,
                    device: str = "cpu", **_):
    """One training step: forward, compute_losses, backward (no optimizer update)."""
    from rvoslib.losses import compute_losses

    dev = torch.device(device)
    model, cfg = build(preset, size, frames, checkpointing=checkpointing)
    model.to(dev).train()
    video, tokens, masks = clip_inputs(model, batch, frames, size, dev)

    def run():
        with autocast(dev):
            out = model(video, tokens)
            loss = compute_losses(out, {"masks": masks}, cfg.loss)["total"]
        loss.backward()

    def reset():
        model.zero_grad(set_to_none=True)

    return run, reset, model


CASES = {
    "st_layer": case_st_layer,
    "attention": case_attention,
    "train_step": lambda **p: case_train_step(**p)[:2],
}


def train_step_fn(preset: str, size: int, frames: int, batch: int) -> Callable:
    """One training step as a single call (gradients reset first), for timing in a loop."""
    run, reset, _ = case_train_step(preset, size, frames, batch)

    def step():
        reset()
        run()

    return step

