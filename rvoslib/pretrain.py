"""Tiny contrastive vision-language pretraining of an open_clip CLIP on synthetic scenes.

Real CLIP weights cannot be downloaded offline, so to show at toy scale what a *pretrained*
frozen CLIP brings to RVOS we make one: open_clip's own architecture at toy size
("rvos-tiny2", ``rvoslib/model_configs/rvos-tiny2.json``; open_clip's BPE tokenizer), trained
like CLIP from whole-scene image-caption pairs (:mod:`rvoslib.data.scenes`): still frames that
look like the RVOS videos (2-4 coloured shapes), captions naming some of their objects with
attributes and spatial relations ("a red circle to the left of a small blue square").

- both towers are trained from scratch with open_clip's contrastive loss (``ClipLoss``) and
  CLIP's learned temperature; images normalised with CLIP's mean/std;
- AdamW (open_clip's rule: no weight decay on gains, biases, 1-D parameters and
  ``logit_scale``), linear warm-up then cosine decay, a tqdm bar showing the loss;
- exact contrastive targets: every caption of a batch is true of its own image and false of
  every other image of the batch (no false negatives), and most scenes come with a hard-negative
  copy in the same batch (same layout; two objects' attributes swapped, or one object's changed).

``--data shapes`` instead trains on version 1's single-shape pairs ("a small red circle",
:func:`rvoslib.data.synthetic.make_caption_pairs`, 48 distinct captions per batch at most), which
made ``data_samples/tiny_clip/rvos-tiny-shapes.pt`` with ``--model rvos-tiny``.

The result is saved as open_clip checkpoints are: a plain state dict of fp16 tensors, so that
``rvoslib.backbone.create_clip(BackboneConfig("rvos-tiny2", pretrained=PATH, image_size=64))``
loads it exactly as real CLIP weights. A JSON sidecar next to it records the command, the
settings, the loss and the measures of :mod:`rvoslib.pretrain_eval` on held-out scenes (another
seed) for the saved fp16 weights and for the same network at random initialisation.

Command line (wired into ``rvoslib pretrain``): :func:`add_arguments` and :func:`run_from_args`,
or :func:`run` with an argv list.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import platform
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from rvoslib.pretrain_eval import (  # noqa: F401  (re-exported: notebook 02 and users call them from here)
    dense_features,
    encode_captions,
    encode_images,
    eval_mode,
    evaluate_scenes,
    get_tokenizer,
    normalize_images,
    retrieval_accuracy,
    two_object_composites,
    two_object_pointing,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "rvos-tiny2"
IMAGE_SIZE = 64
DEFAULT_OUT = "data_samples/tiny_clip/rvos-tiny-scenes.pt"
DATA_KINDS = ("scenes", "motion-scenes", "shapes")
EVAL_SEED_OFFSET = 10_000  # held-out scenes use seed + this, so they never share the training generator
MIN_EVAL = 100  # fewest held-out scenes the evaluation accepts (retrieval blocks of 50, probes split in halves)

# The settings of the shipped checkpoint (data_samples/tiny_clip/rvos-tiny-scenes.pt), also the CLI defaults.
DEFAULTS = dict(data="scenes", model=MODEL_NAME, steps=7200, batch_size=64, seed=0, lr=2e-3, num_images=20_000,
                warmup_steps=600, weight_decay=0.1, num_eval=1000)


# --------------------------------------------------------------------------- model and data


def build_tiny_clip(seed: int, model_name: str = MODEL_NAME) -> nn.Module:
    """A randomly initialised tiny open_clip CLIP (``model_name``), trainable, initialised from ``seed``.

    The caller's torch RNG state is left untouched.
    """
    import open_clip

    from rvoslib.backbone import register_tiny_config

    register_tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(model_name, pretrained=None)
    return model


def caption_groups(captions: Sequence[str]) -> list[np.ndarray]:
    """Indices of the pairs sharing each distinct caption (sorted by caption): a list of 1-D arrays."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, caption in enumerate(captions):
        groups[caption].append(i)
    return [np.asarray(groups[c]) for c in sorted(groups)]


