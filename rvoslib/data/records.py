"""The in-memory form shared by every dataset reader.

A dataset is a ``list[VideoRecord]``. A record knows its frames (paths, or one video
file), its referring expressions, and where its masks are; nothing is decoded until
asked for (``record.load_frames``, ``record.load_mask``).

Mask convention returned by ``load_mask``: ``(H, W) uint8`` with 1 where any of the
requested object ids is, 0 elsewhere, and 255 on void pixels where the format has
void (DAVIS / YouTube-VOS palette value 255). Formats without void never return 255.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Any, Sequence

import numpy as np

from rvoslib.io import VOID_ID, image_size, read_frames, read_mask, read_video_frames


class DatasetFormatError(ValueError):
    """A dataset file is malformed: the message names the file, the key and the video."""


def check_path_component(value: Any, source: str | os.PathLike, what: str = "id") -> str:
    """``str(value)`` if it is safe as one path component, else DatasetFormatError.

    Ids read from data files (video ids, expression ids, frame names) are joined into
    input and output paths, so each must be a single component: non-empty, no ``/`` or
    ``\\``, not ``.`` or ``..``, not absolute (nor a Windows drive), no NUL byte.

    Args:
        value: the id as read.
        source: the file it was read from, named in the error.
        what: what the id is ("video id", "expression id", "frame name"), for the error.
    Returns:
        the id as a string.
    """
    text = str(value)
    problem = None
    if not text:
        problem = "it is empty"
    elif "\x00" in text:
        problem = "it contains a NUL byte"
    elif os.path.isabs(text) or PureWindowsPath(text).is_absolute() or PureWindowsPath(text).drive:
        problem = "it is an absolute path"
    elif "/" in text or "\\" in text:
        problem = "it contains a path separator"
    elif text in (".", ".."):
        problem = "it is a relative folder reference"
    if problem is not None:
        raise DatasetFormatError(f"{source}: {what} {text!r} is not a single path component ({problem})")
    return text


class MasksUnavailableError(LookupError):
    """A mask was asked for where the dataset has none (a split without annotations, or a
    frame that is not annotated in a sparsely annotated dataset)."""


@dataclass
class Expression:
    """One referring expression of a video.

    Attributes:
        exp_id: id unique within its video (a string, as in meta_expressions.json).
        text: the sentence.
        obj_ids: ids of the referred objects (one for most datasets; MeViS may have several;
            empty when the split carries no object ids, e.g. Ref-YouTube-VOS valid).
        kind: optional category, e.g. "appearance" | "motion" | "relation" (synthetic data).
        annotator: Ref-DAVIS17 annotator (1 or 2) or None.
        extra: other fields of the source file, kept as they are.
    """

    exp_id: str
    text: str
    obj_ids: list[int]
    kind: str | None = None
    annotator: int | None = None
    extra: dict = field(default_factory=dict)


class MaskSource:
    """Where a video's masks come from. Subclasses implement ``is_annotated`` and ``load``."""

    def is_annotated(self, frame_index: int) -> bool:
        """Whether frame ``frame_index`` has a ground-truth mask."""
        raise NotImplementedError

    def load(self, frame_index: int, obj_ids: Sequence[int]) -> np.ndarray:
        """(H, W) uint8: 1 on the union of ``obj_ids``, 0 elsewhere, 255 on void."""
        raise NotImplementedError


def union_mask(id_map: np.ndarray, obj_ids: Sequence[int], void_id: int | None = VOID_ID) -> np.ndarray:
    """Binary union of object ids in an id map.

    Args:
        id_map: (H, W) integer map of object ids.
        obj_ids: ids to merge into the foreground.
        void_id: value copied through as 255 (None: no void).
    Returns:
        (H, W) uint8 in {0, 1, 255}.
    """
    mask = np.isin(id_map, np.asarray(list(obj_ids), dtype=np.int64)).astype(np.uint8)
    if void_id is not None:
        mask[id_map == void_id] = VOID_ID
    return mask


class PaletteMasks(MaskSource):
    """Per-frame palette PNGs (value = object id, 255 = void): YouTube-VOS, DAVIS, synthetic.

    Args:
        mask_paths: one entry per frame, None where the frame has no annotation file.
        frame_paths: the frames, to check that each mask has its frame's size (optional).
    """

    def __init__(self, mask_paths: Sequence[Path | None], frame_paths: Sequence[Path] | None = None):
        self.mask_paths = list(mask_paths)
        self.frame_paths = list(frame_paths) if frame_paths is not None else None

    def is_annotated(self, frame_index: int) -> bool:
        return self.mask_paths[frame_index] is not None

    def load(self, frame_index: int, obj_ids: Sequence[int]) -> np.ndarray:
        path = self.mask_paths[frame_index]
        if path is None:
            raise MasksUnavailableError(f"frame {frame_index} has no annotation file")
        id_map = read_mask(path)
        if self.frame_paths is not None:
            check_mask_size(id_map, path, self.frame_paths[frame_index])
        return union_mask(id_map, obj_ids)


