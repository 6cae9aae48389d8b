"""Online inference: segment the objects that sentences refer to in a video of any length and size.

``segment_video(video, sentences, model)`` reads a frames folder, a video file or a uint8
array, and runs the model window by window, the way VLP-RVOS is meant to run online
(:mod:`rvoslib.online`):

1. the video is cut into consecutive windows of ``window`` frames (default: the model's
   training clip length T); the last window holds the frames that are left and runs as a
   shorter clip (no padding with repeated frames);
2. every window is resized to S x S and CLIP-normalised exactly as the evaluation dataset
   does (``rvoslib.data.transforms``), and all sentences go through the model together as a
   batch (B = number of sentences, or chunks of ``batch_size``);
3. the history tokens the model returns for one window are fed to the next one, so what was
   segmented earlier guides what comes later (unless the model's history pooling was never
   trained: see :func:`rvoslib.online.carries_history`);
4. the ``(B, n, S, S)`` mask logits are upsampled (bilinear) to the original frame size and
   only then thresholded: ``masks = sigmoid(logits) > threshold``.

Memory. Frames are decoded a window at a time (:func:`rvoslib.io.iter_video`) and only the
history tokens are kept between windows, so the model side never holds more than one window.
What grows with the video is what the caller keeps:

* :func:`segment_video` returns a :class:`SegmentationResult` holding every mask
  (K x T x H x W bytes, 4 times more with logits), because notebooks and scripts want the masks
  as an array; it does not keep the frames. Right for short clips and for analysis.
* :func:`segment_to_files` (what ``rvoslib segment`` runs) hands every window to incremental
  writers (overlay video / GIF / PNG folder, mask PNGs: :mod:`rvoslib.outputs`) and keeps
  nothing, so its peak memory is the same for a 100-frame and a 2000-frame video
  (``benchmarks/streaming.py``). :func:`stream_video` is the generator under both, for callers
  that want the windows themselves.

The writers live in :mod:`rvoslib.outputs` and are re-exported here: :func:`write_overlay`
turns a result into an mp4, a GIF or a PNG folder (:func:`write_panels`: one labelled panel per
sentence) and :func:`save_masks` into palette PNGs. The ``rvoslib segment`` command is in
:mod:`rvoslib.segment_cli`.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from rvoslib.inference_inputs import (  # noqa: F401 - re-exported: these used to live here
    TRAIN_HINT,
    VideoSource,
    check_sentences,
    eval_mode,
    frames_from_array,
    is_segmentation_model,
    load_video,
    model_device,
    open_video,
    probe_fps,
    resolve_model,
    resolve_video_path,
    unwrap_model,
)
from rvoslib.online import (  # noqa: F401 - re-exported: these used to live here
    OnlineSegmenter,
    carries_history,
    check_threshold,
    check_window,
    max_prompt_frames,
    prepare_frames,
    probability_logit,
    run_windows,
    upsample_logits,
    window_ranges,
)
from rvoslib.outputs import (  # noqa: F401 - re-exported: the writers used to live here
    DEFAULT_FPS,
    MaskSink,
    OverlaySink,
    PanelSink,
    check_output_path,
    close_all,
    output_fps,
    overlay,
    save_masks,
    write_overlay,
    write_panels,
)
from rvoslib.panels import DEFAULT_PANEL_SIZE

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

# --------------------------------------------------------------------------- results


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


@dataclass
class Window:
    """One window of a streamed video, as :func:`stream_video` yields it.

    Attributes:
        start: position of its first frame among the segmented frames (0, window, 2 * window, ...).
        names: its n frame names.
        indices: its n frame positions in the source (after stride).
        frames: (n, H, W, 3) uint8 frames at the original size.
        masks: (K, n, H, W) bool, one mask per sentence and frame.
        logits: (K, n, H, W) float32 upsampled logits when asked for, else None.
    """

    start: int
    names: list[str]
    indices: list[int]
    frames: np.ndarray
    masks: np.ndarray
    logits: Optional[np.ndarray] = None


@dataclass
class StreamSummary:
    """What :func:`segment_to_files` returns: no masks (they went to the files), just the facts.

    Attributes:
        sentences: the K sentences.
        num_frames: frames segmented.
        frame_size: (H, W) of the frames.
        coverage: per sentence, the mean fraction of frame pixels inside its mask.
        outputs: ``{"overlay": path, "panels": path, "masks": path}`` for those written.
        timing: ``read_s``, ``inference_s``, ``write_s``, ``total_s``, ``frames_per_second``, ``device``.
    """

    sentences: list[str]
    num_frames: int
    frame_size: tuple[int, int]
    coverage: list[float]
    outputs: dict = field(default_factory=dict)
    timing: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- streaming core


def _progress_bar(total: Optional[int], desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not enabled, leave=False)


def _prepare(sentences: Union[str, Sequence[str]], model: Any, window: Optional[int], threshold: float,
             device: Union[str, torch.device, None], pretrained: Optional[str]) -> tuple[list[str], Any, Any, int]:
    """Checked sentences, the ready model and its device, and the window."""
    texts = check_sentences(sentences)
    check_threshold(threshold)
    if window is not None:
        check_window(window)
    model, device = resolve_model(model, device, pretrained)
    window = check_window(model.cfg.num_frames if window is None else window, max_prompt_frames(model.cfg))
    return texts, model, device, window


def _windows(opened: VideoSource, texts: list[str], model: Any, device: torch.device, window: int, *,
             dtype: Optional[torch.dtype], threshold: float, return_logits: bool, batch_size: Optional[int],
             progress: bool, timing: dict) -> Iterator[Window]:
    """The online loop over a :class:`VideoSource`: decode ``window`` frames, segment, yield, repeat.

    ``timing`` receives ``read_s`` (decoding) and ``inference_s`` (model and upsampling).
    """
    timing.update(read_s=0.0, inference_s=0.0, device=str(device))
    with eval_mode(model), _progress_bar(opened.num_frames, "segment", progress) as bar:
        with torch.inference_mode():
            tokens = model.tokenize(texts)  # (K, L_ctx)
        segmenter = OnlineSegmenter(model, tokens, size=model.cfg.backbone.image_size, device=device, dtype=dtype,
                                    threshold=threshold, batch_size=batch_size, return_logits=return_logits)
        frames_iter, start, done = opened.frames(), 0, False
        while not done:
            tick = time.perf_counter()
            names, indices, frames = [], [], []
            for name, index, frame in frames_iter:
                if frames and frame.shape != frames[0].shape:
                    raise ValueError(f"frame {name!r} of {opened.source or 'the video'} is {frame.shape[0]} x "
                                     f"{frame.shape[1]} (H x W), the others are {frames[0].shape[0]} x "
                                     f"{frames[0].shape[1]}")
                names.append(name)
                indices.append(index)
                frames.append(frame)
                if len(frames) == window:
                    break
            else:
                done = True
            timing["read_s"] += time.perf_counter() - tick
            if not frames:
                break
            tick = time.perf_counter()
            clip = np.stack(frames)  # (n, H, W, 3), n <= window: the last window may be shorter
            with torch.inference_mode():
                masks, logits = segmenter(clip)
            timing["inference_s"] += time.perf_counter() - tick
            bar.update(len(frames))
            yield Window(start, names, indices, clip, masks, logits)
            start += len(frames)
    if start == 0:
        raise ValueError(f"no frames to segment in {opened.source or 'the video'}")


def stream_video(video: Any, sentences: Union[str, Sequence[str]], model: Any, *,
                 window: Optional[int] = None, stride: int = 1, max_frames: Optional[int] = None,
                 device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None,
                 threshold: float = 0.5, return_logits: bool = False, batch_size: Optional[int] = None,
                 progress: bool = False, pretrained: Optional[str] = None) -> Iterator[Window]:
    """Segment a video window by window, yielding each :class:`Window` as soon as it is done.

    Arguments as in :func:`segment_video`. Only one window of frames and masks exists at a time
    (plus the history tokens), whatever the video's length, as long as the caller does not keep
    the windows. The checks (sentences, window, model) run on the first ``next()``.
    """
    texts, model, device, window = _prepare(sentences, model, window, threshold, device, pretrained)
    opened = open_video(video, stride, max_frames)
    yield from _windows(opened, texts, model, device, window, dtype=dtype, threshold=threshold,
                        return_logits=return_logits, batch_size=batch_size, progress=progress, timing={})


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
    frames, _ = frames_from_array(frames)
    texts, model, device, window = _prepare(sentences, model, window, threshold, device, pretrained)
    start = time.perf_counter()
    names = [f"{i:05d}" for i in range(len(frames))] if frame_names is None else list(frame_names)
    if len(names) != len(frames):
        raise ValueError(f"got {len(names)} frame names for {len(frames)} frames")
    keep = None if keep is None else sorted({int(i) for i in keep})
    if keep is not None and any(not 0 <= i < len(frames) for i in keep):
        raise IndexError(f"keep lists frames outside 0..{len(frames) - 1}: {keep}")
    with eval_mode(model), torch.inference_mode(), _progress_bar(len(frames), "segment", progress) as bar:
        tokens = model.tokenize(texts)  # (K, L_ctx)
        masks, logits = run_windows(model, frames, tokens, window=window, size=model.cfg.backbone.image_size,
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


def segment_video(video: Any, sentences: Union[str, Sequence[str]], model: Any, *,
                  window: Optional[int] = None, stride: int = 1, max_frames: Optional[int] = None,
                  device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None,
                  threshold: float = 0.5, return_logits: bool = False, batch_size: Optional[int] = None,
                  progress: bool = True, pretrained: Optional[str] = None) -> SegmentationResult:
    """Segment what each sentence refers to in every frame of a video, online, window by window.

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
        frames are decoded a window at a time and not kept, but every mask is (K x T x H x W
        bytes; 4 times more for logits): for long videos write the outputs as you go with
        :func:`segment_to_files` (``rvoslib segment``) or :func:`stream_video`.
    Raises:
        FileNotFoundError (video or checkpoint missing), ValueError (empty sentence, window < 1,
        corrupt video, ...), TypeError (model is neither a VLPRVOS nor a checkpoint path).
    """
    start = time.perf_counter()
    texts = check_sentences(sentences)  # fail on bad sentences before loading anything
    if window is not None:
        check_window(window)
    texts, model, device, window = _prepare(texts, model, window, threshold, device, pretrained)
    opened = open_video(video, stride, max_frames)
    timing: dict = {}
    masks, logits, names, indices = [], [], [], []
    for part in _windows(opened, texts, model, device, window, dtype=dtype, threshold=threshold,
                         return_logits=return_logits, batch_size=batch_size, progress=progress, timing=timing):
        masks.append(part.masks)  # the frames are not kept
        logits.append(part.logits)
        names += part.names
        indices += part.indices
    result = SegmentationResult(
        masks=_join(masks), sentences=texts, frame_names=names, frame_indices=indices,
        logits=_join(logits) if return_logits else None,
        threshold=threshold, window=window, source=opened.source, stride=stride, max_frames=max_frames,
        source_fps=opened.fps, timing=timing,
    )
    timing.update(total_s=time.perf_counter() - start,
                  frames_per_second=result.num_frames / max(timing["inference_s"], 1e-9))
    logger.info("segmented %d frames (%dx%d) for %d sentence(s) in %.2f s (%.1f frames/s on %s)",
                result.num_frames, result.frame_size[1], result.frame_size[0], len(texts),
                timing["inference_s"], timing["frames_per_second"], timing["device"])
    return result


def _join(parts: list) -> np.ndarray:
    """Concatenate (K, n_i, H, W) windows along frames, freeing each window as it is copied."""
    out = np.empty((parts[0].shape[0], sum(p.shape[1] for p in parts), *parts[0].shape[2:]), parts[0].dtype)
    position = 0
    while parts:
        part = parts.pop(0)
        out[:, position:position + part.shape[1]] = part
        position += part.shape[1]
    return out


def segment_to_files(video: Any, sentences: Union[str, Sequence[str]], model: Any, *,
                     out: Optional[PathLike] = None, masks: Optional[PathLike] = None, panels: bool = False,
                     panel_size: int = DEFAULT_PANEL_SIZE, frame_counter: bool = True,
                     fps: Optional[float] = None, alpha: float = 0.5, window: Optional[int] = None,
                     stride: int = 1, max_frames: Optional[int] = None,
                     device: Union[str, torch.device, None] = None, dtype: Optional[torch.dtype] = None,
                     threshold: float = 0.5, batch_size: Optional[int] = None, progress: bool = True,
                     pretrained: Optional[str] = None) -> StreamSummary:
    """Segment a video and write its outputs as it goes, in memory bounded by the window.

    Args:
        video, sentences, model, window, stride, max_frames, device, dtype, threshold,
            batch_size, progress, pretrained: as in :func:`segment_video`.
        out: the overlay: ``.mp4``, ``.gif``, or a path without extension (a folder of PNGs).
        masks: a folder for the mask PNGs (``<k>/<frame>.png`` and ``sentences.json``).
        panels: write ``out`` as one labelled panel per sentence (:class:`rvoslib.outputs.PanelSink`).
        panel_size, frame_counter: panel options.
        fps: overlay frame rate (default: the source's divided by ``stride``, else 10).
        alpha: mask opacity of the plain overlay.
    Returns:
        :class:`StreamSummary` (coverage per sentence, paths written, timing).
    Raises:
        ValueError when an output is, holds or lies in an input (the video, the checkpoint),
        or nothing is to be written; OSError naming the file when a write fails. Outputs are
        renamed into place only once every window was written: on any error the earlier files
        stay as they were.
    """
    start = time.perf_counter()
    if out is None and masks is None:
        raise ValueError("nothing to write: give an overlay path (out) and/or a masks folder (masks)")
    inputs = [video if isinstance(video, (str, os.PathLike)) else None,
              model if isinstance(model, (str, os.PathLike)) else None]
    for path, what in ((out, "overlay"), (masks, "masks folder")):
        if path is not None:
            check_output_path(path, inputs, what)
    if out is not None and masks is not None and Path(out).resolve() == Path(masks).resolve():
        raise ValueError(f"the overlay and the masks folder are the same path {str(out)!r}; choose two")
    texts, model, device, window = _prepare(sentences, model, window, threshold, device, pretrained)
    opened = open_video(video, stride, max_frames)
    rate = fps if fps is not None else (opened.fps / stride if opened.fps else DEFAULT_FPS)
    sinks: list = []
    timing: dict = {"write_s": 0.0}
    covered = np.zeros(len(texts))
    count, size = 0, (0, 0)
    try:
        if out is not None:
            sinks.append(PanelSink(out, rate, texts, panel_size, frame_counter, opened.num_frames) if panels
                         else OverlaySink(out, rate, alpha))
        if masks is not None:
            sinks.append(MaskSink(masks, texts))
        for part in _windows(opened, texts, model, device, window, dtype=dtype, threshold=threshold,
                             return_logits=False, batch_size=batch_size, progress=progress, timing=timing):
            tick = time.perf_counter()
            for sink in sinks:
                sink.add(part.frames, part.masks, part.names)
            timing["write_s"] += time.perf_counter() - tick
            covered += part.masks.sum(axis=(1, 2, 3))
            count, size = count + len(part.names), part.frames.shape[1:3]
    except BaseException:
        for sink in sinks:
            sink.abort()
        raise
    tick = time.perf_counter()
    written = close_all(sinks)
    timing["write_s"] += time.perf_counter() - tick
    timing.update(total_s=time.perf_counter() - start,
                  frames_per_second=count / max(timing["inference_s"], 1e-9))
    kinds = (["panels" if panels else "overlay"] if out is not None else []) + (["masks"] if masks is not None else [])
    coverage = [float(c) / max(count * size[0] * size[1], 1) for c in covered]
    return StreamSummary(texts, count, tuple(int(v) for v in size), coverage, dict(zip(kinds, written)), timing)


def __getattr__(name: str) -> Any:
    """The ``rvoslib segment`` command's names, which moved to :mod:`rvoslib.segment_cli` (imported on use)."""
    if name in _SEGMENT_CLI_NAMES:
        from rvoslib import segment_cli

        return getattr(segment_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SEGMENT_CLI_NAMES = ("SEGMENT_HELP", "add_inference_options", "add_segment_arguments", "check_panel_options",
                      "parse_dtype", "require_checkpoint", "run_segment")
