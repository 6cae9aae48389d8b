"""Readers for the RVOS datasets; each returns ``list[VideoRecord]`` (see records.py).

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

Ref-DAVIS17 (``read_ref_davis17``): DAVIS-2017 folders, either
``JPEGImages/480p/<seq>/`` + ``Annotations/480p/<seq>/`` or ``<seq>/JPEGImages`` +
``<seq>/Annotations``; expressions from ``davis_text_annotations/Davis17_annot{1,2}[_full_video].txt``
(lines ``<seq> <obj_id> "<sentence>"``), from a refvos csv (``video_id;instance_id;ref_exp;...``)
or from a meta_expressions.json.

A2D-Sentences (``read_a2d_sentences``), sparse annotations::

    Release/videoset.csv                     no header: vid,label,start,end,height,width,frames,labeled,split
    Release/pngs320H/<vid>/00001.png ...     frames (1-based names), or Release/clips320H/<vid>.mp4
    text_annotations/a2d_annotation.txt      header video_id,instance_id,query
    text_annotations/a2d_missed_videos.txt   optional: videos to skip
    text_annotations/a2d_annotation_with_instances/<vid>/<frame>.h5   (published; needs h5py)
                                                               or <frame>.png (value = instance_id + 1)

JHMDB-Sentences (``read_jhmdb_sentences``, in ``jhmdb.py``): Rename_Images, puppet_mask .mat files.

RefCOCO / RefCOCO+ / RefCOCOg (``read_refcoco``, in ``refcoco.py``): COCO images as one-frame videos.

Object ids are the palette values of the masks; for A2D, obj_id = instance_id + 1 so that
0 stays background everywhere (``Expression.extra["instance_id"]`` keeps the original).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from einops import rearrange

from rvoslib.data.records import (
    DatasetFormatError,
    Expression,
    MaskSource,
    MasksUnavailableError,
    PaletteMasks,
    VideoRecord,
    check_path_component,
)
from rvoslib.data.jhmdb import read_jhmdb_sentences
from rvoslib.data.refcoco import read_refcoco, read_refcoco_plus, read_refcoco_union, read_refcocog
from rvoslib.io import IMAGE_EXTENSIONS, image_size

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- json helpers


def load_json(path: PathLike, what: str = "file") -> Any:
    """Parse a JSON file; FileNotFoundError / DatasetFormatError name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise DatasetFormatError(
            f"cannot parse {path}: invalid JSON at line {error.lineno}, column {error.colno} ({error.msg})"
        ) from error
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"cannot parse {path}: not UTF-8 text ({error})") from error


def load_meta_expressions(path: PathLike) -> dict[str, dict]:
    """Read a meta_expressions.json and check its structure.

    Returns:
        the ``videos`` dict: ``{video_id: {"expressions": {...}, "frames": [...], ...}}``.
    Raises:
        FileNotFoundError (missing), DatasetFormatError (unparseable, or a key missing:
        the message names the key and the video; or a video id, expression id or frame
        name that is not a single path component, see ``check_path_component``).
    """
    path = Path(path)
    meta = load_json(path, "meta_expressions.json")
    if not isinstance(meta, dict) or "videos" not in meta:
        raise DatasetFormatError(f"{path}: missing key 'videos' at the top level")
    videos = meta["videos"]
    if not isinstance(videos, dict):
        raise DatasetFormatError(f"{path}: 'videos' must be an object mapping video ids to entries")
    for video_id, entry in videos.items():
        check_path_component(video_id, path, "video id")
        for key in ("expressions", "frames"):
            if not isinstance(entry, dict) or key not in entry:
                raise DatasetFormatError(f"{path}: video {video_id!r} has no key {key!r}")
        if not isinstance(entry["expressions"], dict):
            raise DatasetFormatError(f"{path}: video {video_id!r}: 'expressions' must be an object")
        if not isinstance(entry["frames"], list) or not entry["frames"]:
            raise DatasetFormatError(f"{path}: video {video_id!r}: 'frames' must be a non-empty list")
        for name in entry["frames"]:
            check_path_component(name, path, f"video {video_id!r}: frame name")
        for exp_id, expression in entry["expressions"].items():
            check_path_component(exp_id, path, f"video {video_id!r}: expression id")
            if not isinstance(expression, dict) or "exp" not in expression:
                raise DatasetFormatError(f"{path}: video {video_id!r}, expression {exp_id!r} has no key 'exp'")
    return videos


