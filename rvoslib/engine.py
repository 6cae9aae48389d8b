"""Training engine: data order, the training step, evaluation, checkpoints, resume, DDP, CLI.

``train(cfg)`` runs a whole experiment described by a :class:`~rvoslib.config.Config`:

1. data: ``cfg.data`` names the dataset (root, format, splits); clips have ``T =
   cfg.model.num_frames`` frames of ``S x S`` pixels (``2T`` frames, split into two
   consecutive clips A and B, with two-clip history training);
2. model: ``build_model(cfg.model)``; AdamW groups and the warm-up + step-decay schedule
   from :mod:`rvoslib.schedule`; grad-norm clipping; AMP (bf16 / fp16) on CUDA only;
3. each step: ``grad_accum`` micro-batches of ``batch_size`` clips per process, their
   gradients summed (each micro-batch loss divided by ``grad_accum``, so two
   micro-batches of one clip give the gradient of one batch of two clips), then one
   optimizer step (two with ``history_training="two-step"``, see :class:`Trainer`);
4. every ``log_every`` steps a JSON line in ``out_dir/log.jsonl``; every ``eval_every``
   steps J&F on the validation split; every ``ckpt_every`` steps and at the end
   ``out_dir/last.pt`` (and ``best.pt`` when the validation J&F improves), written
   atomically by :mod:`rvoslib.checkpoint`. ``out_dir/config.json`` holds the config.

Exact resume. The training batches are a pure function of ``(seed, step)``:
:class:`StepBatchSampler` walks an epoch-wise permutation of the items (seeded by
``(seed, epoch)``) at position ``step x global batch``, and every item's frame sampling
and augmentation is seeded by ``(seed, epoch, item)`` inside ``RVOSDataset``. With the
model, optimizer, scheduler, scaler and RNG states from the checkpoint, a run resumed
from step k repeats steps k+1..N of an uninterrupted run bit for bit (on the CPU; CUDA
kernels may add their own non-determinism). An interrupted run loses only the steps
since its last checkpoint; on resume the log is cut back to that step.

A non-finite loss (or, without a GradScaler, a non-finite gradient norm) stops training
with :class:`NonFiniteLossError` naming the step and the clips of the batch, before the
optimizer touches the weights; no checkpoint is written after it.

Distributed: launched by ``torchrun`` (``WORLD_SIZE > 1``), each process trains on its
slice of every global batch (DistributedSampler semantics), the model is wrapped in
``DistributedDataParallel``, and rank 0 alone logs, shows the progress bar, evaluates and
writes checkpoints (the other ranks wait at a barrier).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from rvoslib.checkpoint import config_of, load_checkpoint, load_model_weights, save_checkpoint, set_rng_state
from rvoslib.config import Config, apply_overrides, get_preset
from rvoslib.distributed import (
    DistContext,
    all_ranks_true,
    barrier,
    cleanup,
    init_distributed,
    mean_over_ranks,
    wrap_ddp,
)
from rvoslib.losses import compute_losses
from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample, seed_everything, use_shipped_tiny_clip
from rvoslib.schedule import build_optimizer, build_scheduler, current_lrs

logger = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
HISTORY_MODES = ("off", "one-step", "two-step")
AMP_MODES = ("auto", "bf16", "fp16", "none")
# config keys that may change on resume without breaking exactness
RESUME_SILENT_KEYS = ("train.out_dir", "train.eval_every", "train.ckpt_every", "train.log_every",
                      "data.num_workers", "model.backbone.cache_dir")


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient norm) became NaN or infinite; names the step and the batch.

    Attributes:
        step: 1-based index of the optimizer step that failed (the last good one is ``step - 1``).
        samples: ``(video_id, exp_id)`` of every clip in the failing batch on this process.
    """

    def __init__(self, step: int, samples: Sequence[tuple[str, str]], what: str = "loss", value: Any = None,
                 elsewhere: bool = False):
        self.step, self.samples = step, list(samples)
        where = "on another process; this process's batch" if elsewhere else "in the batch"
        shown = ", ".join(f"{v}/{e}" for v, e in self.samples[:16]) + (" ..." if len(self.samples) > 16 else "")
        super().__init__(
            f"non-finite {what} ({value}) at step {step} {where} (video/expression): {shown}. Training stopped "
            f"before the optimizer step; the last checkpoint (step <= {step - 1}) is intact. Check these clips "
            f"and consider a lower lr, train.clip_grad > 0 or train.amp='none'."
        )


# ============================================================================ data


def read_split(cfg: Config, split: str) -> list:
    """Read one split of ``cfg.data`` (root, format) as ``VideoRecord`` s (``rvoslib.evaluate.read_split``)."""
    from rvoslib.evaluate import read_split as read_dataset_split

    return read_dataset_split(cfg.data.root, cfg.data.format, split)


