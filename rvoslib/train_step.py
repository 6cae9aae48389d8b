"""The training step: one or two clips per item, AMP, gradient accumulation, clipping, history training.

:class:`ClipRunner` is the one ``forward`` DDP wraps; :class:`Trainer` runs a step on
``grad_accum`` micro-batches. A non-finite loss (or, without a GradScaler, a non-finite
gradient norm) raises :class:`NonFiniteLossError` naming the step and the clips, before the
optimizer touches the weights.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from rvoslib.config import Config
from rvoslib.distributed import DistContext, all_ranks_true
from rvoslib.losses import compute_losses
from rvoslib.train_data import batch_ids

HISTORY_MODES = ("off", "one-step", "two-step")
AMP_MODES = ("auto", "bf16", "fp16", "none")


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
