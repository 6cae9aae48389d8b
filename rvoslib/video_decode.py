"""Decoding video files (mp4, avi, GIF, ...): whole, streamed, or only the frames asked for.

decord is tried first (imported lazily, after torch); imageio (imageio-ffmpeg, or Pillow for
GIF) is the fallback where decord is missing or fails on the file. :mod:`rvoslib.io` is the
entry point (``read_video``, ``iter_video``, ``read_video_frames``); this module is its
video-file half.

    frames  (T, H, W, 3) uint8 RGB
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

logger = logging.getLogger(__name__)


def selected_indices(num_frames: int, stride: int, max_frames: int | None) -> list[int]:
    """Frame indices 0, stride, 2*stride, ... truncated to max_frames."""
    indices = list(range(0, num_frames, stride))
    return indices if max_frames is None else indices[:max_frames]


def check_sampling(stride: int, max_frames: int | None) -> None:
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")


def frame_to_rgb(frame: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, 3) uint8."""
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    return frame[..., :3].astype(np.uint8)


def read_video_file(path: Path, stride: int, max_frames: int | None) -> tuple[np.ndarray, list[str]]:
    """Decode a video file with decord, falling back to imageio-ffmpeg."""
    errors = []
    for reader in (_read_with_decord, _read_with_imageio):
        try:
            frames, indices = reader(path, stride, max_frames)
        except Exception as error:  # noqa: BLE001 - every backend failure is reported below
            errors.append(f"{reader.__name__.removeprefix('_read_with_')}: {error}")
            logger.debug("reading %s with %s failed: %s", path, reader.__name__, error)
            continue
        if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
            errors.append(f"{reader.__name__.removeprefix('_read_with_')}: decoded shape {frames.shape}")
            continue
        return np.ascontiguousarray(frames, dtype=np.uint8), [f"{i:05d}" for i in indices]
    raise ValueError(f"cannot decode video file {path} (corrupt or unsupported): " + "; ".join(errors))


def _read_with_decord(path: Path, stride: int, max_frames: int | None) -> tuple[np.ndarray, list[int]]:
    """(T, H, W, 3) uint8 and the frame indices, via decord (imported here, after torch)."""
    import torch  # noqa: F401  - decord must be imported after torch to avoid a known crash

    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    indices = selected_indices(len(reader), stride, max_frames)
    if not indices:
        raise ValueError("the video has no frames")
    return reader.get_batch(indices).asnumpy(), indices


def _read_with_imageio(path: Path, stride: int, max_frames: int | None) -> tuple[np.ndarray, list[int]]:
    """(T, H, W, 3) uint8 and the frame indices, via imageio (ffmpeg, or pillow for GIF)."""
    import imageio.v2 as imageio

    frames, indices = [], []
    with contextlib.closing(imageio.get_reader(str(path))) as reader:
        for index, frame in enumerate(reader):
            if index % stride:
                continue
            frames.append(frame_to_rgb(np.asarray(frame)))
            indices.append(index)
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError("the video has no frames")
    return np.stack(frames), indices