def train_clip_frames(cfg: Config) -> int:
    """Frames per training item: T, or 2T (clips A and B) with two-clip history training."""
    return cfg.model.num_frames * (1 if cfg.train.history_training == "off" else 2)


def make_train_dataset(records: Sequence, cfg: Config) -> Dataset:
    """``RVOSDataset`` in training mode for ``cfg`` (clip length from :func:`train_clip_frames`)."""
    from rvoslib.data import RVOSDataset

    jitter = (cfg.data.jitter,) * 3 if cfg.data.jitter > 0 else None
    return RVOSDataset(records, clip_len=train_clip_frames(cfg), size=cfg.model.backbone.image_size, train=True,
                       max_skip=cfg.data.max_skip, flip_prob=cfg.data.flip_prob, jitter=jitter, seed=cfg.train.seed)


class EpochItems(Dataset):
    """Index a training dataset by ``(item, epoch)``: sets the epoch, then returns ``base[item]``.

    The epoch travels with the index, so a DataLoader worker's copy of the dataset draws
    the same random clip as the main process would.
    """

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        item, epoch = key
        self.base.set_epoch(epoch)
        return self.base[item]


class StepBatchSampler(Sampler):
    """Micro-batches of ``(item, epoch)`` keys as a pure function of ``(seed, step)``.

    Item positions run through consecutive epochs; epoch ``e`` visits every item once in
    the order ``default_rng([seed, e]).permutation(num_items)``. Optimizer step ``s``
    (0-based) uses the global batch of positions ``[s G, (s + 1) G)`` with
    ``G = batch_size x grad_accum x world_size``; micro-batch ``m`` of rank ``r`` takes
    positions ``s G + (m world_size + r) batch_size + [0, batch_size)``. So the ranks
    share each global batch without overlap (DistributedSampler semantics), and a run
    resumed at step ``k`` gets exactly the batches an uninterrupted run gets.

    Args:
        num_items: dataset length.
        batch_size: clips per micro-batch per process.
        grad_accum: micro-batches per step.
        seed: base seed.
        start_step, end_step: yield the micro-batches of steps ``[start_step, end_step)``.
        rank, world_size: this process's slice.
    """

    def __init__(self, num_items: int, batch_size: int, grad_accum: int, seed: int, start_step: int, end_step: int,
                 rank: int = 0, world_size: int = 1):
        if num_items < 1:
            raise ValueError("the training set is empty")
        self.num_items, self.batch_size, self.grad_accum = num_items, batch_size, grad_accum
        self.seed, self.start_step, self.end_step = seed, start_step, end_step
        self.rank, self.world_size = rank, world_size
        self._cached: tuple[int, np.ndarray] = (-1, np.empty(0, dtype=np.int64))

    @property
    def global_batch(self) -> int:
        """G: clips per optimizer step over all processes and micro-batches."""
        return self.batch_size * self.grad_accum * self.world_size

    def permutation(self, epoch: int) -> np.ndarray:
        """Item order of one epoch, ``(num_items,)``."""
        if self._cached[0] != epoch:
            self._cached = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.num_items))
        return self._cached[1]

    def key(self, position: int) -> tuple[int, int]:
        """``(item, epoch)`` at a global position."""
        epoch, offset = divmod(position, self.num_items)
        return int(self.permutation(epoch)[offset]), epoch

    def micro_batches(self, step: int) -> list[list[tuple[int, int]]]:
        """The ``grad_accum`` micro-batches of this rank for 0-based step ``step``."""
        base = step * self.global_batch
        out = []
        for m in range(self.grad_accum):
            first = base + (m * self.world_size + self.rank) * self.batch_size
            out.append([self.key(first + b) for b in range(self.batch_size)])
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.end_step):
            yield from self.micro_batches(step)

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step) * self.grad_accum


def make_train_loader(dataset: Dataset, cfg: Config, start_step: int, end_step: int, ctx: DistContext) -> DataLoader:
    """DataLoader over :class:`StepBatchSampler` micro-batches (collated by ``collate_clips``)."""
    from rvoslib.data import collate_clips

    sampler = StepBatchSampler(len(dataset), cfg.train.batch_size, cfg.train.grad_accum, cfg.train.seed,
                               start_step, end_step, ctx.rank, ctx.world_size)
    workers = cfg.data.num_workers
    return DataLoader(EpochItems(dataset), batch_sampler=sampler, collate_fn=collate_clips, num_workers=workers,
                      pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0)


def batch_ids(batch: dict) -> list[tuple[str, str]]:
    """``(video_id, exp_id)`` of every clip of a collated batch."""
    return [(str(m["video_id"]), str(m["exp_id"])) for m in batch["meta"]]


# ============================================================================ the training step


