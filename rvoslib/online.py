"""The online loop: a video, window after window, with history carried between windows.

VLP-RVOS runs online: the video is cut into consecutive windows of ``window`` frames (the
model's training clip length T by default); each window goes through the model with the
history tokens the previous window returned, and only those few tokens are kept between
windows. The last window holds the frames that are left (``T mod window`` of them) and runs
as a shorter clip, as the official inference does: padding it by repeating the last frame
would feed the model frames that are not in the video, and the predictions of the real
frames would depend on that padding (the model accepts any T up to ``prompts.max_frames``;
its temporal prompts and time codes take the first T entries).

:class:`OnlineSegmenter` holds that state and segments one window at a time, so a caller can
stream a video of any length with memory bounded by the window size
(:func:`rvoslib.inference.stream_video`). :func:`run_windows` runs it over a video held in
memory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import weakref
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from einops import repeat

from rvoslib.data.transforms import frames_to_tensor, normalize, resize_frames

logger = logging.getLogger(__name__)


def window_ranges(num_frames: int, window: int) -> list[range]:
    """Consecutive windows of ``window`` frames covering ``range(num_frames)``; the last may be shorter.

    >>> window_ranges(10, 4)
    [range(0, 4), range(4, 8), range(8, 10)]
    """
    if num_frames < 1 or window < 1:
        raise ValueError(f"need num_frames >= 1 and window >= 1, got {num_frames}, {window}")
    return [range(start, min(start + window, num_frames)) for start in range(0, num_frames, window)]


def check_window(window: Any, max_frames: Optional[int] = None) -> int:
    """``window`` as an int >= 1 (and <= the model's ``max_frames`` when given)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1 (frames per forward pass), got {window!r}")
    if max_frames is not None and window > max_frames:
        raise ValueError(f"window={window} exceeds the model's temporal prompt capacity "
                         f"(prompts.max_frames={max_frames}); use a window of at most {max_frames} frames")
    return int(window)


def max_prompt_frames(cfg: Any) -> Optional[int]:
    """The largest T the model's temporal prompts support, when it uses them."""
    prompts = getattr(cfg, "prompts", None)
    if prompts is None or not getattr(prompts, "use_temporal", False):
        return None
    return getattr(prompts, "max_frames", None)


def probability_logit(threshold: float) -> float:
    """The logit of a probability: ``sigmoid(x) > threshold`` exactly when ``x > probability_logit(threshold)``."""
    return math.log(threshold / (1.0 - threshold))


def check_threshold(threshold: float) -> float:
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1 (a probability), got {threshold!r}")
    return float(threshold)


def prepare_frames(frames: np.ndarray, size: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (n, 3, S, S) float32, resized and CLIP-normalised as ``RVOSDataset`` does."""
    return normalize(resize_frames(frames_to_tensor(frames), size))


def upsample_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, n, S, S) logits -> (B, n, H, W) float32, bilinear (``align_corners=False``)."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for None / float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def sentence_chunks(num: int, batch_size: Optional[int]) -> list[slice]:
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


class OnlineSegmenter:
    """Segments a video window by window, keeping only the history tokens between windows.

    Args:
        model: a VLPRVOS (or compatible) in eval mode on ``device``.
        tokens: (K, L_ctx) tokens of K sentences.
        size: S, the model's input side.
        device, dtype: where to run and the optional autocast dtype.
        threshold: probability threshold, applied after upsampling to the frame size.
        batch_size: sentences per forward pass (None: all K at once); each chunk of sentences
            carries its own history.
        return_logits: also return the upsampled logits of each window.

    Call it with each window's (n, H, W, 3) uint8 frames in order; ``n`` may differ between
    calls (the last window of a video is usually shorter). Run it under ``torch.inference_mode``.
    """

    def __init__(self, model: Any, tokens: torch.Tensor, *, size: int, device: torch.device,
                 dtype: Optional[torch.dtype] = None, threshold: float = 0.5,
                 batch_size: Optional[int] = None, return_logits: bool = False):
        self.model, self.size, self.device, self.dtype = model, size, device, dtype
        self.tokens = tokens.to(device)  # (K, L_ctx)
        self.chunks = sentence_chunks(tokens.shape[0], batch_size)
        self.cut = probability_logit(check_threshold(threshold))
        self.return_logits = return_logits
        self.history: list[Optional[torch.Tensor]] = [None] * len(self.chunks)  # one carried state per chunk
        self.windows = 0

    def __call__(self, frames: np.ndarray, keep: Optional[Sequence[int]] = None
                 ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """One window: (n, H, W, 3) uint8 -> masks (K, n', H, W) bool and logits (K, n', H, W) float32
        or None, for the ``keep`` positions of the window (default all n)."""
        carry = carries_history(self.model, self.windows + 1)
        self.windows += 1
        height, width = frames.shape[1:3]
        positions = list(range(len(frames))) if keep is None else list(keep)
        num_sentences = self.tokens.shape[0]
        masks = np.zeros((num_sentences, len(positions), height, width), dtype=bool)
        logits_out = np.zeros(masks.shape, dtype=np.float32) if self.return_logits else None
        clip = prepare_frames(frames, self.size).to(self.device)  # (n, 3, S, S)
        for c, rows in enumerate(self.chunks):
            batch = repeat(clip, "t c h w -> b t c h w", b=rows.stop - rows.start)
            with autocast(self.device, self.dtype):
                out = self.model(batch, self.tokens[rows], self.history[c])
            self.history[c] = out["history"] if carry else None  # (b, N_h, D_v) detached, for the next window
            if not positions:
                continue
            logits = upsample_logits(out["pred_masks"][:, positions], (height, width))  # (b, n', H, W)
            masks[rows] = (logits > self.cut).cpu().numpy()  # sigmoid(logits) > threshold
            if logits_out is not None:
                logits_out[rows] = logits.cpu().numpy()
        return masks, logits_out


def run_windows(model: Any, frames: np.ndarray, tokens: torch.Tensor, *, window: int, size: int,
                device: torch.device, dtype: Optional[torch.dtype] = None, threshold: float = 0.5,
                keep: Optional[Sequence[int]] = None, return_logits: bool = False,
                batch_size: Optional[int] = None, bar: Any = None) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Online window-by-window inference over a video held in memory.

    Args:
        model: a VLPRVOS in eval mode on ``device``.
        frames: (T, H, W, 3) uint8, the whole video at its original size.
        tokens: (K, L_ctx) tokens of K sentences.
        window: frames per forward pass; the last window is shorter when T is not a multiple.
        size: S, the model's input side.
        device, dtype: where to run and the optional autocast dtype (e.g. torch.bfloat16).
        threshold: probability threshold applied after upsampling.
        keep: frame indices whose outputs are stored (default all; e.g. the annotated frames
            of a sparsely annotated video). Every frame still goes through the model.
        return_logits: also return the upsampled logits.
        batch_size: sentences per forward pass (None: all K at once).
        bar: optional tqdm bar, advanced by the frames of each window.
    Returns:
        masks (K, T_keep, H, W) bool and logits (K, T_keep, H, W) float32 or None.
    """
    num_frames, height, width = frames.shape[:3]
    keep = list(range(num_frames)) if keep is None else [int(i) for i in keep]
    slot = {index: position for position, index in enumerate(keep)}  # frame index -> output row
    masks = np.zeros((tokens.shape[0], len(keep), height, width), dtype=bool)
    logits_out = np.zeros(masks.shape, dtype=np.float32) if return_logits else None
    segmenter = OnlineSegmenter(model, tokens, size=size, device=device, dtype=dtype, threshold=threshold,
                                batch_size=batch_size, return_logits=return_logits)
    for span in window_ranges(num_frames, window):
        wanted = [(n, slot[i]) for n, i in enumerate(span) if i in slot]  # (window position, output row)
        window_masks, window_logits = segmenter(frames[span.start:span.stop], [n for n, _ in wanted])
        rows = [r for _, r in wanted]
        masks[:, rows] = window_masks
        if logits_out is not None:
            logits_out[:, rows] = window_logits
        if bar is not None:
            bar.update(len(span))
    return masks, logits_out
