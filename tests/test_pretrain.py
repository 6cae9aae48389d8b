"""Tiny contrastive CLIP pretraining: the shipped checkpoint (version 2: scenes), short runs of
both versions, and the reproduce command of version 1 (no longer shipped)."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from rvoslib import pretrain, pretrain_eval
from rvoslib.config import BackboneConfig

REPO = Path(__file__).resolve().parents[1]
TINY_CLIP_DIR = REPO / "data_samples" / "tiny_clip"
SCENES = TINY_CLIP_DIR / "rvos-tiny-scenes.pt"
SCENES_SIDECAR = SCENES.with_suffix(".json")
HELD_OUT_SEED = 424242  # neither the training pool (seed 0) nor the sidecar's evaluation set (seed 10000)


def test_readme_command_remakes_version_1():
    """Version 1 (7.2 MB) is no longer shipped; the README's command must still describe its run."""
    readme = (TINY_CLIP_DIR / "README.md").read_text()
    command = re.search(r"^rvoslib pretrain --out data_samples/tiny_clip/rvos-tiny-shapes\.pt .*$", readme, re.M)
    assert command, "the README lost version 1's reproduce command"
    args = pretrain.add_arguments(argparse.ArgumentParser()).parse_args(shlex.split(command.group(0))[2:])
    assert (args.data, args.model, args.steps, args.batch_size, args.seed, args.lr, args.num_images,
            args.warmup_steps, args.weight_decay, args.num_eval) == ("shapes", "rvos-tiny", 1500, 48, 0, 2e-3, 20_000,
                                                                     150, 0.1, 1000)


def test_short_pretraining_lowers_the_loss_and_writes_a_loadable_checkpoint(tmp_path, one_thread):
    from rvoslib.backbone import create_clip

    out = tmp_path / "clip" / "tiny.pt"
    code = pretrain.run(["--out", str(out), "--steps", "30", "--batch-size", "16", "--num-images", "300",
                         "--lr", "3e-3", "--warmup-steps", "5", "--num-eval", "100", "--no-progress"])
    assert code == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["final_loss"] < info["initial_loss"] - 0.1, (info["initial_loss"], info["final_loss"])
    assert info["command"] == (f"rvoslib pretrain --out {out} --data scenes --model rvos-tiny2 --steps 30 "
                               "--batch-size 16 --seed 0 --lr 0.003 --num-images 300 --warmup-steps 5 "
                               "--weight-decay 0.1 --num-eval 100")
    assert not list(out.parent.glob(".*tmp*"))  # the atomic writes left no temporary files
    for result in (info["held_out"], info["random_init"]):
        assert set(result) == {"retrieval", "binding", "pointing", "patch_probe", "motion"}
        assert set(result["motion"]) == {"text_similarity", "choice"} and result["motion"]["choice"]["num_queries"] > 50
        assert result["retrieval"]["chance"] == pytest.approx(1 / 50, rel=0.3)
        assert len(result["patch_probe"]["per_block"]) == 4  # one per ViT block of rvos-tiny2
    model = create_clip(BackboneConfig(model_name="rvos-tiny2", pretrained=str(out), image_size=64))
    state = torch.load(out, weights_only=True)
    assert torch.equal(model.logit_scale.detach(), state["logit_scale"].float())


def test_motion_scene_data_trains(one_thread):
    pool = pretrain.make_pool("motion-scenes", 200, seed=0)
    assert all(scene.moving for scene in pool.scenes)
    model = pretrain.build_tiny_clip(0)
    losses = pretrain.train(model, pool, steps=3, batch_size=16, seed=0, lr=1e-3, warmup_steps=1,
                            weight_decay=0.1, progress=False)
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_version_1_data_still_trains(tmp_path, one_thread):
    pool = pretrain.make_pool("shapes", 200, seed=0)
    model = pretrain.build_tiny_clip(0, "rvos-tiny")
    losses = pretrain.train(model, pool, steps=3, batch_size=16, seed=0, lr=1e-3, warmup_steps=1,
                            weight_decay=0.1, progress=False)
    assert len(losses) == 3 and all(np.isfinite(losses))


