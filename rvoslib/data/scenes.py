"""Still multi-object scenes with scene captions, for the tiny CLIP's contrastive pretraining.

A scene is one frame as the RVOS videos of :mod:`rvoslib.data.synthetic` look: 2-4 coloured
shapes on a plain grey background (20-75), drawn and placed by that module's own functions
(same appearances, including twins; same spacing and visibility rules), without motion: CLIP
is image-level. Each object is a ``ShapeObject`` with one centre (``centres`` of shape (1, 2)).

A caption names one or more objects of the scene by some of their attributes (size, colour,
shape, or the nouns "shape" / "object"), sometimes with a spatial relation between two of
them (left of / right of / above / below, true by ``expressions._relation_holds``), or with the
number of objects, in varied templates and word orders:

    "a red circle to the left of a small blue square"   "the large yellow object"
    "a small blue square and a red circle"              "three shapes: a circle, a red square and a diamond"
    "a scene with a green triangle below the white shape"

Each caption is built from a ``spec`` ({"mentions": [attrs, ...], "relation": None | type,
"count": None | n}) and :func:`caption_holds` tells whether a spec is true of any list of
objects. Training batches use it to keep contrastive targets exact: :func:`choose_captions`
gives every image a caption that is false for every other image of the batch (no false
negatives), and :func:`make_scene_pool` pairs most scenes with a copy of the same layout, either
*attribute-swapped* (two objects' colours, shapes or sizes exchanged: only binding tells them
apart) or with one object's attribute changed (recognising it tells them apart), so a batch
holds hard negatives.

Motion scenes (``moving=True``, the data of ``rvoslib pretrain --data motion-scenes``). A still
photo of a moving thing shows blur; here every object gets one of synthetic's motions and is drawn
with a fading trail of its last ``TRAIL_FRAMES - 1`` positions (a static object has none), and
captions may add the motion with synthetic's own phrases: "a red circle moving left", "the square
that bounces up and down". Hard-negative copies then often change one object's motion (same
layout, another trail). The aim is a text tower that tells "moving left" from "moving right", which
a tower that never read such words cannot (``prompts.lexical_words`` in ``rvoslib.text_encoder``).

Deterministic by seed: scene ``i`` of a pool uses ``np.random.default_rng([seed, crc32("scenes"), i])``.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from rvoslib.data.expressions import (
    _DESCRIPTIONS,
    _NOUNS,
    _RELATION_PHRASES,
    RELATIONS,
    _matches,
    _relation_holds,
    motion_phrases,
)
from rvoslib.data.shapes import (
    COLOURS,
    MOTIONS,
    SHAPES,
    SIZES,
    ShapeObject,
    SyntheticOptions,
    render_frames,
    trajectory,
)
from rvoslib.data.synthetic import _appearances, _far_enough, _motions, _place_objects, _visible_enough

_SALT = zlib.crc32(b"scenes")
NUMBER_WORDS = {2: "two", 3: "three", 4: "four"}
# attribute subsets naming one object, with their probabilities (colour + shape most often)
_MENTION_KEYS = [k for k in _DESCRIPTIONS if k]  # shape, colour, colour+shape, size+shape, size+colour, all three
_MENTION_WEIGHTS = np.array([0.1, 0.08, 0.32, 0.1, 0.1, 0.3])
SWAPPABLE = ("colour", "shape", "size")
TRAIL_FRAMES = 5  # a moving object's positions in a motion scene: 4 fading earlier ones, then where it is
TRAIL_ALPHA = (0.2, 0.3, 0.4, 0.55)  # opacity of the earlier positions over the background, oldest first
MOTION_MENTION_PROB = 0.75  # chance that a mention in a motion scene's caption names the object's motion
MOTION_PARTNER_PROB = 0.75  # chance that a motion scene's hard-negative copy changes a motion (else an attribute)


@dataclass
class Scene:
    """One still scene: image (S, S, 3) uint8, id_map (S, S) uint8 (0 = background, k = object k),
    objects (drawn in list order, later ones in front), background grey level."""

    image: np.ndarray
    id_map: np.ndarray
    objects: list[ShapeObject]
    background: int

    @property
    def moving(self) -> bool:
        """A motion scene: its objects have a trail of positions (``centres`` (TRAIL_FRAMES, 2))."""
        return len(self.objects[0].centres) > 1


# ----------------------------------------------------------------------------- scenes


def _render(objects: Sequence[ShapeObject], size: int, background: int) -> Scene | None:
    """Draw objects where they are (their last position), with the fading trail of their earlier
    positions when they have several (:func:`draw_trails`); None when one keeps less than 60% of its
    pixels visible at some position."""
    frames, id_maps = render_frames(objects, size, [background] * 3)
    if not _visible_enough(objects, id_maps, size):
        return None
    return Scene(draw_trails(frames, id_maps), id_maps[-1], list(objects), background)


def draw_trails(frames: np.ndarray, id_maps: np.ndarray) -> np.ndarray:
    """The last frame, with the objects of the earlier frames blended over its background pixels,
    oldest first, at opacities ``TRAIL_ALPHA[-(F - 1):]``: (F, S, S, 3) uint8 -> (S, S, 3) uint8."""
    image = frames[-1].astype(np.float32)
    background = id_maps[-1] == 0  # (S, S): trails never cover an object
    for frame, ids, alpha in zip(frames[:-1], id_maps[:-1], TRAIL_ALPHA[len(TRAIL_ALPHA) - len(frames) + 1:]):
        ghost = (ids > 0) & background
        image[ghost] = (1 - alpha) * image[ghost] + alpha * frame[ghost]
    return np.round(image).astype(np.uint8)


def generate_scene(rng: np.random.Generator, size: int = 64, min_objects: int = 2, max_objects: int = 4,
                   twin_prob: float = 0.5, moving: bool = False) -> Scene:
    """One scene, composed with ``synthetic``'s rules (appearances, spacing, visibility); with
    ``moving``, a motion scene (every object gets a motion, look-alikes different ones, and a trail)."""
    options = SyntheticOptions(num_frames=TRAIL_FRAMES if moving else 1, size=size, min_objects=min_objects,
                               max_objects=max_objects, twin_prob=twin_prob)
    for _ in range(200):
        num_objects = int(rng.integers(min_objects, max_objects + 1))
        appearances = _appearances(rng, num_objects, options)
        motions = _motions(rng, appearances) if moving else ["static"] * num_objects
        objects = _place_objects(rng, appearances, motions, options)
        if objects is None:
            continue
        scene = _render(objects, size, int(rng.integers(20, 75)))
        if scene is not None:
            return scene
    raise RuntimeError("could not compose a scene")  # pragma: no cover


def swap_attribute(scene: Scene, rng: np.random.Generator) -> Scene | None:
    """The same layout with one attribute (colour, shape or size) exchanged between two objects
    that differ in it: the hard negative of ``scene``. None when no valid swap exists."""
    size = scene.image.shape[0]
    for attribute in rng.permutation(SWAPPABLE):
        pairs = [(i, j) for i, j in itertools.combinations(range(len(scene.objects)), 2)
                 if getattr(scene.objects[i], attribute) != getattr(scene.objects[j], attribute)]
        if not pairs:
            continue
        i, j = pairs[int(rng.integers(len(pairs)))]
        objects = list(scene.objects)
        a, b = objects[i], objects[j]
        objects[i] = replace(a, **{attribute: getattr(b, attribute)})
        objects[j] = replace(b, **{attribute: getattr(a, attribute)})
        if attribute == "size":
            objects[i].radius, objects[j].radius = b.radius, a.radius
            if not all(_far_enough(p, q) for p, q in itertools.combinations(objects, 2)):
                continue
        swapped = _render(objects, size, scene.background)
        if swapped is not None:
            return swapped
    return None


def change_attribute(scene: Scene, rng: np.random.Generator) -> Scene | None:
    """The same layout with one object's shape (50%), colour (30%) or size (20%) changed: a hard
    negative that recognising that attribute tells apart. None when the new scene is invalid."""
    size = scene.image.shape[0]
    attribute = str(rng.choice(SWAPPABLE, p=[0.3, 0.5, 0.2]))
    values = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES)}[attribute]
    k = int(rng.integers(len(scene.objects)))
    objects = list(scene.objects)
    old = objects[k]
    new_value = str(rng.choice([v for v in values if v != getattr(old, attribute)]))
    objects[k] = replace(old, **{attribute: new_value})
    if attribute == "size":
        objects[k].radius = SIZES[new_value] * size
        if not all(_far_enough(objects[k], o) for o in objects if o is not objects[k]):
            return None
    return _render(objects, size, scene.background)


def change_motion(scene: Scene, rng: np.random.Generator) -> Scene | None:
    """A motion scene's copy with one object given another motion (a new trail; look-alikes keep
    different motions): the hard negative that reading the trail tells apart. None when 5 draws of the
    new trail all came too close to another object or hid one."""
    size, k = scene.image.shape[0], int(rng.integers(len(scene.objects)))
    old = scene.objects[k]
    taken = {o.motion for o in scene.objects if o.appearance() == old.appearance()}
    motion = str(rng.choice([m for m in MOTIONS if m not in taken]))
    for _ in range(5):
        objects = list(scene.objects)
        objects[k] = replace(old, motion=motion, centres=trajectory(motion, old.radius, len(old.centres), size, rng))
        if all(_far_enough(objects[k], o) for o in objects if o is not objects[k]):
            changed = _render(objects, size, scene.background)
            if changed is not None:
                return changed
    return None


def _partner(scene: Scene, rng: np.random.Generator) -> Scene | None:
    """A hard-negative copy: a still scene's attribute swapped or changed (half each); a motion
    scene's motion changed (``MOTION_PARTNER_PROB``), else an attribute swapped or changed."""
    if scene.moving and rng.random() < MOTION_PARTNER_PROB:
        return change_motion(scene, rng)
    return swap_attribute(scene, rng) if rng.random() < 0.5 else change_attribute(scene, rng)


