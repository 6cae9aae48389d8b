"""What online inference takes in: sentences, a video (folder, file or array), a model (object or checkpoint).

* :func:`check_sentences`: one sentence or a list, none empty.
* :func:`open_video`: a :class:`VideoSource` whose ``frames()`` decodes a frames folder or a video
  file a few frames at a time (:func:`rvoslib.io.iter_video`), or walks an in-memory array;
  :func:`load_video` reads it all into memory.
* :func:`resolve_model`: a ready model and its device from a VLPRVOS or a checkpoint path;
  :func:`eval_mode` runs a block in eval mode and restores the training flag.

Everything here is re-exported by :mod:`rvoslib.inference`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from rvoslib.io import IMAGE_EXTENSIONS, count_video_frames, iter_video
from rvoslib.video_decode import video_fps

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

TRAIN_HINT = (
    "train one with `rvoslib train` (see `rvoslib train --help`; the tiny preset trains on the "
    "bundled synthetic data on a CPU) and pass its best.pt, e.g. --checkpoint runs/tiny/best.pt"
)


# --------------------------------------------------------------------------- inputs


def check_sentences(sentences: Union[str, Sequence[str]]) -> list[str]:
    """A sentence or a list of them -> list[str]; empty or whitespace sentences are errors."""
    items = [sentences] if isinstance(sentences, str) else list(sentences) if sentences is not None else []
    if not items:
        raise ValueError("no sentence given: pass a sentence such as \"the dog on the left\" or a list of them")
    for k, sentence in enumerate(items):
        if not isinstance(sentence, str):
            raise TypeError(f"sentence {k} must be a str, got {type(sentence).__name__}")
        if not sentence.strip():
            raise ValueError(f"sentence {k} is empty or whitespace: {sentence!r}; describe the object to segment")
    return items


def frames_from_array(frames: Any, stride: int = 1, max_frames: Optional[int] = None) -> tuple[np.ndarray, list[int]]:
    """Validate an in-memory video: (T, H, W, 3) uint8 (also (T, H, W) gray or (T, H, W, 4) RGBA).

    Returns:
        frames (T', H, W, 3) uint8 after ``stride`` and ``max_frames``, and their source indices.
    """
    if hasattr(frames, "detach"):  # a torch tensor
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"video array must be uint8 RGB in [0, 255], got dtype {frames.dtype}; "
                        "for [0, 1] floats use (x * 255).round().astype(np.uint8)")
    if frames.ndim == 3:  # (T, H, W) grayscale
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4) or frames.shape[0] == 0:
        raise ValueError(f"video array must have shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    frames = frames[..., :3]  # RGBA -> RGB
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    indices = list(range(0, frames.shape[0], stride))[:max_frames]
    if len(indices) < frames.shape[0]:
        frames = frames[indices]
    return np.ascontiguousarray(frames), indices


def resolve_video_path(path: PathLike) -> Path:
    """A video path; a DAVIS-style sequence folder (``<seq>/JPEGImages``) resolves to its frames."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video path does not exist: {path}")
    if path.is_dir() and not any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir()):
        if (path / "JPEGImages").is_dir():
            logger.info("reading frames from %s", path / "JPEGImages")
            return path / "JPEGImages"
    return path


def probe_fps(path: PathLike) -> Optional[float]:
    """Frame rate of a video file from its metadata (None for folders or when unknown)."""
    path = Path(path)
    if path.is_dir():
        return None
    try:
        fps = video_fps(path)
    except Exception as error:  # noqa: BLE001 - the frame rate is a nicety
        logger.debug("no frame rate for %s: %s", path, error)
        return None
    return float(fps) if fps and math.isfinite(float(fps)) and fps > 0 else None


@dataclass
class VideoSource:
    """A video opened for streaming: where it comes from and how to iterate its frames.

    Attributes:
        source: the resolved path, or None for an array.
        fps: the file's frame rate (None for folders and arrays).
        num_frames: how many frames will come (None when a video file's header does not say).
        stride, max_frames: the sampling used.
    """

    source: Optional[str]
    fps: Optional[float]
    num_frames: Optional[int]
    stride: int
    max_frames: Optional[int]
    array: Optional[np.ndarray] = None

    def frames(self) -> Iterator[tuple[str, int, np.ndarray]]:
        """``(name, source index, (H, W, 3) uint8)`` per frame, decoded as they are asked for."""
        if self.array is not None:
            for position, frame in enumerate(self.array):
                index = position * self.stride
                yield f"{index:05d}", index, frame
            return
        for position, (name, frame) in enumerate(iter_video(self.source, self.stride, self.max_frames)):
            yield name, position * self.stride, frame


