"""Training engine: parameter groups, schedule, data order, runs, checkpoints, exact resume,
NaN handling, gradient accumulation, two-clip history training, CLI. DDP is in test_ddp.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from rvoslib import engine, train_step
from rvoslib.checkpoint import load_checkpoint
from rvoslib.config import PRESETS, Config, TrainConfig, get_preset
from rvoslib.data import collate_clips, read_ref_youtube_vos, write_synthetic_dataset
from rvoslib.distributed import DistContext
from rvoslib.engine import (
    ClipRunner,
    NonFiniteLossError,
    StepBatchSampler,
    Trainer,
    add_train_arguments,
    config_from_args,
    make_train_dataset,
    read_log,
    train,
)
from rvoslib.schedule import build_scheduler, lr_factor, param_groups

# ----------------------------------------------------------------------------- fixtures


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A small synthetic set: train (6 videos) and valid (2 videos, 2 expressions each)."""
    root = tmp_path_factory.mktemp("shapes")
    write_synthetic_dataset(root / "train", 6, seed=1, split="train", max_expressions=3)
    write_synthetic_dataset(root / "valid", 2, seed=1, split="valid", max_expressions=2)
    return root


def tiny_cfg(root, out, **train_options) -> Config:
    """The tiny preset (random CLIP) with T=2 frames on ``root``, 4 steps of batch 2, no evaluation."""
    cfg = get_preset("tiny")
    cfg.model.num_frames = 2  # half the compute of the preset's T=4
    cfg.data.root = str(root)
    cfg.train.out_dir = str(out)
    cfg.train.steps, cfg.train.batch_size, cfg.train.warmup_steps = 4, 2, 2
    cfg.train.eval_every, cfg.train.ckpt_every, cfg.train.log_every = 0, 2, 1
    cfg.train.history_training = "off"  # one clip per item (half the compute); history tests set their mode
    for key, value in train_options.items():
        setattr(cfg.train, key, value)
    return cfg


def trainable(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.trainable_state_dict().items()}


def make_trainer(cfg: Config):
    model, optimizer, scheduler, _ = engine.build_training(cfg, DistContext())
    return Trainer(model, ClipRunner(model), optimizer, cfg, DistContext()), scheduler


def fixed_batch(cfg: Config, items=(0, 1)) -> dict:
    dataset = make_train_dataset(read_ref_youtube_vos(cfg.data.root, split="train"), cfg)
    return collate_clips([dataset[i] for i in items])


# ----------------------------------------------------------------------------- groups and schedule


def test_param_groups_names_and_lrs():
    cfg = TrainConfig(lr=1e-3, lr_prompt_head=5e-4, weight_decay=0.05)
    named = [
        ("prompts.raw", torch.nn.Parameter(torch.zeros(10, 4))),
        ("prompts.proj.vision.weight", torch.nn.Parameter(torch.zeros(4, 4))),
        ("prompts.proj.vision.bias", torch.nn.Parameter(torch.zeros(4))),
        ("head.blocks.0.0.weight", torch.nn.Parameter(torch.zeros(4, 4, 3, 3))),
        ("head.blocks.0.1.weight", torch.nn.Parameter(torch.zeros(4))),  # GroupNorm scale
        ("vision.stage1.0.alpha", torch.nn.Parameter(torch.zeros(1))),
        ("vision.stage1.0.q.weight", torch.nn.Parameter(torch.zeros(4, 4))),
        ("history.initial_tokens", torch.nn.Parameter(torch.zeros(2, 4))),
        ("history.queries", torch.nn.Parameter(torch.zeros(2, 4))),
        ("fusion.gate.weight", torch.nn.Parameter(torch.zeros(4, 4))),
        ("clip.visual.proj", torch.nn.Parameter(torch.zeros(4, 4), requires_grad=False)),
    ]
    groups = {g["name"]: g for g in param_groups(named, cfg)}
    assert set(groups) == {"base", "base_no_wd", "prompt_head", "prompt_head_no_wd"}
    assert groups["base"]["names"] == ["vision.stage1.0.q.weight", "fusion.gate.weight"]
    assert groups["base_no_wd"]["names"] == ["vision.stage1.0.alpha", "history.initial_tokens", "history.queries"]
    assert groups["prompt_head"]["names"] == ["prompts.proj.vision.weight", "head.blocks.0.0.weight"]
    assert groups["prompt_head_no_wd"]["names"] == ["prompts.raw", "prompts.proj.vision.bias", "head.blocks.0.1.weight"]
    assert groups["base"]["lr"] == groups["base_no_wd"]["lr"] == 1e-3
    assert groups["prompt_head"]["lr"] == groups["prompt_head_no_wd"]["lr"] == 5e-4
    assert groups["base"]["weight_decay"] == groups["prompt_head"]["weight_decay"] == 0.05
    assert groups["base_no_wd"]["weight_decay"] == groups["prompt_head_no_wd"]["weight_decay"] == 0.0