def make_scene_pool(num_images: int, seed: int, size: int = 64, pair_prob: float = 0.8, moving: bool = False
                    ) -> tuple[np.ndarray, list[Scene], list[list[int]]]:
    """About ``num_images`` scenes; with probability ``pair_prob`` a scene comes with a hard-negative
    copy of the same layout: half the time two objects' attribute swapped (:func:`swap_attribute`:
    only binding tells them apart), else one object's attribute changed (:func:`change_attribute`).
    ``moving``: motion scenes, whose copies mostly change one object's motion (:func:`_partner`).

    Returns images (n, S, S, 3) uint8, the n scenes, and groups: lists of image indices that
    belong together (a scene alone, or a scene and its copy) for batching.
    """
    scenes: list[Scene] = []
    groups: list[list[int]] = []
    index = 0
    while len(scenes) < num_images:
        rng = np.random.default_rng([int(seed), _SALT, index])
        index += 1
        scene = generate_scene(rng, size, moving=moving)
        partner = _partner(scene, rng) if rng.random() < pair_prob else None
        members = [scene] if partner is None or len(scenes) + 2 > num_images else [scene, partner]
        groups.append(list(range(len(scenes), len(scenes) + len(members))))
        scenes += members
    images = np.stack([s.image for s in scenes]) if scenes else np.zeros((0, size, size, 3), np.uint8)
    return images, scenes, groups