def open_video(video: Any, stride: int = 1, max_frames: Optional[int] = None) -> VideoSource:
    """A :class:`VideoSource` for a frames folder, a video file or a (T, H, W, 3) uint8 array."""
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    if isinstance(video, (str, os.PathLike)):
        path = resolve_video_path(video)
        return VideoSource(str(path), probe_fps(path), count_video_frames(path, stride, max_frames),
                           stride, max_frames)
    if isinstance(video, (np.ndarray, torch.Tensor)):
        frames, indices = frames_from_array(video, stride, max_frames)
        return VideoSource(None, None, len(frames), stride, max_frames, array=frames)
    raise TypeError(f"video must be a frames folder, a video file or a (T, H, W, 3) uint8 array, "
                    f"got {type(video).__name__}")


def load_video(video: Any, stride: int = 1, max_frames: Optional[int] = None) -> dict:
    """Frames and their names from a path (frames folder / video file) or an array, all in memory.

    Returns:
        dict: ``frames`` (T, H, W, 3) uint8, ``names`` (T,), ``indices`` (T,) positions in the
        source, ``source`` (str or None), ``fps`` (float or None).
    """
    opened = open_video(video, stride, max_frames)
    names, indices, frames = [], [], []
    for name, index, frame in opened.frames():
        names.append(name)
        indices.append(index)
        frames.append(frame)
    return {"frames": np.stack(frames), "names": names, "indices": indices, "source": opened.source,
            "fps": opened.fps}


# --------------------------------------------------------------------------- model


def unwrap_model(model: Any) -> Any:
    """The module inside DistributedDataParallel / DataParallel wrappers."""
    while isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    return model


def is_segmentation_model(model: Any) -> bool:
    """A VLPRVOS, or an object with its inference interface (``tokenize``, ``cfg``, callable)."""
    from rvoslib.model import VLPRVOS  # imports open_clip: only when a model is given

    if isinstance(model, VLPRVOS):
        return True
    cfg = getattr(model, "cfg", None)
    return (callable(model) and callable(getattr(model, "tokenize", None))
            and hasattr(getattr(cfg, "backbone", None), "image_size") and hasattr(cfg, "num_frames"))


def model_device(model: Any) -> torch.device:
    """Device of the model's first parameter or buffer (CPU when it has none)."""
    for tensor in getattr(model, "parameters", lambda: iter(()))():
        return tensor.device
    for tensor in getattr(model, "buffers", lambda: iter(()))():
        return tensor.device
    return torch.device("cpu")


def resolve_model(model: Any, device: Union[str, torch.device, None] = None,
                  pretrained: Optional[str] = None) -> tuple[Any, torch.device]:
    """A ready model and its device from a model object or a checkpoint path.

    Args:
        model: a VLPRVOS (or compatible object), or the path of an rvoslib checkpoint.
        device: where to run; None keeps the model where it is (a checkpoint goes to CUDA
            when available). A model object is moved to ``device`` when one is given.
        pretrained: CLIP weights for a trainable-only checkpoint (see ``model_from_checkpoint``).
    """
    if isinstance(model, (str, os.PathLike)):
        from rvoslib.checkpoint import model_from_checkpoint
        from rvoslib.runtime import pick_device

        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; {TRAIN_HINT}")
        target = pick_device(device)
        loaded, _ = model_from_checkpoint(path, device=target, pretrained=pretrained)
        return loaded, target
    model = unwrap_model(model)
    if not is_segmentation_model(model):
        raise TypeError(f"model must be a VLPRVOS (rvoslib.model.build_model) or the path of an rvoslib "
                        f"checkpoint, got {type(model).__name__}")
    if device is None:
        return model, model_device(model)
    device = torch.device(device)
    if isinstance(model, torch.nn.Module):
        model.to(device)
    return model, device


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Put ``model`` in eval mode for the block and restore its training flag afterwards."""
    was_training = bool(getattr(model, "training", False))
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield
    finally:
        if was_training and hasattr(model, "train"):
            model.train(True)
