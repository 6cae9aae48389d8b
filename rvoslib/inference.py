"""Online inference: segment the objects that sentences refer to in a video of any length and size.

``segment_video(video, sentences, model)`` reads a frames folder, a video file or a uint8
array, and runs the model clip by clip, the way VLP-RVOS is meant to run online:

1. the video is cut into non-overlapping windows of ``window`` frames (default: the
   model's training clip length T); the last window is padded by repeating the last
   frame, and the outputs of padded frames are dropped (``rvoslib.data.eval_windows``);
2. every window is resized to S x S and CLIP-normalised exactly as the evaluation
   dataset does (``rvoslib.data.transforms``), and all sentences go through the model
   together as a batch (B = number of sentences, or chunks of ``batch_size``);
3. the history tokens the model returns for one window are fed to the next one, so
   what was segmented earlier guides what comes later (unless the model's history pooling
   was never trained: see :func:`carries_history`);
4. the ``(B, T, S, S)`` mask logits are upsampled (bilinear) to the original frame size
   and only then thresholded: ``masks = sigmoid(logits) > threshold``.

The window is the memory knob: activation memory grows with ``window x batch`` while
the result does not need more than one window of frames on the device at a time.

Results come back as a :class:`SegmentationResult` (``masks (K, T, H, W)`` bool, K
sentences). The writers live in :mod:`rvoslib.outputs` and are re-exported here:
:func:`write_overlay` turns a result into an mp4, a GIF or a PNG folder (:func:`write_panels`:
one labelled panel per sentence) and :func:`save_masks` into palette PNGs.
``add_segment_arguments`` / ``run_segment`` are the ``rvoslib segment`` command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from einops import repeat

from rvoslib.data.dataset import eval_windows
from rvoslib.data.transforms import frames_to_tensor, normalize, resize_frames
from rvoslib.io import IMAGE_EXTENSIONS, read_video
from rvoslib.outputs import (  # noqa: F401 - re-exported: the writers used to live here
    DEFAULT_FPS,
    check_output_path,
    output_fps,
    overlay,
    save_masks,
    write_images,
    write_overlay,
    write_panels,
    write_png_folder,
)
from rvoslib.panels import DEFAULT_PANEL_SIZE

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

TRAIN_HINT = (
    "train one with `rvoslib train` (see `rvoslib train --help`; the tiny preset trains on the "
    "bundled synthetic data on a CPU) and pass its best.pt, e.g. --checkpoint runs/tiny/best.pt"
)


# --------------------------------------------------------------------------- result


@dataclass
class SegmentationResult:
    """What :func:`segment_video` returns for one video and K sentences.

    Attributes:
        masks: (K, T, H, W) bool, one mask per sentence and frame at the original frame size.
        sentences: the K sentences, in the order of ``masks``.
        frame_names: T frame names (file stems for a folder, zero-padded indices otherwise).
        frame_indices: T positions in the source video (after stride) of the frames in ``masks``.
        logits: (K, T, H, W) float32 upsampled logits when asked for (``return_logits``), else None.
        threshold: probability threshold that made ``masks``.
        window: frames per forward pass that were used.
        source: the video path, or None for an array.
        stride: frame stride used when reading ``source``.
        max_frames: frame limit used when reading ``source``.
        source_fps: frame rate of a video file (None for folders and arrays).
        timing: ``read_s`` (decoding), ``inference_s`` (model + upsampling), ``total_s``,
            ``frames_per_second`` (video frames per inference second, all sentences at once)
            and ``device``.
    """

    masks: np.ndarray
    sentences: list[str]
    frame_names: list[str]
    frame_indices: list[int]
    logits: Optional[np.ndarray] = None
    threshold: float = 0.5
    window: int = 0
    source: Optional[str] = None
    stride: int = 1
    max_frames: Optional[int] = None
    source_fps: Optional[float] = None
    timing: dict = field(default_factory=dict)

    @property
    def probabilities(self) -> Optional[np.ndarray]:
        """(K, T, H, W) float32 ``sigmoid(logits)``, or None without logits."""
        if self.logits is None:
            return None
        return (1.0 / (1.0 + np.exp(-self.logits.astype(np.float64)))).astype(np.float32)

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[1])

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the masks, the original frame size."""
        return int(self.masks.shape[2]), int(self.masks.shape[3])

    def coverage(self) -> list[float]:
        """Per sentence, the mean fraction of frame pixels inside the mask."""
        return [float(m.mean()) for m in self.masks]


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


