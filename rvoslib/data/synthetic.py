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

from rvoslib.io import atomic_path, write_image, write_mask

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 50, 50),
    "green": (50, 180, 70),
    "blue": (50, 100, 235),
    "yellow": (240, 210, 40),
    "purple": (155, 70, 205),
    "white": (240, 240, 240),
}
SIZES = {"small": 0.085, "large": 0.15}  # radius as a fraction of the frame side
MOTIONS = ("static", "left", "right", "up", "down", "bouncing")
KINDS = ("appearance", "motion", "relation")
RELATIONS = ("left of", "right of", "above", "below")

_MOTION_PHRASES = {
    "static": ("that stays still", "that does not move", "standing still"),
    "left": ("moving left", "moving to the left", "that moves left"),
    "right": ("moving right", "moving to the right", "that moves right"),
    "up": ("moving up", "moving upwards", "that moves up"),
    "down": ("moving down", "moving downwards", "that moves down"),
    "bouncing": ("bouncing up and down", "that bounces up and down"),
}
_RELATION_PHRASES = {
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "above": ("above",),
    "below": ("below", "under"),
}
_NOUNS = ("shape", "object")


def motion_phrases(motion: str) -> tuple[str, ...]:
    """The phrases the generator writes for a motion (one of MOTIONS), e.g. "moving left"."""
    if motion not in _MOTION_PHRASES:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")
    return _MOTION_PHRASES[motion]


# attribute subsets usable as a description, shortest first
_DESCRIPTIONS: tuple[tuple[str, ...], ...] = (
    (), ("shape",), ("colour",),
    ("colour", "shape"), ("size", "shape"), ("size", "colour"),
    ("size", "colour", "shape"),
)


@dataclass
class SyntheticOptions:
    """Generator settings (all have defaults; ``write_synthetic_dataset`` takes them as keywords)."""

    num_frames: int = 12  # frames per video
    size: int = 64  # frame side in pixels (square frames)
    min_objects: int = 2  # objects per video, inclusive range
    max_objects: int = 4
    hard: bool = False  # every video gets twins (appearance-sharing distractors)
    twin_prob: float = 0.5  # chance of a twin group per video when not hard
    # twins move along one axis (left/right, or up/down/bouncing), so only the frames' order tells them
    # apart: a reader of unordered positions cannot resolve their motion sentences (needs hard)
    same_axis: bool = False
    max_expressions: int = 8  # per video
    image_format: str = "png"  # frames as "png" (exact colours, ~5x smaller here) or "jpg" (quality 95)

    def check(self) -> None:
        """Raise ValueError naming the bad option."""
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 (motion needs several frames), got {self.num_frames}")
        if self.size < 32:
            raise ValueError(f"size must be >= 32 pixels, got {self.size}")
        if not 2 <= self.min_objects <= self.max_objects <= 6:
            raise ValueError(f"need 2 <= min_objects <= max_objects <= 6, got {self.min_objects}, {self.max_objects}")
        if self.image_format not in ("jpg", "png"):
            raise ValueError(f"image_format must be 'jpg' or 'png', got {self.image_format!r}")
        if self.max_expressions < 1:
            raise ValueError(f"max_expressions must be >= 1, got {self.max_expressions}")
        if self.same_axis and not self.hard:
            raise ValueError("same_axis needs hard=True (it constrains the twins that hard videos have)")


@dataclass
class ShapeObject:
    """One object of a synthetic video.

    Attributes:
        obj_id: palette value in the masks (1..n).
        shape, colour, size, motion: its attributes (see SHAPES, COLOURS, SIZES, MOTIONS).
        centres: (F, 2) float centre (x, y) per frame, in pixels.
        radius: in pixels.
    """

    obj_id: int
    shape: str
    colour: str
    size: str
    motion: str
    centres: np.ndarray
    radius: float

    def appearance(self) -> tuple[str, str, str]:
        """(size, colour, shape): objects with equal appearance are twins."""
        return (self.size, self.colour, self.shape)


@dataclass
class SyntheticVideo:
    """A generated video: frames (F, S, S, 3) uint8, id_maps (F, S, S) uint8 (0 = background,
    k = object k), objects, and expressions (dicts with "text", "obj_id", "kind", "spec")."""

    video_id: str
    frames: np.ndarray
    id_maps: np.ndarray
    objects: list[ShapeObject]
    expressions: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------- drawing