class ClipRunner(nn.Module):
    """One forward call for one clip, or for two consecutive clips joined by history.

    Both clips of one-step history training run inside a single ``forward`` so that
    DistributedDataParallel sees one forward per backward.

    Args:
        model: a ``VLPRVOS``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, tokens: torch.Tensor,
                prev: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
                next_frames: Optional[torch.Tensor] = None) -> list[dict]:
        """Run the clip(s).

        Args:
            frames: (B, T, 3, S, S) the first clip.
            tokens: (B, L_ctx) the sentences.
            prev: optional ``(features (B, T, d, h, w), pred_masks (B, T, S, S))`` of a previous
                clip; the first clip's history is pooled from them with gradient into the
                pooling layers (None: learned initial history).
            next_frames: optional (B, T, 3, S, S) second clip, whose history is pooled (with
                gradient) from the first clip's outputs.

        Returns:
            the output dict of each clip run, in order.
        """
        history = self._pool(*prev) if prev is not None else None
        outputs = [self.model(frames, tokens, history=history)]
        if next_frames is not None:
            first = outputs[0]
            outputs.append(self.model(next_frames, tokens, history=self._pool(first["features"], first["pred_masks"])))
        return outputs

    def _pool(self, features: torch.Tensor, pred_masks: torch.Tensor) -> Optional[torch.Tensor]:
        """History tokens ``(B, N_h, D_v)`` pooled from a clip's outputs; None for a model without history
        (two-clip training then trains clip B on its own, the same data and updates without history)."""
        if self.model.history is None:
            return None
        return self.model.history.pool(features, pred_masks, detach=False)  # (B, N_h, D_v)


def amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype for ``train.amp`` on ``device``: None (fp32) off CUDA or with "none"."""
    if amp not in AMP_MODES:
        raise ValueError(f"train.amp={amp!r} is not one of {AMP_MODES}")
    if device.type != "cuda" or amp == "none":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def clip_targets(batch: dict, frames: slice, device: torch.device) -> dict:
    """Loss targets of one clip: ``masks (B, T, S, S)`` and ``valid (B, T)`` (real and annotated frames)."""
    valid = batch["valid"][:, frames] & batch["annotated"][:, frames]
    return {"masks": batch["masks"][:, frames].to(device), "valid": valid.to(device)}