def check_window(window: Any, max_frames: Optional[int] = None) -> int:
    """``window`` as an int >= 1 (and <= the model's ``max_frames`` when given)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1 (frames per forward pass), got {window!r}")
    if max_frames is not None and window > max_frames:
        raise ValueError(f"window={window} exceeds the model's temporal prompt capacity "
                         f"(prompts.max_frames={max_frames}); use a window of at most {max_frames} frames")
    return int(window)


def probability_logit(threshold: float) -> float:
    """The logit of a probability: ``sigmoid(x) > threshold`` exactly when ``x > probability_logit(threshold)``."""
    return math.log(threshold / (1.0 - threshold))


def check_threshold(threshold: float) -> float:
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1 (a probability), got {threshold!r}")
    return float(threshold)


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
        import imageio.v2 as imageio

        with contextlib.closing(imageio.get_reader(str(path))) as reader:
            meta = reader.get_meta_data()
        fps = meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else None)
        return float(fps) if fps and math.isfinite(float(fps)) and fps > 0 else None
    except Exception as error:  # noqa: BLE001 - the frame rate is a nicety
        logger.debug("no frame rate for %s: %s", path, error)
        return None


def load_video(video: Any, stride: int = 1, max_frames: Optional[int] = None) -> dict:
    """Frames and their names from a path (frames folder / video file) or an array.

    Returns:
        dict: ``frames`` (T, H, W, 3) uint8, ``names`` (T,), ``indices`` (T,) positions in the
        source, ``source`` (str or None), ``fps`` (float or None).
    """
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")
    if isinstance(video, (str, os.PathLike)):
        path = resolve_video_path(video)
        frames, names = read_video(path, stride=stride, max_frames=max_frames)
        indices = [i * stride for i in range(len(frames))]
        return {"frames": frames, "names": names, "indices": indices, "source": str(path), "fps": probe_fps(path)}
    if isinstance(video, (np.ndarray, torch.Tensor)):
        frames, indices = frames_from_array(video, stride, max_frames)
        return {"frames": frames, "names": [f"{i:05d}" for i in indices], "indices": indices,
                "source": None, "fps": None}
    raise TypeError(f"video must be a frames folder, a video file or a (T, H, W, 3) uint8 array, "
                    f"got {type(video).__name__}")


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


# --------------------------------------------------------------------------- core


def prepare_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, S, S) float32, resized and CLIP-normalised as ``RVOSDataset`` does."""
    return normalize(resize_frames(frames_to_tensor(frames), size))


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, n, S, S) logits -> (B, n, H, W) float32, bilinear (``align_corners=False``)."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _chunks(num: int, batch_size: Optional[int]) -> list[slice]:
    """Slices of at most ``batch_size`` rows covering ``range(num)`` (one slice when None)."""
    if batch_size is None:
        return [slice(0, num)]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be None or an integer >= 1, got {batch_size!r}")
    return [slice(i, min(i + batch_size, num)) for i in range(0, num, batch_size)]


_warned_untrained_history = weakref.WeakSet()  # models already warned about by carries_history