def test_param_groups_cover_the_tiny_model_exactly(shapes, tmp_path):
    trainer, _ = make_trainer(tiny_cfg(shapes, tmp_path))
    model, optimizer = trainer.model, trainer.optimizer
    names = [n for g in optimizer.param_groups for n in g["names"]]
    assert sorted(names) == sorted(n for n, _ in model.trainable_named_parameters())  # each once, CLIP never
    for group in optimizer.param_groups:
        prompt_head = group["name"].startswith("prompt_head")
        assert all(n.startswith(("prompts.", "head.")) == prompt_head for n in group["names"])
        assert group["initial_lr"] == (5e-4 if prompt_head else 1e-3)  # the tiny preset's lrs


def test_schedule_values_by_hand():
    cfg = TrainConfig(steps=100, warmup_steps=10, lr_milestones=(0.5, 0.8), lr_gamma=0.1, lr=1e-3, lr_prompt_head=5e-4)
    expected = {0: 0.1, 4: 0.5, 9: 1.0, 49: 1.0, 50: 0.1, 79: 0.1, 80: 0.01, 99: 0.01}
    for step, factor in expected.items():
        assert lr_factor(step, cfg) == pytest.approx(factor)
    p, q = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([{"params": [p], "lr": 1e-3}, {"params": [q], "lr": 5e-4}])
    scheduler = build_scheduler(optimizer, cfg)
    seen = {}
    for step in range(100):  # the lr used by optimizer step `step`
        seen[step] = [g["lr"] for g in optimizer.param_groups]
        optimizer.step()
        scheduler.step()
    for step, factor in expected.items():
        assert seen[step] == pytest.approx([1e-3 * factor, 5e-4 * factor])
    assert lr_factor(0, TrainConfig(steps=10, warmup_steps=0, lr_milestones=())) == 1.0
    with pytest.raises(ValueError, match="lr_milestones"):
        lr_factor(0, TrainConfig(lr_milestones=(80,)))


# ----------------------------------------------------------------------------- data order


def test_step_sampler_is_a_pure_function_of_seed_and_step():
    full = StepBatchSampler(10, batch_size=2, grad_accum=2, seed=3, start_step=0, end_step=6)
    tail = StepBatchSampler(10, batch_size=2, grad_accum=2, seed=3, start_step=4, end_step=6)
    assert list(tail) == list(full)[8:]  # resuming at step 4 gives the same micro-batches
    assert len(full) == 12 and all(len(mb) == 2 for mb in full)
    # positions run through epochs: every item exactly once per epoch of 10 positions
    keys = [k for mb in full for k in mb]
    assert sorted(i for i, e in keys if e == 0) == list(range(10))
    assert sorted(i for i, e in keys if e == 1) == list(range(10))
    other_seed = StepBatchSampler(10, batch_size=2, grad_accum=2, seed=4, start_step=0, end_step=6)
    assert list(other_seed) != list(full)


def test_step_sampler_shards_global_batches_over_ranks():
    ranks = [StepBatchSampler(12, batch_size=2, grad_accum=1, seed=0, start_step=0, end_step=3, rank=r, world_size=2)
             for r in range(2)]
    single = StepBatchSampler(12, batch_size=4, grad_accum=1, seed=0, start_step=0, end_step=3)
    for step in range(3):
        shards = [r.micro_batches(step)[0] for r in ranks]
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == sorted(single.micro_batches(step)[0])