def test_version_1_command_at_a_micro_budget_makes_a_loadable_rvos_tiny_checkpoint(tmp_path, one_thread):
    """Version 1 is no longer shipped: its code path (--data shapes --model rvos-tiny) still makes it."""
    import open_clip

    from rvoslib.backbone import create_clip
    from rvoslib.data.synthetic import all_captions, make_caption_pairs

    out = tmp_path / "rvos-tiny-shapes.pt"
    code = pretrain.run(["--out", str(out), "--data", "shapes", "--model", "rvos-tiny", "--steps", "4",
                         "--batch-size", "16", "--num-images", "200", "--warmup-steps", "1", "--num-eval", "100",
                         "--no-progress"])
    assert code == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["model_name"] == "rvos-tiny" and info["data"] == "shapes"
    assert "--data shapes --model rvos-tiny --steps 4" in info["command"]
    state = torch.load(out, map_location="cpu", weights_only=True)
    reference = pretrain.build_tiny_clip(0, "rvos-tiny").state_dict()
    assert set(state) == set(reference) and all(v.shape == reference[k].shape for k, v in state.items())
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    model = create_clip(BackboneConfig(model_name="rvos-tiny", pretrained=str(out), image_size=64))
    by_path = open_clip.create_model("rvos-tiny", pretrained=str(out))  # open_clip's own loader, as for real weights
    tokens = open_clip.get_tokenizer("rvos-tiny")(["a small red circle"])
    with torch.no_grad():
        assert torch.allclose(by_path.encode_text(tokens), model.encode_text(tokens))
    images, captions, labels = make_caption_pairs(60, HELD_OUT_SEED)  # version 1's own measures run on it
    result = pretrain.retrieval_accuracy(model, images, captions, all_captions(), labels)
    assert result["num_candidates"] == 48 and result["chance"] == pytest.approx(1 / 48)
    assert result["per_attribute_chance"] == pytest.approx({"colour": 1 / 6, "shape": 1 / 4, "size": 1 / 2})


def test_batches_hold_distinct_captions():
    captions = [f"c{i % 7}" for i in range(50)]
    groups = pretrain.caption_groups(captions)
    idx = pretrain.sample_batch(groups, 7, np.random.default_rng(0))
    assert len({captions[i] for i in idx}) == 7


def test_schedule_warms_up_then_decays_to_zero():
    factors = [pretrain.warmup_cosine(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:])) and factors[-1] < 0.01


def test_bad_settings_are_rejected_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        pretrain.pretrain_tiny_clip(tmp_path / "x.pt", data="shapes", steps=1, batch_size=64)
    with pytest.raises(ValueError, match="steps"):
        pretrain.pretrain_tiny_clip(tmp_path / "x.pt", steps=0)
    with pytest.raises(ValueError, match="num_eval"):
        pretrain.pretrain_tiny_clip(tmp_path / "x.pt", steps=1, num_eval=5)
    with pytest.raises(ValueError, match="data"):
        pretrain.pretrain_tiny_clip(tmp_path / "x.pt", data="videos")
    assert not list(tmp_path.iterdir())


def test_two_object_composites_paste_a_separate_object():
    from rvoslib.data.synthetic import make_caption_pairs

    images, captions, _ = make_caption_pairs(40, 3)
    composites, targets, others, queries = pretrain_eval.two_object_composites(images, captions, seed=0)
    assert len(queries) == 2 * len(composites) == len(targets) == len(others)
    assert not (targets & others).any()
    assert np.array_equal(pretrain_eval.object_masks(composites), targets[0::2] | others[0::2])


# --------------------------------------------------------------------------- version 2: scenes


@pytest.fixture(scope="module")
def scenes_clip():
    from rvoslib.backbone import create_clip
    from rvoslib.runtime import (TINY_CLIP_CHECKPOINT, TINY_CLIP_MODEL, TINY_CLIP_SCENES_CHECKPOINT,
                                 TINY_CLIP_SCENES_MODEL)

    assert REPO / TINY_CLIP_SCENES_CHECKPOINT == SCENES
    assert (TINY_CLIP_CHECKPOINT, TINY_CLIP_MODEL) == (TINY_CLIP_SCENES_CHECKPOINT, TINY_CLIP_SCENES_MODEL)  # shipped
    return create_clip(BackboneConfig(model_name=TINY_CLIP_SCENES_MODEL, pretrained=str(SCENES), image_size=64))