class Trainer:
    """The optimisation step: micro-batches, AMP, accumulation, clipping, history training.

    ``history_training``:

    - ``"off"``: one clip per item, no history (the learned initial tokens);
    - ``"one-step"``: clip A (initial history) and clip B (history pooled from A's outputs
      with gradient into the pooling layers, A's features detached); loss A + loss B, one
      optimizer step;
    - ``"two-step"``: an optimizer step on clip A, then B's history is pooled from A's
      (detached) outputs with the *updated* pooling layers, and a second optimizer step on
      clip B. The schedule advances once per training step (both use the same lr).

    With ``model.prompts.use_history=False`` the two-clip modes still train on clips A and B
    (same data, same number of optimizer steps), B simply without history: the fair
    "no history" ablation of a run that trains with history.

    Args:
        model: the ``VLPRVOS`` (unwrapped).
        runner: ``ClipRunner(model)``, possibly wrapped in DDP.
        optimizer, scaler: AdamW and an optional fp16 ``GradScaler``.
        cfg: the whole config.
        ctx: distributed context.
    """

    def __init__(self, model: nn.Module, runner: nn.Module, optimizer: torch.optim.Optimizer, cfg: Config,
                 ctx: DistContext, scaler: Optional[torch.amp.GradScaler] = None):
        self.model, self.runner, self.optimizer, self.scaler = model, runner, optimizer, scaler
        self.cfg, self.ctx, self.device = cfg, ctx, ctx.device
        self.params = [p for group in optimizer.param_groups for p in group["params"]]
        self.num_frames = cfg.model.num_frames
        self.mode = cfg.train.history_training
        self.dtype = amp_dtype(cfg.train.amp, ctx.device)

    # ---------------------------------------------------------------- one training step

    def train_step(self, micro_batches: Sequence[dict], step: int) -> dict[str, float]:
        """One training step (1-based ``step``, for messages) on ``grad_accum`` micro-batches.

        Returns:
            the loss terms (mean over micro-batches; with history training the sum over clips
            A and B, plus ``total_a`` and ``total_b``) and ``grad_norm`` (before clipping).
        """
        inputs = [self.prepare(mb) for mb in micro_batches]
        t = self.num_frames
        first, second = slice(0, t), slice(t, 2 * t)
        if self.mode == "off":
            terms, _ = self.accumulate(inputs, step, lambda x: self.clip_loss(x, first))
            terms["grad_norm"] = self.optimizer_step(step, micro_batches)
            return terms
        if self.mode == "one-step":
            terms, _ = self.accumulate(inputs, step, self._pair_loss)
            terms["grad_norm"] = self.optimizer_step(step, micro_batches)
            return terms
        if self.mode != "two-step":
            raise ValueError(f"train.history_training={self.mode!r} is not one of {HISTORY_MODES}")
        terms_a, prevs = self.accumulate(inputs, step, lambda x: self.clip_loss(x, first))
        norm_a = self.optimizer_step(step, micro_batches)
        prev_iter = iter(prevs)
        terms_b, _ = self.accumulate(inputs, step, lambda x: self.clip_loss(x, second, prev=next(prev_iter)))
        norm_b = self.optimizer_step(step, micro_batches)
        terms = _sum_terms(terms_a, terms_b)
        terms["grad_norm"] = max(norm_a, norm_b)
        return terms

    def accumulate(self, inputs: Sequence[dict], step: int,
                   loss_fn: Callable[[dict], tuple[dict, Any]]) -> tuple[dict[str, float], list]:
        """Zero the gradients, then forward + backward every micro-batch (gradients summed).

        Each micro-batch's total loss is divided by their number, so the gradient is the
        mean over micro-batches. In DDP, gradients are synchronised on the last one only.

        Args:
            inputs: micro-batches from :meth:`prepare`.
            step: 1-based step index (for error messages).
            loss_fn: ``inputs[i] -> (loss terms with "total", extra)``, e.g. :meth:`clip_loss`.

        Returns:
            the mean loss terms (floats) and whatever ``loss_fn`` returned beside its terms,
            per micro-batch.
        """
        self.optimizer.zero_grad(set_to_none=True)
        n = len(inputs)
        sums: dict[str, float] = {}
        extras = []
        for i, x in enumerate(inputs):
            sync = i == n - 1 or not hasattr(self.runner, "no_sync")
            with contextlib.nullcontext() if sync else self.runner.no_sync():
                terms, extra = loss_fn(x)
                self._check_finite(terms["total"], step, x["batch"])
                loss = terms["total"] / n
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            extras.append(extra)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / n
        return sums, extras

    def optimizer_step(self, step: int, micro_batches: Sequence[dict]) -> float:
        """Unscale (fp16), clip the gradient norm, step the optimizer; returns the norm before clipping."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        max_norm = self.cfg.train.clip_grad if self.cfg.train.clip_grad > 0 else math.inf
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm))
        if self.scaler is not None:  # a non-finite fp16 gradient is skipped and the scale lowered
            self.scaler.step(self.optimizer)
            self.scaler.update()
            return norm
        if not math.isfinite(norm):
            raise NonFiniteLossError(step, [s for mb in micro_batches for s in batch_ids(mb)], "gradient norm", norm)
        self.optimizer.step()
        return norm

    # ---------------------------------------------------------------- losses of the clips

    def prepare(self, batch: dict) -> dict:
        """Move a collated micro-batch to the device and tokenise its sentences once."""
        frames = batch["frames"].to(self.device, non_blocking=True)  # (B, T or 2T, 3, S, S)
        tokens = self.model.tokenize(batch["sentences"]).to(self.device)  # (B, L_ctx)
        return {"frames": frames, "tokens": tokens, "batch": batch}

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def clip_loss(self, x: dict, frames: slice, prev: Optional[tuple] = None) -> tuple[dict, tuple]:
        """Loss of one clip (frames ``frames`` of the item); extra: its detached (features, pred_masks)."""
        with self._autocast():
            out = self.runner(x["frames"][:, frames], x["tokens"], prev=prev)[0]
        terms = compute_losses(out, clip_targets(x["batch"], frames, self.device), self.cfg.loss)
        return terms, (out["features"].detach(), out["pred_masks"].detach())

    def _pair_loss(self, x: dict) -> tuple[dict, None]:
        """One-step history training: loss of clip A plus loss of clip B (history from A)."""
        t = self.num_frames
        with self._autocast():
            out_a, out_b = self.runner(x["frames"][:, :t], x["tokens"], next_frames=x["frames"][:, t:2 * t])
        terms_a = compute_losses(out_a, clip_targets(x["batch"], slice(0, t), self.device), self.cfg.loss)
        terms_b = compute_losses(out_b, clip_targets(x["batch"], slice(t, 2 * t), self.device), self.cfg.loss)
        return _sum_terms(terms_a, terms_b), None

    def _check_finite(self, loss: torch.Tensor, step: int, batch: dict) -> None:
        """Raise :class:`NonFiniteLossError` (on every rank) when some rank's loss is not finite."""
        finite = bool(torch.isfinite(loss.detach()).all())
        if not all_ranks_true(finite, self.ctx):
            raise NonFiniteLossError(step, batch_ids(batch), "loss", float(loss.detach()), elsewhere=finite)


def _sum_terms(a: dict, b: dict) -> dict:
    """Clip A's and clip B's terms summed, plus ``total_a`` and ``total_b``."""
    out = {k: a[k] + b[k] for k in a}
    out["total_a"], out["total_b"] = a["total"], b["total"]
    return out


def find_unused_needed(cfg: Config) -> bool:
    """Whether DDP must look for parameters without gradient in a step.

    The history pooling layers only get a gradient when a clip uses pooled history, which
    one-step history training does every step (two-step does it in every other optimizer
    step, "off" never); a disabled prompt kind may leave generator projections unused.
    """
    p = cfg.model.prompts
    if not (p.use_temporal and p.use_vision and p.use_language):
        return True
    return p.use_history and cfg.train.history_training != "one-step"


