"""Motion scenes for the tiny CLIP pretraining (rvoslib.data.scenes, moving=True): trails and motion captions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rvoslib.data import scenes as sc
from rvoslib.data.expressions import motion_phrases
from rvoslib.data.shapes import COLOURS, MOTIONS, SHAPES, ShapeObject, render_frames

_PHRASE_TO_MOTION = {p: m for m in MOTIONS for p in motion_phrases(m)}
_MOTION_MENTION = re.compile(
    r"\b(?:a|an|the) (?:(small|large) )?(?:(" + "|".join(COLOURS) + r") )?(" + "|".join(SHAPES)
    + r"|shape|object)(?: (" + "|".join(sorted(map(re.escape, _PHRASE_TO_MOTION), key=len, reverse=True)) + r"))?")


def motion_from_centres(centres: np.ndarray) -> str:
    """A trail's motion read from its geometry alone: (F, 2) centres -> one of MOTIONS."""
    step = np.diff(centres, axis=0)  # (F-1, 2)
    if np.abs(step).max() < 1e-9:
        return "static"
    if np.abs(step[:, 1]).max() < 1e-9:
        return "right" if (step[:, 0] > 0).all() else "left"
    if np.abs(step[:, 0]).max() < 1e-9 and ((step[:, 1] > 0).all() or (step[:, 1] < 0).all()):
        return "down" if step[0, 1] > 0 else "up"
    return "bouncing"


@pytest.fixture(scope="module")
def pool():
    return sc.make_scene_pool(120, seed=5, moving=True)


def test_a_trail_fades_behind_a_mover_and_a_static_object_has_none():
    mover = ShapeObject(1, "circle", "red", "small", "right", np.array([[20.0 + 4 * t, 32.0] for t in range(5)]), 5.0)
    still = ShapeObject(2, "square", "blue", "small", "static", np.tile([[48.0, 12.0]], (5, 1)), 5.0)
    frames, id_maps = render_frames([mover, still], 64, [40, 40, 40])
    image = sc.draw_trails(frames, id_maps)
    assert np.array_equal(image[id_maps[-1] > 0], frames[-1][id_maps[-1] > 0])  # objects drawn as they are
    ghost = (image != 40).any(-1) & (id_maps[-1] == 0)
    ys, xs = np.nonzero(ghost)
    assert len(xs) > 20 and xs.max() < 36 + 5 and ys.min() > 32 - 6  # behind the red circle (it moves right)
    red = np.asarray(COLOURS["red"], np.float32)
    share = (image[ghost].astype(np.float32) - 40) / (red - 40 + 1e-9)  # how far each ghost pixel is towards red
    assert (share[:, 0] > 0.1).all() and (share[:, 0] < 0.9).all()  # blended (overlaps add up), never the full colour
    assert not (ghost[:, 40:]).any()  # nothing around the static square
    oldest = share[xs < 20, 0].mean()
    assert oldest < share[(xs > 26) & (xs < 31), 0].mean()  # fainter the older


def test_motion_scenes_have_trails_and_look_alikes_move_differently(pool):
    images, scenes, _ = pool
    assert images.shape == (120, 64, 64, 3)
    moves = set()
    for scene in scenes:
        assert scene.moving and all(len(o.centres) == sc.TRAIL_FRAMES for o in scene.objects)
        for o in scene.objects:
            assert motion_from_centres(o.centres) == o.motion
            moves.add(o.motion)
            twins = [p for p in scene.objects if p is not o and p.appearance() == o.appearance()]
            assert all(p.motion != o.motion for p in twins)
        moving = [o for o in scene.objects if o.motion != "static"]
        trail = (scene.image != scene.background).any(-1) & (scene.id_map == 0)
        assert trail.any() == bool(moving)
    assert moves == set(MOTIONS)


def test_motion_copies_change_one_objects_motion(pool):
    _, scenes, groups = pool
    motion_pairs = 0
    for group in (g for g in groups if len(g) == 2):
        a, b = (scenes[i].objects for i in group)
        changed = [k for k, (p, q) in enumerate(zip(a, b)) if p.motion != q.motion]
        if changed:
            motion_pairs += 1
            assert len(changed) == 1 and a[changed[0]].appearance() == b[changed[0]].appearance()
            assert all(np.array_equal(p.centres, q.centres) for k, (p, q) in enumerate(zip(a, b)) if k != changed[0])
    assert motion_pairs > 8


def fitting(scene, size, colour, shape, motion):
    """Objects of a scene that fit a mention (motion read from the trail geometry; None: not named)."""
    return [o for o in scene.objects if size in (None, o.size) and colour in (None, o.colour)
            and shape in ("shape", "object", o.shape) and motion in (None, motion_from_centres(o.centres))]


def test_motion_captions_name_true_motions_and_single_mentions_fit_no_other_image(pool):
    _, scenes, groups = pool
    named = single = 0
    for seed in (2, 3, 4):
        idx, captions = sc.sample_scene_batch(scenes, groups, 32, np.random.default_rng(seed))
        assert len(set(captions)) == 32
        for k, (i, text) in enumerate(zip(idx, captions)):
            mentions = [(size, colour, shape, _PHRASE_TO_MOTION.get(phrase))
                        for size, colour, shape, phrase in (m.groups() for m in _MOTION_MENTION.finditer(text))]
            for mention in mentions:
                named += mention[3] is not None
                assert fitting(scenes[i], *mention), text
            if len(mentions) == 1 and text.split()[0] not in ("two", "three", "four"):  # one object, no count
                single += 1
                assert not any(fitting(scenes[j], *mentions[0]) for m, j in enumerate(idx) if m != k), text
    assert named > 30 and single > 6  # motion words are common; single mentions are exercised