def test_scenes_checkpoint_is_a_small_plain_fp16_state_dict():
    import open_clip

    from rvoslib.backbone import register_tiny_config

    state = torch.load(SCENES, map_location="cpu", weights_only=True)
    register_tiny_config()
    reference = open_clip.create_model("rvos-tiny2", pretrained=None).state_dict()
    assert isinstance(state, dict) and set(state) == set(reference)
    assert all(v.shape == reference[k].shape for k, v in state.items())
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert SCENES.stat().st_size <= 5e6


def test_scenes_sidecar_describes_the_checkpoint_and_beats_random_init():
    info = json.loads(SCENES_SIDECAR.read_text())
    assert info["checkpoint"]["sha256"] == pretrain._sha256(SCENES)
    assert info["checkpoint"]["bytes"] == SCENES.stat().st_size
    assert info["command"] == pretrain.reproduce_command("data_samples/tiny_clip/rvos-tiny-scenes.pt",
                                                         **pretrain.DEFAULTS)  # the defaults make it
    held, base = info["held_out"], info["random_init"]
    assert held["retrieval"]["image_to_text"] > 10 * held["retrieval"]["chance"]  # measured 66.8 % vs 2.4 %
    assert base["retrieval"]["image_to_text"] < 3 * base["retrieval"]["chance"]
    for result in (held, base):
        assert result["binding"]["chance"] == 0.5
        assert min(result["binding"][k]["num_queries"] for k in ("attribute", "relation")) > 400
        assert abs(result["binding"]["relation"]["accuracy"] - 0.5) < 0.1  # relations not bound (README: 52.4 %)
        # no pointing (README, notebook 02): the top patch is on the object less often than chance
        assert result["pointing"]["chance"] > 0.2 and result["pointing"]["hit_rate"] < result["pointing"]["chance"]
    # attributes are bound after pretraining (README: 67.4 % over 516 scenes), not at random init
    assert held["binding"]["attribute"]["accuracy"] > 0.6 > base["binding"]["attribute"]["accuracy"] > 0.4
    # colour is in the patch tokens either way; shape only after pretraining (README: 47.9 % vs 31.8 %, chance 25 %)
    assert held["patch_probe"]["per_block"][-1]["colour"] > 0.95
    assert held["patch_probe"]["per_block"][-1]["shape"] > base["patch_probe"]["per_block"][-1]["shape"] + 0.1


def test_open_clip_loads_the_shipped_checkpoint_by_path(scenes_clip):
    import open_clip

    model = open_clip.create_model("rvos-tiny2", pretrained=str(SCENES))
    tokens = open_clip.get_tokenizer("rvos-tiny2")(["a red circle to the left of a small blue square"])
    images = pretrain.normalize_images(pretrain.held_out_scenes(4, HELD_OUT_SEED)[0])
    with torch.no_grad():
        assert torch.allclose(model.encode_text(tokens), scenes_clip.encode_text(tokens))
        assert torch.allclose(model.eval().encode_image(images), scenes_clip.encode_image(images), atol=1e-5)


def test_scenes_checkpoint_on_fresh_held_out_scenes(scenes_clip):
    from rvoslib.pretrain_eval import binding_accuracy, binding_queries, clip_scorer, scene_retrieval

    # 500 scenes (about 260 binding queries each): on 150 the attribute accuracy still wanders by +-0.1
    images, scenes = pretrain.held_out_scenes(500, HELD_OUT_SEED)
    retrieval = scene_retrieval(scenes_clip, images, scenes, seed=HELD_OUT_SEED)
    assert retrieval["image_to_text"] > 10 * retrieval["chance"]
    binding = binding_accuracy(clip_scorer(scenes_clip, images), binding_queries(scenes, HELD_OUT_SEED))
    assert binding["attribute"]["num_queries"] > 200 and binding["relation"]["num_queries"] > 200
    # attributes bound, relations not (sidecar, 1000 scenes: 67.4 % and 52.4 %; measured here 62 % and 49 %)
    assert binding["attribute"]["accuracy"] > 0.57
    assert abs(binding["relation"]["accuracy"] - 0.5) < 0.1
