"""rvoslib.motion_words: does a tiny CLIP read motion words (text similarity, motion choice)?"""

from __future__ import annotations

import itertools

import pytest
import torch

from rvoslib import motion_words
from rvoslib.backbone import create_clip
from rvoslib.config import BackboneConfig
from rvoslib.data.scenes import make_scene_pool
from rvoslib.data.expressions import motion_phrases
from rvoslib.data.shapes import COLOURS, MOTIONS, SHAPES
from rvoslib.runtime import TINY_CLIP_CHECKPOINT, find_sample

KEYS = list(itertools.product(COLOURS, SHAPES, MOTIONS))  # one embedding axis per (colour, shape, motion)


@pytest.fixture(scope="module")
def motion_pool():
    images, scenes, _ = make_scene_pool(60, seed=8, pair_prob=0.0, moving=True)
    return images, scenes


def oracle(monkeypatch, scenes, constant=False):
    """Image embedding: the sum of its objects' one-hot (colour, shape, motion); caption embedding: its one-hot."""
    by_bytes = {scene.image.tobytes(): scene for scene in scenes}

    def encode_images(model, images):
        out = torch.zeros(len(images), len(KEYS))
        for row, image in enumerate(images):
            for o in by_bytes[image.tobytes()].objects:
                out[row, KEYS.index((o.colour, o.shape, o.motion))] += 1
        return torch.ones_like(out) if constant else out

    def encode_captions(model, captions):
        out = torch.zeros(len(captions), len(KEYS))
        for row, caption in enumerate(captions):
            _, colour, shape, *rest = caption.split()
            motion = next(m for m in MOTIONS if " ".join(rest) in motion_phrases(m))
            out[row, KEYS.index((colour, shape, motion))] = 1
        return out

    monkeypatch.setattr(motion_words, "encode_images", encode_images)
    monkeypatch.setattr(motion_words, "encode_captions", encode_captions)


def test_motion_choice_is_right_for_an_oracle_and_wrong_on_ties(monkeypatch, motion_pool):
    images, scenes = motion_pool
    oracle(monkeypatch, scenes)
    right = motion_words.motion_choice(None, images, scenes)
    assert right["accuracy"] == 1.0 and right["num_queries"] > 40 and right["chance"] == pytest.approx(1 / 6)
    oracle(monkeypatch, scenes, constant=True)
    assert motion_words.motion_choice(None, images, scenes)["accuracy"] == 0.0  # all six captions tie


def test_the_still_scene_tower_cannot_tell_motion_phrases_apart():
    clip = create_clip(BackboneConfig(model_name="rvos-tiny2", pretrained=str(find_sample(TINY_CLIP_CHECKPOINT)),
                                      image_size=64))
    similarity = motion_words.motion_text_similarity(clip)
    assert similarity["left_right"] > 0.999 and similarity["up_down"] > 0.999  # the blocker it documents


def test_sentence_features_are_the_end_token_of_the_text_tower():
    clip = create_clip(BackboneConfig(model_name="rvos-tiny2", pretrained=str(find_sample(TINY_CLIP_CHECKPOINT)),
                                      image_size=64))
    sentences = ["the circle moving left", "a red square"]
    ours = motion_words.sentence_features(clip, sentences)
    with torch.no_grad():
        projected = clip.encode_text(motion_words.get_tokenizer()(sentences), normalize=True)
    # the tower's own pooled output is the same end token, projected: projecting ours must agree
    mine = torch.nn.functional.normalize(ours @ clip.text_projection.float().cpu(), dim=-1)
    assert torch.allclose(mine, projected.float(), atol=1e-3)