def read_video_frames(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Frames at ``indices`` of a video file, decoding only what they need.

    decord seeks to each wanted frame (from its preceding key frame); the imageio fallback
    decodes from the start and stops after the last wanted frame. Either way the result equals
    ``read_video(path)[0][indices]`` without decoding the whole file.

    Returns:
        (n, H, W, 3) uint8, in the order of ``indices`` (repeats allowed).
    Raises:
        ValueError naming the file when it cannot be decoded or has fewer frames than asked for.
    """
    path = Path(path)
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        raise ValueError(f"no frame indices asked for from {path}")
    if wanted[0] < 0:
        raise IndexError(f"negative frame index {wanted[0]} for video file {path}")
    if not path.is_file():
        raise FileNotFoundError(f"video file does not exist: {path}")
    errors = []
    for reader in (_pick_with_decord, _pick_with_imageio):
        try:
            frames = reader(path, wanted)
        except _TooShort as error:
            raise ValueError(f"video file {path} has {error.args[0]} frames; frame {wanted[-1]} was asked for") from None
        except Exception as error:  # noqa: BLE001 - every backend failure is reported below
            errors.append(f"{reader.__name__.removeprefix('_pick_with_')}: {error}")
            continue
        position = {index: n for n, index in enumerate(wanted)}
        return np.ascontiguousarray(frames[[position[int(i)] for i in indices]])
    raise ValueError(f"cannot decode video file {path} (corrupt or unsupported): " + "; ".join(errors))


class _TooShort(Exception):
    """The video has fewer frames than an index asked for (args[0]: its frame count)."""


def _pick_with_decord(path: Path, wanted: list[int]) -> np.ndarray:
    import torch  # noqa: F401  - decord must be imported after torch to avoid a known crash

    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    if wanted[-1] >= len(reader):
        raise _TooShort(len(reader))
    return np.stack([frame_to_rgb(f) for f in reader.get_batch(wanted).asnumpy()])


def _pick_with_imageio(path: Path, wanted: list[int]) -> np.ndarray:
    import imageio.v2 as imageio

    keep, frames, count = set(wanted), [], 0
    with contextlib.closing(imageio.get_reader(str(path))) as reader:
        for index, frame in enumerate(reader):
            count = index + 1
            if index in keep:
                frames.append(frame_to_rgb(np.asarray(frame)))
            if index >= wanted[-1]:
                break  # stop early: nothing later is wanted
    if len(frames) < len(wanted):
        raise _TooShort(count)
    return np.stack(frames)


def iter_video_file(path: Path, stride: int, max_frames: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """Stream a video file frame by frame through an ffmpeg pipe (imageio-ffmpeg); GIF through Pillow.

    ffmpeg decodes only as fast as frames are taken (the pipe holds about one frame), so memory
    stays flat whatever the length, and closing the generator stops ffmpeg. decord is not used
    here: its threaded decoder reads ahead into memory while the consumer is busy (with a model
    between frames it held a whole 2000-frame video).
    """
    if path.suffix.lower() == ".gif":
        yield from _iter_with_imageio(path, stride, max_frames)
        return
    import imageio_ffmpeg

    try:
        frames = imageio_ffmpeg.read_frames(str(path))
        meta = next(frames)
        width, height = (int(v) for v in meta["size"])
    except Exception as error:  # noqa: BLE001 - ffmpeg cannot open the file
        raise ValueError(f"cannot decode video file {path} (corrupt or unsupported): {error}") from error
    count = 0
    try:
        for index, raw in enumerate(frames):
            if index % stride:
                continue
            if len(raw) != height * width * 3:
                raise ValueError(f"frame {index} has {len(raw)} bytes, expected {height} x {width} x 3")
            yield f"{index:05d}", np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
            count += 1
            if max_frames is not None and count >= max_frames:
                return
    except (RuntimeError, OSError, ValueError) as error:
        raise ValueError(f"cannot decode video file {path} after {count} frames (corrupt?): {error}") from error
    finally:
        frames.close()
    if count == 0:
        raise ValueError(f"cannot decode video file {path}: the video has no frames")


def _iter_with_imageio(path: Path, stride: int, max_frames: int | None) -> Iterator[tuple[str, np.ndarray]]:
    import imageio.v2 as imageio

    count = 0
    try:
        reader = imageio.get_reader(str(path))
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"cannot decode video file {path} (corrupt or unsupported): {error}") from error
    with contextlib.closing(reader):
        for index, frame in enumerate(reader):
            if index % stride:
                continue
            yield f"{index:05d}", frame_to_rgb(np.asarray(frame))
            count += 1
            if max_frames is not None and count >= max_frames:
                return
    if count == 0:
        raise ValueError(f"cannot decode video file {path}: the video has no frames")


def video_fps(path: Path) -> float | None:
    """Frame rate from the file's header: decord, else ffmpeg's header (imageio-ffmpeg, its process
    stopped at once), else the GIF frame duration (Pillow)."""
    try:
        import torch  # noqa: F401  - decord after torch

        import decord

        return float(decord.VideoReader(str(path), ctx=decord.cpu(0)).get_avg_fps())
    except Exception as error:  # noqa: BLE001 - try the next reader
        logger.debug("decord has no frame rate for %s: %s", path, error)
    if Path(path).suffix.lower() != ".gif":
        import imageio_ffmpeg

        frames = imageio_ffmpeg.read_frames(str(path))
        try:
            return next(frames).get("fps")  # the first item is the header; no frame is decoded
        finally:
            frames.close()
    import imageio.v2 as imageio

    with contextlib.closing(imageio.get_reader(str(path))) as reader:
        duration = reader.get_meta_data().get("duration")
    return 1000.0 / duration if duration else None
