"""The training loop: build, resume, step, log, evaluate and checkpoint (see ``rvoslib.engine``)."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from rvoslib.checkpoint import config_of, load_checkpoint, load_model_weights, save_checkpoint, set_rng_state
from rvoslib.config import Config
from rvoslib.distributed import (
    DistContext,
    all_ranks_true,
    barrier,
    cleanup,
    init_distributed,
    mean_over_ranks,
    wrap_ddp,
)
from rvoslib.run_folder import (
    BEST_NAME,
    CONFIG_NAME,
    LAST_NAME,
    LOG_NAME,
    RunFolderLockedError,
    RunLog,
    check_resume_config,
    config_differences,
    remove_stale_temporaries,
    resume_path_of,
    run_folder_lock,
    write_config_json,
)
from rvoslib.runtime import seed_everything
from rvoslib.schedule import build_optimizer, build_scheduler, current_lrs
from rvoslib.train_data import make_train_dataset, make_train_loader, train_records
from rvoslib.train_eval import evaluate_split, val_records_of
from rvoslib.train_step import HISTORY_MODES, ClipRunner, NonFiniteLossError, Trainer, amp_dtype, find_unused_needed

logger = logging.getLogger(__name__)


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


# model config keys a run may change from the checkpoint it starts from (``train.init_from``)
INIT_FREE_KEYS = ("model.num_frames", "model.backbone.pretrained", "model.backbone.cache_dir")


def init_weights(model: nn.Module, cfg: Config) -> None:
    """Load the trained weights of ``cfg.train.init_from`` into a fresh model (optimizer and step start anew).

    The checkpoint's model config must equal ``cfg.model`` except for ``INIT_FREE_KEYS``
    (image pretraining runs at T=1, video training at T=6).
    """
    path = Path(cfg.train.init_from)
    if not path.is_file():
        raise FileNotFoundError(f"train.init_from: no checkpoint at {str(path)!r}")
    state = load_checkpoint(path)
    diffs = [d for d in config_differences(config_of(state), cfg)
             if d.startswith("model.") and d.split(":")[0] not in INIT_FREE_KEYS]
    if diffs:
        raise ValueError(f"train.init_from {str(path)!r}: its model config differs beyond "
                         f"{', '.join(INIT_FREE_KEYS)}: {'; '.join(diffs[:6])}")
    load_model_weights(model, state, source=f"train.init_from checkpoint {str(path)!r}")
    logger.info("initialised the trained weights from %s (step %s)", path, state.get("step"))


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
        RunFolderLockedError: another live process is training into ``out_dir``.
    """
    _check_config(cfg)
    out_dir = Path(cfg.train.out_dir)
    ctx = init_distributed(device)
    try:
        with contextlib.ExitStack() as stack:
            _lock_run_folder(stack, out_dir, ctx)
            resume_path = resume_path_of(resume, out_dir)
            if resume_path is None and (out_dir / LAST_NAME).exists() and not overwrite:
                raise FileExistsError(f"{str(out_dir)!r} already holds a run ({LAST_NAME}); resume it (resume=True, "
                                      "--resume), choose another out_dir, or pass overwrite=True (--overwrite)")
            if ctx.is_main:
                remove_stale_temporaries(out_dir)
            return _train(cfg, ctx, out_dir, resume_path, stop_after, progress)
    finally:
        cleanup(ctx)


def _lock_run_folder(stack: contextlib.ExitStack, out_dir: Path, ctx: DistContext) -> None:
    """Rank 0 takes the run-folder lock (held until ``stack`` closes); every rank raises if it could not."""
    refused: Optional[RunFolderLockedError] = None
    if ctx.is_main:
        try:
            stack.enter_context(run_folder_lock(out_dir))
        except RunFolderLockedError as err:
            refused = err
    if not all_ranks_true(refused is None, ctx):
        raise refused or RunFolderLockedError(f"run folder {str(out_dir)!r} is locked by another process")


def _train(cfg: Config, ctx: DistContext, out_dir: Path, resume_path: Optional[Path], stop_after: Optional[int],
           progress: bool) -> dict[str, Any]:
    started = time.perf_counter()
    model, optimizer, scheduler, scaler = build_training(cfg, ctx)
    state = None
    if resume_path is not None:
        state = load_checkpoint(resume_path)
        check_resume_config(config_of(state), cfg, resume_path)
        _restore(state, model, optimizer, scheduler, scaler, resume_path)
    extra = dict(state["extra"]) if state else {}
    start = int(state["step"]) if state else 0
    end = cfg.train.steps if stop_after is None else max(start, min(cfg.train.steps, int(stop_after)))

    if state is None and cfg.train.init_from:
        init_weights(model, cfg)
    dataset = make_train_dataset(train_records(cfg), cfg)
    loader = make_train_loader(dataset, cfg, start, end, ctx)
    val_records = val_records_of(cfg) if ctx.is_main and cfg.train.eval_every > 0 else None

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
        logger.info("step %d: val J&F %s (best %s at step %s)", self.step, fmt_metric(jf), fmt_metric(self.best_jf), self.best_step)
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


def fmt_metric(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"
