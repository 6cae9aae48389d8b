"""Outputs of online inference: mask overlays, labelled panels and mask PNGs, written as they come.

Each output is a *sink* fed one window at a time (frames ``(n, H, W, 3)`` uint8 and masks
``(K, n, H, W)`` bool), so a video of any length is written with memory bounded by the window:

* :class:`OverlaySink`: each sentence's mask blended into the frames in its own DAVIS palette
  colour (:func:`rvoslib.viz.overlay_masks`);
* :class:`PanelSink`: one labelled panel per sentence, side by side (``rvoslib.panels``);
* :class:`MaskSink`: palette PNGs ``<k>/<frame>.png`` (1 = object of sentence k) plus
  ``sentences.json``.

Overlays and panels go to an mp4 or a GIF (by extension) or, for a path without extension, to a
folder of one PNG per frame (:func:`rvoslib.writers.open_frame_writer`). Every sink writes into
a temporary file or folder beside its target and renames it only when everything was written
and checked: a failure (full disk, encoder error, an exception upstream) raises naming the file
and leaves an earlier output untouched. :func:`check_output_path` refuses any output that is,
holds or lies inside an input.

The functions :func:`write_overlay`, :func:`write_panels` and :func:`save_masks` write a whole
:class:`rvoslib.inference.SegmentationResult` through the same sinks (re-reading the frames from
the video window by window when they are not given). Every name here is also importable from
:mod:`rvoslib.inference`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence, Union

import numpy as np
from PIL import Image

from rvoslib.inference_inputs import frames_from_array
from rvoslib.io import DAVIS_PALETTE, iter_video
from rvoslib.panels import DEFAULT_PANEL_SIZE
from rvoslib.writers import (check_replaceable_folder, new_temp_folder, open_frame_writer, swap_folder,
                             write_failed)

if TYPE_CHECKING:
    from rvoslib.inference import SegmentationResult

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
DEFAULT_FPS = 10.0  # overlay frame rate when the source has none (frames folder, array)
CHUNK = 16  # frames re-read from the source at a time by the result writers


# --------------------------------------------------------------------------- paths


def check_output_path(path: PathLike, inputs: Union[None, PathLike, Sequence[PathLike]],
                      what: str = "output") -> Path:
    """``path``, unless writing there could destroy an input.

    Refused (after resolving symlinks): ``path`` is an input, a folder holding one (a folder
    output is replaced as a whole), or lies inside an input folder.

    Args:
        path: the output file or folder.
        inputs: the input paths (a video file or frames folder, a checkpoint, ...); None entries
            are skipped.
        what: the output's name in messages, e.g. ``"--out"``.
    """
    path = Path(path)
    if inputs is None or isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    target = path.resolve()
    for source in inputs:
        if source is None:
            continue
        resolved = Path(source).resolve()
        if target == resolved or target in resolved.parents or (resolved.is_dir() and resolved in target.parents):
            raise ValueError(f"{what} {str(path)!r} is the input {str(source)!r}, holds it or lies inside it: "
                             "writing there would destroy the input; choose another path")
    return path


def output_fps(result: SegmentationResult, fps: Optional[float] = None) -> float:
    """``fps``, else the source's frame rate divided by the stride, else ``DEFAULT_FPS``."""
    if fps is not None:
        return fps
    return result.source_fps / result.stride if result.source_fps else DEFAULT_FPS


# --------------------------------------------------------------------------- sinks


class Sink:
    """An output fed window by window: ``add(frames, masks, names)``, then ``close()`` (or ``abort()``).

    Use as a context manager: an exception in the block aborts (the target keeps what it held).
    """

    path: Path

    def add(self, frames: np.ndarray, masks: np.ndarray, names: Sequence[str]) -> None:
        raise NotImplementedError

    def close(self) -> Path:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class OverlaySink(Sink):
    """Frames with each sentence's mask blended in its DAVIS palette colour (sentence k: colour k + 1),
    as an mp4, a GIF or a PNG folder (by the extension of ``path``)."""

    def __init__(self, path: PathLike, fps: float, alpha: float = 0.5):
        self.path, self.alpha = Path(path), alpha
        self.writer = open_frame_writer(self.path, fps)

    def add(self, frames: np.ndarray, masks: np.ndarray, names: Sequence[str]) -> None:
        from rvoslib.viz import overlay_masks

        images = overlay_masks(frames, list(masks), alpha=self.alpha)  # (n, H, W, 3)
        for image, name in zip(images, names):
            self.writer.append(image, name)

    def close(self) -> Path:
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