def _parse_obj_ids(value: Any, where: str) -> list[int]:
    """obj_id as str / int / list of those -> list[int]."""
    values = value if isinstance(value, list) else [value]
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError) as error:
        raise DatasetFormatError(
            f"{where}: 'obj_id' must be an integer or a list of integers, got {value!r}"
        ) from error


def _expressions_from_meta(
    path: Path, video_id: str, entry: dict, require_obj_id: bool
) -> list[Expression]:
    """Expressions of one meta_expressions.json video entry (keeps "kind" and unknown fields)."""
    expressions = []
    for exp_id, item in entry["expressions"].items():
        where = f"{path}: video {video_id!r}, expression {exp_id!r}"
        if "obj_id" not in item and require_obj_id:
            raise DatasetFormatError(f"{where} has no key 'obj_id'")
        obj_ids = _parse_obj_ids(item["obj_id"], where) if "obj_id" in item else []
        extra = {k: v for k, v in item.items() if k not in ("exp", "obj_id", "kind")}
        expressions.append(
            Expression(str(exp_id), str(item["exp"]).strip(), obj_ids, kind=item.get("kind"), extra=extra)
        )
    return drop_empty_sentences(expressions, path, video_id)


def drop_empty_sentences(expressions: list[Expression], source: PathLike, video_id: str) -> list[Expression]:
    """Expressions whose text is not empty or whitespace; the others are skipped with a warning."""
    kept = [e for e in expressions if e.text.strip()]
    if len(kept) < len(expressions):
        skipped = [e.exp_id for e in expressions if not e.text.strip()]
        logger.warning("%s: video %r: skipped expression(s) %s with an empty sentence", source, video_id, skipped)
    return kept


# ----------------------------------------------------------------------------- frames on disk


def resolve_frame_paths(folder: Path, frame_names: Sequence[str], video_id: str, source: PathLike) -> list[Path]:
    """Paths of the named frames inside ``folder`` (extension jpg, jpeg or png).

    Raises:
        FileNotFoundError naming the video and the first missing frame.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{source}: video {video_id!r} has no frames folder {folder}")
    files = sorted(os.listdir(folder))
    by_name = {name: name for name in files}
    for name in files:
        stem, suffix = os.path.splitext(name)
        if suffix.lower() in IMAGE_EXTENSIONS:
            by_name.setdefault(stem, name)
    paths = []
    for name in map(str, frame_names):
        if name not in by_name:
            raise FileNotFoundError(
                f"{source}: video {video_id!r} lists frame {name!r} but no {name}.jpg/.jpeg/.png exists in {folder}"
            )
        paths.append(folder / by_name[name])
    return paths


def _palette_mask_paths(folder: Path, frame_names: Sequence[str]) -> list[Path | None]:
    """``folder/<name>.png`` per frame, None where the file does not exist."""
    present = set(os.listdir(folder)) if folder.is_dir() else set()
    return [folder / f"{name}.png" if f"{name}.png" in present else None for name in frame_names]


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
            masks = PaletteMasks(_palette_mask_paths(annotations / video_id, names), frame_paths)
        records.append(
            VideoRecord(
                video_id=video_id,
                frame_names=names,
                frame_paths=frame_paths,
                expressions=_expressions_from_meta(meta_file, video_id, entry, require_obj_id=has_annotations),
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
        obj_ids = _parse_obj_ids(item.get("obj_id", []), where)
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
                expressions=_expressions_from_meta(meta_file, video_id, entry, require_obj_id=mask_dict is not None),
                masks=masks,
                dataset="mevis",
                extra={k: v for k, v in entry.items() if k not in ("expressions", "frames")},
            )
        )
    return records


# ----------------------------------------------------------------------------- Ref-DAVIS17


def read_davis_expressions_txt(path: PathLike, annotator: int | None = None) -> dict[str, list[Expression]]:
    """Read a Ref-DAVIS17 text file (lines ``<seq> <obj_id> "<sentence>"``).

    The annotator is taken from the file name (``Davis17_annot2*.txt`` -> 2) unless given.
    ``extra["expression_type"]`` is "full_video" for ``*_full_video.txt`` files, else "first_frame".
    Returns ``{sequence: [Expression]}``; exp ids are ``a<annotator>_<type>_<obj_id>``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Ref-DAVIS17 expression file not found: {path}")
    if annotator is None:
        found = re.search(r"annot(\d+)", path.name)
        annotator = int(found.group(1)) if found else None
    kind = "full_video" if "full_video" in path.name else "first_frame"
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # the second annotator's files are latin-1
        text = raw.decode("latin-1")
    result: dict[str, list[Expression]] = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise DatasetFormatError(
                f"{path}, line {line_number}: expected '<sequence> <object id> \"<sentence>\"', got {line.strip()!r}"
            )
        video_id, obj_id, sentence = parts[0], int(parts[1]), parts[2].strip().strip('"').strip()
        check_path_component(video_id, f"{path}, line {line_number}", "video id")
        exp_id = f"a{annotator}_{kind}_{obj_id}" if annotator is not None else f"{kind}_{obj_id}"
        result.setdefault(video_id, []).append(
            Expression(exp_id, sentence, [obj_id], annotator=annotator, extra={"expression_type": kind})
        )
    return {video: drop_empty_sentences(exps, path, video) for video, exps in result.items()}


