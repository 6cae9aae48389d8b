"""Training engine: data order, the training step, evaluation, checkpoints, resume, DDP, CLI.

This module is the public face of training; the work lives in one file per concept:

- :mod:`rvoslib.train_data`: the training dataset and :class:`StepBatchSampler` (batches
  as a pure function of ``(seed, step)``);
- :mod:`rvoslib.train_step`: :class:`ClipRunner`, :class:`Trainer` (AMP, accumulation,
  clipping, history training), :class:`NonFiniteLossError`;
- :mod:`rvoslib.train_eval`: periodic validation;
- :mod:`rvoslib.run_folder`: ``log.jsonl``, ``config.json``, checkpoint names, resume checks,
  the run-folder lock;
- :mod:`rvoslib.train_loop`: :func:`train` (build, resume, the step loop, checkpoints);
- :mod:`rvoslib.train_cli`: ``rvoslib train``.

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

from rvoslib.run_folder import (
    BEST_NAME,
    CONFIG_NAME,
    LAST_NAME,
    LOG_NAME,
    RESUME_SILENT_KEYS,
    RunLog,
    config_differences,
    read_log,
    write_config_json,
)
from rvoslib.train_cli import add_train_arguments, config_from_args, run_train
from rvoslib.train_data import (
    EpochItems,
    StepBatchSampler,
    batch_ids,
    make_train_dataset,
    make_train_loader,
    mix_records,
    read_split,
    train_clip_frames,
    train_records,
)
from rvoslib.train_eval import evaluate_split
from rvoslib.train_loop import build_training, init_weights, train
from rvoslib.train_step import (
    AMP_MODES,
    HISTORY_MODES,
    ClipRunner,
    NonFiniteLossError,
    Trainer,
    amp_dtype,
    clip_targets,
    find_unused_needed,
)

__all__ = [
    "AMP_MODES", "BEST_NAME", "CONFIG_NAME", "HISTORY_MODES", "LAST_NAME", "LOG_NAME", "RESUME_SILENT_KEYS",
    "ClipRunner", "EpochItems", "NonFiniteLossError", "RunLog", "StepBatchSampler", "Trainer",
    "add_train_arguments", "amp_dtype", "batch_ids", "build_training", "clip_targets", "config_differences",
    "config_from_args", "evaluate_split", "find_unused_needed", "make_train_dataset", "make_train_loader",
    "init_weights", "mix_records", "read_log", "read_split", "run_train", "train", "train_clip_frames",
    "train_records", "write_config_json",
]