# ----------------------------------------------------------------------------- captions


def _roughly(relation: str, a: ShapeObject, b: ShapeObject) -> bool:
    """Whether ``a`` is ``relation`` ``b`` by any margin at some position of their trails (centres compared)."""
    axis = 0 if relation in ("left of", "right of") else 1
    gap = b.centres[:, axis] - a.centres[:, axis]  # (F,) > 0: a is left of / above b
    return bool((gap > 0).any() if relation in ("left of", "above") else (gap < 0).any())


def caption_holds(spec: dict, objects: Sequence[ShapeObject], strict: bool = True) -> bool:
    """Whether a caption spec is true of a scene: distinct objects match its mentions (and the
    relation holds from the first mentioned object to the second; the count equals the number
    of objects). ``strict``: the relation needs synthetic's margin (half the radii sum), as
    captions are made; otherwise any margin counts (to rule a caption out for another image)."""
    if spec.get("count") is not None and spec["count"] != len(objects):
        return False
    mentions = spec["mentions"]
    if not all(any(_matches(o, m) for o in objects) for m in mentions):  # fast rejection
        return False
    for chosen in itertools.permutations(objects, len(mentions)):
        if all(_matches(o, m) for o, m in zip(chosen, mentions)):
            relation = spec.get("relation")
            if relation is None:
                return True
            if _relation_holds(relation, chosen[0], chosen[1]).all() if strict else _roughly(relation, *chosen[:2]):
                return True
    return False


def _noun_phrase(attrs: dict, rng: np.random.Generator) -> str:
    """ "small red circle", "red shape", "large object", "red circle moving left" (no article)."""
    words = [attrs[k] for k in ("size", "colour") if k in attrs]
    phrase = " ".join(words + [attrs.get("shape") or str(rng.choice(_NOUNS))])
    return phrase if "motion" not in attrs else f"{phrase} {rng.choice(motion_phrases(attrs['motion']))}"


def _with_article(phrase: str, article: str) -> str:
    return f"an {phrase}" if article == "a" and phrase[0] in "aeiou" else f"{article} {phrase}"