# ============================================================================ evaluation


def evaluate_split(model: nn.Module, records: Sequence, cfg: Config, device: torch.device) -> dict[str, Any]:
    """J&F (and J, F, per-kind J&F when available) of ``model`` on ``records``, via ``rvoslib.evaluate``.

    ``evaluate_model`` runs the model in eval mode and restores its mode afterwards. Only
    JSON-friendly values (numbers, dicts of numbers) are kept.
    """
    from rvoslib.evaluate import evaluate_model

    with torch.no_grad():
        result = evaluate_model(model, records, cfg, device, progress=False, dtype=amp_dtype(cfg.train.amp, device))
    return _json_metrics(result)


def _json_metrics(result: Any) -> Any:
    """Keep numbers and nested dicts of numbers."""
    if isinstance(result, dict):
        kept = {str(k): _json_metrics(v) for k, v in result.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {}}
    if isinstance(result, (bool, np.bool_)):
        return None
    if isinstance(result, (int, float, np.integer, np.floating)):
        return float(result)
    if isinstance(result, torch.Tensor) and result.numel() == 1:
        return float(result)
    return None


# ============================================================================ run folder


class RunLog:
    """``log.jsonl``: one JSON object per line, written by rank 0.

    Three kinds of record, all with ``step`` (steps done), ``time`` (wall seconds since the
    run began, summed over resumed sessions) and ``cpu_s`` (this process's CPU seconds):

    - training: ``loss`` (this step's total), ``loss_avg`` (mean total since the previous
      line), ``lr`` (``{"base": ..., "prompt_head": ...}`` used by this step), ``terms``
      (every loss term, mean over ranks, and ``grad_norm`` before clipping);
    - validation: ``val`` (``J&F``, ``J``, ``F``, ``J&F/<kind>``, ``num_objects``), ``eval_s``;
    - failure: ``error`` (the message of :class:`NonFiniteLossError`).
    """

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = Path(path), enabled

    def write(self, record: dict) -> None:
        """Append one record and flush."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=False) + "\n")

    def cut_after(self, step: int) -> None:
        """Drop records of steps after ``step`` (steps an interrupted run did after its last checkpoint)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        from rvoslib.io import atomic_path

        with atomic_path(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def read_log(path: Union[str, Path]) -> list[dict]:
    """The records of a run's ``log.jsonl`` (a run folder or the file itself)."""
    path = Path(path)
    path = path / LOG_NAME if path.is_dir() else path
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_config_json(cfg: Config, out_dir: Path) -> Path:
    """``out_dir/config.json`` (atomic)."""
    from rvoslib.io import atomic_path

    path = out_dir / CONFIG_NAME
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(cfg.to_dict(), indent=1) + "\n", encoding="utf-8")
    return path


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def config_differences(old: Config, new: Config) -> list[str]:
    """``"key: old -> new"`` for every config field that differs."""
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _check_resume_config(saved: Config, cfg: Config, path: Path) -> None:
    """Model changes are an error; other changes (except logging/paths) a warning."""
    diffs = [d for d in config_differences(saved, cfg) if d.split(":")[0] not in RESUME_SILENT_KEYS]
    model_diffs = [d for d in diffs if d.startswith("model.") and not d.startswith("model.backbone.pretrained")]
    if model_diffs:
        raise ValueError(f"cannot resume from {str(path)!r}: the model config differs from the checkpoint's: "
                         f"{'; '.join(model_diffs[:6])}")
    if diffs:
        logger.warning("resuming from %s with a changed config (the run will not repeat an uninterrupted one "
                       "exactly): %s", path, "; ".join(diffs))


def _resume_path(resume: Union[bool, str, Path, None], out_dir: Path) -> Optional[Path]:
    if resume is None or resume is False:
        return None
    path = out_dir / LAST_NAME if resume is True else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {str(path)!r}")
    return path


def _check_config(cfg: Config) -> None:
    """Clear errors for training settings that cannot work."""
    t = cfg.train
    if t.history_training not in HISTORY_MODES:
        raise ValueError(f"train.history_training={t.history_training!r} is not one of {HISTORY_MODES}")
    amp_dtype(t.amp, torch.device("cpu"))
    for name in ("steps", "batch_size", "grad_accum"):
        if getattr(t, name) < 1:
            raise ValueError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    for name in ("ckpt_every", "eval_every", "log_every"):
        if getattr(t, name) < 0:
            raise ValueError(f"train.{name} must be >= 0 (0 disables), got {getattr(t, name)}")


# ============================================================================ train


