"""Video and mask input/output.

Videos are read either from a *frames folder* (``.jpg``/``.jpeg``/``.png`` files,
sorted by name; the form every RVOS dataset ships) or from a *video file*
(``.mp4``, ``.avi``, ...) through decord, falling back to imageio (imageio-ffmpeg)
where decord is missing or fails on the file.

Masks are palette PNGs as in DAVIS / YouTube-VOS: the pixel value is the object
id, 0 is background and 255 is "void" (pixels ignored by evaluation).

Every function returns plain numpy arrays:

    frames  (T, H, W, 3) uint8 RGB
    mask    (H, W) uint8 object ids

Writers are atomic (:mod:`rvoslib.writers`): they write a temporary file next to the
target and rename it over the target only once the write succeeded and was checked, so
a failed write (a full disk, an encoder error) raises an error naming the file and never
leaves a half-written file in place of an existing one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from rvoslib.writers import (  # noqa: F401 - atomic_path is re-exported: callers import it from here
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    atomic_path,
    open_frame_writer,
    write_text_atomic,
)

logger = logging.getLogger(__name__)

VOID_ID = 255  # palette value of "void" (ignored) pixels in DAVIS / YouTube-VOS masks


def _davis_palette() -> np.ndarray:
    """The 256-colour DAVIS / PASCAL-VOC palette: (256, 3) uint8.

    Colour of index i: bits (0, 1, 2) of i go to the top bit of (R, G, B), bits
    (3, 4, 5) to the next bit, and so on (index 1 = dark red, 2 = dark green,
    255 = light grey).
    """
    index = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.int64)
    for level in range(8):  # level 0 fills bit 7 of each channel
        for channel in range(3):
            palette[:, channel] |= ((index >> (3 * level + channel)) & 1) << (7 - level)
    return palette.astype(np.uint8)


DAVIS_PALETTE: np.ndarray = _davis_palette()  # (256, 3) uint8; 24 vectorised ops, no I/O


# ----------------------------------------------------------------------------- images


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """Image files (jpg/jpeg/png) directly inside ``folder``, sorted by file name.

    Raises FileNotFoundError if the folder is missing, ValueError if it holds no frame.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"video path does not exist: {folder}")
    if not folder.is_dir():
        raise NotADirectoryError(f"expected a frames folder, got a file: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise ValueError(f"frames folder is empty: {folder} holds no {'/'.join(IMAGE_EXTENSIONS)} file")
    return paths


def _to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale, palette, RGBA, CMYK or 16-bit images -> RGB (alpha is dropped)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 / max(float(array.max()), 1.0) if array.max() > 255 else 1.0
        image = Image.fromarray(np.clip(array * scale, 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as RGB.

    Returns:
        (H, W, 3) uint8. Grayscale, palette and RGBA images are converted to RGB.
    Raises:
        FileNotFoundError if missing; ValueError naming the file if it cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file does not exist: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(_to_rgb(image), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"cannot decode frame {path}: the file is unreadable or corrupt ({error})") from error


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file, read from its header only (no decoding)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file does not exist: {path}")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read the header of {path}: the file is unreadable or corrupt ({error})") from error
    return height, width


def read_frames(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Read image files of one video into a single array.

    Returns:
        (T, H, W, 3) uint8.
    Raises:
        ValueError naming the first frame whose size differs from the first frame's.
    """
    if not paths:
        raise ValueError("read_frames got an empty list of frame paths")
    frames = []
    for path in paths:
        frame = read_image(path)
        if frames and frame.shape != frames[0].shape:
            raise ValueError(
                f"frames of mixed sizes: {path} is {_hw(frame)} (H x W) but the first frame "
                f"{paths[0]} is {_hw(frames[0])}"
            )
        frames.append(frame)
    return np.stack(frames)


def _hw(array: np.ndarray) -> str:
    return f"{array.shape[0]} x {array.shape[1]}"


# ----------------------------------------------------------------------------- videos


def _selected_indices(num_frames: int, stride: int, max_frames: int | None) -> list[int]:
    """Frame indices 0, stride, 2*stride, ... truncated to max_frames."""
    indices = list(range(0, num_frames, stride))
    return indices if max_frames is None else indices[:max_frames]


def _check_sampling(stride: int, max_frames: int | None) -> None:
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")


def read_video(
    path: str | os.PathLike, stride: int = 1, max_frames: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Read a video from a frames folder or a video file.

    Args:
        path: a folder of jpg/jpeg/png frames (sorted by file name) or a video file.
        stride: keep every ``stride``-th frame.
        max_frames: keep at most this many frames (after striding).
    Returns:
        frames (T, H, W, 3) uint8 RGB, and frame names: the file stems for a folder
        (``"00000"``), the zero-padded frame index for a video file (``"00000"``).
    Raises:
        FileNotFoundError (path missing), ValueError (empty folder, corrupt frame or
        video, frames of mixed sizes), each naming the offending file.
    """
    _check_sampling(stride, max_frames)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video path does not exist: {path}")
    if path.is_dir():
        paths = list_frames(path)
        chosen = [paths[i] for i in _selected_indices(len(paths), stride, max_frames)]
        return read_frames(chosen), [p.stem for p in chosen]
    return _read_video_file(path, stride, max_frames)


def _read_video_file(path: Path, stride: int, max_frames: int | None) -> tuple[np.ndarray, list[str]]:
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
    indices = _selected_indices(len(reader), stride, max_frames)
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
            frames.append(_frame_to_rgb(np.asarray(frame)))
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
    return np.stack([_frame_to_rgb(f) for f in reader.get_batch(wanted).asnumpy()])


def _pick_with_imageio(path: Path, wanted: list[int]) -> np.ndarray:
    import imageio.v2 as imageio

    keep, frames, count = set(wanted), [], 0
    with contextlib.closing(imageio.get_reader(str(path))) as reader:
        for index, frame in enumerate(reader):
            count = index + 1
            if index in keep:
                frames.append(_frame_to_rgb(np.asarray(frame)))
            if index >= wanted[-1]:
                break  # stop early: nothing later is wanted
    if len(frames) < len(wanted):
        raise _TooShort(count)
    return np.stack(frames)


def iter_video(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None,
               chunk: int = 8) -> Iterator[tuple[str, np.ndarray]]:
    """Stream a video, frame by frame: yields ``(name, (H, W, 3) uint8)``.

    Same frames and names as :func:`read_video`, but only ``chunk`` decoded frames are held at a
    time, so memory does not grow with the video's length. A frame of another size than the
    first is an error naming it.
    """
    _check_sampling(stride, max_frames)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video path does not exist: {path}")
    if path.is_dir():
        paths = list_frames(path)
        first = None
        for i in _selected_indices(len(paths), stride, max_frames):
            frame = read_image(paths[i])
            first = frame.shape if first is None else first
            if frame.shape != first:
                raise ValueError(f"frames of mixed sizes: {paths[i]} is {_hw(frame)} (H x W) but the first "
                                 f"frame is {first[0]} x {first[1]}")
            yield paths[i].stem, frame
        return
    yield from _iter_video_file(path, stride, max_frames, chunk)


def _iter_video_file(path: Path, stride: int, max_frames: int | None, chunk: int) -> Iterator[tuple[str, np.ndarray]]:
    """Decode a video file chunk by chunk with decord (imageio-ffmpeg when decord cannot open it)."""
    try:
        import torch  # noqa: F401  - decord must be imported after torch to avoid a known crash

        import decord

        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
        indices = _selected_indices(len(reader), stride, max_frames)
    except Exception as error:  # noqa: BLE001 - decord missing or unable to open the file
        logger.debug("decord cannot open %s (%s); streaming with imageio", path, error)
        yield from _iter_with_imageio(path, stride, max_frames)
        return
    if not indices:
        raise ValueError(f"cannot decode video file {path}: the video has no frames")
    for start in range(0, len(indices), chunk):
        part = indices[start:start + chunk]
        try:
            frames = reader.get_batch(part).asnumpy()
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"cannot decode video file {path} at frame {part[0]} (corrupt?): {error}") from error
        for index, frame in zip(part, frames):
            yield f"{index:05d}", _frame_to_rgb(frame)


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
            yield f"{index:05d}", _frame_to_rgb(np.asarray(frame))
            count += 1
            if max_frames is not None and count >= max_frames:
                return
    if count == 0:
        raise ValueError(f"cannot decode video file {path}: the video has no frames")


def count_video_frames(path: str | os.PathLike, stride: int = 1, max_frames: int | None = None) -> int | None:
    """How many frames :func:`iter_video` will yield, from the folder listing or the file's
    header (None when the header does not say)."""
    path = Path(path)
    try:
        if path.is_dir():
            total = len(list_frames(path))
        else:
            import torch  # noqa: F401  - decord after torch

            import decord

            total = len(decord.VideoReader(str(path), ctx=decord.cpu(0)))
    except Exception:  # noqa: BLE001 - a count is a nicety; the stream reports real errors
        return None
    return len(_selected_indices(total, stride, max_frames))


def _frame_to_rgb(frame: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, 3) uint8."""
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[-1] == 1:
        frame = np.repeat(frame, 3, axis=-1)
    return frame[..., :3].astype(np.uint8)


# ----------------------------------------------------------------------------- masks


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask PNG: palette (mode P) or grayscale, pixel value = object id.

    Returns:
        (H, W) uint8; 0 = background, k = object k, 255 = void.
    Raises:
        FileNotFoundError if missing; ValueError naming the file if it is corrupt or
        an RGB image (object ids cannot be recovered from colours reliably).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file does not exist: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode in ("P", "L", "1"):
                return np.asarray(image, dtype=np.uint8).copy()
            if mode in ("I", "I;16", "I;16B", "I;16L"):
                array = np.asarray(image)
                if array.max() > 255:
                    raise ValueError(f"mask {path} has values above 255 (max {array.max()})")
                return array.astype(np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"cannot decode mask {path}: the file is unreadable or corrupt ({error})") from error
    raise ValueError(
        f"mask {path} has image mode {mode!r}; expected a palette (P) or grayscale (L) PNG "
        "whose pixel values are object ids"
    )


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write a (H, W) integer mask of object ids as a DAVIS-palette PNG (mode P), atomically.

    The palette holds the DAVIS colours of ids 0..max(mask) (all 256 when void 255 is present).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"write_mask expects a (H, W) mask, got shape {mask.shape} for {path}")
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"write_mask expects integer object ids, got dtype {mask.dtype} for {path}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"write_mask: object ids must lie in 0..255, got {mask.min()}..{mask.max()} for {path}")
    mask = mask.astype(np.uint8)
    image = Image.fromarray(mask, mode="P")
    # only the colours up to the largest id: a valid PNG palette, ~700 bytes smaller than all 256
    image.putpalette(DAVIS_PALETTE[: int(mask.max(initial=0)) + 1].tobytes())
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


# ----------------------------------------------------------------------------- writing


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text (e.g. JSON) atomically; a failure (full disk) names ``path``, and an
    earlier file stays as it was."""
    return write_text_atomic(path, text)


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Write a (H, W, 3) uint8 RGB image (JPEG quality ``quality`` for .jpg/.jpeg), atomically."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"write_image expects (H, W, 3) uint8, got {image.shape} {image.dtype} for {path}")
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS:
        raise ValueError(f"write_image: unsupported extension {suffix!r} for {path}; use one of {IMAGE_EXTENSIONS}")
    options = {"quality": quality} if suffix in (".jpg", ".jpeg") else {}
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG" if suffix != ".png" else "PNG", **options)


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: float = 10.0) -> None:
    """Write frames as an mp4 (H.264 through ffmpeg) or a GIF, chosen by extension; atomically.

    Args:
        path: target file, ``.mp4`` (or another ffmpeg container) or ``.gif``.
        frames: (T, H, W, 3) uint8 RGB, or a list of (H, W, 3) uint8.
        fps: frames per second.
    H.264 needs even sizes: an odd height or width is padded by one edge-replicated
    row/column (logged as a warning); even sizes are written unchanged. The encoder's errors
    (a full disk, ...) raise an OSError naming ``path`` and leave an earlier file untouched
    (:mod:`rvoslib.writers`); frames of any number can be written one at a time with
    :func:`rvoslib.writers.open_frame_writer`.
    """
    frames = _check_frames(frames, path)
    if not fps or fps <= 0:
        raise ValueError(f"write_video: fps must be > 0, got {fps!r} for {path}")
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_EXTENSIONS:
        raise ValueError(f"write_video: unsupported extension {suffix!r} for {path}; use .mp4 or .gif")
    with open_frame_writer(path, fps) as writer:
        for frame in frames:
            writer.append(frame)


def _check_frames(frames: np.ndarray | Sequence[np.ndarray], path: str | os.PathLike) -> np.ndarray:
    """Validate and stack frames into (T, H, W, 3) uint8."""
    try:
        frames = np.stack([np.asarray(f) for f in frames]) if not isinstance(frames, np.ndarray) else frames
    except ValueError as error:
        raise ValueError(f"write_video: frames for {path} have mixed sizes ({error})") from error
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"write_video expects frames (T, H, W, 3) with T >= 1, got {frames.shape} for {path}")
    if frames.dtype != np.uint8:
        raise ValueError(f"write_video expects uint8 frames, got {frames.dtype} for {path}")
    return frames
