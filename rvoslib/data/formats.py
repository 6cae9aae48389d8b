"""Readers for the RVOS datasets and the dispatch by format name; each returns ``list[VideoRecord]``.

Ref-YouTube-VOS and MeViS are read here; the other readers live in their own modules (named below),
and what they all share in ``files.py``.

Supported layouts (paths relative to the ``root`` given to the reader):

Ref-YouTube-VOS (``read_ref_youtube_vos``), also the synthetic shapes sets::

    JPEGImages/<video>/<frame>.jpg
    Annotations/<video>/<frame>.png          palette PNG, value = object id (absent for valid/test)
    meta_expressions.json                    {"videos": {vid: {"expressions": {exp_id: {"exp": str,
                                              "obj_id": str, ["kind": str]}}, "frames": [names]}}}

  or the official release ``<root>/<split>/{JPEGImages,Annotations}`` with
  ``<root>/meta_expressions/<split>/meta_expressions.json``.

MeViS (``read_mevis``)::

    <split>/JPEGImages/<video>/<frame>.jpg
    <split>/meta_expressions.json            expressions carry "obj_id": [int] and "anno_id": [int]
    <split>/mask_dict.json                   {anno_id: [RLE or null, one per frame]} (absent for valid)

Ref-DAVIS17 (``read_ref_davis17``, in ``davis.py``): DAVIS-2017 folders plus expression files.

A2D-Sentences (``read_a2d_sentences``, in ``a2d.py``): sparse instance annotations.

JHMDB-Sentences (``read_jhmdb_sentences``, in ``jhmdb.py``): Rename_Images, puppet_mask .mat files.

RefCOCO / RefCOCO+ / RefCOCOg (``read_refcoco``, in ``refcoco.py``): COCO images as one-frame videos.

Object ids are the palette values of the masks; for A2D, obj_id = instance_id + 1 so that
0 stays background everywhere (``Expression.extra["instance_id"]`` keeps the original).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rvoslib.data.a2d import read_a2d_sentences
from rvoslib.data.davis import read_ref_davis17
from rvoslib.data.files import (PathLike, expressions_from_meta, load_json, load_meta_expressions, palette_mask_paths,
                                parse_obj_ids, resolve_frame_paths)
from rvoslib.data.jhmdb import read_jhmdb_sentences
from rvoslib.data.records import DatasetFormatError, MaskSource, PaletteMasks, VideoRecord
from rvoslib.data.refcoco import read_refcoco, read_refcoco_plus, read_refcoco_union, read_refcocog
from rvoslib.io import image_size

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- Ref-YouTube-VOS


def _split_dirs(root: Path, split: str | None, meta_path: PathLike | None) -> tuple[Path, Path]:
    """(folder holding JPEGImages, meta_expressions.json path) for the YouTube-VOS-like layouts."""
    if (root / "JPEGImages").is_dir():
        return root, Path(meta_path) if meta_path else root / "meta_expressions.json"
    if split is not None and (root / split / "JPEGImages").is_dir():
        candidates = [
            root / "meta_expressions" / split / "meta_expressions.json",
            root / split / "meta_expressions.json",
        ]
        default = next((c for c in candidates if c.is_file()), candidates[0])
        return root / split, Path(meta_path) if meta_path else default
    if not root.exists():
        raise FileNotFoundError(f"dataset root does not exist: {root}")
    where = f"{root / 'JPEGImages'}" + (f" or {root / split / 'JPEGImages'}" if split else "")
    raise FileNotFoundError(f"no JPEGImages folder found: looked for {where}")


def read_ref_youtube_vos(
    root: PathLike,
    split: str | None = None,
    meta_path: PathLike | None = None,
    check_files: bool = True,
) -> list[VideoRecord]:
    """Read a Ref-YouTube-VOS-layout dataset (also the synthetic shapes sets).

    Args:
        root: folder holding ``JPEGImages/`` (and ``meta_expressions.json``), or the release
            root holding ``<split>/JPEGImages`` and ``meta_expressions/<split>/meta_expressions.json``.
        split: split name for the release layout ("train", "valid").
        meta_path: explicit meta_expressions.json (overrides the default location).
        check_files: check that every listed frame exists (one directory listing per video).
    Returns:
        one VideoRecord per video; masks are None when the split has no ``Annotations/``.
    """
    root = Path(root)
    data_dir, meta_file = _split_dirs(root, split, meta_path)
    videos = load_meta_expressions(meta_file)
    annotations = data_dir / "Annotations"
    has_annotations = annotations.is_dir()
    records = []
    for video_id, entry in videos.items():
        names = [str(n) for n in entry["frames"]]
        folder = data_dir / "JPEGImages" / video_id
        if check_files:
            frame_paths = resolve_frame_paths(folder, names, video_id, meta_file)
        else:
            frame_paths = [folder / f"{n}.jpg" for n in names]
        masks = None
        if has_annotations and (annotations / video_id).is_dir():
            masks = PaletteMasks(palette_mask_paths(annotations / video_id, names), frame_paths)
        records.append(
            VideoRecord(
                video_id=video_id,
                frame_names=names,
                frame_paths=frame_paths,
                expressions=expressions_from_meta(meta_file, video_id, entry, require_obj_id=has_annotations),
                masks=masks,
                dataset="ref-youtube-vos",
                extra={k: v for k, v in entry.items() if k not in ("expressions", "frames")},
            )
        )
    num_expressions = sum(len(r.expressions) for r in records)
    logger.info("read %d videos, %d expressions from %s", len(records), num_expressions, meta_file)
    return records


# ----------------------------------------------------------------------------- MeViS


class RLEMasks(MaskSource):
    """MeViS masks: COCO RLE per (annotation id, frame) in a shared mask_dict.

    Args:
        mask_dict: ``{anno_id (str): [RLE dict or None per frame]}``.
        obj_to_anno: object id -> annotation ids of this video.
        frame_paths: frames, to know the size of empty frames and to check RLE sizes.
        source: the mask_dict.json path, for error messages.
    """

    def __init__(
        self, mask_dict: dict, obj_to_anno: dict[int, list[str]], frame_paths: Sequence[Path], source: PathLike
    ):
        self.mask_dict = mask_dict
        self.obj_to_anno = obj_to_anno
        self.frame_paths = list(frame_paths)
        self.source = source

    def is_annotated(self, frame_index: int) -> bool:
        return True

    def load(self, frame_index: int, obj_ids: Sequence[int]) -> np.ndarray:
        """(H, W) uint8 union of the objects' RLE masks in this frame (no void in MeViS)."""
        from pycocotools import mask as mask_utils

        height, width = image_size(self.frame_paths[frame_index])
        union = np.zeros((height, width), dtype=np.uint8)
        for obj_id in obj_ids:
            if obj_id not in self.obj_to_anno:
                raise KeyError(f"object id {obj_id} is not referred to by any expression of this video ({self.source})")
            for anno_id in self.obj_to_anno[obj_id]:
                rle = self._rle(anno_id, frame_index)
                if rle is None:
                    continue
                if tuple(rle["size"]) != (height, width):
                    raise ValueError(
                        f"{self.source}: annotation {anno_id} frame {frame_index} is {rle['size'][0]} x "
                        f"{rle['size'][1]} (H x W) but its frame {self.frame_paths[frame_index]} is {height} x {width}"
                    )
                with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword DeprecationWarning
                    warnings.simplefilter("ignore", DeprecationWarning)
                    union |= mask_utils.decode(rle).astype(np.uint8)
        return union

    def _rle(self, anno_id: str, frame_index: int) -> dict | None:
        if anno_id not in self.mask_dict:
            raise DatasetFormatError(f"{self.source}: no key {anno_id!r} (annotation id)")
        per_frame = self.mask_dict[anno_id]
        if frame_index >= len(per_frame):
            raise DatasetFormatError(
                f"{self.source}: annotation {anno_id!r} has {len(per_frame)} frames, frame {frame_index} asked"
            )
        return per_frame[frame_index]


