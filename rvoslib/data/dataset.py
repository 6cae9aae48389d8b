"""A torch Dataset over (video, expression) pairs with clip sampling, and its collate function.

Training (``train=True``): one item per (video, expression); each call samples T frames
at random, consecutive sampled frames at most ``max_skip`` apart, then applies a random
horizontal flip (which also swaps "left"/"right" in the sentence) and photometric jitter.
Randomness comes from ``np.random.default_rng([seed, epoch, index])``, so an item is the
same whatever worker loads it; call ``set_epoch`` each epoch for new samples.

Evaluation (``train=False``): one item per (video, expression, window); windows are
sequential, non-overlapping runs of T frames; the last one is padded by repeating the
last frame, and ``valid`` marks the real frames.

Void pixels (value 255 in DAVIS / YouTube-VOS masks) are returned as a separate boolean
``void`` map and are 0 in ``masks``; losses and metrics may ignore them.

Sentences are returned as text: the model side owns the tokenizer.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from rvoslib.data.records import VideoRecord
from rvoslib.data.transforms import transform_clip
from rvoslib.io import VOID_ID

# ----------------------------------------------------------------------------- frame sampling


def sample_train_indices(
    num_frames: int,
    clip_len: int,
    max_skip: int,
    rng: np.random.Generator,
    anchor: int | None = None,
    clips: int = 1,
) -> list[int]:
    """Frame indices of one training item: ``clips`` clips of ``clip_len`` frames each, in order.

    Gaps between consecutive indices are drawn uniformly from 1..max_skip (shrunk when
    the video is too short for them); a video shorter than ``clip_len`` gives every frame
    once plus random repeats. With ``anchor``, the clip contains that frame (used for
    sparsely annotated videos, where the anchor is an annotated frame).

    ``clips=2`` (two-clip history training: clip A, then clip B with A's history): each clip
    draws its own gaps, shrunk only when one clip alone does not fit. B follows A (one more gap
    after A's last frame) when the video holds both; otherwise B starts at a random frame after
    A's first and overlaps A. Why: a 12-frame synthetic video cannot hold 2T = 8 frames with gaps
    of 2-3, and shrinking every gap to 1 left each training clip a third of the motion a T-frame
    clip sees (``benchmarks.model_probe``: the full model then no longer learns which way things
    move). With ``anchor`` or a video of at most ``clip_len`` frames, the two clips are sampled as
    one clip of ``2 x clip_len`` frames, as before.

    Returns:
        ``clips x clip_len`` indices in [0, num_frames); non-decreasing within each clip.
    """
    if num_frames < 1 or clip_len < 1 or max_skip < 1:
        raise ValueError(f"need num_frames, clip_len, max_skip >= 1, got {num_frames}, {clip_len}, {max_skip}")
    if clips not in (1, 2):
        raise ValueError(f"clips must be 1 or 2 (two-clip history training), got {clips}")
    if clips == 2:
        if anchor is None and num_frames > clip_len:
            return _clip_pair(num_frames, clip_len, max_skip, rng)
        clip_len = 2 * clip_len
    if num_frames < clip_len:
        extra = rng.choice(num_frames, size=clip_len - num_frames, replace=True)
        return sorted(list(range(num_frames)) + [int(i) for i in extra])
    skip = min(max_skip, (num_frames - 1) // max(clip_len - 1, 1)) if clip_len > 1 else 1
    gaps = rng.integers(1, max(skip, 1) + 1, size=clip_len - 1)
    offsets = np.concatenate([[0], np.cumsum(gaps)]).astype(int)  # (clip_len,)
    span = int(offsets[-1])
    if anchor is None:
        start = int(rng.integers(0, num_frames - span))
        return [start + int(o) for o in offsets]
    starts = [anchor - int(o) for o in offsets if 0 <= anchor - int(o) <= num_frames - 1 - span]
    if not starts:  # fall back to consecutive frames around the anchor
        offsets, span = np.arange(clip_len), clip_len - 1
        starts = [anchor - int(o) for o in offsets if 0 <= anchor - int(o) <= num_frames - 1 - span]
    start = starts[int(rng.integers(0, len(starts)))]
    return [start + int(o) for o in offsets]


def _clip_pair(num_frames: int, clip_len: int, max_skip: int, rng: np.random.Generator) -> list[int]:
    """Clips A and B of :func:`sample_train_indices` with ``clips=2`` (``num_frames > clip_len``)."""
    skip = min(max_skip, (num_frames - 2) // max(clip_len - 1, 1)) if clip_len > 1 else 1  # B must start after A
    gaps = rng.integers(1, max(skip, 1) + 1, size=(2, clip_len - 1))
    offsets = np.concatenate([np.zeros((2, 1), int), np.cumsum(gaps, axis=1)], axis=1)  # (2, clip_len)
    span_a, span_b = int(offsets[0, -1]), int(offsets[1, -1])
    between = int(rng.integers(1, max(skip, 1) + 1))
    if span_a + between + span_b <= num_frames - 1:  # B follows A, as inference windows follow each other
        start_a = int(rng.integers(0, num_frames - (span_a + between + span_b)))
        start_b = start_a + span_a + between
    else:  # B starts after A's first frame and overlaps A
        start_a = int(rng.integers(0, min(num_frames - 1 - span_a, num_frames - 2 - span_b) + 1))
        start_b = int(rng.integers(start_a + 1, num_frames - span_b))
    return [start_a + int(o) for o in offsets[0]] + [start_b + int(o) for o in offsets[1]]


def eval_windows(num_frames: int, clip_len: int) -> list[tuple[list[int], list[bool]]]:
    """Sequential non-overlapping windows covering every frame once.

    Returns:
        per window: ``clip_len`` frame indices and a validity flag per index; the last
        window repeats the last frame with flag False where the video runs out.
    """
    if num_frames < 1 or clip_len < 1:
        raise ValueError(f"need num_frames, clip_len >= 1, got {num_frames}, {clip_len}")
    windows = []
    for start in range(0, num_frames, clip_len):
        real = list(range(start, min(start + clip_len, num_frames)))
        pad = clip_len - len(real)
        windows.append((real + [num_frames - 1] * pad, [True] * len(real) + [False] * pad))
    return windows


# ----------------------------------------------------------------------------- dataset


class RVOSDataset(Dataset):
    """Clips of (video, expression) pairs, resized to S x S and CLIP-normalised.

    Args:
        records: videos from any reader in ``rvoslib.data.formats``.
        clip_len: T, frames per clip.
        size: S, side of the square input.
        train: sampling/augmentation mode (see module docstring).
        max_skip: largest gap between consecutive sampled frames (training).
        flip_prob: horizontal-flip probability (training).
        jitter: (brightness, contrast, saturation) strengths (training), None to disable.
        seed: base seed of the per-item random generators.
        clips: training clips per item, 1 or 2 (two-clip history training: clip A's T frames,
            then clip B's, each with its own gaps; see :func:`sample_train_indices`).
        fixed_windows: training items ignore the epoch, so each keeps the frames, flip and jitter
            drawn for it in epoch 0 (default: new ones every epoch).
    Each item is a dict (T below is ``clips x clip_len`` in training):
        frames (T, 3, S, S) float32, masks (T, S, S) float32 in {0, 1}, void (T, S, S) bool,
        valid (T,) bool (real frame, not padding), annotated (T,) bool (a ground-truth mask
        exists), sentence str, meta dict (video_id, exp_id, obj_ids, kind, annotator,
        dataset, frame_indices, frame_names, orig_size (H, W), flipped, window).
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        clip_len: int = 6,
        size: int = 352,
        train: bool = True,
        max_skip: int = 3,
        flip_prob: float = 0.5,
        jitter: tuple[float, float, float] | None = (0.1, 0.1, 0.1),
        seed: int = 0,
        clips: int = 1,
        fixed_windows: bool = False,
    ):
        if clip_len < 1 or size < 1:
            raise ValueError(f"clip_len and size must be >= 1, got clip_len={clip_len}, size={size}")
        if clips not in (1, 2):
            raise ValueError(f"clips must be 1 or 2 (two-clip history training), got {clips}")
        self.records = list(records)
        self.clip_len, self.size, self.train = clip_len, size, train
        self.max_skip, self.flip_prob, self.jitter = max_skip, flip_prob, jitter
        self.seed, self.epoch, self.clips, self.fixed_windows = seed, 0, clips, fixed_windows
        if train:
            self._check_trainable()
        self.items = self._build_items()

    def _check_trainable(self) -> None:
        for record in self.records:
            if not record.has_masks or not record.annotated_indices():
                raise ValueError(f"training needs masks, but video {record.video_id!r} ({record.dataset}) has none")
            for expression in record.expressions:
                if not expression.obj_ids:
                    raise ValueError(
                        f"training needs object ids, but expression {expression.exp_id!r} of video "
                        f"{record.video_id!r} has none"
                    )

    def _build_items(self) -> list[tuple[int, int, int]]:
        """(record index, expression index, window index) triples; window is 0 in training."""
        items = []
        for r, record in enumerate(self.records):
            windows = 1 if self.train else len(eval_windows(record.num_frames, self.clip_len))
            items += [(r, e, w) for e in range(len(record.expressions)) for w in range(windows)]
        return items

    def set_epoch(self, epoch: int) -> None:
        """Change the random stream of training items (call once per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        r, e, w = self.items[index]
        record, expression = self.records[r], self.records[r].expressions[e]
        epoch = 0 if self.fixed_windows else self.epoch
        rng = np.random.default_rng([self.seed, epoch, index]) if self.train else None
        indices, valid = self._frame_indices(record, w, rng)
        frames, masks, annotated = self._load(record, expression.obj_ids, indices)
        orig_size = frames.shape[1:3]
        frames_t, masks_t, sentence, flipped = transform_clip(
            frames, masks, expression.text, self.size, rng,
            flip_prob=self.flip_prob if self.train else 0.0, jitter=self.jitter if self.train else None,
        )
        meta = {
            "video_id": record.video_id, "exp_id": expression.exp_id, "obj_ids": list(expression.obj_ids),
            "kind": expression.kind, "annotator": expression.annotator, "dataset": record.dataset,
            "frame_indices": indices, "frame_names": [record.frame_names[i] for i in indices],
            "orig_size": (int(orig_size[0]), int(orig_size[1])), "flipped": flipped, "window": w,
        }
        return {
            "frames": frames_t,  # (T, 3, S, S)
            "masks": (masks_t == 1).float(),  # (T, S, S)
            "void": masks_t == VOID_ID,  # (T, S, S)
            "valid": torch.tensor(valid, dtype=torch.bool),  # (T,)
            "annotated": torch.tensor(annotated, dtype=torch.bool) & torch.tensor(valid),  # (T,)
            "sentence": sentence,
            "meta": meta,
        }

    def _frame_indices(
        self, record: VideoRecord, window: int, rng: np.random.Generator | None
    ) -> tuple[list[int], list[bool]]:
        """Frame indices of one item and their validity flags."""
        if not self.train:
            return eval_windows(record.num_frames, self.clip_len)[window]
        annotated = record.annotated_indices()
        anchor = None
        if len(annotated) < record.num_frames:  # sparse annotations: keep one annotated frame in the clip
            anchor = int(annotated[int(rng.integers(0, len(annotated)))])
        indices = sample_train_indices(record.num_frames, self.clip_len, self.max_skip, rng, anchor, self.clips)
        return indices, [True] * len(indices)

    @staticmethod
    def _load(
        record: VideoRecord, obj_ids: Sequence[int], indices: list[int]
    ) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """Frames (T, H, W, 3) uint8, masks (T, H, W) uint8 (zeros where unannotated), annotated flags."""
        unique = sorted(set(indices))
        loaded = record.load_frames(unique)
        frames = loaded[[unique.index(i) for i in indices]]
        height, width = frames.shape[1:3]
        annotated = [record.is_annotated(i) and bool(obj_ids) for i in indices]
        cache = {i: record.load_mask(i, obj_ids) for i in unique if annotated[indices.index(i)]}
        blank = np.zeros((height, width), dtype=np.uint8)
        masks = np.stack([cache.get(i, blank) for i in indices])
        return frames, masks, annotated


def collate_clips(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items of ``RVOSDataset``.

    Returns:
        frames (B, T, 3, S, S) float32, masks (B, T, S, S) float32, void (B, T, S, S) bool,
        valid (B, T) bool, annotated (B, T) bool, sentences list[str], meta list[dict].
    """
    if not items:
        raise ValueError("collate_clips got an empty batch")
    keys = ("frames", "masks", "void", "valid", "annotated")
    batch = {key: torch.stack([item[key] for item in items]) for key in keys}
    batch["sentences"] = [item["sentence"] for item in items]
    batch["meta"] = [item["meta"] for item in items]
    return batch