def shape_mask(shape: str, centre: Sequence[float], radius: float, size: int) -> np.ndarray:
    """Pixels (centres at integer coordinates) inside a shape: (size, size) bool.

    Args:
        shape: one of SHAPES.
        centre: (x, y) in pixels.
        radius: half the shape's extent, in pixels.
    """
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xs - centre[0], ys - centre[1]
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.82 * radius
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.2 * radius
    if shape == "triangle":  # pointing up: apex 1.15 r above the centre, base 0.8 r below
        height = 1.95 * radius
        half_width = 1.15 * radius * (dy + 1.15 * radius) / height
        return (dy <= 0.8 * radius) & (dy >= -1.15 * radius) & (np.abs(dx) <= half_width)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def render_frames(
    objects: Sequence[ShapeObject], size: int, background: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Draw objects in list order (later ones in front).

    Returns:
        frames (F, S, S, 3) uint8 and id maps (F, S, S) uint8 (each object's visible pixels).
    """
    num_frames = len(objects[0].centres)
    frames = np.empty((num_frames, size, size, 3), dtype=np.uint8)
    id_maps = np.zeros((num_frames, size, size), dtype=np.uint8)
    frames[:] = np.asarray(background, dtype=np.uint8)
    for t in range(num_frames):
        for obj in objects:
            inside = shape_mask(obj.shape, obj.centres[t], obj.radius, size)
            frames[t][inside] = COLOURS[obj.colour]
            id_maps[t][inside] = obj.obj_id
    return frames, id_maps


# ----------------------------------------------------------------------------- motion


def trajectory(motion: str, radius: float, num_frames: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Centres (F, 2) of one object, keeping the whole shape inside the frame.

    Linear motions travel 30-45% of the frame side over the video; bouncing oscillates
    vertically with amplitude 10-15% of the side and a period of 40-65% of the video.
    """
    reach = 1.25 * radius  # every shape lies within 1.2 r of its centre (diamond tips, triangle apex)
    low, high = reach + 1.0, size - 2.0 - reach  # allowed centre range: at least one pixel of margin
    t = np.arange(num_frames, dtype=np.float64)
    if motion in ("left", "right", "up", "down"):
        distance = rng.uniform(0.30, 0.45) * size
        start = rng.uniform(low + distance, high) if motion in ("left", "up") else rng.uniform(low, high - distance)
        other = rng.uniform(low, high)
        sign = -1.0 if motion in ("left", "up") else 1.0
        moving = start + sign * distance * t / (num_frames - 1)
        fixed = np.full(num_frames, other)
        return np.stack([moving, fixed] if motion in ("left", "right") else [fixed, moving], axis=1)
    if motion == "bouncing":
        amplitude = rng.uniform(0.10, 0.15) * size
        period = rng.uniform(0.40, 0.65) * num_frames
        phase = rng.uniform(0, 2 * np.pi)
        y = rng.uniform(low + amplitude, high - amplitude) + amplitude * np.sin(2 * np.pi * t / period + phase)
        return np.stack([np.full(num_frames, rng.uniform(low, high)), y], axis=1)
    if motion == "static":
        return np.tile([rng.uniform(low, high), rng.uniform(low, high)], (num_frames, 1))
    raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")


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


# ----------------------------------------------------------------------------- composition


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


AXES = (("left", "right"), ("up", "down", "bouncing"))  # motions an unordered reader cannot tell apart


def motion_axis(motion: str) -> str:
    """"still", "horizontal" or "vertical": what an unordered set of an object's positions shows of its
    motion (one of MOTIONS). Motions that share an axis (AXES) need the frames' order to tell apart."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")
    return "still" if motion == "static" else ("horizontal" if motion in AXES[0] else "vertical")


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


# ----------------------------------------------------------------------------- expressions


def _matches(obj: ShapeObject, attrs: dict[str, str]) -> bool:
    return all(getattr(obj, key) == value for key, value in attrs.items())


def _relation_holds(relation: str, a: ShapeObject, b: ShapeObject) -> np.ndarray:
    """Per frame, whether ``a`` is clearly ``relation`` ``b`` (centre gap >= half the radii sum): (F,) bool."""
    margin = 0.5 * (a.radius + b.radius)
    axis = 0 if relation in ("left of", "right of") else 1
    gap = b.centres[:, axis] - a.centres[:, axis]  # > 0: a is left of / above b
    return gap >= margin if relation in ("left of", "above") else -gap >= margin


def referents(spec: dict, objects: Sequence[ShapeObject]) -> list[int]:
    """Object ids an expression spec is true of (independent check of uniqueness).

    spec: {"attrs": {attr: value}, "motion": str | None,
           "relation": None | {"type": one of RELATIONS, "ref": {attr: value}}}.
    A relation holds when it holds in every frame, against the single object matching "ref".
    """
    candidates = [o for o in objects if _matches(o, spec["attrs"])]
    if spec.get("motion") is not None:
        candidates = [o for o in candidates if o.motion == spec["motion"]]
    relation = spec.get("relation")
    if relation is not None:
        refs = [o for o in objects if _matches(o, relation["ref"])]
        if len(refs) != 1:
            return []
        candidates = [o for o in candidates if o is not refs[0] and _relation_holds(relation["type"], o, refs[0]).all()]
    return [o.obj_id for o in candidates]


def _describe(attrs: dict[str, str], rng: np.random.Generator) -> str:
    """Noun phrase without article: "large blue square", "red shape", "object"."""
    words = [attrs[key] for key in ("size", "colour") if key in attrs]
    words.append(attrs.get("shape") or str(rng.choice(_NOUNS)))
    return " ".join(words)


def _subset(obj: ShapeObject, keys: Sequence[str]) -> dict[str, str]:
    return {key: getattr(obj, key) for key in keys}


def _appearance_spec(obj: ShapeObject, objects: Sequence[ShapeObject], rng: np.random.Generator) -> dict | None:
    """Shortest-first random choice among attribute subsets that match only ``obj``."""
    options = [
        keys for keys in _DESCRIPTIONS
        if keys and referents({"attrs": _subset(obj, keys)}, objects) == [obj.obj_id]
    ]
    if not options:
        return None
    shortest = [k for k in options if len(k) == len(options[0])]
    pool = shortest if rng.random() < 0.6 else options
    keys = pool[int(rng.integers(len(pool)))]
    return {"kind": "appearance", "attrs": _subset(obj, keys), "motion": None, "relation": None}


def _motion_spec(obj: ShapeObject, objects: Sequence[ShapeObject], rng: np.random.Generator) -> dict | None:
    """Motion expression, only for an object with a twin moving differently (needs several frames)."""
    twins = [o for o in objects if o is not obj and o.appearance() == obj.appearance()]
    if not twins:
        return None
    options = [
        keys for keys in _DESCRIPTIONS
        if referents({"attrs": _subset(obj, keys), "motion": obj.motion}, objects) == [obj.obj_id]
    ]
    if not options:
        return None
    keys = options[int(rng.integers(len(options)))]
    return {"kind": "motion", "attrs": _subset(obj, keys), "motion": obj.motion, "relation": None}


def _relation_spec(obj: ShapeObject, objects: Sequence[ShapeObject], rng: np.random.Generator) -> dict | None:
    """Relation expression whose first description alone is ambiguous and whose distractors never
    satisfy the relation."""
    found = []
    for ref in objects:
        if ref is obj:
            continue
        ref_spec = _appearance_spec(ref, objects, rng)
        if ref_spec is None:
            continue
        for relation in RELATIONS:
            if not _relation_holds(relation, obj, ref).all():
                continue
            for keys in _DESCRIPTIONS[1:]:
                matching = [o for o in objects if o is not ref and _matches(o, _subset(obj, keys))]
                distractors = [o for o in matching if o is not obj]
                if distractors and not any(_relation_holds(relation, o, ref).any() for o in distractors):
                    found.append((keys, relation, ref_spec["attrs"]))
    if not found:
        return None
    keys, relation, ref_attrs = found[int(rng.integers(len(found)))]
    relation_spec = {"type": relation, "ref": ref_attrs}
    return {"kind": "relation", "attrs": _subset(obj, keys), "motion": None, "relation": relation_spec}


def expression_text(spec: dict, rng: np.random.Generator) -> str:
    """Sentence for a spec, e.g. "the small red circle moving left"."""
    text = "the " + _describe(spec["attrs"], rng)
    if spec["motion"] is not None:
        text += " " + str(rng.choice(_MOTION_PHRASES[spec["motion"]]))
    if spec["relation"] is not None:
        phrase = str(rng.choice(_RELATION_PHRASES[spec["relation"]["type"]]))
        text += f" {phrase} the {_describe(spec['relation']['ref'], rng)}"
    return text


def make_expressions(objects: Sequence[ShapeObject], rng: np.random.Generator, options: SyntheticOptions) -> list[dict]:
    """Expressions of a video: per object up to two kinds (motion first when available in hard mode).

    Returns:
        list of {"text", "obj_id", "kind", "spec"}, each checked to refer to exactly one object.
    """
    makers = {"appearance": _appearance_spec, "motion": _motion_spec, "relation": _relation_spec}
    expressions = []
    for obj in objects:
        specs = {kind: maker(obj, objects, rng) for kind, maker in makers.items()}
        available = [kind for kind in KINDS if specs[kind] is not None]
        if not available:
            continue
        order = list(rng.permutation(available))
        if options.hard and "motion" in available:
            order.remove("motion")
            order.insert(0, "motion")
        for kind in order[:2]:
            spec = specs[kind]
            if referents(spec, objects) != [obj.obj_id]:  # pragma: no cover - guarded by construction
                raise AssertionError(f"expression spec {spec} is not unique")
            expressions.append({"text": expression_text(spec, rng), "obj_id": obj.obj_id, "kind": kind, "spec": spec})
    order = rng.permutation(len(expressions))[: options.max_expressions]
    return [expressions[i] for i in sorted(order)]


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