def read_davis_expressions_csv(path: PathLike, annotator: int | None = None) -> dict[str, list[Expression]]:
    """Read the refvos csv (``;``-separated, header ``video_id;instance_id;ref_exp;...``).

    Other columns (difficulty, categories) go to ``Expression.extra``. Exp ids are
    the row's position within its video ("0", "1", ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Ref-DAVIS17 expression csv not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        missing = {"video_id", "instance_id", "ref_exp"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetFormatError(f"{path}: missing column(s) {sorted(missing)} in the header {reader.fieldnames}")
        result: dict[str, list[Expression]] = {}
        for row_number, row in enumerate(reader, start=2):
            try:
                obj_id = int(row["instance_id"])
            except (TypeError, ValueError) as error:
                raise DatasetFormatError(
                    f"{path}, line {row_number}: instance_id {row['instance_id']!r} is not an integer"
                ) from error
            video_id = check_path_component((row["video_id"] or "").strip(), f"{path}, line {row_number}", "video id")
            expressions = result.setdefault(video_id, [])
            extra = {k: v for k, v in row.items() if k not in ("video_id", "instance_id", "ref_exp")}
            sentence = (row["ref_exp"] or "").strip()
            expressions.append(Expression(str(len(expressions)), sentence, [obj_id], annotator=annotator, extra=extra))
    return {video: drop_empty_sentences(exps, path, video) for video, exps in result.items()}


def _davis_expression_files(root: Path, annotator: int | None, expression_type: str) -> list[Path]:
    """Default expression files under ``root``: Ref-DAVIS17 txt files, else a csv, else a meta json."""
    text_dir = root / "davis_text_annotations"
    if text_dir.is_dir():
        annotators = [annotator] if annotator is not None else [1, 2]
        suffixes = {"full_video": ["_full_video"], "first_frame": [""], "both": ["_full_video", ""]}[expression_type]
        files = [text_dir / f"Davis17_annot{a}{s}.txt" for a in annotators for s in suffixes]
        return [f for f in files if f.is_file()]
    for pattern in ("*.csv", "meta_expressions.json"):
        found = sorted(root.glob(pattern))
        if found:
            return found[:1]
    return []


def read_ref_davis17(
    root: PathLike,
    expressions: PathLike | Sequence[PathLike] | None = None,
    annotator: int | None = None,
    expression_type: str = "both",
    resolution: str = "480p",
    videos: Sequence[str] | None = None,
) -> list[VideoRecord]:
    """Read Ref-DAVIS17: DAVIS-2017 frames and palette masks plus referring expressions.

    Args:
        root: DAVIS root (``JPEGImages/<resolution>/<seq>``) or a folder of ``<seq>/JPEGImages``.
        expressions: expression file(s): ``.txt`` (Ref-DAVIS17), ``.csv`` (refvos) or ``.json``
            (meta_expressions). Default: ``davis_text_annotations/Davis17_annot*.txt`` under root,
            else the first ``*.csv``, else ``meta_expressions.json``.
        annotator: keep only this annotator's expressions (1 or 2); for a csv/json, the id to assign.
        expression_type: "full_video", "first_frame" or "both" (Ref-DAVIS17 txt files only).
        resolution: DAVIS resolution folder.
        videos: restrict to these sequences.
    Returns:
        one VideoRecord per sequence that has both expressions and frames on disk
        (sequences of the expression file without frames are skipped with an INFO log).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Ref-DAVIS17 root does not exist: {root}")
    if expression_type not in ("full_video", "first_frame", "both"):
        raise ValueError(f"expression_type must be 'full_video', 'first_frame' or 'both', got {expression_type!r}")
    if expressions is not None:
        files = _as_paths(expressions)
    else:
        files = _davis_expression_files(root, annotator, expression_type)
    if not files:
        raise FileNotFoundError(
            f"no Ref-DAVIS17 expression file found under {root} (davis_text_annotations/*.txt, *.csv)"
        )
    by_video = _read_davis_expression_files(files, annotator)
    images, annotations = _davis_folders(root, resolution)
    wanted = list(videos) if videos is not None else sorted(by_video)
    records, skipped = [], []
    for video_id in wanted:
        if video_id not in by_video:
            raise KeyError(f"video {video_id!r} has no expression in {[str(f) for f in files]}")
        folder = images(video_id)
        if not folder.is_dir():
            skipped.append(video_id)
            continue
        frame_paths = _sorted_images(folder)
        names = [p.stem for p in frame_paths]
        mask_folder = annotations(video_id)
        masks = PaletteMasks(_palette_mask_paths(mask_folder, names), frame_paths) if mask_folder.is_dir() else None
        records.append(VideoRecord(video_id, names, frame_paths, by_video[video_id], masks, dataset="ref-davis17"))
    if skipped:
        logger.info("Ref-DAVIS17: skipped %d sequence(s) with expressions but no frames under %s", len(skipped), root)
    return records


