"""Benchmarks of every stage of rvoslib's VLP-RVOS, measured side by side (issue 6).

Run from the repository root::

    .venv/bin/python -m benchmarks.run             # full run: about 10 min on 2 CPU cores
    .venv/bin/python -m benchmarks.run --quick     # smoke configuration: under a minute
    .venv/bin/python benchmarks/run.py --sections adaptation,cube --threads 2 --out /tmp/bench.json

It prints one table (markdown) and writes every number, with the machine it ran on, to
``benchmarks/results.json`` (``--out``). Sections (``--sections``, comma separated):

1. ``adaptation``: the full VLPRVOS forward (clip-b16 preset, random CLIP weights, S=352, T=6,
   batch 1, ``torch.inference_mode``) against open_clip's bare ``encode_image`` on the same 6
   frames (target <= 1.35x), with the share of each stage (text encoder; vision encoder split
   into frozen blocks / stage-1 cross-attention / temporal capture / tap projections; fusion;
   spatio-temporal reasoner; mask head, final and auxiliary; pixel-text similarity), and the
   vision encoder alone with the bottleneck stage 1 (``vision.stage1_dim`` default) and with a
   full-width one (``stage1_dim = D_v``).
2. ``cube``: one ``SpatioTemporalLayer`` (d=256, 8 heads, 22 x 22 grid, k=4, FFN 1024) forward +
   backward for T in 2, 4, 8, 16: cube-frame vs full vs frame-only attention, time and peak
   memory, the attention kernels alone, which ``scaled_dot_product_attention`` kernel ran, and
   the same with the MATH kernel forced (target at T=8: cube-frame >= 4x faster than full).
3. ``train``: a training step (forward, ``rvoslib.losses.compute_losses``, backward) of clip-b16
   at S=352, T=6, batch 1, with and without activation checkpointing of the frozen CLIP blocks
   (``backbone.grad_checkpointing``): time, peak memory (target: >= 40% less), and whether the
   gradients are identical.
4. ``inference``: frames per second of ``rvoslib.inference.segment_video`` (tiny and clip-b16,
   random weights) on ``data_samples/davis/blackswan``; on a GPU too when there is one (bf16).
5. ``data``: clips per second of ``RVOSDataset`` + ``DataLoader`` (num_workers 0 and 2) from a
   frames folder and from an mp4 (the blackswan sample), and ``rvoslib.io.read_video``, compared
   with the training-step rate of the tiny and clip-b16 models.

Method:

* Ratios, not absolute times (the machine is shared and noisy): the cases compared in a row
  are timed in the same process, interleaved (A B C, then C B A, ...), ``--repeats`` rounds after
  one warm-up round; a ratio is the median of the per-round ratios, with [min-max] over rounds.
* ``torch.set_num_threads(--threads)`` (default 2) in this process and in every worker.
* Peak memory on CPU: each case runs in a fresh subprocess (this file, ``--worker``) that
  builds the model and inputs, runs the case once as a warm-up, frees what it can
  (``gc.collect``, glibc ``malloc_trim(0)``), resets the kernel's peak-RSS counter (writes 5
  to ``/proc/self/clear_refs``), reads ``VmRSS``, runs the case once more and reads ``VmHWM``:
  peak = VmHWM - VmRSS, the resident memory the case needed on top of what was already there.
  Where ``/proc/self/clear_refs`` cannot be written (not Linux), it falls back to
  ``ru_maxrss`` of a subprocess that runs the case minus ``ru_maxrss`` of one that only
  builds the same model and inputs. On CUDA: ``torch.cuda.max_memory_allocated`` after
  ``reset_peak_memory_stats``, minus what was allocated before.
* On CUDA every case runs under bf16 autocast and is timed with ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import gc
import inspect
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import torch

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("adaptation", "cube", "train", "inference", "data")
WORKER_TAG = "BENCH_RESULT "
SENTENCE = "the black swan swimming in the pond"
VIDEO_FOLDER = REPO / "data_samples/davis/blackswan"
VIDEO_MP4 = REPO / "data_samples/blackswan.mp4"


def settings(quick: bool) -> dict:
    """What each section measures; ``quick`` is the smoke configuration (tiny sizes)."""
    if quick:
        return {
            "adaptation": {"preset": "tiny", "size": 64, "frames": 4, "repeats": 2},
            "cube": {"dim": 64, "heads": 4, "grid": [8, 8], "cube": 4, "ffn": 256, "frames": [2, 4],
                     "target_frames": 4, "math_time_frames": [4], "memory_frames": [4], "math_memory_frames": [],
                     "repeats": 2},
            "train": {"preset": "tiny", "size": 64, "frames": 4, "batch": 1, "repeats": 2},
            "inference": {"presets": ["tiny"], "max_frames": 8, "repeats": 1},
            "data": {"presets": ["tiny"], "clips": 6, "workers": [0, 2], "repeats": 1},
        }
    return {
        "adaptation": {"preset": "clip-b16", "size": 352, "frames": 6, "repeats": 4},
        "cube": {"dim": 256, "heads": 8, "grid": [22, 22], "cube": 4, "ffn": 1024, "frames": [2, 4, 8, 16],
                 "target_frames": 8, "math_time_frames": [2, 4, 8], "memory_frames": [2, 4, 8, 16],
                 "math_memory_frames": [8, 16], "repeats": 3},
        "train": {"preset": "clip-b16", "size": 352, "frames": 6, "batch": 1, "repeats": 2},
        "inference": {"presets": ["tiny", "clip-b16"], "max_frames": None, "repeats": 2},
        "data": {"presets": ["tiny", "clip-b16"], "clips": 24, "workers": [0, 2], "repeats": 2},
    }


# =============================================================================== helpers


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


# =============================================================================== cases
# A case setup returns (run, reset): run() does the measured work once; reset() drops what a
# run leaves behind (gradients) so that a measurement starts from the same state.


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


# =============================================================================== peak memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _maxrss_mib() -> float:
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def worker(spec: dict) -> dict:
    """Run one case in this (fresh) process and report its peak memory (see the module docstring)."""
    torch.set_num_threads(spec["threads"])
    run, reset = CASES[spec["case"]](**spec["params"])
    how = spec["how"]
    if how == "maxrss-baseline":
        return {"maxrss_mib": _maxrss_mib()}
    if how == "maxrss-case":
        run()
        return {"maxrss_mib": _maxrss_mib()}
    if spec.get("warmup", True):
        run()  # warm-up: allocator pools, oneDNN primitives, lazily built buffers
        reset()
    gc.collect()
    _malloc_trim()
    if not _reset_peak_rss():
        return {"error": "cannot reset the peak RSS (/proc/self/clear_refs)"}
    base = _status_kib("VmRSS")
    seconds = timed(run, torch.device("cpu"))
    peak = _status_kib("VmHWM")
    return {"peak_mib": (peak - base) / 1024, "baseline_rss_mib": base / 1024, "seconds": seconds}


def _spawn(case: str, params: dict, threads: int, how: str, warmup: bool = True, timeout: float = 900) -> dict:
    spec = json.dumps({"case": case, "params": params, "threads": threads, "how": how, "warmup": warmup})
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", spec], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(WORKER_TAG):
            return json.loads(line[len(WORKER_TAG):])
    return {"error": f"worker exited with {proc.returncode}: {proc.stderr.strip()[-600:]}"}


def _can_reset_peak_rss() -> bool:
    return sys.platform.startswith("linux") and os.access("/proc/self/clear_refs", os.W_OK)


def peak_memory_cpu(case: str, params: dict, threads: int, warmup: bool = True) -> dict:
    """Peak extra resident memory (MiB) of one run of a case, in fresh subprocesses.

    ``warmup``: run the case once before the measured run (skipped for long cases, whose one-time
    allocations are small next to their peak).
    """
    if _can_reset_peak_rss():
        result = _spawn(case, params, threads, "hwm", warmup)
        result["method"] = ("fresh subprocess: VmHWM - VmRSS around the case, peak counter reset before it"
                            + ("" if warmup else "; no warm-up run"))
        return result
    base, run = _spawn(case, params, threads, "maxrss-baseline"), _spawn(case, params, threads, "maxrss-case")
    if "error" in base or "error" in run:
        return {"error": base.get("error") or run.get("error")}
    return {"peak_mib": run["maxrss_mib"] - base["maxrss_mib"],
            "method": "ru_maxrss(subprocess running the case) - ru_maxrss(subprocess building the same inputs)"}


def peak_memory_cuda(run: Callable, reset: Callable, device: torch.device) -> dict:
    run()
    reset()
    sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    run()
    sync(device)
    return {"peak_mib": (torch.cuda.max_memory_allocated(device) - base) / 2**20,
            "method": "torch.cuda.max_memory_allocated - memory_allocated before"}


def peak_memory(case: str, params: dict, threads: int, device: torch.device, warmup: bool = True) -> dict:
    if device.type == "cpu":
        return peak_memory_cpu(case, params, threads, warmup)
    run, reset = CASES[case](**params)
    return peak_memory_cuda(run, reset, device)


# =============================================================================== 1. adaptation


TOP_STAGES = ("prompts", "text", "vision", "fusion", "reasoner", "head", "similarity")


def profile_stages(model, video, tokens, device: torch.device, runs: int = 2) -> dict:
    """Seconds spent in each stage of ``runs`` forwards (summed), from torch.profiler ranges.

    Top-level modules get ranges through forward hooks (which synchronise on CUDA); inside the
    vision encoder, the library's own ranges (``rvoslib.vision.stage1``,
    ``rvoslib.vision.temporal_capture``) and hooks on the tap projections split the encoder.
    On CUDA the library's ranges time kernel launches only, so the vision split is left out.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    stack, handles = [], []

    def attach(module, name):
        def pre(*_):
            sync(device)
            ctx = record_function(f"bench.{name}")
            ctx.__enter__()
            stack.append(ctx)

        def post(*_):
            sync(device)
            stack.pop().__exit__(None, None, None)

        handles.extend([module.register_forward_pre_hook(pre), module.register_forward_hook(post)])

    for name in TOP_STAGES:
        attach(getattr(model, name), name)
    for proj in [*model.vision.tap_proj, model.vision.shallow_proj]:
        attach(proj, "vision_taps")
    try:
        with quiet_stderr(), torch.inference_mode(), autocast(device), \
                profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                with record_function("bench.model"):
                    model(video, tokens)
                    sync(device)
    finally:
        for handle in handles:
            handle.remove()
    events = {e.key: e for e in prof.key_averages()}

    def seconds(key):
        event = events.get(key)
        return (event.cpu_time_total / 1e6, event.count) if event is not None else (0.0, 0)

    total = seconds("bench.model")[0]
    parts = {name: seconds(f"bench.{name}")[0] for name in TOP_STAGES}
    head_calls = seconds("bench.head")[1] // runs  # mask-head calls per forward
    vision = parts.pop("vision")
    split = {}
    if device.type == "cpu":
        split = {"vision: stage-1 cross-attention": seconds("rvoslib.vision.stage1")[0],
                 "vision: temporal capture": seconds("rvoslib.vision.temporal_capture")[0],
                 "vision: tap projections": seconds("bench.vision_taps")[0]}
        split = {"vision: frozen CLIP blocks (+ embedding)": vision - sum(split.values()), **split}
    else:
        split = {"vision encoder": vision}
    head = parts.pop("head")
    heads = ({"mask head": head} if head_calls <= 1 else
             {"mask head, final": head / head_calls, f"mask head, {head_calls - 1} auxiliary": head - head / head_calls})
    stages = {"prompt generator": parts.pop("prompts"), "text encoder": parts.pop("text"), **split,
              "fusion (stage 2)": parts.pop("fusion"), "spatio-temporal reasoner": parts.pop("reasoner"),
              **heads, "pixel-text similarity": parts.pop("similarity")}
    stages["other (wiring, history pooling)"] = total - sum(stages.values())
    return {"total_s": total, "stages_s": stages, "head_calls": head_calls, "runs": runs}


