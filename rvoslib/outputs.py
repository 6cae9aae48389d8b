"""Outputs of online inference: mask overlays, labelled panels and mask PNGs.

A :class:`rvoslib.inference.SegmentationResult` becomes

* an overlay, each sentence's mask blended into the frames in its own DAVIS palette colour
  (:func:`overlay`), written by :func:`write_overlay`;
* one labelled panel per sentence, side by side (:func:`write_panels`, via
  ``rvoslib.panels.compose_panels``);
* palette PNGs ``<k>/<frame>.png`` plus ``sentences.json`` (:func:`save_masks`).

Overlays and panels go to an mp4 or a GIF (by extension) or, for a path without extension,
to a folder of one PNG per frame that is replaced atomically (:func:`write_images`,
:func:`write_png_folder`). :func:`check_output_path` refuses to write over the input video.
Every name here is also importable from :mod:`rvoslib.inference`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from rvoslib.io import IMAGE_EXTENSIONS, write_image, write_mask, write_video
from rvoslib.panels import DEFAULT_PANEL_SIZE

if TYPE_CHECKING:
    from rvoslib.inference import SegmentationResult

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
DEFAULT_FPS = 10.0  # overlay frame rate when the source has none (frames folder, array)


def _frames_for(result: SegmentationResult, frames: Any) -> np.ndarray:
    """The result's frames: the given array, or re-read from ``frames``/``result.source``."""
    from rvoslib.inference import frames_from_array, load_video  # lazy: inference imports this module

    if frames is None:
        if result.source is None:
            raise ValueError("pass the frames: the result came from an array, so there is no source to re-read")
        frames = result.source
    if isinstance(frames, (str, os.PathLike)):
        frames = load_video(frames, stride=result.stride, max_frames=result.max_frames)["frames"]
    frames, _ = frames_from_array(frames)
    if frames.shape[:3] != (result.num_frames, *result.frame_size):
        raise ValueError(f"frames have shape {frames.shape[:3]} (T, H, W) but the masks are "
                         f"{(result.num_frames, *result.frame_size)}")
    return frames


def overlay(result: SegmentationResult, frames: Any = None, alpha: float = 0.5) -> np.ndarray:
    """(T, H, W, 3) uint8 frames with each sentence's mask blended in its own DAVIS palette colour."""
    from rvoslib.viz import overlay_masks

    frames = _frames_for(result, frames)
    return overlay_masks(frames, list(result.masks), alpha=alpha)


def output_fps(result: SegmentationResult, fps: Optional[float] = None) -> float:
    """``fps``, else the source's frame rate divided by the stride, else ``DEFAULT_FPS``."""
    if fps is not None:
        return fps
    return result.source_fps / result.stride if result.source_fps else DEFAULT_FPS


def check_output_path(path: PathLike, source: Optional[PathLike], what: str = "output") -> Path:
    """``path``, unless it is the video ``source`` or a folder holding it (writing there would destroy it)."""
    path = Path(path)
    if source is not None:
        target, video = path.resolve(), Path(source).resolve()
        if target == video or target in video.parents:
            raise ValueError(f"{what} {str(path)!r} is the input video {str(source)!r} or a folder holding it: "
                             "writing there would destroy the input; choose another path")
    return path