def build_training(cfg: Config, ctx: DistContext) -> tuple[nn.Module, torch.optim.Optimizer, Any, Optional[Any]]:
    """Seed, then build the model (on ``ctx.device``, train mode), AdamW, the LambdaLR schedule and
    the fp16 ``GradScaler`` (None unless ``amp`` resolves to fp16 on CUDA)."""
    from rvoslib.model import build_model

    seed_everything(cfg.train.seed)  # the same initial weights on every rank and on resume
    model = build_model(cfg.model).to(ctx.device).train()
    model.set_history_training(cfg.train.history_training)  # in-training evaluation runs as the checkpoint will
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype(cfg.train.amp, ctx.device) == torch.float16 else None
    return model, optimizer, scheduler, scaler


def _restore(state: dict, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
             path: Path) -> None:
    """Load weights and optimizer, scheduler, scaler states from a loaded checkpoint."""
    load_model_weights(model, state, source=f"checkpoint {str(path)!r}")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def train(cfg: Config, device: Optional[Union[str, torch.device]] = None, resume: Union[bool, str, Path] = False,
          stop_after: Optional[int] = None, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Train a model as ``cfg`` describes (see the module docstring); returns a summary.

    Args:
        cfg: the experiment (``cfg.train.out_dir`` is the run folder).
        device: where to train (default: CUDA when available; ``cuda:LOCAL_RANK`` under torchrun).
        resume: False (fresh run), True (continue from ``out_dir/last.pt``) or a checkpoint path.
        stop_after: stop once this many steps are done (as an interruption would, writing no
            extra checkpoint); None trains to ``cfg.train.steps``.
        progress: show a tqdm progress bar (rank 0).
        overwrite: allow a fresh run in an ``out_dir`` that already holds a ``last.pt``.

    Returns:
        ``steps`` (done), ``last_loss``, ``best_jf`` / ``best_step`` (None without
        evaluation), ``last_val`` (metrics of the last evaluation), ``wall_s`` (this call),
        ``stopped`` (True when ``stop_after`` ended it early), the paths ``out_dir``,
        ``last_checkpoint``, ``best_checkpoint`` (None when no evaluation ran), ``log``,
        ``config``, and ``model``: the trained ``VLPRVOS`` itself (this process's copy, in
        train mode; the last weights, not the best).

    Raises:
        NonFiniteLossError: the loss or gradient became NaN/inf (the last checkpoint is kept).
    """
    _check_config(cfg)
    out_dir = Path(cfg.train.out_dir)
    resume_path = _resume_path(resume, out_dir)
    if resume_path is None and (out_dir / LAST_NAME).exists() and not overwrite:
        raise FileExistsError(f"{str(out_dir)!r} already holds a run ({LAST_NAME}); resume it (resume=True, --resume), "
                              "choose another out_dir, or pass overwrite=True (--overwrite)")
    ctx = init_distributed(device)
    try:
        return _train(cfg, ctx, out_dir, resume_path, stop_after, progress)
    finally:
        cleanup(ctx)


def _train(cfg: Config, ctx: DistContext, out_dir: Path, resume_path: Optional[Path], stop_after: Optional[int],
           progress: bool) -> dict[str, Any]:
    started = time.perf_counter()
    model, optimizer, scheduler, scaler = build_training(cfg, ctx)
    state = None
    if resume_path is not None:
        state = load_checkpoint(resume_path)
        _check_resume_config(config_of(state), cfg, resume_path)
        _restore(state, model, optimizer, scheduler, scaler, resume_path)
    extra = dict(state["extra"]) if state else {}
    start = int(state["step"]) if state else 0
    end = cfg.train.steps if stop_after is None else max(start, min(cfg.train.steps, int(stop_after)))

    train_records = read_split(cfg, cfg.data.train_split)
    dataset = make_train_dataset(train_records, cfg)
    loader = make_train_loader(dataset, cfg, start, end, ctx)
    val_records = _val_records(cfg) if ctx.is_main and cfg.train.eval_every > 0 else None

    runner = wrap_ddp(ClipRunner(model), ctx, find_unused_parameters=find_unused_needed(cfg))
    trainer = Trainer(model, runner, optimizer, cfg, ctx, scaler)
    log = RunLog(out_dir / LOG_NAME, enabled=ctx.is_main)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_config_json(cfg, out_dir)
        if state is None:  # a fresh run (overwrite=True if there was one): nothing stale stays
            for name in (LOG_NAME, LAST_NAME, BEST_NAME):
                (out_dir / name).unlink(missing_ok=True)
        else:
            log.cut_after(start)
    if state is not None:
        set_rng_state(state["rng"])  # last: everything above may have drawn random numbers
    logger.info("training %s steps %d..%d: %d clips/step (batch %d x accum %d x %d process(es)), %d items, device %s",
                cfg.model.backbone.model_name, start + 1, end, cfg.train.batch_size * cfg.train.grad_accum *
                ctx.world_size, cfg.train.batch_size, cfg.train.grad_accum, ctx.world_size, len(dataset), ctx.device)

    loop = _Loop(cfg, ctx, model, optimizer, scheduler, scaler, trainer, log, val_records, out_dir, extra)
    loop.run(loader, start, end, progress)
    return loop.summary(started, stopped=end < cfg.train.steps)


def _val_records(cfg: Config) -> Optional[list]:
    """Validation records, or None (with a warning) when the split cannot be read."""
    try:
        records = read_split(cfg, cfg.data.val_split)
    except (OSError, ValueError) as err:
        logger.warning("no evaluation during training: cannot read the %r split of %s (%s)",
                       cfg.data.val_split, cfg.data.root, err)
        return None
    if not any(r.has_masks for r in records):
        logger.warning("no evaluation during training: split %r has no masks", cfg.data.val_split)
        return None
    return records


class _Loop:
    """The step loop: progress, logging, evaluation, checkpoints (rank 0), barriers."""

    def __init__(self, cfg: Config, ctx: DistContext, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: Any, trainer: Trainer, log: RunLog, val_records: Optional[list],
                 out_dir: Path, extra: dict):
        self.cfg, self.ctx, self.model, self.optimizer = cfg, ctx, model, optimizer
        self.scheduler, self.scaler, self.trainer, self.log = scheduler, scaler, trainer, log
        self.val_records, self.out_dir = val_records, out_dir
        self.best_jf: Optional[float] = extra.get("best_jf")
        self.best_step: Optional[int] = extra.get("best_step")
        self.last_val: dict = dict(extra.get("last_val") or {})
        self.last_loss: Optional[float] = extra.get("last_loss")
        self.elapsed_before = float(extra.get("elapsed_s", 0.0))
        self.cpu_before = float(extra.get("cpu_s", 0.0))
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()
        self.step = 0
        self.window: list[float] = []

    def elapsed(self) -> float:
        """Training wall time over all sessions of this run, in seconds."""
        return self.elapsed_before + time.perf_counter() - self.t0

    def cpu(self) -> float:
        """CPU time of this process (all its threads) over all sessions of this run, in seconds.

        Beside the wall time it tells how much of a slow run was waiting on a busy machine.
        """
        return self.cpu_before + time.process_time() - self.cpu0

    def _times(self) -> dict[str, float]:
        return {"time": round(self.elapsed(), 3), "cpu_s": round(self.cpu(), 3)}

    def run(self, loader: DataLoader, start: int, end: int, progress: bool) -> None:
        from tqdm.auto import tqdm

        self.step = start
        accum = self.cfg.train.grad_accum
        batches = iter(loader)
        bar = tqdm(total=self.cfg.train.steps, initial=start, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (progress and self.ctx.is_main))
        try:
            while self.step < end:
                micro = [next(batches) for _ in range(accum)]
                lrs = current_lrs(self.optimizer)  # the lrs this step uses
                try:
                    terms = self.trainer.train_step(micro, self.step + 1)
                except NonFiniteLossError as err:
                    self.log.write({"step": self.step + 1, **self._times(), "error": str(err)})
                    raise
                self.scheduler.step()
                self.step += 1
                self._after_step(terms, lrs, bar)
        finally:
            bar.close()

    def _after_step(self, terms: dict[str, float], lrs: dict[str, float], bar: Any) -> None:
        t = self.cfg.train
        self.last_loss = terms["total"]
        self.window.append(terms["total"])
        bar.update(1)
        bar.set_postfix(loss=f"{terms['total']:.4f}", lr=f"{lrs.get('base', next(iter(lrs.values()))):.2e}",
                        refresh=False)
        last = self.step == t.steps
        if t.log_every and (self.step % t.log_every == 0 or last):
            self._log_step(terms, lrs)
        eval_due = t.eval_every > 0 and (self.step % t.eval_every == 0 or last)
        ckpt_due = (t.ckpt_every > 0 and self.step % t.ckpt_every == 0) or last
        if not (eval_due or ckpt_due):
            return
        barrier(self.ctx)  # every rank has finished the step before rank 0 reads the weights
        if self.ctx.is_main and eval_due and self.val_records is not None:
            self._evaluate()
        if self.ctx.is_main and ckpt_due:
            save_checkpoint(self.out_dir / LAST_NAME, self.model, self.cfg, self.step, self.optimizer,
                            self.scheduler, self.scaler, self._extra(), full=t.save_full_model)
        barrier(self.ctx)  # no rank runs ahead of the evaluation and the checkpoint

    def _log_step(self, terms: dict[str, float], lrs: dict[str, float]) -> None:
        terms = mean_over_ranks(terms, self.ctx)  # every rank logs at the same steps
        record = {"step": self.step, **self._times(), "loss": terms["total"],
                  "loss_avg": float(np.mean(self.window)), "lr": lrs,
                  "terms": {k: v for k, v in terms.items() if k != "total"}}
        self.window = []
        self.log.write(record)

    def _evaluate(self) -> None:
        started = time.perf_counter()
        self.last_val = evaluate_split(self.model, self.val_records, self.cfg, self.ctx.device)
        jf = self.last_val.get("J&F")
        improved = jf is not None and (self.best_jf is None or jf > self.best_jf)
        if improved:
            self.best_jf, self.best_step = jf, self.step
        self.log.write({"step": self.step, **self._times(), "val": self.last_val,
                        "eval_s": round(time.perf_counter() - started, 3)})
        logger.info("step %d: val J&F %s (best %s at step %s)", self.step, _fmt(jf), _fmt(self.best_jf), self.best_step)
        if improved:
            save_checkpoint(self.out_dir / BEST_NAME, self.model, self.cfg, self.step, self.optimizer, self.scheduler,
                            self.scaler, self._extra(), full=self.cfg.train.save_full_model)

    def _extra(self) -> dict:
        return {"best_jf": self.best_jf, "best_step": self.best_step, "last_val": self.last_val,
                "last_loss": self.last_loss, "elapsed_s": self.elapsed(), "cpu_s": self.cpu(),
                "world_size": self.ctx.world_size,
                "global_batch": self.cfg.train.batch_size * self.cfg.train.grad_accum * self.ctx.world_size}

    def summary(self, started: float, stopped: bool) -> dict[str, Any]:
        best = self.out_dir / BEST_NAME
        return {
            "steps": self.step, "last_loss": self.last_loss, "best_jf": self.best_jf, "best_step": self.best_step,
            "last_val": self.last_val, "wall_s": time.perf_counter() - started, "stopped": stopped,
            "out_dir": str(self.out_dir), "last_checkpoint": str(self.out_dir / LAST_NAME),
            "best_checkpoint": str(best) if best.exists() else None,
            "log": str(self.out_dir / LOG_NAME), "config": str(self.out_dir / CONFIG_NAME),
            "model": self.model,
        }


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ============================================================================ command line


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare the ``rvoslib train`` options on ``parser`` (sets ``func=run_train``; returns the parser)."""
    parser.add_argument("--preset", default="tiny", help="config preset: tiny | clip-b16 | clip-l14 (default: tiny)")
    parser.add_argument("--config", type=Path, default=None,
                        help="start from a saved config.json (e.g. runs/x/config.json) instead of --preset")
    parser.add_argument("--data", default=None, help="dataset root (default: the config's data.root, "
                        "data_samples/synthetic for the presets)")
    parser.add_argument("--format", default=None, help="dataset format: ytvos (also the synthetic sets), mevis, "
                        "davis, a2d (default: the config's data.format)")
    parser.add_argument("--out", default=None, help="run folder for checkpoints, log.jsonl and config.json "
                        "(default: the config's train.out_dir, runs/tiny for the tiny preset)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
    parser.add_argument("--batch-size", type=int, default=None, help="clips per device per step")
    parser.add_argument("--pretrained", default=None,
                        help="CLIP weights: an open_clip tag, a local checkpoint, or 'none' for random weights "
                             f"(default: the preset's; for tiny, {TINY_CLIP_CHECKPOINT} when present)")
    parser.add_argument("--device", default=None, help="cpu | cuda | cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue the run in --out from its last.pt (or from CHECKPOINT)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in an --out that holds a run")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, repeatable: --set train.lr=3e-4 "
                             "--set model.spatiotemporal.attention=full")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice); 1 is often fastest on a busy machine")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_train)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """The ``Config`` that ``rvoslib train`` arguments describe (preset or config.json, then options, then --set)."""
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"--config {str(args.config)!r} does not exist")
        cfg = Config.from_dict(json.loads(args.config.read_text(encoding="utf-8")))
    else:
        cfg = use_shipped_tiny_clip(get_preset(args.preset))
    if args.data is not None:
        cfg.data.root = args.data
    elif args.config is None:
        cfg.data.root = str(find_sample(cfg.data.root))
    if args.format is not None:
        cfg.data.format = args.format
    if args.out is not None:
        cfg.train.out_dir = args.out
    if args.steps is not None:
        cfg.train.steps = args.steps
    if args.batch_size is not None:
        cfg.train.batch_size = args.batch_size
    if args.pretrained is not None:
        cfg.model.backbone.pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    return apply_overrides(cfg, args.overrides)


def run_train(args: argparse.Namespace) -> int:
    """``rvoslib train``: build the config from ``args``, train, log the summary; returns 0."""
    cfg = config_from_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if cfg.model.backbone.pretrained is None:
        logger.warning("training with randomly initialised CLIP weights (no --pretrained)")
    summary = train(cfg, device=args.device, resume=args.resume, progress=not args.no_progress,
                    overwrite=args.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        logger.info("done: %d steps, last loss %s, best val J&F %s (step %s); run folder %s", summary["steps"],
                    _fmt(summary["last_loss"]), _fmt(summary["best_jf"]), summary["best_step"], summary["out_dir"])
    return 0

