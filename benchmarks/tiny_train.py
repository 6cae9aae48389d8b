"""Section 6, ``tiny-train``: the engine's real training step of the tiny preset, side by side with
the bare CLIP image tower.

The preset is read at run time (``rvoslib.config.get_preset``), with random CLIP weights (the
cost of a step does not depend on them). A synthetic set (``write_synthetic_dataset``, the
generator's defaults, as the ablation study trains on) is written to a temporary folder and read
through the engine's own path: ``make_train_dataset`` (2T frames per item with two-clip history
training), ``make_train_loader`` (``StepBatchSampler``, ``data.num_workers``), ``build_training``
(AdamW, schedule) and ``Trainer.train_step`` (history training as ``train.history_training``
says; its optimizer step(s) included) followed by ``scheduler.step()``, as the engine's loop
does. Timed interleaved in one process (``common.interleave``), per round:

* ``data``: producing the next step's micro-batches from the loader (what the loop waits for);
* ``step``: one training step on the latest batch;
* ``encode_image``: open_clip's bare ``encode_image`` forward + backward (loss = sum of the
  outputs) on one micro-batch's first clip, B*T frames of S x S, input with ``requires_grad``
  and frozen weights, as the model's frozen tower is run (gradients flow through, not into it);
* ``encode_image_weights``: the same with trainable weights (a copy of the tower).

Reported: step / encode_image (also per clip pass: a step runs ``grad_accum`` x 1 or 2 clips
through the tower), steps, clips and frames per minute (step alone, and data + step), the data
share of a step, and (on CPU) the top ops of one profiled step by self CPU time.

Profile (the tiny preset as of commit 05a7ce6: rvos-tiny, S=64, T=4, batch 4, two-step history;
CPU, 1 thread; torch.profiler and hooks on the model's top modules; on a loaded 2-core machine,
so shares, not times): a step (~0.5-0.8 s, ~39k aten calls) is ~42% forward (vision encoder 15%,
spatio-temporal reasoner 13%, mask heads 8%: final + auxiliary, 4 calls per step; text, fusion,
prompts and similarity under 2% each), ~50% backward, ~7% the two AdamW steps (for-loop
implementation over 222 tensors; clip_grad_norm_ 1.6%), losses and tokenising ~1%. The mask head
alone is ~24% of a step (forward 7%, backward 17%: its conv stack). Top ops by self CPU time:
aten::mm 15%, convolution_backward 10%, flash-attention backward 9%, addmm 9%, flash attention
7%, mkldnn_convolution 5%, gelu + gelu_backward 6%, copy_ 3%. Ops of under 20 us each make ~20%
of the op time and ~18% of the wall is outside any op (Python, autograd): at this size per-op
overhead is a large part of a step, and the frozen tower a small one (its bare fwd+bwd on one
clip is ~4x less than one clip pass of the step). Data: ~6 ms per item (2T=8 frames of 64 x 64),
~25-35 ms per batch, ~5% of a step with ``num_workers=0``; within an item, masks ~28% (PNG decode
15%, re-reading each frame's PNG header for the mask-size check in ``records.check_mask_size``
8%, union 5%), frame decoding 15%, transforms 15% (flip, jitter, normalise; the resize is already
skipped at S=64), Python around them the rest.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import tempfile
from pathlib import Path

import torch
from einops import rearrange

from benchmarks.common import fmt_ratio, interleave, ratio, self_cpu_by_op, stats

TOP_OPS = 8  # ops kept from the profile


def autocast_for(device: torch.device, dtype) -> contextlib.AbstractContextManager:
    """The engine's autocast (``train.amp`` resolved by ``engine.amp_dtype``); nothing when None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def tower_case(clip, frames: torch.Tensor, dtype, weights: bool):
    """Forward + backward of ``clip.encode_image`` on ``frames`` (N, 3, S, S); loss = sum of outputs.

    ``weights``: a trainable copy of the tower (weight gradients); else the frozen tower with a
    gradient on the input only.
    """
    device = frames.device
    if weights:
        clip = copy.deepcopy(clip).requires_grad_(True)
    x = frames.detach().clone().requires_grad_(not weights)

    def run():
        clip.zero_grad(set_to_none=True)
        x.grad = None
        with autocast_for(device, dtype):
            out = clip.encode_image(x)  # (N, embed_dim)
        out.float().sum().backward()

    return run


def tiny_training(preset: str, videos: int, device: torch.device, root: Path) -> dict:
    """The engine's tiny training setup on a synthetic set written under ``root``."""
    from rvoslib.config import get_preset
    from rvoslib.data.synthetic import write_synthetic_dataset
    from rvoslib.distributed import DistContext
    from rvoslib.engine import ClipRunner, Trainer, build_training, make_train_dataset, make_train_loader, read_split

    cfg = get_preset(preset)
    cfg.model.backbone.pretrained = None
    cfg.data.root = str(root)
    write_synthetic_dataset(root / cfg.data.train_split, videos, seed=0, split=cfg.data.train_split)
    ctx = DistContext(device=device)
    model, optimizer, scheduler, scaler = build_training(cfg, ctx)
    dataset = make_train_dataset(read_split(cfg, cfg.data.train_split), cfg)
    loader = make_train_loader(dataset, cfg, 0, 10**6, ctx)  # batches are drawn lazily
    trainer = Trainer(model, ClipRunner(model), optimizer, cfg, ctx, scaler)
    return {"cfg": cfg, "model": model, "scheduler": scheduler, "trainer": trainer, "batches": iter(loader),
            "items": len(dataset)}


