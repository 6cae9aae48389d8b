"""The run folder: ``log.jsonl``, ``config.json``, the checkpoint names, resume checks.

Files of a run folder ``out_dir``: ``last.pt`` (every ``ckpt_every`` steps and at the end),
``best.pt`` (best validation J&F), ``log.jsonl`` (:class:`RunLog`) and ``config.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional, Union

from rvoslib.config import Config

logger = logging.getLogger(__name__)

LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
LAST_NAME = "last.pt"
BEST_NAME = "best.pt"
# config keys that may change on resume without breaking exactness
RESUME_SILENT_KEYS = ("train.out_dir", "train.eval_every", "train.ckpt_every", "train.log_every",
                      "data.num_workers", "model.backbone.cache_dir")


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


def check_resume_config(saved: Config, cfg: Config, path: Path) -> None:
    """Model changes are an error; other changes (except logging/paths) a warning."""
    diffs = [d for d in config_differences(saved, cfg) if d.split(":")[0] not in RESUME_SILENT_KEYS]
    model_diffs = [d for d in diffs if d.startswith("model.") and not d.startswith("model.backbone.pretrained")]
    if model_diffs:
        raise ValueError(f"cannot resume from {str(path)!r}: the model config differs from the checkpoint's: "
                         f"{'; '.join(model_diffs[:6])}")
    if diffs:
        logger.warning("resuming from %s with a changed config (the run will not repeat an uninterrupted one "
                       "exactly): %s", path, "; ".join(diffs))


def resume_path_of(resume: Union[bool, str, Path, None], out_dir: Path) -> Optional[Path]:
    if resume is None or resume is False:
        return None
    path = out_dir / LAST_NAME if resume is True else Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: no checkpoint at {str(path)!r}")
    return path