# ----------------------------------------------------------------------------- runs and checkpoints


def test_cli_run_writes_checkpoint_log_and_config(shapes, tmp_path):
    parser = add_train_arguments(argparse.ArgumentParser())
    out = tmp_path / "run"
    args = parser.parse_args([
        "--preset", "tiny", "--data", str(shapes), "--out", str(out), "--steps", "2", "--batch-size", "2",
        "--device", "cpu", "--pretrained", "none", "--no-progress",
        "--set", "train.eval_every=2", "--set", "train.log_every=1", "--set", "train.warmup_steps=1",
        "--set", "train.lr=3e-4",
    ])
    assert args.func(args) == 0
    assert {p.name for p in out.iterdir()} >= {"last.pt", "best.pt", "log.jsonl", "config.json"}
    saved = Config.from_dict(json.loads((out / "config.json").read_text()))
    assert saved.train.lr == 3e-4 and saved.train.steps == 2 and saved.model.backbone.pretrained is None
    log = read_log(out)
    assert [r["step"] for r in log if "loss" in r] == [1, 2]
    assert log[0]["lr"] == {"base": pytest.approx(3e-4), "prompt_head": pytest.approx(5e-4)}
    assert {"mask_bce", "mask_dice", "sim_bce", "grad_norm"} <= set(log[0]["terms"])
    val = [r for r in log if "val" in r]
    assert len(val) == 1 and val[0]["step"] == 2 and 0.0 <= val[0]["val"]["J&F"] <= 1.0

    state = load_checkpoint(out / "last.pt")  # weights_only=True inside
    assert state["step"] == 2 and Config.from_dict(state["config"]) == saved
    assert state["optimizer"]["state"] and state["scheduler"]["last_epoch"] == 2
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    assert state["extra"]["best_jf"] == pytest.approx(val[0]["val"]["J&F"])
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 2


def test_cli_defaults_and_overrides(tmp_path):
    parser = add_train_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--set", "train.lr=3e-4", "--set", "model.spatiotemporal.attention=full"])
    cfg = config_from_args(args)
    assert cfg.model.backbone.model_name == "rvos-tiny2" and cfg.train.lr == 3e-4
    assert cfg.model.spatiotemporal.attention == "full"
    assert (Path(cfg.data.root) / "train" / "meta_expressions.json").is_file()  # bundled data found
    with pytest.raises(ValueError, match="train.nope"):
        config_from_args(parser.parse_args(["--set", "train.nope=1"]))


def test_fresh_run_refuses_to_overwrite_a_run(shapes, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="resume"):
        train(tiny_cfg(shapes, out), device="cpu", progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_cfg(shapes, tmp_path / "empty"), device="cpu", resume=True, progress=False)


