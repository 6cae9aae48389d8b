"""A2D-Sentences (``read_a2d_sentences``): sparse instance annotations of actor-action videos.

Layout under ``root``::

    Release/videoset.csv                     no header: vid,label,start,end,height,width,frames,labeled,split
    Release/pngs320H/<vid>/00001.png ...     frames (1-based names), or Release/clips320H/<vid>.mp4
    text_annotations/a2d_annotation.txt      header video_id,instance_id,query
    text_annotations/a2d_missed_videos.txt   optional: videos to skip
    text_annotations/a2d_annotation_with_instances/<vid>/<frame>.h5   (published; needs h5py)
                                                               or <frame>.png (value = instance_id + 1)

obj_id = instance_id + 1, so that 0 stays background (``Expression.extra["instance_id"]`` keeps
the original).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
from einops import rearrange

from rvoslib.data.files import PathLike, csv_rows, drop_empty_sentences, int_field, sorted_images
from rvoslib.data.records import (DatasetFormatError, Expression, MaskSource, MasksUnavailableError, VideoRecord,
                                  check_path_component)
from rvoslib.io import image_size



class A2DMasks(MaskSource):
    """Sparse per-frame instance annotations of A2D-Sentences.

    Args:
        files: one entry per frame: the annotation file (``.h5`` published, or ``.png``
            with value = instance_id + 1), or None where the frame is not annotated.
        frame_size: (H, W) of the frames, to check annotation sizes.
    """

    def __init__(self, files: Sequence[Path | None], frame_size: tuple[int, int] | None):
        self.files = list(files)
        self.frame_size = frame_size

    def is_annotated(self, frame_index: int) -> bool:
        return self.files[frame_index] is not None

    def load(self, frame_index: int, obj_ids: Sequence[int]) -> np.ndarray:
        """(H, W) uint8 union of the instances ``obj_id - 1`` (A2D has no void)."""
        path = self.files[frame_index]
        if path is None:
            raise MasksUnavailableError(f"frame {frame_index} has no A2D annotation")
        id_map = _read_a2d_h5(path) if path.suffix == ".h5" else _read_a2d_png(path)
        if self.frame_size is not None and id_map.shape != tuple(self.frame_size):
            raise ValueError(
                f"annotation {path} is {id_map.shape[0]} x {id_map.shape[1]} (H x W) but the video's frames "
                f"are {self.frame_size[0]} x {self.frame_size[1]}"
            )
        return np.isin(id_map, list(obj_ids)).astype(np.uint8)


def _read_a2d_png(path: Path) -> np.ndarray:
    """(H, W) int64 object-id map (value = instance_id + 1, 0 = background)."""
    from rvoslib.io import read_mask

    return read_mask(path).astype(np.int64)


def _read_a2d_h5(path: Path) -> np.ndarray:
    """(H, W) int64 object-id map from a published A2D h5 (``reMask`` (N, W, H), ``instance`` (N,))."""
    try:
        import h5py
    except ImportError as error:
        raise ModuleNotFoundError(
            f"reading the A2D-Sentences annotation {path} needs h5py (pip install h5py), "
            "or convert the annotations to PNG id maps (value = instance_id + 1)"
        ) from error
    with h5py.File(path, "r") as handle:
        masks = np.asarray(handle["reMask"])
        instances = np.asarray(handle["instance"]).reshape(-1).astype(np.int64)
    masks = masks[None] if masks.ndim == 2 else masks  # (N, W, H): stored transposed
    masks = rearrange(masks, "n w h -> n h w")
    id_map = np.zeros(masks.shape[1:], dtype=np.int64)  # (H, W)
    for mask, instance in zip(masks, instances):
        id_map[mask > 0] = instance + 1
    return id_map


def _read_a2d_videoset(path: Path) -> dict[str, dict]:
    """videoset.csv -> {vid: {"num_frames": int, "height": int, "width": int, "split": "train"|"test"}}."""
    if not path.is_file():
        raise FileNotFoundError(f"A2D videoset.csv not found: {path}")
    videos = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) < 9:
                raise DatasetFormatError(f"{path}, line {line_number}: expected 9 columns, got {len(row)}")
            check_path_component(row[0], f"{path}, line {line_number}", "video id")
            try:
                videos[row[0]] = {
                    "height": int(row[4]), "width": int(row[5]), "num_frames": int(row[6]),
                    "split": "train" if int(row[-1]) == 0 else "test", "label": row[1],
                }
            except ValueError as error:
                raise DatasetFormatError(f"{path}, line {line_number}: {error}") from error
    return videos


def _read_a2d_queries(path: Path) -> dict[str, list[Expression]]:
    """a2d_annotation.txt (csv with header video_id,instance_id,query) -> {vid: [Expression]}."""
    result: dict[str, list[Expression]] = {}
    for line, row in csv_rows(path, ("video_id", "instance_id", "query"), "A2D text annotations"):
        instance = int_field(row, "instance_id", path, line)
        video_id = check_path_component(row["video_id"] or "", f"{path}, line {line}", "video id")
        expressions = result.setdefault(video_id, [])
        sentence = (row["query"] or "").strip()
        expressions.append(Expression(str(len(expressions)), sentence, [instance + 1], extra={"instance_id": instance}))
    return {video: drop_empty_sentences(exps, path, video) for video, exps in result.items()}


def read_a2d_sentences(root: PathLike, split: str | None = "test") -> list[VideoRecord]:
    """Read A2D-Sentences (sparse masks: ``record.annotated_indices()`` lists the annotated frames).

    Args:
        root: folder holding ``Release/`` and ``text_annotations/`` (layout in the module docstring).
        split: "train", "test" or None (both), from the last column of videoset.csv.
    Returns:
        one VideoRecord per video that has queries; frames from ``Release/pngs320H/<vid>/`` when
        that folder exists, else from ``Release/clips320H/<vid>.mp4``. Frame names are 1-based
        ("00001"), matching the annotation file names.
    """
    root = Path(root)
    if split not in ("train", "test", None):
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    videoset = _read_a2d_videoset(root / "Release" / "videoset.csv")
    queries = _read_a2d_queries(root / "text_annotations" / "a2d_annotation.txt")
    missed_file = root / "text_annotations" / "a2d_missed_videos.txt"
    missed = set(missed_file.read_text().split()) if missed_file.is_file() else set()
    annotation_root = root / "text_annotations" / "a2d_annotation_with_instances"
    records = []
    for video_id, expressions in queries.items():
        info = videoset.get(video_id)
        if info is None:
            raise DatasetFormatError(
                f"{root / 'text_annotations' / 'a2d_annotation.txt'}: video {video_id!r} is not in videoset.csv"
            )
        if video_id in missed or (split is not None and info["split"] != split):
            continue
        records.append(_a2d_record(root, video_id, info, expressions, annotation_root / video_id))
    return records


def _a2d_record(
    root: Path, video_id: str, info: dict, expressions: list[Expression], annotation_dir: Path
) -> VideoRecord:
    """One A2D video: frames (pngs320H folder or clips320H mp4) and its sparse annotation files."""
    frames_dir = root / "Release" / "pngs320H" / video_id
    video_path = root / "Release" / "clips320H" / f"{video_id}.mp4"
    if frames_dir.is_dir():
        frame_paths = sorted_images(frames_dir)
        names, size = [p.stem for p in frame_paths], image_size(frame_paths[0])
    elif video_path.is_file():
        frame_paths, names = None, [f"{i + 1:05d}" for i in range(info["num_frames"])]
        size = None  # videoset.csv sizes refer to the original videos, not the 320H clips
    else:
        raise FileNotFoundError(f"A2D video {video_id!r}: neither {frames_dir} nor {video_path} exists")
    files: list[Path | None] = [None] * len(names)
    index_of = {name: i for i, name in enumerate(names)}
    if annotation_dir.is_dir():
        for path in sorted(annotation_dir.iterdir()):
            if path.suffix in (".h5", ".png") and path.stem in index_of:
                files[index_of[path.stem]] = path
            elif path.suffix in (".h5", ".png"):
                raise DatasetFormatError(
                    f"A2D annotation {path} names frame {path.stem!r}, which video {video_id!r} does not have"
                )
    return VideoRecord(
        video_id, names, frame_paths, expressions, A2DMasks(files, size),
        video_path=None if frame_paths else video_path,
        dataset="a2d-sentences", extra={"label": info["label"], "split": info["split"]},
    )
