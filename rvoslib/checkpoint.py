"""Checkpoints: one format for training, resuming, evaluation and inference.

A checkpoint is a plain dict saved with ``torch.save`` and loaded with
``weights_only=True`` (no code is ever unpickled)::

    format      "rvoslib-checkpoint"
    version     1
    config      Config.to_dict()
    step        optimizer steps done
    model       the trainable weights (or every weight with ``full=True``)
    full        whether ``model`` includes the frozen CLIP weights
    backbone_sha256  sha256 of the local CLIP weights file the model was trained with, or None
                (open_clip tags, random weights, ``full``); loading warns when that file has changed
    optimizer / scheduler / scaler   their state dicts, or None
    rng         python, numpy and torch (CPU, CUDA) generator states
    extra       anything small the caller wants back (e.g. best J&F, data position)

Writes are atomic: the dict goes to a temporary file in the same folder, is
flushed to disk, then renamed over the target, so an interrupted write never
leaves a half file where a good checkpoint was.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import random
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from rvoslib.config import Config, check_config
from rvoslib.runtime import find_sample

logger = logging.getLogger(__name__)

FORMAT = "rvoslib-checkpoint"
VERSION = 1
PathLike = Union[str, os.PathLike]


class CheckpointFormatError(ValueError):
    """A file that is not a readable rvoslib checkpoint, or one that does not fit the model."""


# --------------------------------------------------------------------------- RNG states


def rng_state() -> dict:
    """Every generator's state as tensors and plain types (loadable with ``weights_only``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


# --------------------------------------------------------------------------- save / load


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``.

    A failed write (a full disk) raises an OSError naming ``path`` and leaves an earlier file as it was.
    """
    from rvoslib.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        try:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        except RuntimeError as error:  # torch's writer reports a full disk as a RuntimeError
            raise OSError(f"writing {str(path)!r} failed (full disk?): {error}") from error
    return path


@functools.lru_cache(maxsize=8)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def backbone_sha256(pretrained: Optional[str]) -> Optional[str]:
    """sha256 of ``backbone.pretrained`` when it names a local file (repository-relative paths of
    shipped samples included); None for open_clip tags (e.g. "openai") and random weights.

    Cached per (path, size, modification time), so a training run hashes its CLIP file once.
    """
    if not pretrained:
        return None
    file = find_sample(pretrained)
    if not file.is_file():
        return None
    info = file.stat()
    return _file_sha256(str(file.resolve()), info.st_size, info.st_mtime_ns)


def save_checkpoint(path: PathLike, model: torch.nn.Module, cfg: Config, step: int = 0,
                    optimizer: Optional[torch.optim.Optimizer] = None, scheduler: Any = None,
                    scaler: Any = None, extra: Optional[dict] = None, full: bool = False) -> Path:
    """Write a checkpoint atomically (see the module docstring); returns its path.

    ``full``: also store the frozen CLIP weights. Forced on when ``cfg`` names no CLIP weights
    (``backbone.pretrained`` None: random ones), since nothing could rebuild them at load time.
    """
    full = full or cfg.model.backbone.pretrained is None
    weights = model.state_dict() if full else model.trainable_state_dict()
    state = {
        "format": FORMAT,
        "version": VERSION,
        "config": cfg.to_dict(),
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in weights.items()},
        "full": bool(full),
        "backbone_sha256": None if full else backbone_sha256(cfg.model.backbone.pretrained),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
        "extra": extra or {},
    }
    out = atomic_torch_save(state, path)
    logger.info("saved checkpoint %s (step %d)", out, step)
    return out


def load_checkpoint(path: PathLike, map_location: Union[str, torch.device] = "cpu") -> dict:
    """Read a checkpoint with ``weights_only=True``; clear errors for missing or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated/corrupt files
        raise CheckpointFormatError(f"checkpoint {str(path)!r} is corrupt or not a torch file: {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointFormatError(f"{str(path)!r} is not an rvoslib checkpoint (no format={FORMAT!r} entry)")
    if state.get("version") != VERSION:
        raise CheckpointFormatError(f"checkpoint {str(path)!r} has version {state.get('version')}, "
                                    f"this rvoslib reads version {VERSION}")
    check_entries(state, path)
    return state


def check_entries(state: dict, path: PathLike) -> None:
    """The entries every checkpoint needs, with the right kinds; a clear error naming the file otherwise.

    ``config`` must be a dict, ``model`` a dict of tensors, ``step`` an integer.
    """
    for key, kind in (("config", dict), ("model", dict)):
        if key not in state:
            raise CheckpointFormatError(f"checkpoint {str(path)!r} has no {key!r} entry (entries: "
                                        f"{sorted(map(str, state))}); it is damaged or was not written by rvoslib")
        if not isinstance(state[key], kind):
            raise CheckpointFormatError(f"checkpoint {str(path)!r}: entry {key!r} is a "
                                        f"{type(state[key]).__name__}, expected a {kind.__name__}")
    bad = next((k for k, v in state["model"].items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: model entry {bad!r} is a "
                                    f"{type(state['model'][bad]).__name__}, not a tensor")
    step = state.get("step", 0)
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointFormatError(f"checkpoint {str(path)!r}: step must be an integer >= 0, got {step!r}")


def export_weights(src: PathLike, dst: PathLike, half: bool = False) -> Path:
    """Write a small inference checkpoint: config and model weights, no optimizer/scheduler/RNG.

    With ``half=True`` floating-point weights are stored as float16 (they are cast back to
    the model's dtype on load). The result loads with :func:`model_from_checkpoint`; it
    cannot ``--resume`` training.
    """
    state = load_checkpoint(src)
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state["model"].items()}
    small = {key: state[key] for key in ("format", "version", "config", "step", "full")}
    small["backbone_sha256"] = state.get("backbone_sha256")
    small.update(model=weights, optimizer=None, scheduler=None, scaler=None, rng=None,
                 extra={"exported_from": str(src), "half": bool(half), **state.get("extra", {})})
    out = atomic_torch_save(small, dst)
    logger.info("exported %s -> %s (%d tensors%s)", src, out, len(weights), ", float16" if half else "")
    return out


# Config fields added after checkpoints had been saved, and the value that reproduces what a
# checkpoint saved without them computed (the new fields' defaults may differ). A missing
# field takes this value, not the current default; read by ``config_of`` only.
LEGACY_DEFAULTS = {
    ("model", "vision", "capture_time_code"): "none",  # no time code in the temporal capture
    ("model", "vision", "capture_placement"): "attention",  # capture folded into the attention step
    ("model", "spatiotemporal", "decoder_words"): "fused",  # the stage-3 decoder reads stage-2's words
}


def config_of(state: dict) -> Config:
    """The ``Config`` stored in a loaded checkpoint.

    This is the one place where a saved config dict becomes a ``Config`` again: fields that an
    older checkpoint's config lacks are filled from :data:`LEGACY_DEFAULTS` (the behaviour it was
    trained with), the others from the current defaults.
    """
    return Config.from_dict(_with_legacy_defaults(state["config"]))


def _with_legacy_defaults(data: dict) -> dict:
    """A copy of a saved config dict with every missing field of :data:`LEGACY_DEFAULTS` filled in."""
    data = copy.deepcopy(data)
    for *sections, name in LEGACY_DEFAULTS:
        node = data
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                break
        else:
            node.setdefault(name, LEGACY_DEFAULTS[(*sections, name)])
    return data


def load_model_weights(model: torch.nn.Module, state: dict, source: str = "checkpoint") -> None:
    """Load a checkpoint's weights into ``model``; a missing or misshaped tensor is a clear error.

    Trainable-only checkpoints must hold exactly the model's trainable tensors; full
    checkpoints must hold every tensor of the state dict.
    """
    weights = state["model"]
    own = model.state_dict()
    expected = set(own) if state.get("full") else {n for n, _ in model.trainable_named_parameters()}
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - set(own))
    shapes = [f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(weights) & set(own)) if weights[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        details = "; ".join(filter(None, [
            f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else "",
            f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}" if unexpected else "",
            f"shape mismatch {shapes[:3]}" if shapes else "",
        ]))
        raise CheckpointFormatError(f"{source} does not fit this model (was it saved with another config?): {details}")
    own_dtypes = {k: own[k].dtype for k in weights}
    model.load_state_dict({k: v.to(own_dtypes[k]) for k, v in weights.items()}, strict=False)


