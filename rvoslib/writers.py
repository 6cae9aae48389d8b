"""Writers that fail loudly and never leave a broken file where a good one was.

Every output goes to a temporary file (or folder) beside its target, is checked, and only
then renamed over the target, so an earlier output survives any failure: a full disk, an
encoder error, an exception in the caller, a kill. Errors name the file being written.

* :func:`atomic_path`: a temporary path for one file, renamed onto the target on success.
* :func:`write_text_atomic`: a text file (JSON, ...) through :func:`atomic_path`.
* :func:`replace_folder`: a temporary sibling folder that replaces a folder of earlier output.
* Frame writers, fed one (H, W, 3) uint8 frame at a time, so memory does not grow with the
  video's length (:func:`open_frame_writer` picks one by extension):

  - :class:`FFmpegWriter`: H.264 mp4 (or another ffmpeg container) through an ffmpeg pipe;
    ffmpeg's exit status and its error lines (``Error writing trailer: No space left on
    device``) are checked, and an mp4 must have a complete box structure with ``moov``;
  - :class:`GifWriter`: an animated GIF written frame by frame (each frame with its own
    256-colour table quantised by Pillow);
  - :class:`PngFolderWriter`: one ``<name>.png`` per frame in a folder.

  Use them as context managers: leaving the block normally finishes and renames; an exception
  removes the temporary output and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")
ISO_MEDIA = (".mp4", ".mov", ".m4v")  # containers made of ISO base media boxes (checked after writing)


def write_failed(path: PathLike, error: BaseException) -> OSError:
    """An OSError naming ``path`` that keeps the errno of ``error`` (e.g. ENOSPC)."""
    errno = getattr(error, "errno", None)
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return OSError(errno, f"writing {str(path)!r} failed: {reason}") if errno else \
        OSError(f"writing {str(path)!r} failed: {reason}")


def default_file_mode(path: Path) -> int:
    """Permissions for a new file: those of the file being replaced, else 0666 minus the umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _default_folder_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched; an OSError
    (full disk, permissions) is re-raised naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode(path))  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as error:
        if str(path) in str(error):
            raise
        raise write_failed(path, error) from error
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; errors name ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def check_replaceable_folder(folder: Path, allowed: Callable[[Path], bool], what: str) -> None:
    """``folder`` may be replaced: it is missing, or a folder whose entries all pass ``allowed``."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise NotADirectoryError(f"output {str(folder)!r} exists and is not a folder")
    other = next((p for p in folder.iterdir() if not allowed(p)), None)
    if other is not None:
        raise FileExistsError(f"output folder {str(folder)!r} holds {other.name!r}, not only {what} of an "
                              "earlier output; choose a new or empty folder")


def new_temp_folder(folder: Path) -> Path:
    """A new empty hidden sibling of ``folder`` to write into before :func:`swap_folder`."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))


def swap_folder(tmp: Path, folder: Path) -> None:
    """Move the finished ``tmp`` onto ``folder``, replacing an earlier one; restores it on failure."""
    tmp.chmod(_default_folder_mode())  # mkdtemp creates 0700; give the usual folder permissions
    old = tmp.with_name(tmp.name + ".old")
    try:
        if folder.exists():
            folder.rename(old)
        try:
            tmp.rename(folder)
        except OSError:
            if old.exists():
                old.rename(folder)  # put the earlier output back
            raise
    except OSError as error:
        raise write_failed(folder, error) from error
    finally:
        if old.exists():
            shutil.rmtree(old)


