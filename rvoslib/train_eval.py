"""Evaluation hooks of training: the validation records and J&F of the model on them (rank 0)."""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from rvoslib.config import Config
from rvoslib.train_data import read_split
from rvoslib.train_step import amp_dtype

logger = logging.getLogger(__name__)


def evaluate_split(model: nn.Module, records: Sequence, cfg: Config, device: torch.device) -> dict[str, Any]:
    """J&F (and J, F, per-kind J&F when available) of ``model`` on ``records``, via ``rvoslib.evaluate``.

    With ``train.eval_max_videos = n > 0`` only the first ``n`` scorable videos are scored (0: all).
    ``evaluate_model`` runs the model in eval mode and restores its mode afterwards. Only
    JSON-friendly values (numbers, dicts of numbers) are kept.
    """
    from rvoslib.evaluate import evaluate_model

    with torch.no_grad():
        result = evaluate_model(model, records, cfg, device, max_videos=cfg.train.eval_max_videos or None,
                                progress=False, dtype=amp_dtype(cfg.train.amp, device))
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


def val_records_of(cfg: Config) -> Optional[list]:
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
