"""Ref-DAVIS17 (``read_ref_davis17``): DAVIS-2017 frames and palette masks plus referring expressions.

Frames and masks in either layout::

    JPEGImages/<resolution>/<seq>/*.jpg + Annotations/<resolution>/<seq>/*.png
    <seq>/JPEGImages/*.jpg + <seq>/Annotations/*.png

Expressions from ``davis_text_annotations/Davis17_annot{1,2}[_full_video].txt`` (lines
``<seq> <obj_id> "<sentence>"``), from a refvos csv (``video_id;instance_id;ref_exp;...``) or
from a meta_expressions.json.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence

from rvoslib.data.files import (PathLike, csv_rows, drop_empty_sentences, expressions_from_meta, int_field,
                                load_meta_expressions, palette_mask_paths, sorted_images)
from rvoslib.data.records import DatasetFormatError, Expression, PaletteMasks, VideoRecord, check_path_component

logger = logging.getLogger(__name__)



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
    result: dict[str, list[Expression]] = {}
    for line, row in csv_rows(path, ("video_id", "instance_id", "ref_exp"), "Ref-DAVIS17 expression csv", ";"):
        obj_id = int_field(row, "instance_id", path, line)
        video_id = check_path_component((row["video_id"] or "").strip(), f"{path}, line {line}", "video id")
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
        frame_paths = sorted_images(folder)
        names = [p.stem for p in frame_paths]
        mask_folder = annotations(video_id)
        masks = PaletteMasks(palette_mask_paths(mask_folder, names), frame_paths) if mask_folder.is_dir() else None
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
                vid: expressions_from_meta(path, vid, entry, require_obj_id=True)
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