def top_ops(fn) -> dict:
    """The ``TOP_OPS`` ops with the most self CPU time in one run of ``fn()``, with their shares."""
    ops = self_cpu_by_op(fn)
    total = sum(ops.values())
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:TOP_OPS]
    return {"total_self_cpu_s": total / 1e6,
            "top": [{"op": op, "self_cpu_s": us / 1e6, "share": us / total} for op, us in top]}


def per_minute(step_s: float, clips_per_step: int, frames_per_clip: int) -> dict:
    steps = 60.0 / step_s
    return {"steps_per_min": steps, "clips_per_min": steps * clips_per_step,
            "frames_per_min": steps * clips_per_step * frames_per_clip}


def section_tiny_train(s: dict, device: torch.device, threads: int) -> tuple[dict, list]:
    from rvoslib.engine import amp_dtype, train_clip_frames

    with tempfile.TemporaryDirectory(prefix="rvos-bench-") as tmp:
        setup = tiny_training(s["preset"], s["videos"], device, Path(tmp))
        cfg, trainer, scheduler = setup["cfg"], setup["trainer"], setup["scheduler"]
        t, accum, batch = cfg.model.num_frames, cfg.train.grad_accum, cfg.train.batch_size
        size, dtype = cfg.model.backbone.image_size, amp_dtype(cfg.train.amp, device)
        state = {"step": 0}

        def data():
            state["micro"] = [next(setup["batches"]) for _ in range(accum)]

        def step():
            state["step"] += 1
            trainer.train_step(state["micro"], state["step"])
            scheduler.step()

        data()
        frames = rearrange(state["micro"][0]["frames"][:, :t], "b t c h w -> (b t) c h w").to(device)  # (B*T, 3, S, S)
        clip = setup["model"].clip.model
        cases = {"data": data, "step": step, "encode_image": tower_case(clip, frames, dtype, weights=False),
                 "encode_image_weights": tower_case(clip, frames, dtype, weights=True)}
        times = interleave(cases, s["repeats"], device)
        profile = top_ops(step) if device.type == "cpu" else None
        setup.clear()  # the loader's iterator goes, and its workers (if any) end, before the folder does

    passes = accum * (1 if cfg.train.history_training == "off" else 2)  # clips through the tower per step
    clip_frames = train_clip_frames(cfg)
    with_data = [a + b for a, b in zip(times["data"], times["step"])]
    share = [a / b for a, b in zip(times["data"], with_data)]
    result = {
        "config": {**s, "device": str(device), "size": size, "frames": t, "clip_frames": clip_frames,
                   "batch": batch, "grad_accum": accum, "history_training": cfg.train.history_training,
                   "clip_passes_per_step": passes, "amp_dtype": str(dtype), "num_workers": cfg.data.num_workers,
                   "model_name": cfg.model.backbone.model_name, "encode_image_frames": int(frames.shape[0]),
                   "clips": "training items, batch x grad_accum per step, each of clip_frames frames"},
        "times": {name: stats(v) for name, v in times.items()},
        "step_over_encode_image": ratio(times["step"], times["encode_image"]),
        "step_over_encode_image_weights": ratio(times["step"], times["encode_image_weights"]),
        "data_over_step": ratio(times["data"], times["step"]),
        "data_share": {"median": statistics.median(share), "min": min(share), "max": max(share)},
        "throughput": {"step": per_minute(statistics.median(times["step"]), batch * accum, clip_frames),
                       "data_and_step": per_minute(statistics.median(with_data), batch * accum, clip_frames)},
        "profile": profile,
    }
    result["step_over_encode_image_per_clip_pass"] = result["step_over_encode_image"]["median"] / passes
    tag = (f"{s['preset']}: {cfg.model.backbone.model_name}, S={size}, T={t}, batch {batch} x accum {accum}, "
           f"history {cfg.train.history_training}, {device.type}")
    med = {name: result["times"][name] for name in times}
    rows = [
        ("6", f"training step (engine Trainer, optimizer step(s) included; {tag}) / bare encode_image fwd+bwd "
         f"on B*T={frames.shape[0]} frames (frozen weights, input grad)", fmt_ratio(result["step_over_encode_image"])
         + f" ({result['step_over_encode_image_per_clip_pass']:.2f}x per clip pass, {passes} per step)", "", ""),
        ("6", "training step / bare encode_image fwd+bwd with trainable weights",
         fmt_ratio(result["step_over_encode_image_weights"]), "", ""),
        ("6", "seconds: training step · encode_image fwd+bwd (frozen · trainable) · producing the batch",
         " · ".join(f"{med[k]['median_s']:.3f} [{med[k]['min_s']:.3f}-{med[k]['max_s']:.3f}]"
                    for k in ("step", "encode_image", "encode_image_weights", "data")), "", ""),
    ]
    for key, label in (("step", "step alone"), ("data_and_step", f"data ({cfg.data.num_workers} workers) + step")):
        r = result["throughput"][key]
        rows.append(("6", f"tiny training on this machine, {label}: steps/min · clips/min · frames/min",
                     f"{r['steps_per_min']:.1f} · {r['clips_per_min']:.1f} · {r['frames_per_min']:.0f}", "", ""))
    d = result["data_share"]
    rows.append(("6", "data loading share of a step: batch / (batch + step); batch / step",
                 f"{100 * d['median']:.1f}% [{100 * d['min']:.1f}-{100 * d['max']:.1f}]; "
                 + fmt_ratio(result["data_over_step"]), "", ""))
    if profile is not None:
        rows.append(("6", "top ops of one step by self CPU time (profiler)",
                     " · ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in profile["top"][:5]), "", ""))
    return result, rows
