"""Optimizer and learning-rate schedule of the training engine (DESIGN section 6).

Parameter groups, chosen by parameter name (names as in ``model.trainable_named_parameters()``):

=====================  =====================  ==========================================
group                  learning rate          parameters
=====================  =====================  ==========================================
``prompt_head``        ``lr_prompt_head``     ``prompts.*`` (prompt generator), ``head.*`` (mask head)
``prompt_head_no_wd``  ``lr_prompt_head``     the same, without weight decay
``base``               ``lr``                 every other trainable parameter
``base_no_wd``         ``lr``                 the same, without weight decay
=====================  =====================  ==========================================

No weight decay (the usual transformer recipe) on: tensors with at most one dimension
(biases, LayerNorm/GroupNorm scales, the zero-initialised stage-1 gates ``alpha``, whose
decay would pull the gates shut) and on learned embeddings/tokens (frame embeddings,
raw prompt tokens, history tokens and queries): these are inputs, not weights of a
linear map, and decaying them only shrinks the prompts. Empty groups are left out.

Schedule: linear warm-up, then step decay, as a factor on each group's base lr
(:func:`lr_factor`, wrapped in a ``LambdaLR``). The scheduler is stepped once per
training step, after the optimizer.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import torch
from torch import nn

from rvoslib.config import TrainConfig

PROMPT_HEAD_PREFIXES = ("prompts.", "head.")  # parameters trained at lr_prompt_head
NO_DECAY_NAME_PARTS = ("embed", "raw", "tokens", "queries")  # learned inputs: no weight decay


def is_prompt_or_head(name: str) -> bool:
    """Whether a parameter belongs to the prompt generator or the mask head."""
    return name.startswith(PROMPT_HEAD_PREFIXES)


def uses_weight_decay(name: str, param: torch.Tensor) -> bool:
    """False for biases, norm scales, gates (ndim <= 1) and learned embeddings/tokens."""
    if param.ndim <= 1:
        return False
    leaf = name.rsplit(".", 1)[-1]
    return not any(part in leaf for part in NO_DECAY_NAME_PARTS)


def param_groups(named_params: Iterable[tuple[str, nn.Parameter]], cfg: TrainConfig) -> list[dict]:
    """AdamW parameter groups (see the module docstring) from ``(name, parameter)`` pairs.

    Each group is a dict with ``params``, ``names`` (parallel list of names), ``name``
    (the group name), ``lr`` and ``weight_decay``. Parameters without ``requires_grad``
    are skipped.
    """
    groups: dict[str, dict] = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        key = "prompt_head" if is_prompt_or_head(name) else "base"
        decay = uses_weight_decay(name, param)
        key = key if decay else f"{key}_no_wd"
        if key not in groups:
            lr = cfg.lr_prompt_head if key.startswith("prompt_head") else cfg.lr
            groups[key] = {"name": key, "params": [], "names": [], "lr": lr,
                           "weight_decay": cfg.weight_decay if decay else 0.0}
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    order = ("base", "base_no_wd", "prompt_head", "prompt_head_no_wd")
    return [groups[k] for k in order if k in groups]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the model's trainable parameters, grouped by :func:`param_groups`.

    ``model`` must offer ``trainable_named_parameters()`` (``VLPRVOS`` does); other modules
    fall back to their ``named_parameters()`` with ``requires_grad``.
    """
    if hasattr(model, "trainable_named_parameters"):
        named = model.trainable_named_parameters()
    else:
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = param_groups(named, cfg)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def milestone_steps(cfg: TrainConfig) -> list[int]:
    """Milestones as step counts: ``round(fraction * steps)`` for each ``lr_milestones`` entry."""
    for fraction in cfg.lr_milestones:
        if not 0.0 <= float(fraction) <= 1.0:
            raise ValueError(f"train.lr_milestones must be fractions of train.steps in [0, 1], got {cfg.lr_milestones}")
    return sorted(int(round(float(f) * cfg.steps)) for f in cfg.lr_milestones)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier for the optimizer step with 0-based index ``step``.

    ``min(1, (step + 1) / warmup_steps) * lr_gamma ** k`` where ``k`` counts the milestones
    ``m`` (in steps, :func:`milestone_steps`) with ``step >= m``. So the first step runs at
    ``lr / warmup_steps``, step ``warmup_steps - 1`` at the full lr, and step ``m`` is the
    first one at the decayed lr. ``warmup_steps=0`` disables the warm-up.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps > 0 else 1.0
    decays = sum(step >= m for m in milestone_steps(cfg))
    return warm * cfg.lr_gamma ** decays


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` with :func:`lr_factor`: after ``k`` scheduler steps the lr is ``base * lr_factor(k)``.

    The lambda is a closure over plain numbers, so the scheduler's ``state_dict`` holds
    no code (it stores ``None`` for function lambdas) and loads with ``weights_only=True``.
    """
    milestone_steps(cfg)  # validate early
    frozen = dataclasses.replace(cfg)  # later edits of cfg do not change a running schedule

    def factor(step: int) -> float:
        return lr_factor(step, frozen)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def current_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """``{group name: lr}`` (one entry per lr, e.g. ``base`` and ``prompt_head``)."""
    out: dict[str, float] = {}
    for i, group in enumerate(optimizer.param_groups):
        name = str(group.get("name", i)).removesuffix("_no_wd")
        out.setdefault(name, float(group["lr"]))
    return out