@contextlib.contextmanager
def replace_folder(folder: PathLike, allowed: Callable[[Path], bool], what: str) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``folder`` (whose entries must all be
    ``allowed``: earlier output, never anything else); on failure it is removed."""
    folder = Path(folder)
    check_replaceable_folder(folder, allowed, what)
    tmp = new_temp_folder(folder)
    try:
        yield tmp
        swap_folder(tmp, folder)
    except OSError as error:
        if str(folder) in str(error):
            raise
        raise write_failed(folder, error) from error
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# --------------------------------------------------------------------------- frame writers


class FrameWriter:
    """Base of the streaming frame writers: ``append`` frames, then ``close`` (or ``abort``).

    Subclasses write into ``self.tmp`` and implement ``_append``, ``_finish`` (flush, check
    the encoder) and ``_verify`` (check the finished temporary output).
    """

    def __init__(self, path: PathLike, fps: float):
        self.path = Path(path)
        if not fps or fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps!r} for {self.path}")
        self.fps = float(fps)
        self.count = 0
        self.size: Optional[tuple[int, int]] = None  # (H, W) of the frames
        self.closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self._make_tmp()

    def _make_tmp(self) -> Path:
        handle, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}",
                                        dir=self.path.parent)
        os.close(handle)
        return Path(name)

    def append(self, frame: np.ndarray, name: Optional[str] = None) -> None:
        """Add one (H, W, 3) uint8 frame (``name``: its file stem, used by the PNG folder writer)."""
        if self.closed:
            raise ValueError(f"writer for {self.path} is closed")
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames for {self.path} must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
        if self.size is None:
            self.size = frame.shape[:2]
        elif frame.shape[:2] != self.size:
            raise ValueError(f"frame {self.count} for {self.path} is {frame.shape[0]} x {frame.shape[1]} (H x W), "
                             f"the first frame was {self.size[0]} x {self.size[1]}")
        try:
            self._append(np.ascontiguousarray(frame), f"{self.count:05d}" if name is None else name)
        except OSError as error:
            self.abort()
            raise write_failed(self.path, error) from error
        self.count += 1

    def close(self) -> Path:
        """Finish the encoding, check it, and rename the output onto ``path``; returns ``path``."""
        if self.closed:
            return self.path
        try:
            if self.count == 0:
                raise ValueError(f"no frames were written to {self.path}")
            self._finish()
            self._verify()
            self._publish()
        except BaseException as error:
            self.abort()
            if isinstance(error, OSError) and str(self.path) not in str(error):
                raise write_failed(self.path, error) from error
            raise
        self.closed = True
        return self.path

    def _publish(self) -> None:
        os.chmod(self.tmp, default_file_mode(self.path))
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Stop and remove the temporary output; ``path`` keeps whatever it held before."""
        self.closed = True
        with contextlib.suppress(Exception):
            self._stop()
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            self.tmp.unlink()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _append(self, frame: np.ndarray, name: str) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        pass

    def _verify(self) -> None:
        if not self.tmp.exists() or (self.tmp.is_file() and self.tmp.stat().st_size == 0):
            raise OSError(f"writing {str(self.path)!r} failed: the encoder produced no data")

    def _stop(self) -> None:
        pass


