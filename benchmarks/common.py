"""What every benchmark section shares: timing side by side, ratios, models and inputs, SDPA kernels.

Timing method (see ``benchmarks/run.py``): the cases compared in a row are timed in one process,
interleaved by :func:`interleave` (A B C, then C B A, ...) after a warm-up round; a ratio is the
median of the per-round ratios (:func:`ratio`), with its min and max over rounds.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "the black swan swimming in the pond"
VIDEO_FOLDER = REPO / "data_samples/davis/blackswan"
VIDEO_MP4 = REPO / "data_samples/blackswan.mp4"


def autocast(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ start/stop log lines) for a block."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable, device: torch.device) -> float:
    """Wall seconds of ``fn()`` (synchronised on CUDA)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def interleave(cases: dict, repeats: int, device: torch.device, warmup: int = 1) -> dict:
    """Time every case once per round, alternating the order each round; returns seconds per case."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times = {name: [] for name in cases}
    for round_ in range(repeats):
        order = list(cases.items())
        for name, fn in (order if round_ % 2 == 0 else order[::-1]):
            times[name].append(timed(fn, device))
    return times


def stats(seconds: list) -> dict:
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "runs_s": [round(s, 5) for s in seconds]}


def ratio(num: list, den: list) -> dict:
    """Median of the per-round ratios num/den, with their min and max."""
    per_round = [a / b for a, b in zip(num, den)]
    return {"median": statistics.median(per_round), "min": min(per_round), "max": max(per_round),
            "rounds": [round(r, 4) for r in per_round]}


def fmt_ratio(r: dict, unit: str = "x") -> str:
    return f"{r['median']:.2f}{unit} [{r['min']:.2f}-{r['max']:.2f}]"


def build(preset: str, size: Optional[int] = None, frames: Optional[int] = None, clip=None,
          checkpointing: bool = False, **vision):
    """A VLPRVOS of ``preset`` with random CLIP weights (``pretrained=None``); returns (model, cfg)."""
    from rvoslib.config import get_preset
    from rvoslib.model import build_model

    cfg = get_preset(preset)
    cfg.model.backbone.pretrained = None
    cfg.model.backbone.grad_checkpointing = checkpointing
    if size is not None:
        cfg.model.backbone.image_size = size
    if frames is not None:
        cfg.model.num_frames = frames
    for key, value in vision.items():
        setattr(cfg.model.vision, key, value)
    torch.manual_seed(0)
    return build_model(cfg.model, clip=clip), cfg


def clip_inputs(model, batch: int, frames: int, size: int, device: torch.device, seed: int = 0):
    """Random normalised frames (B, T, 3, S, S), tokens (B, L_ctx), 0/1 target masks (B, T, S, S)."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, frames, 3, size, size, generator=g)
    masks = (torch.rand(batch, frames, size, size, generator=g) > 0.7).float()
    tokens = model.tokenize([SENTENCE] * batch)
    return video.to(device), tokens.to(device), masks.to(device)


@contextlib.contextmanager
def kernel_context(kernel: str):
    """``"math"``: force the MATH scaled_dot_product_attention backend; ``"default"``: let torch pick."""
    if kernel == "default":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


def sdpa_kernels(fn: Callable, device: torch.device) -> list:
    """Names of the scaled_dot_product_attention implementations that ``fn()`` ran."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with quiet_stderr(), profile(activities=activities) as prof:
        fn()
        sync(device)
    names = {e.key for e in prof.key_averages()}
    return sorted(n for n in names if "scaled_dot_product" in n and n != "aten::scaled_dot_product_attention"
                  and not n.endswith("_backward"))


def short_kernel(names: list) -> str:
    kinds = []
    for n in names:
        kind = next((k for k in ("flash", "efficient", "cudnn", "math") if k in n), n)
        if kind not in kinds:
            kinds.append(kind)
    return "+".join(kinds) or "none"


def self_cpu_by_op(fn: Callable) -> dict:
    """Self CPU time (microseconds) of each op in one run of ``fn()``, from torch.profiler.

    Leaves out the autograd engine's wrappers (``autograd::...``) and profiler steps, so the
    times add up to the work of the ops themselves.
    """
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key: e.self_cpu_time_total for e in prof.key_averages()
            if not (e.key.startswith("autograd::") or e.key.startswith("ProfilerStep"))}


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
