"""``python -m benchmarks.gpu_check``: one command that checks a GPU machine for the paper-scale path.

What it runs (each part reported as ``ok``, ``FAILED`` with the error, or ``skipped`` with why):

1. ``train``: a few training steps of the preset (default clip-b16 at S=352, T=6, two-clip
   history training, batch 1) through the engine's own ``build_training`` + ``Trainer`` on a
   synthetic set written at S, for every combination of precision {fp32, bf16, fp16 (autocast +
   GradScaler)} x activation checkpointing {off, on}: steps/s (after one warm-up step) and peak
   CUDA memory per combination;
2. ``loss agreement``: the first-step loss of bf16 (and fp16) against fp32 from the same weights
   and batch: ``|loss - loss_fp32| / |loss_fp32| <= LOSS_RTOL`` (5%); and fp32 with activation
   checkpointing against fp32 without (``CHECKPOINT_RTOL``, 1e-4: the same computation);
3. ``ddp``: ``rvoslib.engine.train`` for a few steps under DistributedDataParallel: NCCL with one
   process per GPU when there are two or more, otherwise two CPU processes with gloo on the tiny
   preset (the machinery, not the speed);
4. ``segment``: ``segment_video`` frames/s on a generated video (VIDEO_FRAMES frames at S x S).

CLIP weights: the preset's (OpenAI through open_clip) when cached or downloadable, else random
weights (the cost does not depend on them; the ``weights`` line says which).

``--estimate PRESET`` instead counts one training step's FLOPs and memory on the CPU
(:func:`estimate_step`), the source of the README's estimates.

On a machine without CUDA every CUDA-only part (bf16 / fp16 training, the loss agreement, NCCL)
is reported as skipped and the rest runs on the tiny preset at its own size, in seconds; so does
``--tiny`` anywhere (the test suite uses it). On one modern GPU the whole check takes a few
minutes; a part that would start after ``BUDGET_S`` (7 minutes, ``--budget``) is skipped, so the
check stays within about 8. The table is printed as Markdown; ``--out`` also writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

LOSS_RTOL = 0.05  # bf16 / fp16 first-step loss vs fp32, relative
CHECKPOINT_RTOL = 1e-4  # activation checkpointing recomputes the same fp32 forward
VIDEO_FRAMES = 48  # frames of the segment_video check
BUDGET_S = 420.0  # parts that would start later are skipped: the check ends within about 8 minutes
PRECISIONS = ("fp32", "bf16", "fp16")
AMP_OF = {"fp32": "none", "bf16": "bf16", "fp16": "fp16"}

logger = logging.getLogger("benchmarks.gpu_check")


# ----------------------------------------------------------------------------- set-up


def check_config(preset: str, tiny: bool, size: Optional[int], frames: Optional[int], pretrained: str):
    """The ``Config`` checked: the preset (tiny on CPU or with ``tiny``), S and T, batch 1."""
    from rvoslib.config import get_preset

    cfg = get_preset("tiny" if tiny else preset)
    if size:
        cfg.model.backbone.image_size = size
    if frames:
        cfg.model.num_frames = frames
    cfg.train.batch_size, cfg.train.grad_accum, cfg.train.warmup_steps = 1, 1, 1
    cfg.model.backbone.pretrained = resolve_weights(cfg, pretrained)
    return cfg


def resolve_weights(cfg, pretrained: str) -> Optional[str]:
    """``pretrained``: "auto" (the preset's weights if available, else None), "none", or a tag / path."""
    from rvoslib.backbone import WeightsUnavailableError, resolve_pretrained

    if pretrained == "none":
        return None
    wanted = cfg.model.backbone.pretrained if pretrained == "auto" else pretrained
    if wanted is None:
        return None
    try:
        resolve_pretrained(cfg.model.backbone.model_name, wanted, cfg.model.backbone.cache_dir)
    except (WeightsUnavailableError, FileNotFoundError, ValueError) as err:
        if pretrained != "auto":
            raise
        logger.warning("no %s weights (%s): random CLIP weights", wanted, str(err).splitlines()[0])
        return None
    return wanted


def synthetic_batch(cfg, root: Path) -> dict:
    """One collated training micro-batch of the engine's training dataset on a synthetic set at S."""
    from rvoslib.data import collate_clips, read_ref_youtube_vos, write_synthetic_dataset
    from rvoslib.train_data import make_train_dataset, train_clip_frames

    size = cfg.model.backbone.image_size
    write_synthetic_dataset(root, 2, seed=0, split="train", overwrite=True, size=size,
                            num_frames=max(12, train_clip_frames(cfg)))
    dataset = make_train_dataset(read_ref_youtube_vos(root, split=None), cfg)
    return collate_clips([dataset[i] for i in range(cfg.train.batch_size)])


def cuda_sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- parts


def train_case(cfg, batch: dict, device: torch.device, precision: str, checkpointing: bool,
               steps: int) -> dict[str, Any]:
    """Warm-up + ``steps`` timed training steps: first-step loss, steps/s, peak CUDA memory (GiB)."""
    import copy

    from rvoslib.distributed import DistContext
    from rvoslib.train_loop import build_training
    from rvoslib.train_step import ClipRunner, Trainer

    cfg = copy.deepcopy(cfg)
    cfg.train.amp = AMP_OF[precision]
    cfg.model.backbone.grad_checkpointing = checkpointing
    ctx = DistContext(device=device)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model, optimizer, scheduler, scaler = build_training(cfg, ctx)
    trainer = Trainer(model, ClipRunner(model), optimizer, cfg, ctx, scaler)
    first = trainer.train_step([batch], 1)["total"]
    scheduler.step()
    cuda_sync(device)
    started = time.perf_counter()
    for step in range(steps):
        trainer.train_step([batch], step + 2)
        scheduler.step()
    cuda_sync(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    del model, optimizer, trainer
    return {"loss_first": float(first), "steps_per_s": steps / seconds, "peak_gib": peak}


def _ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, device_kind: str) -> None:
    """One torchrun-like process of the DDP check."""
    from rvoslib.config import Config
    from rvoslib.engine import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(Config.from_dict(cfg_dict), device=f"cuda:{rank}" if device_kind == "cuda" else "cpu", progress=False)


def ddp_case(cfg, data_root: Path, out_dir: Path, steps: int) -> dict[str, Any]:
    """``engine.train`` under DDP: NCCL over every GPU (two or more), else gloo in two CPU processes."""
    import torch.multiprocessing as mp

    from rvoslib.config import get_preset
    from rvoslib.engine import read_log

    gpus = torch.cuda.device_count()
    if gpus >= 2:
        world, kind, backend, run = gpus, "cuda", "nccl", cfg
    else:
        world, kind, backend, run = 2, "cpu", "gloo", get_preset("tiny")
        run.model.num_frames, run.model.backbone.pretrained = 2, None
        run.train.batch_size, run.train.warmup_steps = 1, 1
    run.data.root = str(data_root)
    run.train.steps, run.train.eval_every, run.train.ckpt_every, run.train.log_every = steps, 0, steps, 1
    run.train.out_dir = str(out_dir)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    mp.start_processes(_ddp_worker, args=(world, port, run.to_dict(), kind), nprocs=world, join=True,
                       start_method="spawn")
    seconds = time.perf_counter() - started
    losses = [r["loss"] for r in read_log(out_dir) if "loss" in r]
    if len(losses) != steps or not all(np.isfinite(losses)):
        raise RuntimeError(f"DDP run logged {losses} for {steps} steps")
    return {"backend": backend, "processes": world, "preset": "tiny" if run is not cfg else "checked",
            "steps": steps, "wall_s": seconds, "last_loss": losses[-1]}


def segment_case(cfg, device: torch.device, frames: int) -> dict[str, Any]:
    """``segment_video`` frames/s on a generated (frames, S, S, 3) video, one sentence."""
    from rvoslib.inference import segment_video
    from rvoslib.model import build_model
    from rvoslib.train_step import amp_dtype

    size = cfg.model.backbone.image_size
    video = np.random.default_rng(0).integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
    model = build_model(cfg.model).to(device).eval()
    dtype = amp_dtype("auto", device)
    segment_video(video[: cfg.model.num_frames], "the red square", model, device=device, dtype=dtype, progress=False)
    cuda_sync(device)
    started = time.perf_counter()
    result = segment_video(video, "the red square", model, device=device, dtype=dtype, progress=False)
    cuda_sync(device)
    seconds = time.perf_counter() - started
    if tuple(result.masks.shape) != (1, frames, size, size):
        raise RuntimeError(f"segment_video returned masks {tuple(result.masks.shape)}")
    return {"frames": frames, "frames_per_s": frames / seconds, "dtype": str(dtype or "float32").replace("torch.", "")}


# ----------------------------------------------------------------------------- counted estimates (no GPU)


def count_clip_pass(model, cfg, frames: int) -> dict[str, float]:
    """FLOPs of one training clip pass (forward + backward + losses) and the bytes autograd saves for it.

    Runs for real on the CPU at ``frames`` frames (batch 1, S from ``cfg``) under torch's
    ``FlopCounterMode`` (matmuls, convolutions, attention) and a saved-tensors hook that sums
    the distinct storages autograd keeps for the backward, parameters excluded (the
    activation memory of the pass in float32).
    """
    from torch.utils.flop_counter import FlopCounterMode

    from rvoslib.losses import compute_losses

    size = cfg.model.backbone.image_size
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device.type != "meta":
            ptr = tensor.untyped_storage().data_ptr()
            if ptr not in params:
                storages[ptr] = tensor.untyped_storage().nbytes()
        return tensor

    video = torch.randn(1, frames, 3, size, size)
    tokens = model.tokenize(["the red square moving left"])
    targets = {"masks": (torch.rand(1, frames, size, size) > 0.5).float(), "valid": torch.ones(1, frames, dtype=torch.bool)}
    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            out = model(video, tokens)
            loss = compute_losses(out, targets, cfg.loss)["total"]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return {"flops": float(counter.get_total_flops()), "saved_bytes": float(sum(storages.values()))}


def estimate_step(preset: str, frames: Optional[int] = None, size: Optional[int] = None,
                  counted: tuple[int, int] = (1, 2)) -> dict[str, Any]:
    """Counted cost of one training step of ``preset`` at T frames, extrapolated from two small T.

    One clip pass is counted at ``counted`` frame numbers (:func:`count_clip_pass`) and
    extended linearly to T (frames go through CLIP one by one; the cube-frame attention adds
    a small super-linear part, so this slightly underestimates). A two-step history training
    step runs two clip passes one after the other, so its FLOPs double and its activation
    peak is one pass's. Memory adds float32 weights (frozen and trainable), the trainable
    gradients and AdamW's two states.
    """
    from rvoslib.model import build_model
    from rvoslib.runtime import seed_everything

    cfg = check_config(preset, False, size, frames, "none")
    seed_everything(0)
    model = build_model(cfg.model).train()
    a, b = (count_clip_pass(model, cfg, t) for t in counted)
    t_target = cfg.model.num_frames
    per_frame = {k: (b[k] - a[k]) / (counted[1] - counted[0]) for k in a}
    clip = {k: a[k] + per_frame[k] * (t_target - counted[0]) for k in a}
    passes = 1 if cfg.train.history_training == "off" else 2
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    state_bytes = 4 * total + 3 * 4 * trainable  # weights + gradients + AdamW exp_avg, exp_avg_sq
    return {"preset": preset, "model": cfg.model.backbone.model_name, "S": cfg.model.backbone.image_size,
            "T": t_target, "clip_passes": passes, "params_total": total, "params_trainable": trainable,
            "step_tflop": passes * clip["flops"] / 1e12, "activations_gib_fp32": clip["saved_bytes"] / 2 ** 30,
            "states_gib": state_bytes / 2 ** 30, "counted_at_T": list(counted),
            "clip_tflop_at_counted_T": [a["flops"] / 1e12, b["flops"] / 1e12]}


# ----------------------------------------------------------------------------- the check


def run_part(name: str, results: list, fn: Callable[[], dict], skip: Optional[str] = None) -> Optional[dict]:
    """Run one part into ``results`` (status ok / FAILED / skipped); returns its values or None."""
    if skip:
        results.append({"part": name, "status": "skipped", "why": skip})
        return None
    try:
        values = fn()
    except Exception as err:  # a failing part is reported, the others still run
        logger.debug("%s failed:\n%s", name, traceback.format_exc())
        results.append({"part": name, "status": "FAILED", "why": f"{type(err).__name__}: {err}"[:300]})
        return None
    results.append({"part": name, "status": "ok", **values})
    return values


def run_check(preset: str = "clip-b16", tiny: bool = False, size: Optional[int] = None,
              frames: Optional[int] = None, steps: int = 3, pretrained: str = "auto",
              video_frames: int = VIDEO_FRAMES, ddp: bool = True, budget_s: float = BUDGET_S) -> dict[str, Any]:
    """Run every part (see the module docstring); returns ``{"device", "config", "parts": [...]}``.

    A part that would start after ``budget_s`` seconds is skipped ("time budget"), so the check
    ends in about that time plus one part, whatever the machine.
    """
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    tiny = tiny or not cuda
    started = time.perf_counter()
    cfg = check_config(preset, tiny, size, frames, pretrained)
    results: list[dict] = []

    def attempt(name: str, fn: Callable[[], dict], skip: Optional[str] = None) -> Optional[dict]:
        late = time.perf_counter() - started > budget_s
        return run_part(name, results, fn, skip or (f"time budget ({budget_s:g} s) spent" if late else None))

    no_cuda = None if cuda else "needs CUDA"
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        batch = synthetic_batch(cfg, Path(tmp) / "data")
        losses = {}
        for precision in PRECISIONS:
            bf16_missing = precision == "bf16" and cuda and not torch.cuda.is_bf16_supported()
            skip = no_cuda if precision != "fp32" else None
            skip = skip or ("no bf16 on this GPU" if bf16_missing else None)
            for checkpointing in (False, True):
                name = f"train {precision}{' + activation checkpointing' if checkpointing else ''}"
                values = attempt(name, lambda: train_case(cfg, batch, device, precision, checkpointing,
                                                                   steps), skip)
                if values:
                    losses[precision + (" + ckpt" if checkpointing else "")] = values["loss_first"]
        for case, rtol in (("bf16", LOSS_RTOL), ("fp16", LOSS_RTOL), ("fp32 + ckpt", CHECKPOINT_RTOL)):
            missing = no_cuda if case != "fp32 + ckpt" else None
            missing = missing or (None if case in losses and "fp32" in losses else f"no {case} or fp32 loss")
            attempt(f"loss agreement {case} vs fp32 (rtol {rtol:g})", lambda: loss_agreement(losses, case, rtol),
                    missing)
        if ddp:
            attempt("ddp", lambda: ddp_case(cfg, Path(tmp) / "data", Path(tmp) / "ddp", steps))
        attempt("segment_video", lambda: segment_case(cfg, device, video_frames))
    b = cfg.model.backbone
    return {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "gpus": torch.cuda.device_count(),
            "torch": torch.__version__, "wall_s": time.perf_counter() - started,
            "config": {"model": b.model_name, "S": b.image_size, "T": cfg.model.num_frames,
                       "weights": b.pretrained or "random", "history_training": cfg.train.history_training,
                       "batch": cfg.train.batch_size, "timed_steps": steps},
            "parts": results}


def loss_agreement(losses: dict[str, float], case: str, rtol: float) -> dict[str, Any]:
    """Relative difference of a case's first-step loss from fp32's; raises beyond ``rtol``."""
    reference, value = losses["fp32"], losses[case]
    relative = abs(value - reference) / max(abs(reference), 1e-12)
    if relative > rtol:
        raise AssertionError(f"{case} loss {value:.5f} vs fp32 {reference:.5f}: relative {relative:.3g} > {rtol:g}")
    return {"loss_fp32": reference, "loss": value, "relative": relative}


def markdown(report: dict) -> str:
    """The report as a Markdown table (one row per part)."""
    c = report["config"]
    lines = [f"gpu_check on {report['device']} ({report['gpus']} GPU(s), torch {report['torch']}): {c['model']} "
             f"S={c['S']} T={c['T']}, weights {c['weights']}, history {c['history_training']}, batch {c['batch']}, "
             f"{c['timed_steps']} timed steps; {report['wall_s']:.0f} s in all", "",
             "| part | status | steps/s | peak GiB | other |", "|---|---|---|---|---|"]
    for p in report["parts"]:
        other = {k: v for k, v in p.items() if k not in ("part", "status", "steps_per_s", "peak_gib")}
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in other.items())
        steps = f"{p['steps_per_s']:.3g}" if p.get("steps_per_s") else ""
        peak = f"{p['peak_gib']:.2f}" if p.get("peak_gib") else ""
        lines.append(f"| {p['part']} | {p['status']} | {steps} | {peak} | {shown} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="clip-b16", help="preset checked on CUDA (default: clip-b16)")
    parser.add_argument("--tiny", action="store_true", help="the tiny preset everywhere (seconds; for tests)")
    parser.add_argument("--size", type=int, default=None, help="S (default: the preset's, 352 for clip-b16)")
    parser.add_argument("--frames", type=int, default=None, help="T (default: the preset's, 6 for clip-b16)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per case (default: 3)")
    parser.add_argument("--video-frames", type=int, default=VIDEO_FRAMES, help="frames of the segment check")
    parser.add_argument("--pretrained", default="auto",
                        help="auto (the preset's weights if available, else random) | none | a tag or file")
    parser.add_argument("--no-ddp", action="store_true", help="skip the DDP part")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help=f"seconds after which the remaining parts are skipped (default: {BUDGET_S:g})")
    parser.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    parser.add_argument("--estimate", metavar="PRESET", default=None,
                        help="instead of the check: count one training step's FLOPs and memory for PRESET on "
                             "the CPU (estimate_step; minutes for clip-l14; the tiny preset with --tiny)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.estimate:
        estimate = estimate_step("tiny" if args.tiny else args.estimate, args.frames, args.size)
        print(json.dumps(estimate, indent=1))
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(estimate, indent=1) + "\n", encoding="utf-8")
        return 0
    report = run_check(args.preset, args.tiny, args.size, args.frames, args.steps, args.pretrained,
                       args.video_frames, ddp=not args.no_ddp, budget_s=args.budget)
    text = markdown(report)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 1 if any(p["status"] == "FAILED" for p in report["parts"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