def test_resume_repeats_an_uninterrupted_run_exactly(shapes, tmp_path):
    steps = dict(steps=4, ckpt_every=2)
    whole = train(tiny_cfg(shapes, tmp_path / "whole", **steps), device="cpu", progress=False)
    # interrupted after step 3: the checkpoint of step 2 survives, step 3 is lost and redone
    cut = tiny_cfg(shapes, tmp_path / "cut", **steps)
    first = train(cut, device="cpu", stop_after=3, progress=False)
    assert first["stopped"] and first["steps"] == 3
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["step"] == 2
    resumed = train(cut, device="cpu", resume=True, progress=False)
    assert resumed["steps"] == 4
    a, b = trainable(whole["model"]), trainable(resumed["model"])
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["last_loss"] == whole["last_loss"]
    assert [r["step"] for r in read_log(tmp_path / "cut")] == [1, 2, 3, 4]  # step 3 logged once
    assert [r["loss"] for r in read_log(tmp_path / "cut")] == [r["loss"] for r in read_log(tmp_path / "whole")]


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(shapes, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = train_step.compute_losses

    def poisoned(outputs, targets, cfg):
        calls["n"] += 1
        terms = real(outputs, targets, cfg)
        if calls["n"] == 3:  # step 3 (one clip loss per step)
            terms["total"] = terms["total"] * float("nan")
        return terms

    monkeypatch.setattr(train_step, "compute_losses", poisoned)
    cfg = tiny_cfg(shapes, tmp_path / "run", steps=4, ckpt_every=2)
    with pytest.raises(NonFiniteLossError, match="step 3") as info:
        train(cfg, device="cpu", progress=False)
    err = info.value
    assert err.step == 3 and len(err.samples) == 2 and all(v.startswith("train_") for v, _ in err.samples)
    assert f"{err.samples[0][0]}/{err.samples[0][1]}" in str(err)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert "error" in read_log(tmp_path / "run")[-1]


# ----------------------------------------------------------------------------- the training step


def test_gradient_accumulation_matches_one_big_batch(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path)
    trainer, _ = make_trainer(cfg)
    whole = fixed_batch(cfg, (0, 1))
    halves = [fixed_batch(cfg, (0,)), fixed_batch(cfg, (1,))]
    clip = slice(0, cfg.model.num_frames)

    def grads(batches):
        inputs = [trainer.prepare(b) for b in batches]
        terms, _ = trainer.accumulate(inputs, 1, lambda x: trainer.clip_loss(x, clip))
        return terms, {n: p.grad.clone() for n, p in trainer.model.trainable_named_parameters() if p.grad is not None}

    terms_1, g_1 = grads([whole])
    terms_2, g_2 = grads(halves)
    assert terms_1["total"] == pytest.approx(terms_2["total"], rel=1e-5)
    assert g_1.keys() == g_2.keys() and len(g_1) > 100
    # float sums in another order: errors relative to each tensor's size, plus a floor relative to the
    # whole gradient (some gradients are zero in exact arithmetic, e.g. attention key biases)
    total = torch.cat([g.flatten() for g in g_1.values()]).norm()
    for name in g_1:
        error = (g_2[name] - g_1[name]).norm()
        assert error <= 1e-4 * g_1[name].norm() + 1e-6 * total, (name, float(error), float(g_1[name].norm()))


def test_loss_decreases_on_a_fixed_batch(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path, warmup_steps=0, lr_milestones=())
    trainer, scheduler = make_trainer(cfg)
    batch = fixed_batch(cfg, (0,))
    losses = []
    for step in range(1, 6):
        losses.append(trainer.train_step([batch], step)["total"])
        scheduler.step()
    assert losses[-1] < 0.8 * losses[0]


def test_history_training_is_on_by_default():
    # inference feeds pooled history to every window after the first, so the pooling must be trained
    assert TrainConfig().history_training == "two-step"
    for name, preset in PRESETS.items():
        assert preset().train.history_training == "two-step", name


@pytest.mark.parametrize("mode, trained", [("off", False), ("two-step", True)])
def test_training_model_knows_whether_its_history_is_trained(shapes, tmp_path, mode, trained):
    trainer, _ = make_trainer(tiny_cfg(shapes, tmp_path, history_training=mode))
    assert trainer.model.history_trained == trained  # in-training evaluation falls back as a loaded checkpoint


def test_two_clip_training_items_keep_each_clips_gaps(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path, history_training="two-step")
    cfg.model.num_frames = 4  # the preset's T: 2T = 8 of a 12-frame video
    dataset = make_train_dataset(read_ref_youtube_vos(shapes, split="train"), cfg)
    spans = []
    for i in range(len(dataset)):
        indices = dataset[i]["meta"]["frame_indices"]
        assert len(indices) == 8 and indices[4] > indices[0]  # clip B starts after clip A's first frame
        spans += [indices[3] - indices[0], indices[7] - indices[4]]
    assert max(spans) > 3  # gaps of 2-3 survive (all 1 when the 8 frames were sampled as one clip)


def test_data_fixed_windows_reaches_the_training_dataset(shapes, tmp_path):
    cfg = tiny_cfg(shapes, tmp_path)
    cfg.data.fixed_windows = True
    dataset = make_train_dataset(read_ref_youtube_vos(shapes, split="train"), cfg)
    first = [dataset[i]["meta"]["frame_indices"] for i in range(len(dataset))]
    dataset.set_epoch(5)
    assert [dataset[i]["meta"]["frame_indices"] for i in range(len(dataset))] == first


@pytest.mark.parametrize("mode", ["one-step", "two-step"])
def test_two_clip_history_training_updates_the_pooling(shapes, tmp_path, mode):
    cfg = tiny_cfg(shapes, tmp_path, history_training=mode)
    assert make_train_dataset(read_ref_youtube_vos(shapes, split="train"), cfg)[0]["frames"].shape[0] == 4  # 2T
    trainer, _ = make_trainer(cfg)
    before = trainable(trainer.model)
    terms = trainer.train_step([fixed_batch(cfg, (0,))], 1)
    assert terms["total"] == pytest.approx(terms["total_a"] + terms["total_b"], rel=1e-5)
    after = trainable(trainer.model)
    pooling = ["history.queries", "history.key.weight", "history.norm.weight", "history.proj.weight"]
    for name in pooling + ["history.initial_tokens", "head.predict.weight"]:
        assert not torch.equal(before[name], after[name]), name
    state = trainer.optimizer.state
    params = dict(trainer.model.named_parameters())
    optimizer_steps = 2 if mode == "two-step" else 1
    assert int(state[params["head.predict.weight"]]["step"]) == optimizer_steps
    assert int(state[params["history.proj.weight"]]["step"]) == 1  # only clip B's step reaches the pooling


@pytest.mark.parametrize("mode", ["one-step", "two-step"])
def test_two_clip_training_without_history_trains_clip_b_alone(shapes, tmp_path, mode):
    # the "no history" ablation of a history-trained run: same clips and optimizer steps, no history tokens
    cfg = tiny_cfg(shapes, tmp_path, history_training=mode)
    cfg.model.prompts.use_history = False
    trainer, _ = make_trainer(cfg)
    assert trainer.model.history is None
    batch = fixed_batch(cfg, (0,))
    with torch.no_grad():  # clip B run on its own, with no history, before any update
        alone, _ = trainer.clip_loss(trainer.prepare(batch), slice(cfg.model.num_frames, 2 * cfg.model.num_frames))
    terms = trainer.train_step([batch], 1)
    assert terms["total"] == pytest.approx(terms["total_a"] + terms["total_b"], rel=1e-5)
    params = dict(trainer.model.named_parameters())
    steps = int(trainer.optimizer.state[params["head.predict.weight"]]["step"])
    assert steps == (2 if mode == "two-step" else 1)
    if mode == "one-step":  # both clips see the same weights: clip B's loss is that of B alone
        assert terms["total_b"] == pytest.approx(float(alone["total"]), rel=1e-4)


def test_bad_training_settings_are_clear_errors(shapes, tmp_path):
    with pytest.raises(ValueError, match="history_training"):
        train(tiny_cfg(shapes, tmp_path / "a", history_training="sometimes"), device="cpu", progress=False)
    with pytest.raises(ValueError, match="amp"):
        train(tiny_cfg(shapes, tmp_path / "c", amp="fp8"), device="cpu", progress=False)


def test_eval_max_videos_limits_periodic_validation(shapes, tmp_path):
    from rvoslib.evaluate import scorable
    from rvoslib.train_eval import evaluate_split

    cfg = tiny_cfg(shapes, tmp_path / "run", steps=1, eval_every=1, eval_max_videos=1)
    summary = train(cfg, device="cpu", progress=False)
    records = [r for r in map(scorable, read_ref_youtube_vos(shapes, split="valid")) if r is not None]
    first, everything = len(records[0].expressions), sum(len(r.expressions) for r in records)
    assert first < everything  # the split has more than one scorable video
    assert summary["last_val"]["num_objects"] == first
    cfg.train.eval_max_videos = 0  # the default: the whole split
    assert evaluate_split(summary["model"], records, cfg, torch.device("cpu"))["num_objects"] == everything
