"""Synthetic coloured-shapes videos with referring expressions, and image-caption pairs.

Each video shows 2-4 objects (shape x colour x size) on a plain background, each with one
motion: static, left, right, up, down or bouncing (up and down). Every expression refers to
exactly one object, and is one of three kinds:

- ``appearance``: "the large blue square" (the fewest attributes that single the object out);
- ``motion``: "the shape moving left", "the red circle that stays still". A motion expression
  is only made for an object that has a *twin* (same size, colour and shape) moving
  differently, so no single frame can resolve it: temporal information is required;
- ``relation``: "the circle to the left of the red square" (true in every frame for the
  target, false in every frame for the other objects the first description matches).

Each expression is kept as a structured ``spec`` and checked by ``referents`` (an
independent resolver) to refer to exactly one object. ``hard=True`` gives every video a
group of twins (often three), so appearance alone rarely suffices: the validation split
for the temporal-modelling ablation.

Everything is deterministic by seed: video ``i`` of split ``s`` uses the generator
``np.random.default_rng([seed, crc32(s), i])``, so it does not depend on how many videos
are made, and train/valid differ even with the same seed.

Frames are drawn without antialiasing and saved as PNG by default (JPEG would blur the
colours at the edges and is 5x larger at this size), so masks are exact: an object's mask is its visible
pixels (objects drawn later are in front; overlaps are kept light).

The shapes world (vocabulary, objects, drawing, motion, SyntheticOptions) lives in
:mod:`rvoslib.data.shapes`, the referring expressions in :mod:`rvoslib.data.expressions`;
this module composes videos from them, writes datasets and makes the image-caption pairs.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rvoslib.data.expressions import make_expressions
from rvoslib.data.shapes import (
    AXES,
    COLOURS,
    MOTIONS,
    SHAPES,
    SIZES,
    ShapeObject,
    SyntheticOptions,
    render_frames,
    shape_mask,
    trajectory,
)
from rvoslib.io import atomic_path, write_image, write_mask

logger = logging.getLogger(__name__)


@dataclass
class SyntheticVideo:
    """A generated video: frames (F, S, S, 3) uint8, id_maps (F, S, S) uint8 (0 = background,
    k = object k), objects, and expressions (dicts with "text", "obj_id", "kind", "spec")."""

    video_id: str
    frames: np.ndarray
    id_maps: np.ndarray
    objects: list[ShapeObject]
    expressions: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------- composition


def _far_enough(a: ShapeObject, b: ShapeObject) -> bool:
    """Light occlusion only: centres at least 0.85 x (r_a + r_b) apart in every frame."""
    distance = np.linalg.norm(a.centres - b.centres, axis=1)
    return bool(np.all(distance >= 0.85 * (a.radius + b.radius)))


def _visible_enough(objects: Sequence[ShapeObject], id_maps: np.ndarray, size: int) -> bool:
    """Every object keeps >= 60% of its pixels visible in every frame."""
    for obj in objects:
        for t in range(len(id_maps)):
            full = shape_mask(obj.shape, obj.centres[t], obj.radius, size).sum()
            if (id_maps[t] == obj.obj_id).sum() < 0.6 * full:
                return False
    return True


def _appearances(rng: np.random.Generator, num_objects: int, options: SyntheticOptions) -> list[tuple[str, str, str]]:
    """(size, colour, shape) per object; twins share one; others come from a small per-video palette."""
    shapes = list(rng.choice(SHAPES, size=int(rng.integers(2, 4)), replace=False))
    colours = list(rng.choice(list(COLOURS), size=int(rng.integers(2, 4)), replace=False))

    def draw() -> tuple[str, str, str]:
        return (str(rng.choice(list(SIZES))), str(rng.choice(colours)), str(rng.choice(shapes)))

    result: list[tuple[str, str, str]] = []
    if options.hard or rng.random() < options.twin_prob:
        group = 3 if options.hard and num_objects >= 3 and rng.random() < 0.5 else 2
        result += [draw()] * group
        if options.hard and num_objects - group >= 2 and rng.random() < 0.5:
            result += [draw()] * 2
    while len(result) < num_objects:
        candidate = draw()
        if candidate not in result:
            result.append(candidate)
    return result[:num_objects]


def _motions(rng: np.random.Generator, appearances: Sequence[tuple[str, str, str]], same_axis: bool = False) -> list[str]:
    """One motion per object; objects sharing an appearance get different motions, with ``same_axis``
    all from one of AXES (vertical for a group of 3; any, for the rare group of 4 or more)."""
    group_size = {a: appearances.count(a) for a in appearances}
    axis: dict[tuple[str, str, str], tuple[str, ...]] = {}
    motions: list[str] = []
    for index, appearance in enumerate(appearances):
        taken = {motions[j] for j in range(index) if appearances[j] == appearance}
        allowed = MOTIONS
        if same_axis and group_size[appearance] > 1:
            if appearance not in axis:
                fits = [a for a in AXES if len(a) >= group_size[appearance]] or [MOTIONS]  # 4+ alike: any motion
                axis[appearance] = fits[int(rng.integers(len(fits)))]
            allowed = axis[appearance]
        motions.append(str(rng.choice([m for m in allowed if m not in taken])))
    return motions


def _place_objects(
    rng: np.random.Generator,
    appearances: Sequence[tuple[str, str, str]],
    motions: Sequence[str],
    options: SyntheticOptions,
) -> list[ShapeObject] | None:
    """Sample trajectories with light occlusion; None when no placement was found."""
    objects: list[ShapeObject] = []
    for index, ((size_name, colour, shape), motion) in enumerate(zip(appearances, motions)):
        radius = SIZES[size_name] * options.size
        for _ in range(60):
            centres = trajectory(motion, radius, options.num_frames, options.size, rng)
            candidate = ShapeObject(index + 1, shape, colour, size_name, motion, centres, radius)
            if all(_far_enough(candidate, other) for other in objects):
                objects.append(candidate)
                break
        else:
            return None
    return objects


# ----------------------------------------------------------------------------- videos


def _video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(split.encode()), int(index)])


def generate_video(rng: np.random.Generator, video_id: str, options: SyntheticOptions | None = None) -> SyntheticVideo:
    """One video with at least one expression (retries the composition until it works)."""
    options = options or SyntheticOptions()
    options.check()
    for attempt in range(200):
        num_objects = int(rng.integers(options.min_objects, options.max_objects + 1))
        if attempt >= 100:
            num_objects = options.min_objects
        appearances = _appearances(rng, num_objects, options)
        objects = _place_objects(rng, appearances, _motions(rng, appearances, options.same_axis), options)
        if objects is None:
            continue
        background = [int(rng.integers(20, 75))] * 3
        frames, id_maps = render_frames(objects, options.size, background)
        if not _visible_enough(objects, id_maps, options.size):
            continue
        expressions = make_expressions(objects, rng, options)
        if expressions:
            return SyntheticVideo(video_id, frames, id_maps, objects, expressions)
    raise RuntimeError(f"could not compose video {video_id!r} with options {options}")  # pragma: no cover


def generate_videos(num_videos: int, seed: int, split: str = "train", **options: Any) -> list[SyntheticVideo]:
    """``num_videos`` videos named ``<split>_<index:05d>``; options: fields of SyntheticOptions."""
    opts = SyntheticOptions(**options)
    return [generate_video(_video_rng(seed, split, i), f"{split}_{i:05d}", opts) for i in range(num_videos)]


def _meta_entry(video: SyntheticVideo) -> dict:
    """meta_expressions.json entry: expressions (exp, obj_id, kind), frames, and the objects' attributes."""
    return {
        "expressions": {
            str(i): {"exp": e["text"], "obj_id": str(e["obj_id"]), "kind": e["kind"]}
            for i, e in enumerate(video.expressions)
        },
        "frames": [f"{t:05d}" for t in range(len(video.frames))],
        "objects": {
            str(o.obj_id): {"shape": o.shape, "colour": o.colour, "size": o.size, "motion": o.motion}
            for o in video.objects
        },
    }


