"""Still scenes and scene captions for the tiny CLIP pretraining (rvoslib.data.scenes), and the binding measure."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from rvoslib.data import scenes as sc
from rvoslib.data.synthetic import COLOURS, SHAPES, SIZES

_COLOUR_OF_RGB = {tuple(rgb): name for name, rgb in COLOURS.items()}
_MENTION = re.compile(r"\b(?:a|an|the) (?:(small|large) )?(?:(" + "|".join(COLOURS) + r") )?("
                      + "|".join(SHAPES) + r"|shape|object)\b")
_RELATION_WORDS = {"to the left of": "left of", "left of": "left of", "to the right of": "right of",
                   "right of": "right of", "above": "above", "below": "below", "under": "below"}
_NUMBERS = {"two": 2, "three": 3, "four": 4}


def parse_caption(text: str) -> dict:
    """Read a caption back from its words only: mentions, the relation between the first two, the count."""
    found = list(_MENTION.finditer(text))
    assert found, text
    mentions = [{k: v for k, v in zip(("size", "colour", "shape"), m.groups()) if v and v not in ("shape", "object")}
                for m in found]
    between = text[found[0].end():found[1].start()].strip(" ,") if len(found) > 1 else ""
    relation = _RELATION_WORDS.get(between)
    assert relation is not None or between in ("", "and"), (text, between)
    first = text.split()[0]
    return {"mentions": mentions, "relation": relation, "count": _NUMBERS.get(first)}


def measured_objects(scene: sc.Scene) -> list[dict]:
    """Each object's colour read from the image's pixels, centroid of its visible pixels; shape and size as drawn."""
    result = []
    for obj in scene.objects:
        mask = scene.id_map == obj.obj_id
        ys, xs = np.nonzero(mask)
        colours = {_COLOUR_OF_RGB[tuple(rgb)] for rgb in scene.image[mask]}
        assert len(colours) == 1
        result.append({"colour": colours.pop(), "shape": obj.shape, "size": obj.size, "x": xs.mean(), "y": ys.mean()})
    return result


def true_of(parsed: dict, scene: sc.Scene, margin: float = 0.0) -> bool:
    """Independent truth check of a parsed caption against a scene's pixels (a relation holds when
    the visible centroids differ by more than ``margin`` pixels in its direction)."""
    objects = measured_objects(scene)
    if parsed["count"] is not None and parsed["count"] != len(np.unique(scene.id_map)) - 1:
        return False
    for chosen in itertools.permutations(objects, len(parsed["mentions"])):
        if not all(o[k] == v for o, m in zip(chosen, parsed["mentions"]) for k, v in m.items()):
            continue
        relation = parsed["relation"]
        if relation is None:
            return True
        a, b = chosen[0], chosen[1]
        if {"left of": b["x"] - a["x"], "right of": a["x"] - b["x"],
                "above": b["y"] - a["y"], "below": a["y"] - b["y"]}[relation] > margin:
            return True
    return False


@pytest.fixture(scope="module")
def pool():
    return sc.make_scene_pool(120, seed=3)


def test_scenes_look_like_rvos_frames(pool):
    images, scenes, groups = pool
    assert images.shape == (120, 64, 64, 3) and images.dtype == np.uint8
    assert sorted(i for g in groups for i in g) == list(range(120))
    for scene in scenes:
        assert 2 <= len(scene.objects) <= 4 and 20 <= scene.background < 75
        assert (scene.image[scene.id_map == 0] == scene.background).all()
        assert {o.size for o in scene.objects} <= set(SIZES)


def test_pool_is_deterministic_by_seed(pool):
    images, _, groups = sc.make_scene_pool(120, seed=3)
    assert np.array_equal(images, pool[0]) and groups == pool[2]
    assert not np.array_equal(sc.make_scene_pool(10, seed=4)[0], images[:10])


def test_paired_copies_keep_the_layout_and_swap_or_change_one_attribute(pool):
    _, scenes, groups = pool
    pairs = [g for g in groups if len(g) == 2]
    assert len(pairs) > 30
    swaps = changes = 0
    for i, j in pairs:
        a, b = scenes[i].objects, scenes[j].objects
        assert all(np.array_equal(p.centres, q.centres) for p, q in zip(a, b))
        changed = [k for k, (p, q) in enumerate(zip(a, b)) if p.appearance() != q.appearance()]
        attrs = {x for k in changed for x in ("size", "colour", "shape") if getattr(a[k], x) != getattr(b[k], x)}
        assert len(attrs) == 1 and len(changed) in (1, 2)
        attr = attrs.pop()
        if len(changed) == 2:  # swapped between two objects
            swaps += 1
            assert getattr(a[changed[0]], attr) == getattr(b[changed[1]], attr)
            assert getattr(a[changed[1]], attr) == getattr(b[changed[0]], attr)
        else:
            changes += 1
    assert swaps > 10 and changes > 10


def test_captions_are_true_of_their_image_by_an_independent_check(pool):
    _, scenes, _ = pool
    rng = np.random.default_rng(0)
    relations = counts = 0
    for scene in scenes:
        for _ in range(5):
            text = sc.caption_text(sc.random_caption_spec(scene.objects, rng), rng)
            parsed = parse_caption(text)
            assert true_of(parsed, scene), text
            relations += parsed["relation"] is not None
            counts += parsed["count"] is not None
    assert relations > 50 and counts > 20  # the templates are all exercised


def test_a_batch_has_no_false_negatives_and_keeps_swapped_pairs(pool):
    _, scenes, groups = pool
    idx, captions = sc.sample_scene_batch(scenes, groups, 32, np.random.default_rng(1))
    assert len(set(idx.tolist())) == 32 and len(set(captions)) == 32
    for k, (i, text) in enumerate(zip(idx, captions)):
        parsed = parse_caption(text)
        assert true_of(parsed, scenes[i]), text
        # false of every other image (occlusion moves a visible centroid by a pixel or so, hence the margin)
        assert not any(true_of(parsed, scenes[j], margin=1.5) for m, j in enumerate(idx) if m != k), text
    again = sc.sample_scene_batch(scenes, groups, 32, np.random.default_rng(1))
    assert np.array_equal(again[0], idx) and again[1] == captions  # deterministic by the generator


def test_binding_measure_oracle_and_constant_scorers(pool):
    from rvoslib.pretrain_eval import binding_accuracy, binding_queries

    _, scenes, _ = pool
    queries = binding_queries(scenes, seed=0)
    assert {q["kind"] for q in queries} == {"attribute", "relation"}
    specs = {(q["image"], q[side]): q[f"{side}_spec"] for q in queries for side in ("true", "false")}
    for q in queries:
        assert sc.caption_holds(q["true_spec"], scenes[q["image"]].objects)
        assert not sc.caption_holds(q["false_spec"], scenes[q["image"]].objects)
        assert true_of(parse_caption(q["true"]), scenes[q["image"]]), q["true"]
        assert not true_of(parse_caption(q["false"]), scenes[q["image"]]), q["false"]

    def oracle(images, captions):
        return np.array([sc.caption_holds(specs[(i, c)], scenes[i].objects) for i, c in zip(images, captions)], float)

    def constant(images, captions):
        return np.zeros(len(captions))

    assert binding_accuracy(oracle, queries)["attribute"]["accuracy"] == 1.0
    assert binding_accuracy(oracle, queries)["relation"]["accuracy"] == 1.0
    assert binding_accuracy(constant, queries)["attribute"]["accuracy"] == 0.5
    assert binding_accuracy(constant, queries)["relation"]["accuracy"] == 0.5