def sample_batch(groups: Sequence[np.ndarray], batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """``batch_size`` pair indices with distinct captions: random captions, one random image each."""
    chosen = rng.choice(len(groups), size=batch_size, replace=False)
    return np.array([rng.choice(groups[g]) for g in chosen])


class PairPool:
    """Version 1's data: single-shape images (n, S, S, 3) uint8 with one caption each; a batch
    holds distinct captions, so ``batch_size`` is at most the number of distinct captions."""

    def __init__(self, images: np.ndarray, captions: Sequence[str]):
        self.images, self.captions = images, list(captions)
        self.groups = caption_groups(self.captions)
        self.max_batch = len(self.groups)

    def batch(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        idx = sample_batch(self.groups, batch_size, rng)  # (B,)
        return self.images[idx], [self.captions[i] for i in idx]


class ScenePool:
    """Scenes of :func:`rvoslib.data.scenes.make_scene_pool` (swapped copies grouped with their
    originals); a batch gets fresh captions, each false of the other images of the batch."""

    def __init__(self, num_images: int, seed: int, size: int = IMAGE_SIZE, moving: bool = False):
        from rvoslib.data.scenes import make_scene_pool

        self.images, self.scenes, self.groups = make_scene_pool(num_images, seed, size, moving=moving)
        self.max_batch = len(self.images)

    def batch(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        from rvoslib.data.scenes import sample_scene_batch

        idx, captions = sample_scene_batch(self.scenes, self.groups, batch_size, rng)
        return self.images[idx], captions


def make_pool(data: str, num_images: int, seed: int) -> PairPool | ScenePool:
    """The training data: "scenes" (default), "motion-scenes" (scenes whose objects leave trails, captions
    that may name their motions: ``rvoslib.data.scenes``) or "shapes" (version 1's single-shape pairs)."""
    if data == "shapes":
        from rvoslib.data.synthetic import make_caption_pairs

        images, captions, _ = make_caption_pairs(num_images, seed, size=IMAGE_SIZE)
        return PairPool(images, captions)
    return ScenePool(num_images, seed, moving=data == "motion-scenes")


def held_out_scenes(num: int, seed: int, moving: bool = False):
    """Held-out scenes for the measures: images (num, S, S, 3) uint8 and the scenes (no swapped copies);
    ``moving``: motion scenes (trails)."""
    from rvoslib.data.scenes import make_scene_pool

    images, scenes, _ = make_scene_pool(num, seed, IMAGE_SIZE, pair_prob=0.0, moving=moving)
    return images, scenes


def measure(model: nn.Module, images: np.ndarray, scenes: Sequence, motion_scenes: tuple, seed: int) -> dict:
    """The sidecar's held-out measures: the still-scene ones (:func:`evaluate_scenes`) and "motion"
    (:mod:`rvoslib.motion_words`: text similarity of the motion phrases, motion choice on motion scenes)."""
    from rvoslib.motion_words import motion_choice, motion_text_similarity

    result = evaluate_scenes(model, images, scenes, seed)
    result["motion"] = {"text_similarity": motion_text_similarity(model),
                        "choice": motion_choice(model, *motion_scenes, seed)}
    return result


# --------------------------------------------------------------------------- optimisation


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups as open_clip trains CLIP: no decay on 1-D tensors, norms, biases, logit_scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor at ``step``: linear warm-up to 1 over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def clamp_logit_scale_(model: nn.Module, max_scale: float = 100.0) -> None:
    """Clamp the learned temperature as CLIP does: exp(logit_scale) <= 100."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(max_scale))


def train_step(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
               images: torch.Tensor, tokens: torch.Tensor) -> float:
    """One contrastive step on images (B, 3, S, S) and tokens (B, L_ctx); returns the loss."""
    image_features, text_features, logit_scale = model(images, tokens)  # (B, E), (B, E), ()
    loss = loss_fn(image_features, text_features, logit_scale)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    clamp_logit_scale_(model)
    return loss.item()


def train(model: nn.Module, pool: PairPool | ScenePool, steps: int, batch_size: int, seed: int, lr: float,
          warmup_steps: int, weight_decay: float, progress: bool = True) -> list[float]:
    """Contrastive training of both towers on batches drawn from ``pool`` (its ``batch(B, rng)``
    gives uint8 images (B, S, S, 3) and B captions). Returns the loss of every step; raises
    ``FloatingPointError`` naming the step on a NaN/inf loss.
    """
    from open_clip.loss import ClipLoss
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    tokenizer = get_tokenizer()
    rng = np.random.default_rng([seed, 1])
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, steps, warmup_steps))
    loss_fn = ClipLoss()
    model.train()
    losses: list[float] = []
    bar = tqdm(range(steps), desc="pretrain tiny CLIP", disable=not progress, dynamic_ncols=True)
    for step in bar:
        images, captions = pool.batch(batch_size, rng)
        loss = train_step(model, loss_fn, optimizer, normalize_images(images).to(device), tokenizer(captions).to(device))
        if not math.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss} at step {step} (lr {schedule.get_last_lr()[0]:.3g})")
        schedule.step()
        losses.append(loss)
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}", lr=f"{schedule.get_last_lr()[0]:.2e}")
    model.eval()
    return losses


# --------------------------------------------------------------------------- saving


def fp16_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict on the CPU with floating tensors in fp16 (plain tensors only)."""
    return {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).clone()
            for k, v in model.state_dict().items()}


def save_checkpoint(model: nn.Module, path: str | os.PathLike) -> str:
    """Write the fp16 state dict to ``path`` atomically (temp file + rename); returns its sha256.

    Saved through a file object, so the archive's inner name does not depend on the
    (random) temporary file name and equal weights give byte-identical files.
    """
    from rvoslib.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(fp16_state_dict(model), f)
    return _sha256(path)


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically."""
    from rvoslib.io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2) + "\n")


def sidecar_path(out_path: str | os.PathLike) -> Path:
    """The JSON sidecar next to a checkpoint: ``x/name.pt`` -> ``x/name.json``."""
    return Path(out_path).with_suffix(".json")


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def reproduce_command(out_path: str | os.PathLike, **settings) -> str:
    """The ``rvoslib pretrain`` command line that makes the same checkpoint."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())
    return f"rvoslib pretrain --out {out_path} {flags}"


# --------------------------------------------------------------------------- the whole run


def _check_settings(data: str, steps: int, batch_size: int, num_images: int, warmup_steps: int, num_eval: int) -> None:
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {data!r}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if batch_size < 2 or (data == "shapes" and batch_size > 48):
        raise ValueError(f"batch_size must be >= 2 (and at most the 48 distinct captions with data='shapes', "
                         f"so every batch holds distinct captions); got {batch_size}")
    if num_eval < MIN_EVAL:
        raise ValueError(f"num_eval must be >= {MIN_EVAL} (retrieval blocks of 50 scenes), got {num_eval}")
    if num_images < 2 * batch_size:
        raise ValueError(f"num_images ({num_images}) must be >= 2 x batch_size ({batch_size})")


def loss_curve(losses: Sequence[float], points: int = 100) -> list[list[float]]:
    """About ``points`` [step, mean loss over the window ending there] pairs, for plotting."""
    window = max(1, len(losses) // points)
    return [[i + window - 1, float(np.mean(losses[i:i + window]))] for i in range(0, len(losses) - window + 1, window)]


def run_summary(out_path: str | os.PathLike, settings: dict, losses: Sequence[float], seconds: float,
                held_out: dict, random_init: dict, model: nn.Module, device: str, sha256: str) -> dict:
    """The JSON sidecar's content for one pretraining run (see :func:`pretrain_tiny_clip`)."""
    steps, batch_size, seed = settings["steps"], settings["batch_size"], settings["seed"]
    window = min(50, max(1, steps // 10))  # initial/final loss: mean over the first/last 10% of steps (<= 50)
    data = {"scenes": "still multi-object scenes with scene captions (rvoslib.data.scenes)",
            "motion-scenes": "multi-object scenes whose objects leave motion trails, with scene captions that may "
                             "name the motions (rvoslib.data.scenes, moving=True)",
            }.get(settings["data"], "single-shape image-caption pairs (rvoslib.data.synthetic.make_caption_pairs)")
    return {
        "what": f"open_clip '{settings['model']}' CLIP pretrained contrastively (open_clip ClipLoss) on synthetic {data}",
        "command": reproduce_command(out_path, **settings),
        "model_name": settings["model"], "image_size": IMAGE_SIZE, **settings, "device": str(device),
        "parameters": sum(p.numel() for p in model.parameters()),
        "eval_seed": seed + EVAL_SEED_OFFSET,
        "initial_loss": float(np.mean(losses[:window])), "final_loss": float(np.mean(losses[-window:])),
        "loss_window": window, "final_loss_last_step": float(losses[-1]), "loss_chance": math.log(batch_size),
        "logit_scale": float(model.logit_scale.detach().exp()),
        "train_seconds": round(seconds, 1), "torch_threads": torch.get_num_threads(),
        "held_out": held_out, "random_init": random_init, "loss_curve": loss_curve(losses),
        "checkpoint": {"file": Path(out_path).name, "bytes": os.path.getsize(out_path), "sha256": sha256,
                       "dtype": "float16"},
        "versions": _versions(),
    }


def pretrain_tiny_clip(out_path: str | os.PathLike = DEFAULT_OUT, data: str = DEFAULTS["data"],
                       model_name: str = DEFAULTS["model"], steps: int = DEFAULTS["steps"],
                       batch_size: int = DEFAULTS["batch_size"], seed: int = DEFAULTS["seed"],
                       lr: float = DEFAULTS["lr"], num_images: int = DEFAULTS["num_images"], device: str = "cpu",
                       warmup_steps: int = DEFAULTS["warmup_steps"], weight_decay: float = DEFAULTS["weight_decay"],
                       num_eval: int = DEFAULTS["num_eval"], progress: bool = True) -> dict:
    """Pretrain a tiny CLIP, measure it on held-out scenes, save checkpoint + JSON sidecar.

    Args:
        out_path: checkpoint file (open_clip format: fp16 state dict); the sidecar is
            the same path with ``.json``.
        data: "scenes" (multi-object scenes, scene captions), "motion-scenes" (the same with motion
            trails and motion words) or "shapes" (version 1).
        model_name: the tiny open_clip config ("rvos-tiny2"; version 1 used "rvos-tiny").
        steps: optimizer steps; batch_size: image-caption pairs per step.
        seed: fixes the model initialisation, the training images, the batches and captions;
            held-out scenes use ``seed + EVAL_SEED_OFFSET``.
        lr: peak AdamW learning rate (warm-up ``warmup_steps``, then cosine to 0).
        num_images: size of the training pool of images.
        device: where to train ("cpu", "cuda", ...).
        num_eval: held-out scenes for the measures.
        progress: show the tqdm bar.
    Returns:
        The sidecar's content: settings, command, losses, timings, held-out measures of the
        trained and of the randomly initialised model, checkpoint size and sha256.
    """
    _check_settings(data, steps, batch_size, num_images, warmup_steps, num_eval)
    settings = dict(data=data, model=model_name, steps=steps, batch_size=batch_size, seed=seed, lr=lr,
                    num_images=num_images, warmup_steps=warmup_steps, weight_decay=weight_decay, num_eval=num_eval)
    start = time.perf_counter()
    pool = make_pool(data, num_images, seed)
    eval_seed = seed + EVAL_SEED_OFFSET
    eval_images, eval_scenes = held_out_scenes(num_eval, eval_seed)
    motion_scenes = held_out_scenes(num_eval, eval_seed, moving=True)
    model = build_tiny_clip(seed, model_name).to(device)
    random_init = measure(model, eval_images, eval_scenes, motion_scenes, eval_seed)
    data_seconds = time.perf_counter() - start
    losses = train(model, pool, steps, batch_size, seed, lr, warmup_steps, weight_decay, progress)
    seconds = time.perf_counter() - start - data_seconds
    model.load_state_dict(fp16_state_dict(model))  # measure what is shipped: the fp16-rounded weights
    held_out = measure(model, eval_images, eval_scenes, motion_scenes, eval_seed)
    sha = save_checkpoint(model, out_path)
    results = run_summary(out_path, settings, losses, seconds, held_out, random_init, model, device, sha)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    write_json(results, sidecar_path(out_path))
    retrieval = held_out["retrieval"]
    logger.info("pretrained %s in %.0f s: loss %.3f -> %.3f; held-out image->text %.1f%% among %d (chance %.1f%%), "
                "binding %.1f%%; saved %s", model_name, seconds, results["initial_loss"], results["final_loss"],
                100 * retrieval["image_to_text"], retrieval["block"], 100 * retrieval["chance"],
                100 * held_out["binding"]["attribute"]["accuracy"], out_path)
    results["losses"] = losses
    return results


def _versions() -> dict:
    import open_clip

    return {"torch": torch.__version__, "open_clip": open_clip.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


# --------------------------------------------------------------------------- command line

PRETRAIN_HELP = """\
Pretrain a tiny open_clip CLIP ("rvos-tiny2") contrastively on synthetic still scenes of
coloured shapes with scene captions, measure it on held-out scenes (retrieval, attribute and
relation binding, patch probes, text->patch pointing; also at random init), and save it in
open_clip's checkpoint format (fp16 state dict) with a JSON sidecar (OUT with .json). Load it with
  create_clip(BackboneConfig(model_name="rvos-tiny2", pretrained=OUT, image_size=64)).
The defaults make the shipped data_samples/tiny_clip/rvos-tiny-scenes.pt (use --threads 2; 16 min on 2 CPU cores).
Motion vocabulary (objects leave trails; captions may say "moving left", "bouncing up and down"):
  --data motion-scenes.
Version 1 (rvos-tiny-shapes.pt): --data shapes --model rvos-tiny --steps 1500 --batch-size 48 --num-images 20000 --warmup-steps 150.
"""


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the ``pretrain`` options on ``parser``; returns it."""
    d = DEFAULTS
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"checkpoint path (default: {DEFAULT_OUT})")
    parser.add_argument("--data", choices=DATA_KINDS, default=d["data"],
                        help="training images: multi-object 'scenes' or version 1's single 'shapes' (default: scenes)")
    parser.add_argument("--model", default=d["model"], help=f"tiny open_clip config (default: {d['model']})")
    parser.add_argument("--steps", type=int, default=d["steps"], help=f"optimizer steps (default: {d['steps']})")
    parser.add_argument("--batch-size", type=int, default=d["batch_size"],
                        help=f"image-caption pairs per step (default: {d['batch_size']})")
    parser.add_argument("--seed", type=int, default=d["seed"], help=f"random seed (default: {d['seed']})")
    parser.add_argument("--lr", type=float, default=d["lr"], help=f"peak learning rate (default: {d['lr']})")
    parser.add_argument("--num-images", "--num-pairs", dest="num_images", type=int, default=d["num_images"],
                        help=f"training images (default: {d['num_images']})")
    parser.add_argument("--warmup-steps", type=int, default=d["warmup_steps"],
                        help=f"linear warm-up steps (default: {d['warmup_steps']})")
    parser.add_argument("--weight-decay", type=float, default=d["weight_decay"],
                        help=f"AdamW weight decay (default: {d['weight_decay']})")
    parser.add_argument("--num-eval", type=int, default=d["num_eval"],
                        help=f"held-out scenes for the measures (default: {d['num_eval']})")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: 0 = torch's default); 1 is fastest on a busy machine")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    """Run the pretraining described by parsed :func:`add_arguments` options; returns 0."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    result = pretrain_tiny_clip(
        args.out, data=args.data, model_name=args.model, steps=args.steps, batch_size=args.batch_size,
        seed=args.seed, lr=args.lr, num_images=args.num_images, device=args.device, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, num_eval=args.num_eval, progress=not args.no_progress,
    )
    held = result["held_out"]
    logger.info("held-out: image->text %.1f%%, text->image %.1f%% (chance %.1f%%); binding attribute %.1f%%, "
                "relation %.1f%% (chance 50%%); pointing %.1f%% (chance %.1f%%); written %s and %s",
                100 * held["retrieval"]["image_to_text"], 100 * held["retrieval"]["text_to_image"],
                100 * held["retrieval"]["chance"], 100 * held["binding"]["attribute"]["accuracy"],
                100 * held["binding"]["relation"]["accuracy"], 100 * held["pointing"]["hit_rate"],
                100 * held["pointing"]["chance"], args.out, sidecar_path(args.out))
    return 0


def run(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m rvoslib.pretrain [options]``: parse ``argv`` and run; returns the exit code."""
    parser = argparse.ArgumentParser(prog="rvoslib pretrain", description=PRETRAIN_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    args = add_arguments(parser).parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    return run_from_args(args)


if __name__ == "__main__":
    raise SystemExit(run())