def write_synthetic_dataset(
    out_dir: str | os.PathLike,
    num_videos: int,
    seed: int,
    split: str = "train",
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Generate a synthetic set and write it in Ref-YouTube-VOS layout.

    Writes ``JPEGImages/<video>/<frame>.png`` (or .jpg with image_format="jpg"; the readers
    accept both, as the folder name is the layout's, not the encoding's), ``Annotations/<video>/<frame>.png``
    (DAVIS palette, value = object id) and ``meta_expressions.json`` (each expression with
    "exp", "obj_id" and "kind"; each video also lists its "objects" with their attributes).
    Masks are written for every split, so a "valid" set can be scored.

    Args:
        out_dir: target folder; must be empty or missing unless ``overwrite``.
        num_videos: number of videos (>= 1).
        seed: base seed; with the split name and the video index it fixes every video.
        split: split name, used in video ids and in the seed.
        overwrite: allow writing into a non-empty folder (files with the same names are replaced).
        options: fields of SyntheticOptions (num_frames, size, hard, ...).
    Returns:
        the output folder.
    """
    out = Path(out_dir)
    if num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path exists and is not a folder: {out}")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"output folder {out} is not empty; pass overwrite=True (--overwrite) to write into it")
    opts = SyntheticOptions(**options)
    opts.check()
    meta: dict[str, dict] = {"videos": {}}
    for index in range(num_videos):
        video = generate_video(_video_rng(seed, split, index), f"{split}_{index:05d}", opts)
        for t, (frame, id_map) in enumerate(zip(video.frames, video.id_maps)):
            write_image(out / "JPEGImages" / video.video_id / f"{t:05d}.{opts.image_format}", frame)
            write_mask(out / "Annotations" / video.video_id / f"{t:05d}.png", id_map)
        meta["videos"][video.video_id] = _meta_entry(video)
    with atomic_path(out / "meta_expressions.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    logger.debug("wrote %d synthetic videos (%s) to %s", num_videos, split, out)
    return out


# ----------------------------------------------------------------------------- caption pairs


def caption_for(size: str, colour: str, shape: str) -> str:
    """The caption of one shape: "a small red circle"."""
    return f"a {size} {colour} {shape}"


def all_captions() -> list[str]:
    """Every caption ``make_caption_pairs`` can produce (sizes x colours x shapes), for retrieval."""
    return [caption_for(s, c, sh) for s in SIZES for c in COLOURS for sh in SHAPES]


def make_caption_pairs(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, list[str], list[dict[str, str]]]:
    """Images of one shape each with captions, for tiny contrastive pretraining.

    Args:
        n: number of pairs.
        seed: fixes every image and caption.
        size: image side in pixels.
    Returns:
        images (n, size, size, 3) uint8, captions ("a small red circle"), labels
        ({"shape", "colour", "size"} per image, to measure retrieval accuracy).
    """
    if n < 0 or size < 16:
        raise ValueError(f"need n >= 0 and size >= 16, got n={n}, size={size}")
    rng = np.random.default_rng([int(seed), zlib.crc32(b"captions")])
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    captions, labels = [], []
    for i in range(n):
        label = {
            "shape": str(rng.choice(SHAPES)),
            "colour": str(rng.choice(list(COLOURS))),
            "size": str(rng.choice(list(SIZES))),
        }
        radius = SIZES[label["size"]] * size
        centre = rng.uniform(1.25 * radius + 1.0, size - 2.0 - 1.25 * radius, size=2)
        images[i] = int(rng.integers(20, 75))
        images[i][shape_mask(label["shape"], centre, radius, size)] = COLOURS[label["colour"]]
        captions.append(caption_for(label["size"], label["colour"], label["shape"]))
        labels.append(label)
    return images, captions, labels