def warn_if_backbone_changed(state: dict, pretrained: Optional[str], path: PathLike) -> None:
    """Warn when the local CLIP file ``pretrained`` is not the one the checkpoint was trained with:
    its frozen features differ, so the trained modules no longer fit them.

    Checkpoints written before rvoslib stored ``backbone_sha256`` are not checked.
    """
    trained_with = state.get("backbone_sha256")
    now = backbone_sha256(pretrained)
    if trained_with and now is not None and now != trained_with:
        logger.warning("checkpoint %r was trained with CLIP weights of sha256 %s..., but %r now holds %s...: the "
                       "frozen features differ, so this is not the model that was trained (load it with "
                       "model_from_checkpoint(..., pretrained=<the original file>), or retrain it)",
                       str(path), trained_with[:12], pretrained, now[:12])


def model_from_checkpoint(path: PathLike, device: Union[str, torch.device] = "cpu",
                          pretrained: Optional[str] = None):
    """Rebuild the model a checkpoint was trained with and load its weights.

    Args:
        path: checkpoint file.
        device: where the model goes.
        pretrained: override ``config.model.backbone.pretrained`` (the CLIP weights that a
            trainable-only checkpoint does not contain), e.g. a local file on this machine.

    Returns:
        ``(model in eval mode, Config)``.
    """
    from rvoslib.model import build_model  # model imports open_clip; keep this module light

    state = load_checkpoint(path)
    try:
        cfg = check_config(config_of(state), where="config")  # types and ranges, as for --set
    except (TypeError, ValueError) as error:
        raise CheckpointFormatError(f"checkpoint {str(path)!r} holds a config this rvoslib cannot read: "
                                    f"{error}") from None
    if pretrained is not None:
        cfg.model.backbone.pretrained = pretrained
    elif cfg.model.backbone.pretrained:
        stored = find_sample(cfg.model.backbone.pretrained)  # e.g. a shipped sample's repository-relative path
        if stored.is_file():
            cfg.model.backbone.pretrained = str(stored)
    if state.get("full"):
        cfg.model.backbone.pretrained = None  # every weight comes from the checkpoint
    else:
        warn_if_backbone_changed(state, cfg.model.backbone.pretrained, path)
    if not state.get("full") and cfg.model.backbone.pretrained is None:
        logger.warning("checkpoint %r holds only the trained modules, and the CLIP it was trained with had random "
                       "weights that were not saved: new random CLIP weights are drawn now, so this model is not the "
                       "one that was trained (rvoslib now stores random CLIP weights in every checkpoint; this one is older)",
                       str(path))
    model = build_model(cfg.model)
    load_model_weights(model, state, source=f"checkpoint {str(path)!r}")
    model.set_history_training(cfg.train.history_training)  # "off": inference falls back to initial tokens
    return model.to(device).eval(), cfg