def section_adaptation(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    model, cfg = build(s["preset"], s["size"], s["frames"])
    model.to(device).eval()
    width = model.vision.vision_width
    wide, _ = build(s["preset"], s["size"], s["frames"], clip=model.clip.model, stage1_dim=width)
    wide.to(device).eval()
    video, tokens, _ = clip_inputs(model, 1, s["frames"], s["size"], device)
    flat = video.flatten(0, 1)  # (T, 3, S, S)
    clip = model.clip.model
    with torch.inference_mode(), autocast(device):
        def vision_call(m):
            prompts = m.prompts(s["frames"])
            text = m.text(tokens, prompts["language"])
            history = m.initial_history(1)
            return lambda: m.vision(video, text["words"], text["word_pad"], prompts, history)

        cases = {"encode_image": lambda: clip.encode_image(flat), "model": lambda: model(video, tokens),
                 "vision": vision_call(model), "vision_full_width_stage1": vision_call(wide)}
        if "aux" in inspect.signature(model.forward).parameters:  # eval mode skips the auxiliary heads
            cases["model_with_aux_heads"] = lambda: model(video, tokens, aux=True)
        times = interleave(cases, s["repeats"], device)
    bare = times["encode_image"]
    profile = profile_stages(model, video, tokens, device)
    model_s = statistics.median(times["model"])
    stages = {name: {"share": sec / profile["total_s"], "x_encode_image": sec / profile["total_s"] * model_s
                     / statistics.median(bare)} for name, sec in profile["stages_s"].items()}
    counts, wide_counts = model.parameter_counts(), wide.parameter_counts()
    result = {
        "config": {**s, "device": str(device), "stage1_dim": model.vision.stage1_dim, "vision_width": width},
        "times": {name: stats(t) for name, t in times.items()},
        "model_over_encode_image": ratio(times["model"], bare),
        "vision_over_encode_image": ratio(times["vision"], bare),
        "vision_full_width_stage1_over_encode_image": ratio(times["vision_full_width_stage1"], bare),
        "model_with_aux_heads_over_encode_image": (ratio(times["model_with_aux_heads"], bare)
                                                   if "model_with_aux_heads" in times else None),
        "stages": stages,
        "profile": profile,
        "trainable_parameters": {"stage1_dim_default": counts["trainable"],
                                 "stage1_dim_default_vision": counts["trainable/vision"],
                                 "stage1_dim_full_width": wide_counts["trainable"],
                                 "stage1_dim_full_width_vision": wide_counts["trainable/vision"]},
        "target": {"model_over_encode_image_max": 1.35},
    }
    met = result["model_over_encode_image"]["median"] <= 1.35
    tag = f"{s['preset']}, S={s['size']}, T={s['frames']}, {device.type}"
    rows = [
        ("1", f"full VLPRVOS forward / bare encode_image ({tag})", fmt_ratio(result["model_over_encode_image"]),
         "<= 1.35x", "yes" if met else "no"),
        ("1", "vision encoder alone / encode_image", fmt_ratio(result["vision_over_encode_image"]), "", ""),
        ("1", f"vision encoder, full-width stage 1 (stage1_dim={width}) / encode_image",
         fmt_ratio(result["vision_full_width_stage1_over_encode_image"]), "", ""),
    ]
    if result["model_with_aux_heads_over_encode_image"] is not None:
        layers = model.cfg.spatiotemporal.layers
        rows.append(("1", f"full forward with the {layers - 1} auxiliary mask heads (aux=True, as in training) "
                     "/ encode_image", fmt_ratio(result["model_with_aux_heads_over_encode_image"]), "", ""))
    for name, share in stages.items():
        rows.append(("1", f"  share of the forward: {name}",
                     f"{100 * share['share']:.1f}% ({share['x_encode_image']:.3f}x encode_image)", "", ""))
    p = result["trainable_parameters"]
    rows.append(("1", f"trainable parameters (vision encoder): stage1_dim={model.vision.stage1_dim} vs {width}",
                 f"{p['stage1_dim_default'] / 1e6:.1f}M ({p['stage1_dim_default_vision'] / 1e6:.1f}M) vs "
                 f"{p['stage1_dim_full_width'] / 1e6:.1f}M ({p['stage1_dim_full_width_vision'] / 1e6:.1f}M)", "", ""))
    return result, rows


# =============================================================================== 2. cube-frame


def layer_macs(mode: str, frames: int, dim: int, grid: list, cube: int, ffn: int) -> dict:
    """Forward multiply-accumulates of one layer: projections, FFN and attention (QK^T and AV).

    Counts what the implementation computes: the cube block projects the padded windows.
    """
    from rvoslib.cubes import padded_size
    from rvoslib.spatiotemporal import attention_cost

    h, w = grid
    tokens = frames * h * w
    padded = frames * padded_size(h, cube) * padded_size(w, cube)
    blocks = {"full": ["full"], "frame": ["frame"], "cube-frame": ["cube", "frame"]}[mode]
    projections = sum(4 * dim * dim * (padded if b == "cube" else tokens) for b in blocks)
    attention = 2 * dim * attention_cost(mode, frames, h, w, cube)  # pairs x c per head, x heads, x 2
    return {"projections": projections, "ffn": 2 * dim * ffn * tokens, "attention": attention,
            "total": projections + 2 * dim * ffn * tokens + attention}


def op_breakdown(fn: Callable) -> dict:
    """CPU time by kind of op (self time of the ops) in one run of ``fn`` (forward + backward)."""
    from torch.profiler import ProfilerActivity, profile

    with quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    kinds = {"attention kernels": 0.0, "matmuls (projections, FFN)": 0.0,
             "other (norms, GELU, cube partition/pad, masks, copies, adds)": 0.0}
    for e in prof.key_averages():
        if e.key.startswith("autograd::") or e.key.startswith("ProfilerStep"):
            continue
        if "scaled_dot_product" in e.key or "flash_attention" in e.key:
            kinds["attention kernels"] += e.self_cpu_time_total
        elif e.key in ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear"):
            kinds["matmuls (projections, FFN)"] += e.self_cpu_time_total
        else:
            kinds["other (norms, GELU, cube partition/pad, masks, copies, adds)"] += e.self_cpu_time_total
    total = sum(kinds.values())
    return {"share": {k: v / total for k, v in kinds.items()}, "seconds": {k: v / 1e6 for k, v in kinds.items()},
            "total_s": total / 1e6}


def section_cube(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    modes = ("full", "cube-frame", "frame")
    common = {k: s[k] for k in ("dim", "heads", "grid", "cube")}
    per_t, rows = {}, []
    for frames in s["frames"]:
        layer_cases, attn_cases, kernels = {}, {}, {}
        timed_kernels = ["default"] + (["math"] if frames in s["math_time_frames"] else [])
        for kernel in timed_kernels:
            for mode in modes:
                params = {**common, "mode": mode, "frames": frames, "kernel": kernel, "device": str(device)}
                layer_cases[(mode, kernel)] = case_st_layer(ffn=s["ffn"], **params)[0]
                if mode != "frame":
                    attn_cases[(mode, kernel)] = case_attention(**params)[0]
                if kernel == "default" or frames == s["target_frames"]:
                    kernels[(mode, kernel)] = short_kernel(sdpa_kernels(layer_cases[(mode, kernel)], device))
        cases = {("layer", *k): v for k, v in layer_cases.items()}
        cases.update({("attention", *k): v for k, v in attn_cases.items()})
        times = interleave(cases, s["repeats"], device)
        entry = {"times": {"/".join(k): stats(t) for k, t in times.items()},
                 "kernels": {"/".join(k): v for k, v in kernels.items()},
                 "macs": {mode: layer_macs(mode, frames, s["dim"], s["grid"], s["cube"], s["ffn"]) for mode in modes}}
        for kernel in timed_kernels:
            entry[f"layer_full_over_cube_frame_{kernel}"] = ratio(times[("layer", "full", kernel)],
                                                                  times[("layer", "cube-frame", kernel)])
            entry[f"layer_frame_over_cube_frame_{kernel}"] = ratio(times[("layer", "frame", kernel)],
                                                                   times[("layer", "cube-frame", kernel)])
            entry[f"attention_full_over_cube_frame_{kernel}"] = ratio(times[("attention", "full", kernel)],
                                                                      times[("attention", "cube-frame", kernel)])
        macs = entry["macs"]
        entry["macs_full_over_cube_frame"] = {"layer": macs["full"]["total"] / macs["cube-frame"]["total"],
                                              "attention": macs["full"]["attention"] / macs["cube-frame"]["attention"]}
        memory = {}
        kernels_for_memory = ["default"] + (["math"] if frames in s["math_memory_frames"] else [])
        if frames in s["memory_frames"]:
            for kernel in kernels_for_memory:
                for mode in modes:
                    params = {**common, "ffn": s["ffn"], "mode": mode, "frames": frames, "kernel": kernel,
                              "device": str(device)}
                    memory[f"{mode}/{kernel}"] = peak_memory("st_layer", params, threads, device)
        entry["peak_memory"] = memory
        if frames == s["target_frames"] and device.type == "cpu":
            ops = {mode: op_breakdown(layer_cases[(mode, "default")]) for mode in ("full", "cube-frame")}
            matmul = "matmuls (projections, FFN)"
            # if cube-frame's attention and every other op were free, its matmuls alone would remain
            ops["ceiling_full_over_cube_frame_matmuls_only"] = (ops["full"]["total_s"]
                                                               / ops["cube-frame"]["seconds"][matmul])
            entry["op_breakdown_default"] = ops
        per_t[frames] = entry
    target = per_t.get(s["target_frames"])
    result = {"config": {**s, "device": str(device)}, "per_frames": per_t,
              "target": {"frames": s["target_frames"], "layer_full_over_cube_frame_min": 4.0}}

    def series(key, fmt="{:.2f}x"):
        return " · ".join(f"T={t}: " + fmt.format(per_t[t][key]["median"]) for t in per_t if key in per_t[t])

    tag = f"d={s['dim']}, {s['heads']} heads, {s['grid'][0]}x{s['grid'][1]}, k={s['cube']}, {device.type}"
    met = target is not None and target["layer_full_over_cube_frame_default"]["median"] >= 4.0
    rows += [
        ("2", f"layer fwd+bwd time, full / cube-frame ({tag})", series("layer_full_over_cube_frame_default"),
         f">= 4x at T={s['target_frames']}", "yes" if met else "no"),
        ("2", "attention kernels only fwd+bwd, full / (cube + frame)", series("attention_full_over_cube_frame_default"),
         "", ""),
        ("2", "layer fwd+bwd time, frame-only / cube-frame", series("layer_frame_over_cube_frame_default"), "", ""),
        ("2", "MATH kernel forced: layer full / cube-frame", series("layer_full_over_cube_frame_math"), "", ""),
        ("2", "MATH kernel forced: attention only, full / (cube + frame)",
         series("attention_full_over_cube_frame_math"), "", ""),
        ("2", "forward multiply-adds (counted), full / cube-frame",
         " · ".join(f"T={t}: layer {e['macs_full_over_cube_frame']['layer']:.2f}x, attention "
                    f"{e['macs_full_over_cube_frame']['attention']:.1f}x" for t, e in per_t.items()), "", ""),
    ]
    if target is not None:
        rows.append(("2", f"kernel that ran at T={s['target_frames']} (default; forced)",
                     ", ".join(f"{m}: {target['kernels'][m + '/default']}; {target['kernels'][m + '/math']}"
                               for m in modes), "", ""))
    for t, e in per_t.items():
        for kernel in ("default", "math"):
            mem = {m: e["peak_memory"].get(f"{m}/{kernel}", {}) for m in modes}
            if all("peak_mib" in v for v in mem.values()):
                rows.append(("2", f"peak memory fwd+bwd at T={t}, {kernel} kernel (MiB): full / cube-frame / frame",
                             " / ".join(f"{mem[m]['peak_mib']:.0f}" for m in modes), "", ""))
    if target is not None and "op_breakdown_default" in target:
        ops = target["op_breakdown_default"]
        for mode in ("full", "cube-frame"):
            rows.append(("2", f"time by op kind at T={s['target_frames']}, {mode} (fwd+bwd, profiler)",
                         ", ".join(f"{k.split(' (')[0]} {100 * v:.0f}%" for k, v in ops[mode]["share"].items()), "", ""))
        rows.append(("2", f"ceiling at T={s['target_frames']}: full / cube-frame's matmuls alone (attention and "
                     "all other ops free)", f"{ops['ceiling_full_over_cube_frame_matmuls_only']:.2f}x", "", ""))
    return result, rows


# =============================================================================== 3. training step


def gradients(model) -> dict:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def train_times_and_gradients(params: dict, repeats: int, device: torch.device) -> dict:
    """In one process: gradients with and without checkpointing (same model and inputs), then
    interleaved step times."""
    run, reset, model = case_train_step(**params, device=str(device))

    def step(flag):
        def fn():
            reset()
            model.vision.grad_checkpointing = flag
            run()
        return fn

    # gradients with and without checkpointing, same model and inputs
    step(False)()
    plain = gradients(model)
    step(True)()
    ckpt = gradients(model)
    identical = plain.keys() == ckpt.keys() and all(torch.equal(plain[n], ckpt[n]) for n in plain)
    max_diff = max((plain[n] - ckpt[n]).abs().max().item() for n in plain) if plain.keys() == ckpt.keys() else None
    frozen_with_grad = sum(p.grad is not None for p in model.clip.parameters())
    times = interleave({"off": step(False), "on": step(True)}, repeats, device, warmup=0)
    return {"times": times, "identical": identical, "max_diff": max_diff, "frozen_with_grad": frozen_with_grad}


def section_train(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    params = {k: s[k] for k in ("preset", "size", "frames", "batch")}
    measured = train_times_and_gradients(params, s["repeats"], device)
    times, identical, max_diff = measured["times"], measured["identical"], measured["max_diff"]
    gc.collect()
    memory = {flag: peak_memory("train_step", {**params, "checkpointing": flag == "on", "device": str(device)},
                                threads, device, warmup=False) for flag in ("off", "on")}
    reduction = None
    if all("peak_mib" in m for m in memory.values()):
        reduction = 1 - memory["on"]["peak_mib"] / memory["off"]["peak_mib"]
    result = {"config": {**s, "device": str(device)}, "times": {k: stats(v) for k, v in times.items()},
              "time_on_over_off": ratio(times["on"], times["off"]), "peak_memory": memory,
              "peak_memory_reduction": reduction, "gradients_identical": identical,
              "gradients_max_abs_diff": max_diff, "frozen_params_with_grad": measured["frozen_with_grad"],
              "target": {"peak_memory_reduction_min": 0.40}}
    tag = f"{s['preset']}, S={s['size']}, T={s['frames']}, batch {s['batch']}, {device.type}"
    rows = [
        ("3", f"training step time, checkpointing on / off ({tag})", fmt_ratio(result["time_on_over_off"]), "", ""),
        ("3", "training step peak memory (MiB), off / on",
         " / ".join(f"{memory[k].get('peak_mib', float('nan')):.0f}" for k in ("off", "on")), "", ""),
        ("3", "peak memory cut by checkpointing",
         "n/a" if reduction is None else f"{100 * reduction:.1f}%", ">= 40%",
         "n/a" if reduction is None else ("yes" if reduction >= 0.40 else "no")),
        ("3", "gradients with / without checkpointing",
         "identical" if identical else f"max |diff| {max_diff:.2e}", "identical", "yes" if identical else "no"),
    ]
    return result, rows


# =============================================================================== 4. inference


def section_inference(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    from rvoslib.inference import segment_video

    dtype = torch.bfloat16 if device.type == "cuda" else None
    models, timings = {}, {}
    for preset in s["presets"]:
        models[preset] = build(preset)[0].to(device).eval()

    def case(preset):
        def fn():
            result = segment_video(VIDEO_FOLDER, SENTENCE, models[preset], device=device, dtype=dtype,
                                   max_frames=s["max_frames"], progress=False)
            timings.setdefault(preset, []).append(dict(result.timing, frames=result.num_frames))
        return fn

    times = interleave({p: case(p) for p in s["presets"]}, s["repeats"], device)
    result, rows = {"config": {**s, "device": str(device), "dtype": str(dtype), "video": str(VIDEO_FOLDER)}}, []
    for preset in s["presets"]:
        runs = timings[preset][-s["repeats"]:]
        frames = runs[0]["frames"]
        fps_model = statistics.median(r["frames"] / r["inference_s"] for r in runs)
        fps_total = frames / statistics.median(times[preset])
        result[preset] = {"frames": frames, "fps_model": fps_model, "fps_end_to_end": fps_total,
                          "times": stats(times[preset]), "runs": runs}
        rows.append(("4", f"segment_video frames/s, {preset} ({device.type}{', bf16' if dtype else ''}; "
                     f"{frames} frames of {VIDEO_FOLDER.name})",
                     f"{fps_model:.2f} (model) · {fps_total:.2f} (end to end)", "", ""))
    return result, rows


# =============================================================================== 5. data loading


def loader_rate(dataset, clips: int, workers: int) -> dict:
    """Clips per second of a DataLoader over ``dataset`` (batch 1), after its first batch."""
    from torch.utils.data import DataLoader, RandomSampler

    from rvoslib.data import collate_clips

    sampler = RandomSampler(dataset, replacement=True, num_samples=clips)
    loader = DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=workers, collate_fn=collate_clips)
    start, first = time.perf_counter(), None
    for i, _ in enumerate(loader):
        if i == 0:
            first = time.perf_counter()
    end = time.perf_counter()
    return {"clips_per_s": (clips - 1) / (end - first), "startup_s": first - start}


def train_step_fn(preset: str, size: int, frames: int, batch: int) -> Callable:
    run, reset, _ = case_train_step(preset, size, frames, batch)

    def step():
        reset()
        run()

    return step


def section_data(s: dict, threads: int, train_steps: dict) -> tuple[dict, list]:
    from rvoslib.config import get_preset
    from rvoslib.data import RVOSDataset, read_ref_davis17, read_ref_youtube_vos
    from rvoslib.io import read_video

    cpu = torch.device("cpu")
    records = read_ref_davis17(REPO / "data_samples/davis", videos=[VIDEO_FOLDER.name])
    sources = {"frames folder": records,
               "mp4": [dataclasses.replace(r, frame_paths=None, video_path=VIDEO_MP4) for r in records],
               # the tiny preset's own training data: 64 x 64 PNG frames (Ref-YouTube-VOS layout)
               "synthetic 64x64": read_ref_youtube_vos(REPO / "data_samples/synthetic/train")}
    decode = interleave({"frames folder": lambda: read_video(VIDEO_FOLDER / "JPEGImages"),
                         "mp4": lambda: read_video(VIDEO_MP4)}, max(s["repeats"], 2), cpu)
    num = len(read_video(VIDEO_FOLDER / "JPEGImages")[0])
    result = {"config": s, "read_video_frames_per_s": {k: num / statistics.median(v) for k, v in decode.items()},
              "loading": {}, "train_step": {},
              "note": "loading runs in this process (num_workers=0, torch threads = --threads) or in DataLoader "
                      "workers (1 torch thread each); a fast training step is timed right after each loading "
                      "run (same round), a slow one once (or taken from section 3 at the same S, T, batch)"}
    rows = [("5", f"rvoslib.io.read_video frames/s ({num} frames 854x480): folder · mp4",
             " · ".join(f"{v:.0f}" for v in result["read_video_frames_per_s"].values()), "", "")]
    for preset in s["presets"]:
        cfg = get_preset(preset)
        size, frames, batch = cfg.model.backbone.image_size, cfg.model.num_frames, cfg.train.batch_size
        known = train_steps.get(preset)
        if known is not None and (known["size"], known["frames"], known["batch"]) != (size, frames, batch):
            known = None
        step_fn = None
        if known is None:
            step_fn = train_step_fn(preset, size, frames, batch)
            step_fn()  # warm-up
            first = timed(step_fn, cpu)
            if first > 2.0:  # slow: measure once, not in every round
                known = {"median_s": statistics.median([first, timed(step_fn, cpu)]), "from": "section 5, once"}
                step_fn = None
        datasets = {name: RVOSDataset(recs, clip_len=frames, size=size, train=True) for name, recs in sources.items()}
        runs = {(name, w): [] for name in sources for w in s["workers"]}
        for _ in range(s["repeats"]):
            for (name, workers), out in runs.items():
                load = loader_rate(datasets[name], s["clips"], workers)
                step_s = (statistics.median(timed(step_fn, cpu) for _ in range(3)) if step_fn is not None
                          else known["median_s"])
                load.update(train_step_s=step_s, train_clips_per_s=batch / step_s)
                load["loading_over_training"] = load["clips_per_s"] / load["train_clips_per_s"]
                out.append(load)
        steps = [r["train_step_s"] for rr in runs.values() for r in rr]
        result["train_step"][preset] = {"size": size, "frames": frames, "batch": batch, **stats(steps),
                                        "clips_per_s": batch / statistics.median(steps),
                                        "from": "section 5, each round" if step_fn is not None else known.get("from")}
        rows.append(("5", f"training step, {preset} (T={frames}, S={size}, batch {batch}): clips/s",
                     f"{result['train_step'][preset]['clips_per_s']:.2f}", "", ""))
        for name in sources:
            loads = []
            for workers in s["workers"]:
                rr = runs[(name, workers)]
                entry = {"clips_per_s": statistics.median(r["clips_per_s"] for r in rr),
                         "loading_over_training": ratio([r["clips_per_s"] for r in rr],
                                                        [r["train_clips_per_s"] for r in rr]),
                         "runs": rr}
                result["loading"][f"{preset}/{name}/workers={workers}"] = entry
                loads.append((workers, entry))
            best = max(e["loading_over_training"]["median"] for _, e in loads)
            rows.append(("5", f"{preset} from {name}: clips/s loaded ("
                         + " · ".join(f"{w} workers" for w, _ in loads) + "); loading / training",
                         " · ".join(f"{e['clips_per_s']:.1f}" for _, e in loads) + "; "
                         + " · ".join(fmt_ratio(e["loading_over_training"]) for _, e in loads), "> 1x",
                         "yes" if best > 1 else "no"))
    return result, rows


# =============================================================================== main


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine_info(threads: int, devices: list) -> dict:
    cpu = cpu_name()
    import open_clip

    info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "open_clip": open_clip.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cuda_available": torch.cuda.is_available(), "devices": [str(d) for d in devices],
            "device_names": {str(d): (torch.cuda.get_device_name(d) if d.type == "cuda" else cpu) for d in devices},
            "load_average_start": os.getloadavg() if hasattr(os, "getloadavg") else None}
    return info


def print_table(rows: list, machine: dict) -> None:
    print(f"\nrvoslib benchmarks: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}"
          + (f", GPU {machine['device_names']}" if machine["cuda_available"] else ""))
    print("\n| § | measurement | value [min-max over rounds] | target | met |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small smoke configuration (tiny sizes), < 1 min")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every process (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timing rounds per section (default: per section)")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results.json"), help="JSON file for all numbers")
    parser.add_argument("--no-gpu", action="store_true", help="CPU only even when CUDA is available")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # open_clip warns about random weights on the root logger
    if args.worker is not None:
        print(WORKER_TAG + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    torch.set_num_threads(args.threads)
    conf = settings(args.quick)
    if args.repeats is not None:
        for value in conf.values():
            value["repeats"] = args.repeats
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_gpu:
        devices.append(torch.device("cuda"))
    machine = machine_info(args.threads, devices)
    results = {"machine": machine, "quick": args.quick, "sections": {}, "table": []}
    rows, train_steps = [], {}
    start = time.perf_counter()
    for name in sections:
        for device in (devices if name in ("adaptation", "cube", "train", "inference") else [devices[0]]):
            t0 = time.perf_counter()
            print(f"[benchmarks] {name} on {device} ...", file=sys.stderr, flush=True)
            if name == "data":
                result, new_rows = section_data(conf[name], args.threads, train_steps)
            else:
                fn = {"adaptation": section_adaptation, "cube": section_cube, "train": section_train,
                      "inference": section_inference}[name]
                result, new_rows = fn(conf[name], device, args.threads)
            if name == "train" and device.type == "cpu":
                c = conf[name]
                train_steps[c["preset"]] = {"size": c["size"], "frames": c["frames"], "batch": c["batch"],
                                            "median_s": result["times"]["off"]["median_s"],
                                            "from": "section 3 (checkpointing off)"}
            result["seconds"] = time.perf_counter() - t0
            results["sections"][name if device.type == "cpu" else f"{name}@{device.type}"] = result
            if device.type != "cpu":
                new_rows = [(r[0], f"[{machine['device_names'][str(device)]}] {r[1]}", *r[2:]) for r in new_rows]
            rows += new_rows
    machine["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    results["seconds"] = time.perf_counter() - start
    results["table"] = [dict(zip(("section", "measurement", "value", "target", "met"), r)) for r in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print_table(rows, machine)
    print(f"\n{results['seconds']:.0f} s; all numbers in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