def check_mask_size(mask: np.ndarray, mask_path: str | os.PathLike, frame_path: str | os.PathLike) -> None:
    """Raise ValueError naming both files and both sizes if mask (H, W) differs from the frame's size."""
    frame_hw = image_size(frame_path)
    if tuple(mask.shape[:2]) != frame_hw:
        raise ValueError(
            f"mask {mask_path} is {mask.shape[0]} x {mask.shape[1]} (H x W) but its frame "
            f"{frame_path} is {frame_hw[0]} x {frame_hw[1]}"
        )


@dataclass
class VideoRecord:
    """One video with its expressions; frames and masks are loaded lazily.

    Attributes:
        video_id: dataset id of the video.
        frame_names: names of the frames in order (file stems, e.g. "00000").
        frame_paths: one image path per frame, or None when the frames come from ``video_path``.
        expressions: the referring expressions of this video.
        masks: the mask source, or None when the split has no annotations.
        video_path: a video file holding the frames (used when ``frame_paths`` is None).
        dataset: name of the format it was read from ("ref-youtube-vos", "mevis", ...).
        extra: other per-video fields of the source file (e.g. synthetic object attributes).
    """

    video_id: str
    frame_names: list[str]
    frame_paths: list[Path] | None = None
    expressions: list[Expression] = field(default_factory=list)
    masks: MaskSource | None = None
    video_path: Path | None = None
    dataset: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)

    @property
    def has_masks(self) -> bool:
        """Whether this record carries ground-truth masks at all."""
        return self.masks is not None

    def is_annotated(self, frame_index: int) -> bool:
        """Whether frame ``frame_index`` has a ground-truth mask."""
        return self.masks is not None and self.masks.is_annotated(frame_index)

    def annotated_indices(self) -> list[int]:
        """Indices of the frames that have a ground-truth mask (all of them for dense datasets)."""
        return [i for i in range(self.num_frames) if self.is_annotated(i)]

    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the first frame (from the file header for frame folders)."""
        if self.frame_paths is not None:
            return image_size(self.frame_paths[0])
        return tuple(self.load_frames([0]).shape[1:3])

    def load_frames(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Frames at ``indices`` (all when None): (n, H, W, 3) uint8."""
        indices = list(range(self.num_frames)) if indices is None else [int(i) for i in indices]
        self._check_indices(indices)
        if self.frame_paths is not None:
            return read_frames([self.frame_paths[i] for i in indices])
        if self.video_path is None:
            raise ValueError(f"video {self.video_id!r} has neither frame paths nor a video file")
        return read_video_frames(self.video_path, indices)  # decodes only the frames it needs

    def load_mask(self, frame_index: int, obj_ids: Sequence[int]) -> np.ndarray:
        """Union mask of ``obj_ids`` in frame ``frame_index``: (H, W) uint8 in {0, 1, 255 (void)}.

        Raises:
            MasksUnavailableError if the split or this frame has no annotation.
        """
        self._check_indices([frame_index])
        if self.masks is None:
            raise MasksUnavailableError(
                f"video {self.video_id!r} ({self.dataset or 'dataset'}) has no ground-truth masks "
                "(e.g. a validation/test split without annotations)"
            )
        if not self.masks.is_annotated(frame_index):
            raise MasksUnavailableError(
                f"frame {frame_index} ({self.frame_names[frame_index]!r}) of video {self.video_id!r} "
                "is not annotated"
            )
        return self.masks.load(frame_index, obj_ids)

    def load_masks(self, indices: Sequence[int], obj_ids: Sequence[int]) -> np.ndarray:
        """Union masks for several frames: (n, H, W) uint8 in {0, 1, 255}."""
        return np.stack([self.load_mask(i, obj_ids) for i in indices])

    def _check_indices(self, indices: Sequence[int]) -> None:
        for index in indices:
            if not 0 <= index < self.num_frames:
                raise IndexError(f"frame index {index} out of range for video {self.video_id!r} "
                                 f"with {self.num_frames} frames")