class PanelSink(Sink):
    """One panel per sentence, side by side (``rvoslib.panels.compose_panels``), with "frame t / T"
    under them when ``frame_counter`` (just "frame t" when ``total`` is unknown)."""

    def __init__(self, path: PathLike, fps: float, sentences: Sequence[str], panel_size: int = DEFAULT_PANEL_SIZE,
                 frame_counter: bool = True, total: Optional[int] = None):
        self.path, self.sentences, self.panel_size = Path(path), list(sentences), panel_size
        self.frame_counter, self.total, self.count = frame_counter, total, 0
        self.writer = open_frame_writer(self.path, fps)
        self.shape: Optional[tuple[int, int]] = None

    def add(self, frames: np.ndarray, masks: np.ndarray, names: Sequence[str]) -> None:
        from rvoslib.panels import compose_panels

        labels = None
        if self.frame_counter:
            of = f" / {self.total}" if self.total else ""
            labels = [f"frame {self.count + t + 1}{of}" for t in range(len(frames))]
        images = compose_panels(frames, masks, self.sentences, panel_size=self.panel_size, frame_labels=labels)
        self.shape = images.shape[1:3]
        for image, name in zip(images, names):
            self.writer.append(image, name)
        self.count += len(frames)

    def close(self) -> Path:
        path = self.writer.close()
        if self.shape is not None:
            logger.info("panels of %dx%d pixels, one per sentence", self.shape[1], self.shape[0])
        return path

    def abort(self) -> None:
        self.writer.abort()


class MaskSink(Sink):
    """``out_dir/<k>/<frame>.png`` palette PNGs (1 = object of sentence k) and ``sentences.json``.

    Written into a temporary sibling folder that replaces ``out_dir`` when complete. An existing
    ``out_dir`` may only hold an earlier mask output (numbered folders of PNGs and
    ``sentences.json``): anything else is an error, not deleted.
    """

    def __init__(self, out_dir: PathLike, sentences: Sequence[str]):
        self.path, self.sentences, self.count = Path(out_dir), list(sentences), 0
        check_replaceable_folder(self.path, _is_mask_output, "mask PNGs")
        self.tmp = new_temp_folder(self.path)
        for k in range(len(self.sentences)):
            (self.tmp / str(k)).mkdir()
        self.palette = DAVIS_PALETTE[:2].tobytes()  # 0 background, 1 object

    def add(self, frames: Optional[np.ndarray], masks: np.ndarray, names: Sequence[str]) -> None:
        for k, per_sentence in enumerate(masks):
            for name, mask in zip(names, per_sentence):
                target = self.tmp / str(k) / f"{name}.png"
                image = Image.fromarray(mask.astype(np.uint8), mode="P")
                image.putpalette(self.palette)
                try:
                    image.save(target, format="PNG")
                except OSError as error:
                    self.abort()
                    raise write_failed(self.path / str(k) / f"{name}.png", error) from error
        self.count += len(names)

    def close(self) -> Path:
        try:
            text = json.dumps({str(k): s for k, s in enumerate(self.sentences)}, indent=2)
            try:
                (self.tmp / "sentences.json").write_text(text, encoding="utf-8")
            except OSError as error:
                raise write_failed(self.path / "sentences.json", error) from error
            swap_folder(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        logger.info("wrote %d x %d masks to %s", len(self.sentences), self.count, self.path)
        return self.path

    def abort(self) -> None:
        import shutil

        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


def _is_mask_output(path: Path) -> bool:
    """An entry of an earlier mask output: ``sentences.json`` or a numbered folder of PNGs."""
    if path.is_file():
        return path.name == "sentences.json"
    return path.is_dir() and path.name.isdigit() and all(
        p.is_file() and p.suffix.lower() == ".png" for p in path.iterdir())


def close_all(sinks: Sequence[Sink]) -> list[Path]:
    """Close every sink; if one fails, abort the others that are not closed yet and re-raise."""
    done = []
    for n, sink in enumerate(sinks):
        try:
            done.append(sink.close())
        except BaseException:
            for other in sinks[n + 1:]:
                other.abort()
            raise
    return done


# --------------------------------------------------------------------------- whole results


def _frame_chunks(result: SegmentationResult, frames: Any) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, frames (n, H, W, 3) uint8)`` covering the result's frames, ``CHUNK`` at a time:
    from the given array, or re-read from ``frames`` / ``result.source`` (a path) as a stream."""
    expected = (result.num_frames, *result.frame_size)
    if frames is None:
        if result.source is None:
            raise ValueError("pass the frames: the result came from an array, so there is no source to re-read")
        frames = result.source
    if not isinstance(frames, (str, os.PathLike)):
        frames, _ = frames_from_array(frames)
        if frames.shape[:3] != expected:
            raise ValueError(f"frames have shape {frames.shape[:3]} (T, H, W) but the masks are {expected}")
        for start in range(0, len(frames), CHUNK):
            yield start, frames[start:start + CHUNK]
        return
    buffer, start, count = [], 0, 0
    for _, frame in iter_video(frames, stride=result.stride, max_frames=result.max_frames):
        if frame.shape[:2] != expected[1:] or count >= expected[0]:
            raise ValueError(f"the frames of {str(frames)!r} do not match the result's masks {expected} (T, H, W)")
        buffer.append(frame)
        count += 1
        if len(buffer) == CHUNK:
            yield start, np.stack(buffer)
            start, buffer = start + len(buffer), []
    if buffer:
        yield start, np.stack(buffer)
    if count != expected[0]:
        raise ValueError(f"{str(frames)!r} has {count} frames but the result's masks have {expected[0]}")


def _write_result(sink: Sink, result: SegmentationResult, frames: Any) -> Path:
    with sink:
        for start, chunk in _frame_chunks(result, frames):
            stop = start + len(chunk)
            sink.add(chunk, result.masks[:, start:stop], result.frame_names[start:stop])
    return sink.path


def overlay(result: SegmentationResult, frames: Any = None, alpha: float = 0.5) -> np.ndarray:
    """(T, H, W, 3) uint8 frames with each sentence's mask blended in its own DAVIS palette colour."""
    from rvoslib.viz import overlay_masks

    chunks = [overlay_masks(chunk, list(result.masks[:, start:start + len(chunk)]), alpha=alpha)
              for start, chunk in _frame_chunks(result, frames)]
    return np.concatenate(chunks)