class FFmpegWriter(FrameWriter):
    """H.264 (yuv420p) video through an ffmpeg pipe (imageio-ffmpeg's binary).

    Odd heights or widths are padded by one edge-replicated row/column (yuv420p needs even
    sizes; logged once). ffmpeg's exit status and error lines are checked on close.
    """

    def __init__(self, path: PathLike, fps: float, codec: str = "libx264", crf: int = 25):
        super().__init__(path, fps)
        self.codec, self.crf = codec, crf
        self.process: Optional[subprocess.Popen] = None
        self.stderr = tempfile.TemporaryFile()
        self.pad = (0, 0)

    def _start(self, height: int, width: int) -> None:
        import imageio_ffmpeg
        from fractions import Fraction

        self.pad = (height % 2, width % 2)
        if any(self.pad):
            logger.warning("padding %s from %dx%d to even size for H.264", self.path, height, width)
        size = f"{width + self.pad[1]}x{height + self.pad[0]}"
        rate = str(Fraction(self.fps).limit_denominator(1001))
        command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
                   "-vcodec", "rawvideo", "-s", size, "-pix_fmt", "rgb24", "-r", rate, "-i", "-", "-an",
                   "-vcodec", self.codec, "-pix_fmt", "yuv420p", "-crf", str(self.crf), str(self.tmp)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=self.stderr)

    def _append(self, frame: np.ndarray, name: str) -> None:
        if self.process is None:
            self._start(*frame.shape[:2])
        if any(self.pad):
            frame = np.pad(frame, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        try:
            self.process.stdin.write(frame.tobytes())
        except (BrokenPipeError, OSError) as error:
            self.process.wait()
            raise OSError(getattr(error, "errno", None), f"writing {str(self.path)!r} failed: ffmpeg stopped "
                          f"({self._errors() or error})") from error

    def _errors(self) -> str:
        self.stderr.seek(0)
        lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        return "; ".join(lines[-5:])

    def _finish(self) -> None:
        self.process.stdin.close()
        code = self.process.wait()
        errors = self._errors()
        if code != 0 or "error" in errors.lower() or "no space left" in errors.lower():
            raise OSError(f"writing {str(self.path)!r} failed: ffmpeg exited with status {code}"
                          + (f": {errors}" if errors else ""))

    def _verify(self) -> None:
        super()._verify()
        if self.path.suffix.lower() in ISO_MEDIA:
            check_iso_media(self.tmp, self.path)

    def _stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(Exception):
                self.process.stdin.close()
            self.process.kill()
            self.process.wait()
        self.stderr.close()

    def close(self) -> Path:
        try:
            return super().close()
        finally:
            self.stderr.close()


def check_iso_media(tmp: Path, path: Path) -> None:
    """An mp4/mov file must be whole: top-level boxes that add up to its size, with ``moov`` and ``mdat``.

    A file truncated by a full disk fails this (its last box is cut, or ``moov`` is missing).
    """
    size, offset, kinds = tmp.stat().st_size, 0, []
    with open(tmp, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                break
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1 and len(header) == 16:
                length = struct.unpack(">Q", header[8:16])[0]
            elif length == 0:
                length = size - offset
            if length < 8:
                break
            kinds.append(kind)
            offset += length
    if offset != size or b"moov" not in kinds or b"mdat" not in kinds:
        raise OSError(f"writing {str(path)!r} failed: the encoder wrote an incomplete file "
                      f"(boxes {[k.decode('latin-1') for k in kinds]}, {offset} of {size} bytes accounted for)")


class GifWriter(FrameWriter):
    """An animated GIF, one frame at a time, looping forever.

    Each frame is quantised by Pillow to its own 256-colour table (as Pillow does for a single
    RGB image) and stored with that table as a local colour table; the delay is 100 / fps
    hundredths of a second.
    """

    def __init__(self, path: PathLike, fps: float):
        super().__init__(path, fps)
        self.file = open(self.tmp, "wb")
        self.delay = max(1, int(round(100.0 / self.fps)))

    def _append(self, frame: np.ndarray, name: str) -> None:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="GIF")
        table, descriptor, data = _split_single_gif(buffer.getvalue())
        if self.count == 0:
            height, width = frame.shape[:2]
            self.file.write(b"GIF89a" + struct.pack("<HHBBB", width, height, 0x70, 0, 0))
            self.file.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
        self.file.write(b"\x21\xf9\x04" + struct.pack("<BHBB", 0x04, self.delay, 0, 0))  # delay, keep frame
        bits = (len(table) // 3).bit_length() - 2  # table of 2 ** (bits + 1) colours
        interlaced = descriptor[8] & 0x40  # Pillow interlaces frames of 16 rows or more
        self.file.write(b"\x2c" + descriptor[:8] + bytes([0x80 | interlaced | bits]) + table + data)

    def _finish(self) -> None:
        self.file.write(b"\x3b")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def _stop(self) -> None:
        self.file.close()


def _split_single_gif(blob: bytes) -> tuple[bytes, bytes, bytes]:
    """(colour table, 9-byte image descriptor, LZW data blocks) of a one-frame GIF."""
    flags = blob[10]
    position, table = 13, b""
    if flags & 0x80:
        length = 3 * 2 ** ((flags & 7) + 1)
        table, position = blob[13:13 + length], 13 + length
    while blob[position] == 0x21:  # skip extensions: label, then sub-blocks up to a zero length
        position += 2
        while blob[position]:
            position += blob[position] + 1
        position += 1
    if blob[position] != 0x2C:
        raise ValueError("Pillow wrote an unexpected GIF layout")
    descriptor = blob[position + 1:position + 10]
    position += 10
    if descriptor[8] & 0x80:
        length = 3 * 2 ** ((descriptor[8] & 7) + 1)
        table, position = blob[position:position + length], position + length
    start = position
    position += 1  # LZW minimum code size
    while blob[position]:
        position += blob[position] + 1
    return table, descriptor, blob[start:position + 1]


class PngFolderWriter(FrameWriter):
    """A folder of ``<name>.png``, one per frame, that replaces an earlier one only when complete.

    An existing folder may only hold PNG files (an earlier output): anything else is an error,
    not deleted.
    """

    def __init__(self, path: PathLike, fps: float = 1.0):
        check_replaceable_folder(Path(path), _is_png_file, "PNG frames")
        super().__init__(path, fps)

    def _make_tmp(self) -> Path:
        return new_temp_folder(self.path)

    def _append(self, frame: np.ndarray, name: str) -> None:
        Image.fromarray(frame).save(self.tmp / f"{name}.png", format="PNG")

    def _publish(self) -> None:
        swap_folder(self.tmp, self.path)


def _is_png_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".png"


def open_frame_writer(path: PathLike, fps: float) -> FrameWriter:
    """The streaming writer for ``path``: ``.gif``, a video extension (mp4, ...), or no extension
    (a folder of PNGs). A single-image extension is an error."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        raise ValueError(f"output {str(path)!r} is a single image; write .mp4, .gif, or a folder (a path "
                         f"without extension, e.g. {str(path.with_suffix(''))!r}) of one PNG per frame")
    if not suffix:
        return PngFolderWriter(path, fps)
    if suffix == ".gif":
        return GifWriter(path, fps)
    if suffix in VIDEO_EXTENSIONS:
        return FFmpegWriter(path, fps)
    raise ValueError(f"unsupported output extension {suffix!r} for {path}; use .mp4 or .gif (or no extension "
                     "for a folder of PNGs)")
