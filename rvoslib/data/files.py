"""Files the dataset readers share: JSON and meta_expressions.json parsing, frames and palette masks on disk.

Every error names the file (and the video, expression or frame) it is about.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

from rvoslib.data.records import DatasetFormatError, Expression, check_path_component
from rvoslib.io import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


# ----------------------------------------------------------------------------- csv


def csv_rows(path: Path, columns: Sequence[str], what: str, delimiter: str = ",") -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` for each data row of a csv file with a header (first row: line 2).

    Raises:
        FileNotFoundError ("<what> not found: <path>"), DatasetFormatError naming the
        file and the header when one of ``columns`` is missing.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = set(columns) - set(reader.fieldnames or [])
        if missing:
            raise DatasetFormatError(f"{path}: missing column(s) {sorted(missing)} in the header {reader.fieldnames}")
        yield from enumerate(reader, start=2)


def int_field(row: dict, column: str, path: Path, line: int) -> int:
    """``int(row[column])``; DatasetFormatError naming the file, line and value when it is not an integer."""
    try:
        return int(row[column])
    except (TypeError, ValueError) as error:
        raise DatasetFormatError(f"{path}, line {line}: {column} {row[column]!r} is not an integer") from error


# ----------------------------------------------------------------------------- json


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


def parse_obj_ids(value: Any, where: str) -> list[int]:
    """obj_id as str / int / list of those -> list[int]."""
    values = value if isinstance(value, list) else [value]
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError) as error:
        raise DatasetFormatError(
            f"{where}: 'obj_id' must be an integer or a list of integers, got {value!r}"
        ) from error


def expressions_from_meta(
    path: Path, video_id: str, entry: dict, require_obj_id: bool
) -> list[Expression]:
    """Expressions of one meta_expressions.json video entry (keeps "kind" and unknown fields)."""
    expressions = []
    for exp_id, item in entry["expressions"].items():
        where = f"{path}: video {video_id!r}, expression {exp_id!r}"
        if "obj_id" not in item and require_obj_id:
            raise DatasetFormatError(f"{where} has no key 'obj_id'")
        obj_ids = parse_obj_ids(item["obj_id"], where) if "obj_id" in item else []
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


def palette_mask_paths(folder: Path, frame_names: Sequence[str]) -> list[Path | None]:
    """``folder/<name>.png`` per frame, None where the file does not exist."""
    present = set(os.listdir(folder)) if folder.is_dir() else set()
    return [folder / f"{name}.png" if f"{name}.png" in present else None for name in frame_names]


def sorted_images(folder: Path) -> list[Path]:
    """The image files of a frames folder (jpg, jpeg, png), sorted by name; ValueError when there is none."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise ValueError(f"frames folder is empty: {folder}")
    return paths