def _mevis_obj_to_anno(meta_file: Path, video_id: str, entry: dict) -> dict[int, list[str]]:
    """Object id -> annotation ids, gathered over the video's expressions."""
    mapping: dict[int, list[str]] = {}
    for exp_id, item in entry["expressions"].items():
        where = f"{meta_file}: video {video_id!r}, expression {exp_id!r}"
        if "anno_id" not in item:
            raise DatasetFormatError(f"{where} has no key 'anno_id'")
        obj_ids = parse_obj_ids(item.get("obj_id", []), where)
        anno_ids = [str(a) for a in (item["anno_id"] if isinstance(item["anno_id"], list) else [item["anno_id"]])]
        if len(obj_ids) != len(anno_ids):
            raise DatasetFormatError(f"{where}: 'obj_id' {obj_ids} and 'anno_id' {anno_ids} differ in length")
        for obj_id, anno_id in zip(obj_ids, anno_ids):
            mapping.setdefault(obj_id, [])
            if anno_id not in mapping[obj_id]:
                mapping[obj_id].append(anno_id)
    return mapping


def read_mevis(
    root: PathLike,
    split: str | None = None,
    meta_path: PathLike | None = None,
    mask_dict_path: PathLike | None = None,
    check_files: bool = True,
) -> list[VideoRecord]:
    """Read a MeViS-layout dataset (several objects per expression; RLE masks in mask_dict.json).

    Args:
        root: folder holding ``JPEGImages/``, ``meta_expressions.json`` and ``mask_dict.json``,
            or the release root holding ``<split>/`` folders of that form.
        split: "train", "valid_u" or "valid" for the release layout.
        meta_path, mask_dict_path: explicit file locations (defaults: next to JPEGImages).
        check_files: check that every listed frame exists.
    Returns:
        VideoRecords whose masks are None when there is no mask_dict.json (MeViS "valid").
    """
    root = Path(root)
    data_dir = root / split if split is not None and (root / split).is_dir() else root
    if not (data_dir / "JPEGImages").is_dir():
        raise FileNotFoundError(f"no JPEGImages folder found in {data_dir}")
    meta_file = Path(meta_path) if meta_path else data_dir / "meta_expressions.json"
    videos = load_meta_expressions(meta_file)
    mask_file = Path(mask_dict_path) if mask_dict_path else data_dir / "mask_dict.json"
    mask_dict = load_json(mask_file, "mask_dict.json") if mask_file.is_file() else None
    if mask_dict_path and mask_dict is None:
        raise FileNotFoundError(f"mask_dict.json not found: {mask_file}")
    records = []
    for video_id, entry in videos.items():
        names = [str(n) for n in entry["frames"]]
        folder = data_dir / "JPEGImages" / video_id
        if check_files:
            frame_paths = resolve_frame_paths(folder, names, video_id, meta_file)
        else:
            frame_paths = [folder / f"{n}.jpg" for n in names]
        masks = None
        if mask_dict is not None:
            masks = RLEMasks(mask_dict, _mevis_obj_to_anno(meta_file, video_id, entry), frame_paths, mask_file)
        records.append(
            VideoRecord(
                video_id=video_id,
                frame_names=names,
                frame_paths=frame_paths,
                expressions=expressions_from_meta(meta_file, video_id, entry, require_obj_id=mask_dict is not None),
                masks=masks,
                dataset="mevis",
                extra={k: v for k, v in entry.items() if k not in ("expressions", "frames")},
            )
        )
    return records


