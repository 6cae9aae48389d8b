"""Video and mask input/output.

Videos are read either from a *frames folder* (``.jpg``/``.jpeg``/``.png`` files,
sorted by name; the form every RVOS dataset ships) or from a *video file*
(``.mp4``, ``.avi``, ...) through decord, falling back to imageio (imageio-ffmpeg)
where decord is missing or fails on the file (:mod:`rvoslib.video_decode`): whole
(:func:`read_video`), streamed a few frames at a time (:func:`iter_video`), or only the
frames asked for (:func:`read_video_frames`, what training clips use).

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

import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from rvoslib.video_decode import (  # noqa: F401 - read_video_frames is part of this module's API
    check_sampling,
    iter_video_file,
    read_video_file,
    read_video_frames,
    selected_indices,
)
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
    check_sampling(stride, max_frames)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video path does not exist: {path}")
    if path.is_dir():
        paths = list_frames(path)
        chosen = [paths[i] for i in selected_indices(len(paths), stride, max_frames)]
        return read_frames(chosen), [p.stem for p in chosen]
    return read_video_file(path, stride, max_frames)


def iter_video(path: str | os.PathLike, stride: int = 1,
               max_frames: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Stream a video, frame by frame: yields ``(name, (H, W, 3) uint8)``.

    Same frames and names as :func:`read_video`, but decoded one at a time as they are asked for
    (a video file through an ffmpeg pipe: :func:`rvoslib.video_decode.iter_video_file`), so memory
    does not grow with the video's length. A frame of another size than the first is an error
    naming it.
    """
    check_sampling(stride, max_frames)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video path does not exist: {path}")
    if path.is_dir():
        paths = list_frames(path)
        first = None
        for i in selected_indices(len(paths), stride, max_frames):
            frame = read_image(paths[i])
            first = frame.shape if first is None else first
            if frame.shape != first:
                raise ValueError(f"frames of mixed sizes: {paths[i]} is {_hw(frame)} (H x W) but the first "
                                 f"frame is {first[0]} x {first[1]}")
            yield paths[i].stem, frame
        return
    yield from iter_video_file(path, stride, max_frames)


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
    return len(selected_indices(total, stride, max_frames))


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
