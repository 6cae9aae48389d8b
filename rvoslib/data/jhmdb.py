"""JHMDB-Sentences: one sentence per JHMDB video, puppet masks, scored like A2D-Sentences.

The published layout (JHMDB's ``Rename_Images`` and ``puppet_mask`` plus the sentences of
Gavrilyuk et al. 2018), paths relative to ``root``::

    Rename_Images/<action>/<video>/00001.png ...   the frames
    puppet_mask/<action>/<video>/puppet_mask.mat   variable ``part_mask``: (H, W, T_m) uint8, 1 = the actor
    jhmdb_annotation.txt                           csv with header ``video_id,query`` (928 rows)

The last frames of some videos have no mask (``T_m`` < frames); only the first ``T_m``
frames count as annotated. JHMDB-Sentences is an evaluation set (the published protocol
runs a model trained on A2D-Sentences on all 928 videos); its ``split`` is ignored.

Scored frames: the published protocol (MTTR, ReferFormer) scores 3 frames per video drawn
at random. rvoslib takes ``frames_per_video`` evenly spaced frames among the annotated
ones (the middle frame of each of k equal parts: deterministic, so runs compare); ``None``
scores every annotated frame. Metrics: ``rvoslib.evaluate.evaluate_a2d`` (mAP 0.50:0.95,
overall and mean IoU, P@k), as for A2D-Sentences.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from rvoslib.data.files import csv_rows
from rvoslib.data.matfile import read_mat_variable
from rvoslib.data.records import (
    DatasetFormatError,
    Expression,
    MaskSource,
    MasksUnavailableError,
    VideoRecord,
    check_mask_size,
    check_path_component,
)

PathLike = str | os.PathLike
MASK_VARIABLE = "part_mask"


def scored_frames(num_masked: int, frames_per_video: Optional[int]) -> list[int]:
    """Indices of the scored frames among ``num_masked`` annotated ones (see the module docstring)."""
    if frames_per_video is None or frames_per_video >= num_masked:
        return list(range(num_masked))
    if frames_per_video < 1:
        raise ValueError(f"frames_per_video must be >= 1 or None, got {frames_per_video}")
    return [int((i + 0.5) * num_masked / frames_per_video) for i in range(frames_per_video)]


class PuppetMasks(MaskSource):
    """A video's ``puppet_mask.mat``, read on first use.

    Args:
        path: the .mat file.
        num_frames: frames of the video.
        frames_per_video: how many annotated frames are scored (None: all).
        frame_paths: the frames, to check the mask size once.
    """

    def __init__(self, path: Path, num_frames: int, frames_per_video: Optional[int],
                 frame_paths: Optional[Sequence[Path]] = None):
        self.path, self.num_frames, self.frames_per_video = path, num_frames, frames_per_video
        self.frame_paths = frame_paths
        self._masks: Optional[np.ndarray] = None
        self._scored: Optional[set[int]] = None

    def masks(self) -> np.ndarray:
        """(T_m, H, W) uint8 in {0, 1}."""
        if self._masks is None:
            part = read_mat_variable(self.path, MASK_VARIABLE)
            if part.ndim == 2:
                part = part[:, :, None]
            if part.ndim != 3:
                raise DatasetFormatError(f"{self.path}: {MASK_VARIABLE} has shape {part.shape}, expected (H, W, T)")
            masks = np.ascontiguousarray(np.moveaxis(part, -1, 0) > 0).astype(np.uint8)  # (T_m, H, W)
            if self.frame_paths:
                check_mask_size(masks[0], self.path, self.frame_paths[0])
            self._masks = masks[: self.num_frames]
        return self._masks

    def is_annotated(self, frame_index: int) -> bool:
        if self._scored is None:
            self._scored = set(scored_frames(len(self.masks()), self.frames_per_video))
        return frame_index in self._scored

    def load(self, frame_index: int, obj_ids: Sequence[int]) -> np.ndarray:
        """(H, W) uint8: the actor's mask when ``1 in obj_ids`` (its only object), else zeros."""
        masks = self.masks()
        if not 0 <= frame_index < len(masks):
            raise MasksUnavailableError(f"{self.path}: frame {frame_index} has no puppet mask ({len(masks)} frames do)")
        return masks[frame_index] if 1 in obj_ids else np.zeros_like(masks[frame_index])


def _video_folders(root: Path, top: str) -> dict[str, Path]:
    """``{video: <root>/<top>/<action>/<video>}``."""
    base = root / top
    if not base.is_dir():
        raise FileNotFoundError(f"JHMDB-Sentences: folder {base} not found")
    return {video.name: video for action in sorted(base.iterdir()) if action.is_dir()
            for video in sorted(action.iterdir()) if video.is_dir()}


def read_jhmdb_queries(path: Path) -> dict[str, list[Expression]]:
    """jhmdb_annotation.txt (csv, header ``video_id,query``) -> ``{video: [Expression]}`` (object id 1)."""
    result: dict[str, list[Expression]] = {}
    for line, row in csv_rows(path, ("video_id", "query"), "JHMDB-Sentences text annotations"):
        video = check_path_component((row["video_id"] or "").strip(), f"{path}, line {line}", "video id")
        text = (row["query"] or "").strip()
        if not text:
            raise DatasetFormatError(f"{path}, line {line}: empty query for video {video!r}")
        expressions = result.setdefault(video, [])
        expressions.append(Expression(str(len(expressions)), text, [1]))
    return result


def read_jhmdb_sentences(root: PathLike, split: Optional[str] = None,
                         frames_per_video: Optional[int] = 3) -> list[VideoRecord]:
    """Read JHMDB-Sentences (layout in the module docstring) as video records with puppet masks.

    Args:
        root: folder holding ``Rename_Images/``, ``puppet_mask/`` and ``jhmdb_annotation.txt``.
        split: ignored (the whole set is the evaluation set).
        frames_per_video: annotated frames scored per video (None: every frame with a mask).
    Returns:
        one record per video with a sentence, in the annotation file's order.
    """
    root = Path(root)
    queries = read_jhmdb_queries(root / "jhmdb_annotation.txt")
    frames, masks = _video_folders(root, "Rename_Images"), _video_folders(root, "puppet_mask")
    records = []
    for video, expressions in queries.items():
        if video not in frames:
            raise FileNotFoundError(f"JHMDB-Sentences video {video!r}: no Rename_Images/<action>/{video} folder")
        mat = masks.get(video, Path()) / "puppet_mask.mat"
        if video not in masks or not mat.is_file():
            raise FileNotFoundError(f"JHMDB-Sentences video {video!r}: no puppet_mask/<action>/{video}/puppet_mask.mat")
        paths = sorted(p for p in frames[video].iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not paths:
            raise ValueError(f"frames folder is empty: {frames[video]}")
        records.append(VideoRecord(video, [p.stem for p in paths], paths, expressions,
                                   PuppetMasks(mat, len(paths), frames_per_video, paths),
                                   dataset="jhmdb-sentences", extra={"action": frames[video].parent.name}))
    return records