def _listing(phrases: Sequence[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption_text(spec: dict, rng: np.random.Generator) -> str:
    """A sentence for a spec, in one of several templates (the first two mentions in either order
    unless a relation ties them)."""
    article = "the" if rng.random() < 0.3 else "a"
    phrases = [_with_article(_noun_phrase(m, rng), article) for m in spec["mentions"]]
    if spec.get("relation") is not None:
        body = f"{phrases[0]} {rng.choice(_RELATION_PHRASES[spec['relation']])} {phrases[1]}"
        if len(phrases) > 2:
            body = _listing([body, *phrases[2:]])
    else:
        body = _listing([phrases[k] for k in rng.permutation(len(phrases))])
    if spec.get("count") is not None:
        noun = str(rng.choice(["shapes", "objects"]))
        return f"{NUMBER_WORDS[spec['count']]} {noun}: {body}"
    return str(rng.choice(["{}", "{}", "a scene with {}", "an image of {}"])).format(body)


def random_caption_spec(objects: Sequence[ShapeObject], rng: np.random.Generator, moving: bool = False) -> dict:
    """A true caption spec for a scene: 1 to all of its distinct-appearance objects, each by an
    attribute subset; a relation between the first two when one holds (60%); the count when
    every object is mentioned (50%). ``moving`` (a motion scene): look-alikes count as distinct,
    and each mention names the object's motion with probability ``MOTION_MENTION_PROB``."""
    distinct: dict[tuple, ShapeObject] = {}
    for o in rng.permutation(len(objects)):
        key = objects[o].appearance() + ((objects[o].motion,) if moving else ())
        distinct.setdefault(key, objects[o])
    pool = list(distinct.values())
    k = int(rng.integers(1, len(pool) + 1)) if rng.random() < 0.7 else min(2, len(pool))
    chosen = pool[:k]
    mentions = [{key: getattr(o, key) for key in _MENTION_KEYS[rng.choice(len(_MENTION_KEYS), p=_MENTION_WEIGHTS)]}
                for o in chosen]
    if moving:
        for mention, o in zip(mentions, chosen):
            if rng.random() < MOTION_MENTION_PROB:
                mention["motion"] = o.motion
    relation = None
    if k >= 2 and rng.random() < 0.6:
        holding = [r for r in RELATIONS if _relation_holds(r, chosen[0], chosen[1]).all()]
        relation = str(rng.choice(holding)) if holding else None
    count = len(objects) if k == len(objects) and rng.random() < 0.5 else None
    return {"mentions": mentions, "relation": relation, "count": count}


def _choose(scenes: Sequence[Scene], rng: np.random.Generator, tries: int) -> list[tuple[dict, str] | None]:
    found: list[tuple[dict, str] | None] = []
    for k, scene in enumerate(scenes):
        found.append(None)
        for _ in range(tries):
            spec = random_caption_spec(scene.objects, rng, scene.moving)
            if not any(caption_holds(spec, other.objects, strict=False) for j, other in enumerate(scenes) if j != k):
                text = caption_text(spec, rng)
                if all(f is None or f[1] != text for f in found):
                    found[k] = (spec, text)
                    break
    return found


def choose_captions(scenes: Sequence[Scene], rng: np.random.Generator, tries: int = 12) -> list[str | None]:
    """One caption per scene, true of it and false of every other scene of the list even with a
    relation by any margin (so the contrastive targets of a batch are exact), all different; None
    where ``tries`` draws failed."""
    return [None if f is None else f[1] for f in _choose(scenes, rng, tries)]


def sample_scene_batch(scenes: Sequence[Scene], groups: Sequence[Sequence[int]], batch_size: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``batch_size`` image indices (whole groups: paired copies stay together) and their captions
    from :func:`choose_captions`; an image left without a valid caption is replaced by another one
    whose caption is false of the others and which makes no other caption true."""
    order = rng.permutation(len(groups))
    chosen: list[int] = []
    for g in order:
        chosen += list(groups[g])[: batch_size - len(chosen)]
        if len(chosen) == batch_size:
            break
    found = _choose([scenes[i] for i in chosen], rng, tries=12)
    spare = iter(i for g in order[::-1] for i in groups[g] if i not in chosen)
    for k in [k for k, f in enumerate(found) if f is None]:
        for candidate in spare:
            objects = scenes[candidate].objects
            if any(f is not None and caption_holds(f[0], objects, strict=False) for f in found):
                continue
            spec = random_caption_spec(objects, rng, scenes[candidate].moving)
            text = caption_text(spec, rng)
            others = [scenes[i] for j, i in enumerate(chosen) if j != k]
            if (not any(caption_holds(spec, o.objects, strict=False) for o in others)
                    and all(f is None or f[1] != text for f in found)):
                chosen[k], found[k] = candidate, (spec, text)
                break
    if any(f is None for f in found):
        raise RuntimeError(f"could not caption a batch of {batch_size} scenes without false negatives")
    return np.asarray(chosen), [f[1] for f in found]
