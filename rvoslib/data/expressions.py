"""Referring expressions of the synthetic videos: the phrase tables, the kinds (KINDS) and relations
(RELATIONS), the independent resolver (``referents``), the spec makers per kind, their sentences
(``expression_text``) and a video's expressions (``make_expressions``).

The kinds and the uniqueness rules are described in :mod:`rvoslib.data.synthetic`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from rvoslib.data.shapes import MOTIONS, ShapeObject, SyntheticOptions

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