def _as_paths(value: PathLike | Sequence[PathLike]) -> list[Path]:
    return [Path(value)] if isinstance(value, (str, os.PathLike)) else [Path(v) for v in value]


def _read_davis_expression_files(files: Sequence[Path], annotator: int | None) -> dict[str, list[Expression]]:
    """Merge the expressions of several files into ``{sequence: [Expression]}``."""
    merged: dict[str, list[Expression]] = {}
    for path in files:
        suffix = path.suffix.lower()
        if suffix == ".txt":
            part = read_davis_expressions_txt(path)
            if annotator is not None:
                part = {v: [e for e in exps if e.annotator in (None, annotator)] for v, exps in part.items()}
        elif suffix == ".csv":
            part = read_davis_expressions_csv(path, annotator)
        elif suffix == ".json":
            part = {
                vid: _expressions_from_meta(path, vid, entry, require_obj_id=True)
                for vid, entry in load_meta_expressions(path).items()
            }
            for expression in (e for exps in part.values() for e in exps):
                expression.annotator = annotator
        else:
            raise ValueError(f"unsupported Ref-DAVIS17 expression file {path}: expected .txt, .csv or .json")
        for video_id, expressions in part.items():
            merged.setdefault(video_id, []).extend(expressions)
    return merged


def _davis_folders(root: Path, resolution: str) -> tuple[Callable[[str], Path], Callable[[str], Path]]:
    """Functions sequence -> frames folder and sequence -> annotations folder for either layout."""
    if (root / "JPEGImages" / resolution).is_dir():
        return (lambda v: root / "JPEGImages" / resolution / v), (lambda v: root / "Annotations" / resolution / v)
    return (lambda v: root / v / "JPEGImages"), (lambda v: root / v / "Annotations")


def _sorted_images(folder: Path) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise ValueError(f"frames folder is empty: {folder}")
    return paths


# ----------------------------------------------------------------------------- A2D-Sentences


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
    if not path.is_file():
        raise FileNotFoundError(f"A2D text annotations not found: {path}")
    result: dict[str, list[Expression]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"video_id", "instance_id", "query"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetFormatError(f"{path}: missing column(s) {sorted(missing)} in the header {reader.fieldnames}")
        for row_number, row in enumerate(reader, start=2):
            try:
                instance = int(row["instance_id"])
            except (TypeError, ValueError) as error:
                raise DatasetFormatError(
                    f"{path}, line {row_number}: instance_id {row['instance_id']!r} is not an integer"
                ) from error
            video_id = check_path_component(row["video_id"] or "", f"{path}, line {row_number}", "video id")
            expressions = result.setdefault(video_id, [])
            expressions.append(
                Expression(
                    str(len(expressions)), (row["query"] or "").strip(), [instance + 1], extra={"instance_id": instance}
                )
            )
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
        frame_paths = _sorted_images(frames_dir)
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


def check_masks(record: VideoRecord) -> None:
    """Decode every annotated frame of a record once (files and sizes checked); raises on the first problem."""
    obj_ids = sorted({obj_id for expression in record.expressions for obj_id in expression.obj_ids})
    for index in record.annotated_indices():
        record.load_mask(index, obj_ids)