def write_images(path: PathLike, images: np.ndarray, fps: float, names: Sequence[str]) -> Path:
    """Write (T, H, W, 3) uint8 images as an mp4 / GIF (by extension) or, for a path without
    extension, as a folder of PNGs ``<path>/<name>.png``; atomically either way."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        raise ValueError(f"output {str(path)!r} is a single image; write .mp4, .gif, or a folder (a path "
                         f"without extension, e.g. {str(path.with_suffix(''))!r}) of one PNG per frame")
    if suffix:
        write_video(path, images, fps=fps)
    else:
        write_png_folder(path, images, names)
    return path


def write_png_folder(folder: PathLike, images: np.ndarray, names: Sequence[str]) -> Path:
    """Write ``folder/<name>.png`` for each (H, W, 3) image.

    The frames go to a temporary sibling folder that replaces ``folder`` only once all of them
    are written, so a failure leaves an earlier folder untouched. An existing ``folder`` may only
    hold PNG files (an earlier output): anything else is an error, not deleted.
    """
    folder = Path(folder)
    if len(names) != len(images):
        raise ValueError(f"got {len(names)} frame names for {len(images)} images")
    if folder.exists():
        if not folder.is_dir():
            raise NotADirectoryError(f"output {str(folder)!r} exists and is not a folder")
        other = next((p for p in folder.iterdir() if not (p.is_file() and p.suffix.lower() == ".png")), None)
        if other is not None:
            raise FileExistsError(f"output folder {str(folder)!r} holds {other.name!r}, not only PNG frames of an "
                                  "earlier output; choose a new or empty folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    old = tmp.with_name(tmp.name + ".old")
    try:
        for name, image in zip(names, images):
            write_image(tmp / f"{name}.png", image)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp creates 0700; give the usual folder permissions
        if folder.exists():
            folder.rename(old)
        try:
            tmp.rename(folder)
        except OSError:
            if old.exists():
                old.rename(folder)  # put the earlier output back
            raise
    finally:
        for leftover in (tmp, old):
            if leftover.exists():
                shutil.rmtree(leftover)
    return folder


def write_overlay(result: SegmentationResult, frames: Any, path: PathLike, fps: Optional[float] = None,
                  alpha: float = 0.5) -> Path:
    """Write the mask overlay as an mp4 or a GIF (by the extension of ``path``) or a PNG folder.

    Args:
        result: from :func:`segment_video`.
        frames: (T, H, W, 3) uint8 frames of the result, a video path, or None to re-read
            ``result.source``.
        path: ``.mp4`` (H.264), ``.gif``, or a path without extension: a folder of
            ``<frame name>.png``.
        fps: frame rate (default: the source's rate divided by the stride, else 10).
        alpha: mask opacity.
    Returns:
        the written path. Sentence k gets palette colour k + 1 (k = 0: red, 1: green, 2: yellow...);
        :func:`write_panels` writes one labelled panel per sentence instead.
    """
    from rvoslib.viz import palette

    path = check_output_path(path, result.source)
    images = overlay(result, frames, alpha)
    write_images(path, images, output_fps(result, fps), result.frame_names)
    colours = palette(len(result.sentences))
    for sentence, colour in zip(result.sentences, colours):
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
        the written path. Holds P times the overlay's pixels in memory (P sentences).
    """
    from rvoslib.panels import compose_panels

    path = check_output_path(path, result.source)
    total = result.num_frames
    labels = [f"frame {t + 1} / {total}" for t in range(total)] if frame_counter else None
    images = compose_panels(_frames_for(result, frames), result.masks, result.sentences,
                            panel_size=panel_size, frame_labels=labels)
    write_images(path, images, output_fps(result, fps), result.frame_names)
    logger.info("panels of %dx%d pixels, one per sentence", images.shape[2], images.shape[1])
    return path


def save_masks(result: SegmentationResult, out_dir: PathLike) -> Path:
    """Write ``out_dir/<k>/<frame>.png`` palette PNGs (1 = object of sentence k) and ``sentences.json``.

    Returns:
        ``out_dir``.
    """
    out_dir = Path(out_dir)
    for k, per_sentence in enumerate(result.masks):
        for name, mask in zip(result.frame_names, per_sentence):
            write_mask(out_dir / str(k) / f"{name}.png", mask.astype(np.uint8))
    (out_dir / "sentences.json").write_text(json.dumps(
        {str(k): sentence for k, sentence in enumerate(result.sentences)}, indent=2), encoding="utf-8")
    logger.info("wrote %d x %d masks to %s", len(result.sentences), result.num_frames, out_dir)
    return out_dir

