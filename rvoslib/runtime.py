"""Run-time choices shared by notebooks, engines and the command line.

``setup()`` is the one helper every notebook calls in its first code cell: it
reads ``RVOSLIB_MODE`` (``fast`` | ``full`` | ``auto``), seeds every generator,
and picks a device. ``seed_everything`` and ``pick_device`` are reused by the
engines.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

MODES = ("fast", "full", "auto")
TINY_CLIP_SCENES_CHECKPOINT = "data_samples/tiny_clip/rvos-tiny-scenes.pt"  # tiny CLIP v2, pretrained on scenes
TINY_CLIP_SCENES_MODEL = "rvos-tiny2"  # its open_clip config (rvoslib/model_configs/rvos-tiny2.json)
TINY_CLIP_CHECKPOINT = TINY_CLIP_SCENES_CHECKPOINT  # the shipped tiny pretrained CLIP the tiny preset uses
TINY_CLIP_MODEL = TINY_CLIP_SCENES_MODEL  # its architecture, the tiny preset's backbone.model_name
TINY_RVOS_CHECKPOINT = "data_samples/tiny_rvos/rvos-tiny-synthetic.pt"  # the shipped tiny VLP-RVOS (on that CLIP)


@dataclass(frozen=True)
class Runtime:
    """What a notebook or script should do on this machine."""

    mode: str  # "fast" (tiny preset, CPU-sized data) or "full" (real presets, GPU)
    device: torch.device  # where tensors and models go
    seed: int  # the seed every generator got

    @property
    def fast(self) -> bool:
        return self.mode == "fast"

    @property
    def root(self) -> Path:
        """The repository folder (the first of the current folder and its parents that holds
        ``data_samples/``; the folder above the package when none does)."""
        here = Path.cwd()
        return next((p for p in (here, *here.parents) if (p / "data_samples").is_dir()), repo_root())


def repo_root() -> Path:
    """The folder above the ``rvoslib`` package: the repository root in a source checkout."""
    return Path(__file__).resolve().parents[1]


def find_sample(relative: str | Path) -> Path:
    """Resolve a path such as ``data_samples/tiny_clip/rvos-tiny-scenes.pt``.

    Absolute paths and paths that exist from the current folder are returned as they
    are; otherwise the path is taken relative to the repository root when it exists
    there (so notebooks, which run inside ``notebooks/``, find the shipped samples).
    """
    path = Path(relative)
    if path.is_absolute() or path.exists():
        return path
    beside = repo_root() / path
    return beside if beside.exists() else path


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_mode(mode: str | None = None) -> str:
    """``mode`` or ``$RVOSLIB_MODE`` (default ``auto``), with ``auto`` -> full on CUDA, else fast."""
    mode = (mode or os.environ.get("RVOSLIB_MODE") or "auto").strip().lower()
    if mode not in MODES:
        raise ValueError(f"RVOSLIB_MODE={mode!r} is not one of {MODES}")
    if mode == "auto":
        mode = "full" if torch.cuda.is_available() else "fast"
    return mode


def use_text_progress_bars() -> None:
    """Make ``tqdm.auto`` (the notebooks' and rvoslib's progress bars) draw text bars, not widgets.

    A finished text bar stays readable after a notebook is saved and reopened, where a widget
    bar shows "model not found". Affects modules that look ``tqdm.auto.tqdm`` up after this
    call (rvoslib's modules import it inside functions or after ``setup``).
    """
    import tqdm.auto
    import tqdm.std

    tqdm.auto.tqdm, tqdm.auto.trange = tqdm.std.tqdm, tqdm.std.trange


def setup(seed: int = 0, mode: str | None = None, device: str | None = None,
          text_progress: bool = True) -> Runtime:
    """Read the mode, seed everything, pick the device; log and return the choices.

    In fast mode the device is the CPU unless one is given, so a notebook's fast
    run behaves the same on a laptop and on a GPU machine. With ``text_progress`` (the
    default: notebooks call this first) progress bars are text (:func:`use_text_progress_bars`).
    """
    if text_progress:
        use_text_progress_bars()
    mode = resolve_mode(mode)
    seed_everything(seed)
    chosen = torch.device(device) if device else (torch.device("cpu") if mode == "fast" else pick_device())
    rt = Runtime(mode=mode, device=chosen, seed=seed)
    log.info("rvoslib runtime: mode=%s device=%s seed=%d", rt.mode, rt.device, rt.seed)
    return rt


def use_shipped_tiny_clip(cfg):
    """Point a tiny-preset config at the shipped tiny pretrained CLIP when it is present.

    Only a config with the shipped CLIP's architecture (``TINY_CLIP_MODEL``) and no CLIP
    weights chosen is changed.
    Returns ``cfg`` (changed in place) for chaining.
    """
    backbone = cfg.model.backbone
    if backbone.model_name == TINY_CLIP_MODEL and backbone.pretrained is None:
        shipped = find_sample(TINY_CLIP_CHECKPOINT)
        backbone.pretrained = str(shipped) if shipped.is_file() else None
    return cfg


def notebook_config(rt: Runtime):
    """The notebooks' config: tiny preset with the shipped tiny CLIP in fast mode, clip-b16 in full mode."""
    from rvoslib.config import get_preset

    cfg = use_shipped_tiny_clip(get_preset("tiny" if rt.fast else "clip-b16"))
    log.info("notebook config: %s, CLIP weights %s", cfg.model.backbone.model_name,
             cfg.model.backbone.pretrained or "random (shipped tiny CLIP not found)")
    return cfg