def carries_history(model: Any, num_windows: int) -> bool:
    """Whether the history tokens one window returns are fed to the next window.

    Not when the model's history pooling was never trained (``model.history_trained`` False:
    a checkpoint trained with ``train.history_training="off"``): pooled tokens from untrained
    layers would only disturb it, so every window gets the learned initial tokens, as every
    training clip did. That is logged once per model (not per window or video), and only when
    it changes something (more than one window).
    """
    if getattr(model, "history_trained", True):
        return True
    if num_windows > 1 and model not in _warned_untrained_history:
        _warned_untrained_history.add(model)
        logger.warning("this model's history tokens were never trained (train.history_training='off'), so every "
                       "window starts from the learned initial tokens instead of the previous window's history; "
                       "train with history_training='two-step' (the default) to carry history across windows")
    return False


def run_windows(model: Any, frames: np.ndarray, tokens: torch.Tensor, *, window: int, size: int,
                device: torch.device, dtype: Optional[torch.dtype] = None, threshold: float = 0.5,
                keep: Optional[Sequence[int]] = None, return_logits: bool = False,
                batch_size: Optional[int] = None, bar: Any = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Online clip-by-clip inference over a whole video: the one loop every caller reuses.

    Args:
        model: a VLPRVOS in eval mode on ``device``.
        frames: (T, H, W, 3) uint8, the whole video at its original size.
        tokens: (K, L_ctx) tokens of K sentences.
        window: frames per forward pass; the last window is padded by repeating the last frame.
        size: S, the model's input side.
        device, dtype: where to run and the optional autocast dtype (e.g. torch.bfloat16).
        threshold: probability threshold applied after upsampling.
        keep: frame indices whose outputs are stored (default all; e.g. the annotated frames
            of a sparsely annotated video). Every frame still goes through the model.
        return_logits: also return the upsampled logits.
        batch_size: sentences per forward pass (None: all K at once).
        bar: optional tqdm bar, advanced by the number of real frames of each window.
    Returns:
        masks (K, T_keep, H, W) bool and logits (K, T_keep, H, W) float32 or None.
    """
    num_frames, height, width = frames.shape[:3]
    keep = list(range(num_frames)) if keep is None else [int(i) for i in keep]
    slot = {index: position for position, index in enumerate(keep)}  # frame index -> output row
    num_sentences = tokens.shape[0]
    masks = np.zeros((num_sentences, len(keep), height, width), dtype=bool)
    logits_out = np.zeros(masks.shape, dtype=np.float32) if return_logits else None
    chunks = _chunks(num_sentences, batch_size)
    cut = probability_logit(threshold)
    history: list[Optional[torch.Tensor]] = [None] * len(chunks)  # one carried state per chunk
    tokens = tokens.to(device)
    windows = list(eval_windows(num_frames, window))
    carry = carries_history(model, len(windows))
    for indices, valid in windows:
        real = [i for i, v in zip(indices, valid) if v]
        wanted = [(n, slot[i]) for n, i in enumerate(real) if i in slot]  # (window position, output row)
        clip = prepare_frames(frames[indices], size).to(device)  # (window, 3, S, S)
        for c, rows in enumerate(chunks):
            batch = repeat(clip, "t c h w -> b t c h w", b=rows.stop - rows.start)
            with _autocast(device, dtype):
                out = model(batch, tokens[rows], history[c])
            history[c] = out["history"] if carry else None  # (b, N_h, D_v) detached, fed to the next window
            if not wanted:
                continue
            positions = [n for n, _ in wanted]
            logits = upsample_logits(out["pred_masks"][:, positions], (height, width))  # (b, n, H, W)
            targets = [r for _, r in wanted]
            masks[rows, targets] = (logits > cut).cpu().numpy()  # sigmoid(logits) > threshold
            if logits_out is not None:
                logits_out[rows, targets] = logits.cpu().numpy()
        if bar is not None:
            bar.update(len(real))
    return masks, logits_out


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False)


def segment_frames(frames: np.ndarray, sentences: Union[str, Sequence[str]], model: Any, *,
                   window: Optional[int] = None, device: Union[str, torch.device, None] = None,
                   dtype: Optional[torch.dtype] = None, threshold: float = 0.5, return_logits: bool = False,
                   batch_size: Optional[int] = None, keep: Optional[Sequence[int]] = None,
                   frame_names: Optional[Sequence[str]] = None, progress: bool = True,
                   pretrained: Optional[str] = None) -> SegmentationResult:
    """Segment an in-memory video: (T, H, W, 3) uint8 frames; see :func:`segment_video`.

    ``keep`` restricts the returned frames to those indices (all frames are still processed,
    so the history is the same); ``frame_names`` names the T frames (default ``00000``...).
    """
    texts = check_sentences(sentences)
    threshold = check_threshold(threshold)
    frames, _ = frames_from_array(frames)
    model, device = resolve_model(model, device, pretrained)
    start = time.perf_counter()
    cfg = model.cfg
    window = check_window(cfg.num_frames if window is None else window, _max_prompt_frames(cfg))
    names = [f"{i:05d}" for i in range(len(frames))] if frame_names is None else list(frame_names)
    if len(names) != len(frames):
        raise ValueError(f"got {len(names)} frame names for {len(frames)} frames")
    keep = None if keep is None else sorted({int(i) for i in keep})
    if keep is not None and any(not 0 <= i < len(frames) for i in keep):
        raise IndexError(f"keep lists frames outside 0..{len(frames) - 1}: {keep}")
    with eval_mode(model), torch.inference_mode(), \
            _progress_bar(len(frames), "segment", progress) as bar:
        tokens = model.tokenize(texts)  # (K, L_ctx)
        masks, logits = run_windows(model, frames, tokens, window=window, size=cfg.backbone.image_size,
                                    device=device, dtype=dtype, threshold=threshold, keep=keep,
                                    return_logits=return_logits, batch_size=batch_size, bar=bar)
    seconds = time.perf_counter() - start
    indices = list(range(len(frames))) if keep is None else keep
    return SegmentationResult(
        masks=masks, sentences=texts, frame_names=[names[i] for i in indices], frame_indices=indices,
        logits=logits, threshold=threshold, window=window,
        timing={"inference_s": seconds, "frames_per_second": len(frames) / max(seconds, 1e-9),
                "device": str(device)},
    )


def _max_prompt_frames(cfg: Any) -> Optional[int]:
    """The largest T the model's temporal prompts support, when it uses them."""
    prompts = getattr(cfg, "prompts", None)
    if prompts is None or not getattr(prompts, "use_temporal", False):
        return None
    return getattr(prompts, "max_frames", None)


def segment_video(video: Any, sentences: Union[str, Sequence[str]], model: Any, *,
                  window: Optional[int] = None, stride: int = 1, max_frames: Optional[int] = None,
                  device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None,
                  threshold: float = 0.5, return_logits: bool = False, batch_size: Optional[int] = None,
                  progress: bool = True, pretrained: Optional[str] = None) -> SegmentationResult:
    """Segment what each sentence refers to in every frame of a video, online, clip by clip.

    Args:
        video: a frames folder (jpg/png, sorted by name; a DAVIS ``<seq>/`` folder with
            ``JPEGImages/`` also works), a video file (mp4, ...), or a (T, H, W, 3) uint8 array.
        sentences: one sentence or a list; each gives one mask per frame.
        model: a VLPRVOS or the path of an rvoslib checkpoint (``rvoslib train`` writes them).
        window: frames per forward pass (default ``model.cfg.num_frames``): the memory knob.
        stride: keep every ``stride``-th frame of the source.
        max_frames: stop after this many (kept) frames.
        device: where to run (default: where the model is; CUDA if available for a checkpoint).
        dtype: autocast dtype, e.g. ``torch.bfloat16`` on CUDA (None: float32).
        threshold: probability above which a pixel is foreground, applied to the logits
            upsampled to the original frame size.
        return_logits: keep the (K, T, H, W) upsampled logits in the result.
        batch_size: sentences per forward pass (None: all at once).
        progress: show a tqdm progress bar.
        pretrained: CLIP weights for a trainable-only checkpoint on this machine.
    Returns:
        :class:`SegmentationResult` with ``masks (K, T, H, W)`` bool at the original size. The
        whole video's frames and masks stay in memory (T x H x W x 3 and K x T x H x W bytes;
        4 times more for logits); use ``stride`` / ``max_frames`` for very long videos.
    Raises:
        FileNotFoundError (video or checkpoint missing), ValueError (empty sentence, window < 1,
        corrupt video, ...), TypeError (model is neither a VLPRVOS nor a checkpoint path).
    """
    start = time.perf_counter()
    texts = check_sentences(sentences)  # fail on bad sentences before any decoding
    if window is not None:
        check_window(window)
    loaded = load_video(video, stride=stride, max_frames=max_frames)
    read_s = time.perf_counter() - start
    result = segment_frames(loaded["frames"], texts, model, window=window, device=device, dtype=dtype,
                            threshold=threshold, return_logits=return_logits, batch_size=batch_size,
                            frame_names=loaded["names"], progress=progress, pretrained=pretrained)
    result.frame_indices = loaded["indices"]
    result.source, result.stride, result.max_frames = loaded["source"], stride, max_frames
    result.source_fps = loaded["fps"]
    result.timing.update(read_s=read_s, total_s=time.perf_counter() - start)
    logger.info("segmented %d frames (%dx%d) for %d sentence(s) in %.2f s (%.1f frames/s on %s)",
                result.num_frames, result.frame_size[1], result.frame_size[0], len(texts),
                result.timing["inference_s"], result.timing["frames_per_second"], result.timing["device"])
    return result


# --------------------------------------------------------------------------- command line

SEGMENT_HELP = """\
Segment the object each sentence refers to in every frame of a video, and write an
overlay (mp4, GIF or a folder of PNGs) and/or the masks as PNGs. With --panels the
overlay has one labelled panel per sentence, side by side. The video is a frames folder, a
DAVIS sequence folder (with JPEGImages/) or a video file. Needs a trained checkpoint.

examples:
  rvoslib segment data_samples/davis/blackswan "a black feathered swan" --checkpoint runs/x/best.pt --out swan.mp4
  rvoslib segment clip.mp4 "the dog on the left" "the person" --checkpoint runs/x/best.pt --masks masks/
  rvoslib segment clip.mp4 "the dog on the left" "the person" --checkpoint runs/x/best.pt --panels --out dogs.gif
"""


def parse_dtype(name: Optional[str], device: torch.device) -> Optional[torch.dtype]:
    """"auto" (bfloat16 on CUDA when supported, else None), "float32", "bfloat16", "float16" -> dtype."""
    if name in (None, "float32"):
        return None
    if name == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else None
    choices = {"bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in choices:
        raise ValueError(f"dtype must be auto, float32, bfloat16 or float16, got {name!r}")
    return choices[name]


def add_inference_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``segment`` and ``evaluate``: model, device, precision, windowing."""
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="trained rvoslib checkpoint (runs/<name>/best.pt)")
    parser.add_argument("--pretrained", default=None,
                        help="CLIP weights for a trainable-only checkpoint (open_clip tag or local file)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                        help="autocast precision (default auto: bfloat16 on CUDA, float32 on CPU)")
    parser.add_argument("--window", type=int, default=None,
                        help="frames per forward pass (default: the model's clip length T); lower it to save memory")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sentences per forward pass (default: all of a video's sentences at once)")
    parser.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold (default: 0.5)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the arguments of ``rvoslib segment`` on ``parser`` (sets ``func=run_segment``).

    Also gives the parser the command's description (with examples) unless it has one.
    """
    if not parser.description:
        parser.description = SEGMENT_HELP
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("video", help="frames folder, DAVIS sequence folder or video file")
    parser.add_argument("sentences", nargs="+", metavar="SENTENCE", help="referring expression(s), quoted")
    add_inference_options(parser)
    parser.add_argument("--out", type=Path, default=None,
                        help="overlay to write: .mp4, .gif, or a path without extension for a folder of one PNG "
                             "per frame (default: <video name>_segmented.mp4 unless --masks is given)")
    parser.add_argument("--panels", action="store_true",
                        help="write one panel per sentence side by side instead of one frame with every mask: "
                             "each panel shows that sentence's mask in its own bright colour, outlined, with the "
                             "sentence written above it; small frames are enlarged (see --panel-size)")
    parser.add_argument("--panel-size", type=_pixels, default=None, metavar="PIXELS",
                        help=f"with --panels: enlarge small frames (nearest-neighbour, by a whole factor) until "
                             f"each panel's short side is at least PIXELS; larger frames keep their size, they "
                             f"are never shrunk (default: {DEFAULT_PANEL_SIZE})")
    parser.add_argument("--no-frame-counter", dest="frame_counter", action="store_false",
                        help="with --panels: leave out the 'frame t / T' line under the panels")
    parser.add_argument("--masks", type=Path, default=None, help="folder for the mask PNGs (<k>/<frame>.png)")
    parser.add_argument("--fps", type=float, default=None, help="overlay frame rate (default: the source's, else 10)")
    parser.add_argument("--stride", type=int, default=1, help="keep every N-th frame (default: 1)")
    parser.add_argument("--max-frames", type=int, default=None, help="segment at most this many frames")
    parser.set_defaults(func=run_segment)


def _pixels(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of pixels >= 1, got {text}")
    return value


def check_panel_options(args: argparse.Namespace, out: Optional[Path]) -> None:
    """--panel-size and --no-frame-counter need --panels, and --panels needs an overlay (--out)."""
    if not args.panels:
        if args.panel_size is not None or not args.frame_counter:
            option = "--panel-size" if args.panel_size is not None else "--no-frame-counter"
            raise ValueError(f"{option} only applies to panels: add --panels")
    elif out is None:
        raise ValueError("--panels draws the overlay: give --out (.mp4, .gif or a folder for PNGs)")


def require_checkpoint(checkpoint: Optional[PathLike], command: str) -> Path:
    """The checkpoint path, or a clear error saying a trained one is needed and how to get it."""
    if checkpoint is None:
        raise ValueError(f"{command} needs a trained checkpoint (--checkpoint PATH): an untrained model gives "
                         f"meaningless masks. To get one, {TRAIN_HINT}")
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist; {TRAIN_HINT}")
    return path


def run_segment(args: argparse.Namespace) -> int:
    """``rvoslib segment``: segment, then write the overlay and/or the masks; returns the exit code."""
    from rvoslib.runtime import pick_device

    checkpoint = require_checkpoint(args.checkpoint, "rvoslib segment")
    sentences = check_sentences(args.sentences)
    video = resolve_video_path(args.video)
    device = pick_device(args.device)
    out = args.out
    if out is None and args.masks is None:
        out = Path(f"{Path(args.video).name or 'video'}_segmented.mp4")
    check_panel_options(args, out)
    for path, what in ((out, "--out"), (args.masks, "--masks")):
        if path is not None:
            check_output_path(path, video, what)
    result = segment_video(video, sentences, str(checkpoint), window=args.window, stride=args.stride,
                           max_frames=args.max_frames, device=device, dtype=parse_dtype(args.dtype, device),
                           threshold=args.threshold, batch_size=args.batch_size, progress=args.progress,
                           pretrained=args.pretrained)
    for sentence, share in zip(result.sentences, result.coverage()):
        logger.info("%5.1f%% of the pixels: %r", 100 * share, sentence)
    if out is not None and args.panels:
        write_panels(result, None, out, fps=args.fps, panel_size=args.panel_size or DEFAULT_PANEL_SIZE,
                     frame_counter=args.frame_counter)
        logger.info("wrote panels %s", out)
    elif out is not None:
        write_overlay(result, None, out, fps=args.fps)
        logger.info("wrote overlay %s", out)
    if args.masks is not None:
        save_masks(result, args.masks)
    return 0