# ----------------------------------------------------------------------------- dispatch

READERS: dict[str, Callable[..., list[VideoRecord]]] = {
    "ref-youtube-vos": read_ref_youtube_vos,
    "mevis": read_mevis,
    "ref-davis17": read_ref_davis17,
    "a2d-sentences": read_a2d_sentences,
    "jhmdb-sentences": read_jhmdb_sentences,
    "refcoco": read_refcoco,
    "refcoco+": read_refcoco_plus,
    "refcocog": read_refcocog,
    "refcoco-all": read_refcoco_union,
}

FORMAT_ALIASES = {  # every accepted name -> its reader in READERS
    "ytvos": "ref-youtube-vos", "ref-youtube-vos": "ref-youtube-vos", "refytvos": "ref-youtube-vos",
    "synthetic": "ref-youtube-vos",
    "mevis": "mevis",
    "davis": "ref-davis17", "ref-davis17": "ref-davis17", "refdavis": "ref-davis17",
    "a2d": "a2d-sentences", "a2d-sentences": "a2d-sentences",
    "jhmdb": "jhmdb-sentences", "jhmdb-sentences": "jhmdb-sentences",
    "refcoco": "refcoco", "refcoco+": "refcoco+", "refcocog": "refcocog", "refcoco-all": "refcoco-all",
}


def canonical_format(name: str) -> str:
    """A dataset format name or alias -> the reader's name (see ``FORMAT_ALIASES``)."""
    key = str(name).strip().lower()
    if key not in FORMAT_ALIASES:
        raise ValueError(f"unknown dataset format {name!r}; expected one of {sorted(FORMAT_ALIASES)}")
    return FORMAT_ALIASES[key]


def read_dataset(name: str, root: PathLike, **kwargs: Any) -> list[VideoRecord]:
    """Read a dataset by format name or alias (see ``FORMAT_ALIASES``); kwargs go to the reader."""
    return READERS[canonical_format(name)](root, **kwargs)