def write_overlay(result: SegmentationResult, frames: Any, path: PathLike, fps: Optional[float] = None,
                  alpha: float = 0.5) -> Path:
    """Write the mask overlay as an mp4 or a GIF (by the extension of ``path``) or a PNG folder.

    Args:
        result: from :func:`segment_video`.
        frames: (T, H, W, 3) uint8 frames of the result, a video path, or None to re-read
            ``result.source`` (streamed, a few frames at a time).
        path: ``.mp4`` (H.264), ``.gif``, or a path without extension: a folder of
            ``<frame name>.png``.
        fps: frame rate (default: the source's rate divided by the stride, else 10).
        alpha: mask opacity.
    Returns:
        the written path. Sentence k gets palette colour k + 1 (k = 0: red, 1: green, 2: yellow...);
        :func:`write_panels` writes one labelled panel per sentence instead.
    """
    from rvoslib.viz import palette

    path = check_output_path(path, [result.source, frames if isinstance(frames, (str, os.PathLike)) else None])
    _write_result(OverlaySink(path, output_fps(result, fps), alpha), result, frames)
    for sentence, colour in zip(result.sentences, palette(len(result.sentences))):
        logger.info("overlay colour RGB%s: %r", tuple(int(c) for c in colour), sentence)
    return path


def write_panels(result: SegmentationResult, frames: Any, path: PathLike, fps: Optional[float] = None,
                 panel_size: int = DEFAULT_PANEL_SIZE, frame_counter: bool = True) -> Path:
    """Write one panel per sentence, side by side: each frame with that sentence's mask and the
    sentence written above it (``rvoslib.panels.compose_panels``), as mp4 / GIF / PNG folder.

    Args:
        result, frames, path, fps: as in :func:`write_overlay`.
        panel_size: small frames are enlarged (nearest-neighbour, whole factor) until each
            panel's short side is at least this many pixels; larger frames keep their size.
        frame_counter: write "frame t / T" under the panels.
    Returns:
        the written path.
    """
    path = check_output_path(path, [result.source, frames if isinstance(frames, (str, os.PathLike)) else None])
    sink = PanelSink(path, output_fps(result, fps), result.sentences, panel_size=panel_size,
                     frame_counter=frame_counter, total=result.num_frames)
    return _write_result(sink, result, frames)


def save_masks(result: SegmentationResult, out_dir: PathLike) -> Path:
    """Write ``out_dir/<k>/<frame>.png`` palette PNGs (1 = object of sentence k) and ``sentences.json``.

    ``out_dir`` is replaced as a whole, and only when every file was written (see :class:`MaskSink`).

    Returns:
        ``out_dir``.
    """
    out_dir = check_output_path(out_dir, result.source, "masks folder")
    with MaskSink(out_dir, result.sentences) as sink:
        sink.add(None, result.masks, result.frame_names)
    return out_dir
