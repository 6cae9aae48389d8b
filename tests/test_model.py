"""VLPRVOS wiring: output contract, trainable/frozen split, history path, presets, bad inputs."""

import re
import shutil
from pathlib import Path

import pytest
import torch

from rvoslib.config import get_preset
from rvoslib.model import build_model


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(get_preset("tiny").model)


def _clip(b=2, t=4, s=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, 3, s, s, generator=g)


def _loss(out):
    return out["pred_masks"].mean() + sum(a.mean() for a in out["aux_masks"]) + out["similarity"].mean()


def test_output_contract(tiny_model):
    tiny_model.train()
    tokens = tiny_model.tokenize(["the red circle moving left", "a large blue square"])
    out = tiny_model(_clip(), tokens)
    assert out["pred_masks"].shape == (2, 4, 64, 64)
    assert len(out["aux_masks"]) == tiny_model.cfg.spatiotemporal.layers - 1
    assert all(a.shape == (2, 4, 64, 64) for a in out["aux_masks"])
    assert out["similarity"].shape == (2, 4, 8, 8)
    assert out["similarity"].abs().max() <= 1 + 1e-5
    assert out["history"].shape == (2, tiny_model.cfg.prompts.num_history, tiny_model.vision.vision_width)
    assert out["features"].shape == (2, 4, tiny_model.cfg.dim, 8, 8)
    assert out["attn"] is None
    assert torch.isfinite(out["pred_masks"]).all()
    tiny_model.eval()
    with torch.no_grad():
        evaluated = tiny_model(_clip(), tokens)
        with_aux = tiny_model(_clip(), tokens, aux=True)
    assert evaluated["aux_masks"] == []  # inference skips the auxiliary heads
    torch.testing.assert_close(evaluated["pred_masks"], with_aux["pred_masks"])
    assert len(with_aux["aux_masks"]) == len(out["aux_masks"])


def test_trainable_frozen_split_and_gradients(tiny_model):
    """One backward: every trainable parameter outside history pooling gets a gradient, CLIP none."""
    tiny_model.train()
    tiny_model.zero_grad(set_to_none=True)
    tokens = tiny_model.tokenize(["the small green triangle", "the shape moving up"])
    _loss(tiny_model(_clip(), tokens)).backward()
    clip_params = list(tiny_model.clip.parameters())
    assert clip_params and all(not p.requires_grad and p.grad is None for p in clip_params)
    trainable = dict(tiny_model.trainable_named_parameters())
    frozen_ids = {id(p) for p in clip_params}
    assert not any(id(p) in frozen_ids for p in trainable.values())
    # history pooling only learns from the next clip's loss (see test_history_pooling_learns_from_next_clip)
    pooling = {n for n in trainable if n.startswith("history.") and n != "history.initial_tokens"}
    missing = [n for n, p in trainable.items() if n not in pooling and p.grad is None]
    assert missing == []
    counts = tiny_model.parameter_counts()
    assert counts["trainable"] == sum(p.numel() for p in trainable.values())
    assert counts["frozen"] == sum(p.numel() for p in clip_params)


def test_clip_stays_in_eval_mode(tiny_model):
    tiny_model.train()
    assert not any(m.training for m in tiny_model.clip.model.modules())
    assert tiny_model.reasoner.training
    tiny_model.eval()


def test_history_path_two_clips(tiny_model):
    tiny_model.eval()
    tokens = tiny_model.tokenize(["the shape moving right"])
    video = _clip(b=1, t=8, seed=1)
    first = tiny_model(video[:, :4], tokens)
    assert not first["history"].requires_grad  # detached: no graph back into clip A
    with_history = tiny_model(video[:, 4:], tokens, history=first["history"])
    without = tiny_model(video[:, 4:], tokens)
    assert torch.isfinite(with_history["pred_masks"]).all()
    assert not torch.allclose(with_history["pred_masks"], without["pred_masks"])


def test_history_pooling_learns_from_next_clip(tiny_model):
    tiny_model.zero_grad(set_to_none=True)
    tokens = tiny_model.tokenize(["the circle"])
    a = tiny_model(_clip(b=1, seed=2), tokens)
    history = tiny_model.history.pool(a["features"], a["pred_masks"], detach=False)
    _loss(tiny_model(_clip(b=1, seed=3), tokens, history=history)).backward()
    assert tiny_model.history.proj.weight.grad is not None
    assert tiny_model.history.proj.weight.grad.abs().sum() > 0


def test_no_history_variant():
    cfg = get_preset("tiny").model
    cfg.prompts.use_history = False
    model = build_model(cfg)
    out = model(_clip(b=1), model.tokenize(["a red square"]))
    assert model.history is None and out["history"] is None
    assert out["pred_masks"].shape == (1, 4, 64, 64)


def test_record_attention(tiny_model):
    out = tiny_model(_clip(b=1), tiny_model.tokenize(["a red square"]), record_attention=True)
    assert set(out["attn"]) == {"vision", "fusion", "spatiotemporal"}
    plain = tiny_model(_clip(b=1), tiny_model.tokenize(["a red square"]))
    torch.testing.assert_close(out["pred_masks"], plain["pred_masks"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("bad, match", [
    (torch.randn(1, 3, 64, 64), "frames"),
    (torch.randn(1, 4, 3, 48, 48), "64"),
    (torch.randn(1, 4, 1, 64, 64), "RGB"),
])
def test_bad_frame_tensors(tiny_model, bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_model(bad, tiny_model.tokenize(["a red square"]))


def test_bad_sentences(tiny_model):
    with pytest.raises(ValueError, match="empty"):
        tiny_model.tokenize(["   "])
    with pytest.raises(ValueError, match="tokens"):
        tiny_model(_clip(b=2), tiny_model.tokenize(["only one sentence"]))


def test_long_sentence_is_truncated_with_warning(tiny_model):
    long = " ".join(["the very small red circle that moves"] * 20)
    with pytest.warns(UserWarning, match="context length"):
        import rvoslib.text_encoder as te
        te._truncation_warned = False  # the warning is once per process
        tokens = tiny_model.tokenize([long])
    out = tiny_model(_clip(b=1), tokens)
    assert torch.isfinite(out["pred_masks"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("preset, grid", [("clip-b16", 22), ("clip-l14", 24)])
def test_real_presets_forward_with_random_weights(preset, grid):
    cfg = get_preset(preset).model
    cfg.backbone.pretrained = None  # no download here: same architecture, random weights
    model = build_model(cfg).eval()
    s = cfg.backbone.image_size
    with torch.inference_mode():
        out = model(torch.randn(1, 2, 3, s, s), model.tokenize(["a black feathered swan"]))
    assert out["pred_masks"].shape == (1, 2, s, s)
    assert out["similarity"].shape == (1, 2, grid, grid)
    assert torch.isfinite(out["pred_masks"]).all()


def test_checkpoint_round_trip_and_export(tmp_path, tiny_model):
    from rvoslib.checkpoint import (CheckpointFormatError, export_weights, load_checkpoint,
                                    model_from_checkpoint, save_checkpoint)
    from rvoslib.config import get_preset

    cfg = get_preset("tiny")
    path = save_checkpoint(tmp_path / "run" / "last.pt", tiny_model, cfg, step=7)
    small = export_weights(path, tmp_path / "small.pt", half=True)
    assert small.stat().st_size < path.stat().st_size
    state = load_checkpoint(small)
    assert state["optimizer"] is None and state["step"] == 7
    model, loaded_cfg = model_from_checkpoint(small)
    assert loaded_cfg == cfg
    for name, value in tiny_model.trainable_state_dict().items():
        restored = model.state_dict()[name]
        assert restored.dtype == value.dtype
        torch.testing.assert_close(restored, value, atol=1e-3, rtol=1e-3)  # float16 storage
    (tmp_path / "corrupt.pt").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointFormatError, match="corrupt"):
        load_checkpoint(tmp_path / "corrupt.pt")
    other = get_preset("tiny")
    other.model.dim = 32
    with pytest.raises(CheckpointFormatError, match="another config"):
        from rvoslib.checkpoint import load_model_weights
        load_model_weights(build_model(other.model), load_checkpoint(path))


def test_random_clip_weights_are_saved_and_come_back(tmp_path, tiny_model):
    from rvoslib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    cfg = get_preset("tiny")  # backbone.pretrained None: the CLIP has random weights nothing could rebuild
    path = save_checkpoint(tmp_path / "random.pt", tiny_model, cfg)
    assert load_checkpoint(path)["full"]
    torch.manual_seed(123)  # whatever the RNG state at load time
    model, _ = model_from_checkpoint(path)
    loaded = model.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in tiny_model.state_dict().items())


def test_an_older_trainable_only_checkpoint_of_a_random_clip_warns(tmp_path, tiny_model, caplog):
    from rvoslib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    state = load_checkpoint(save_checkpoint(tmp_path / "random.pt", tiny_model, get_preset("tiny")))
    state["model"], state["full"] = tiny_model.trainable_state_dict(), False  # as rvoslib wrote it before
    torch.save(state, tmp_path / "old.pt")
    with caplog.at_level("WARNING", logger="rvoslib.checkpoint"):
        model_from_checkpoint(tmp_path / "old.pt")
    assert "old.pt" in caplog.text and "random weights that were not saved" in caplog.text


def test_loading_warns_when_the_clip_file_changed_since_training(tmp_path, tiny_model, caplog):
    """A trainable-only checkpoint rebuilds its frozen CLIP from ``backbone.pretrained``; when that
    file was replaced after training (as the shipped tiny CLIP was in session 18), the trained
    modules no longer fit the features, and loading says so instead of scoring another model."""
    from rvoslib.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
    from rvoslib.pretrain import build_tiny_clip

    def write_clip(path, seed):
        torch.save({k: v.half() for k, v in build_tiny_clip(seed).state_dict().items()}, path)

    write_clip(tmp_path / "clip.pt", seed=0)
    shutil.copy(tmp_path / "clip.pt", tmp_path / "original.pt")  # a copy kept elsewhere
    cfg = get_preset("tiny")
    cfg.model.backbone.pretrained = str(tmp_path / "clip.pt")
    path = save_checkpoint(tmp_path / "run.pt", tiny_model, cfg)
    state = load_checkpoint(path)
    assert not state["full"] and len(state["backbone_sha256"]) == 64
    with caplog.at_level("WARNING", logger="rvoslib.checkpoint"):
        model_from_checkpoint(path)
    assert "trained with CLIP weights" not in caplog.text  # unchanged file: silent

    write_clip(tmp_path / "clip.pt", seed=1)  # the file is replaced by other weights
    caplog.clear()
    with caplog.at_level("WARNING", logger="rvoslib.checkpoint"):
        model_from_checkpoint(path)
    assert "run.pt" in caplog.text and "trained with CLIP weights" in caplog.text and "clip.pt" in caplog.text

    caplog.clear()  # the way out the warning names: the original weights, passed explicitly
    with caplog.at_level("WARNING", logger="rvoslib.checkpoint"):
        model_from_checkpoint(path, pretrained=str(tmp_path / "original.pt"))
    assert "trained with CLIP weights" not in caplog.text

    del state["backbone_sha256"]  # checkpoints written before the fingerprint are not checked
    torch.save(state, tmp_path / "old.pt")
    caplog.clear()
    with caplog.at_level("WARNING", logger="rvoslib.checkpoint"):
        model_from_checkpoint(tmp_path / "old.pt")
    assert "trained with CLIP weights" not in caplog.text


def test_frozen_clip_without_prompts_trains():
    """The "frozen CLIP, no prompts" baseline: stage 1 on, no vision/temporal/history tokens.

    The frame sequence is then CLS + patches only; stage 1's update must not change in place a
    tensor that its LayerNorm saved for backward (it used to: "modified by an inplace operation").
    """
    cfg = get_preset("tiny").model
    cfg.prompts.use_vision = cfg.prompts.use_temporal = cfg.prompts.use_history = False
    cfg.vision.stage1 = True
    torch.manual_seed(0)
    model = build_model(cfg).train()
    out = model(_clip(b=1, t=2), model.tokenize(["the red circle"]))
    _loss(out).backward()
    alphas = [p.grad for n, p in model.named_parameters() if n.endswith(".alpha")]
    assert alphas and all(g is not None and g.abs().sum() > 0 for g in alphas)


# --------------------------------------------------------------------------- checkpoints saved before newer options


# the model overrides of the shipped recipe (README, "Toy-scale training": $MODEL)
SHIPPED_OVERRIDES = ["model.spatiotemporal.value_position=relative", "model.fusion.sentence=add",
                     "model.prompts.word_codes=4093", "model.prompts.word_code_spread=bag",
                     "model.prompts.word_code_std=2.5", "model.spatiotemporal.relative_init_std=0.5"]


def test_shipped_checkpoint_is_the_tiny_preset_with_trained_history():
    """The shipped tiny model loads through the public path, on the shipped tiny CLIP, with the
    tiny preset's architecture plus exactly the README recipe's model overrides, an order-aware
    capture and history that was trained (so inference carries history across windows), and
    segments a clip to finite logits of the right shape."""
    from rvoslib.checkpoint import model_from_checkpoint
    from rvoslib.config import apply_overrides
    from rvoslib.runtime import TINY_CLIP_CHECKPOINT, TINY_CLIP_MODEL, TINY_RVOS_CHECKPOINT, find_sample

    model, cfg = model_from_checkpoint(find_sample(TINY_RVOS_CHECKPOINT))
    preset = apply_overrides(get_preset("tiny"), SHIPPED_OVERRIDES).model
    assert preset != get_preset("tiny").model  # the overrides change the preset
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    model_line = re.search(r'^MODEL="([^"]*)"', readme, flags=re.M).group(1)
    assert re.findall(r"--set (\S+)", model_line) == SHIPPED_OVERRIDES  # the README's recipe says the same
    assert cfg.model.backbone.model_name == TINY_CLIP_MODEL
    assert find_sample(cfg.model.backbone.pretrained).resolve() == find_sample(TINY_CLIP_CHECKPOINT).resolve()
    for section in ("prompts", "vision", "fusion", "spatiotemporal", "head"):
        assert getattr(cfg.model, section) == getattr(preset, section), section
    assert cfg.model.vision.capture_time_code == "learned" and model.vision.time_code is not None
    assert cfg.train.history_training == "two-step" and model.history_trained
    frames = torch.randn(1, cfg.model.num_frames, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(frames, model.tokenize(["the red circle moving left"]))
    assert out["pred_masks"].shape == (1, cfg.model.num_frames, 64, 64) and torch.isfinite(out["pred_masks"]).all()
    assert out["history"].shape == (1, cfg.model.prompts.num_history, model.vision.vision_width)


def test_old_config_dicts_get_the_old_behaviour(tmp_path, tiny_model):
    """A checkpoint whose saved config lacks the newer fields reads them as the old behaviour."""
    from rvoslib.checkpoint import config_of, model_from_checkpoint, save_checkpoint

    cfg = get_preset("tiny")
    cfg.model.vision.capture_time_code = "none"
    old = build_model(cfg.model)
    path = save_checkpoint(tmp_path / "old.pt", old, cfg)
    state = torch.load(path, weights_only=True)
    for section, name in (("vision", "capture_time_code"), ("vision", "capture_placement"),
                          ("spatiotemporal", "decoder_words")):
        del state["config"]["model"][section][name]
    torch.save(state, path)
    loaded = config_of(torch.load(path, weights_only=True))
    assert loaded.model.vision.capture_time_code == "none"
    assert loaded.model.vision.capture_placement == "attention"
    assert loaded.model.spatiotemporal.decoder_words == "fused"
    model, _ = model_from_checkpoint(path)  # weights fit: no time code, no decoder word projection was built
    assert model.vision.time_code is None and model.reasoner.word_proj is None
    # a config that names the fields keeps them
    assert config_of({"config": get_preset("tiny").to_dict()}).model.vision.capture_time_code == "learned"


def test_decoder_words_fused_or_text():
    """spatiotemporal.decoder_words: the stage-3 decoder reads stage-2's words or the text encoder's."""
    cfg = get_preset("tiny").model
    assert cfg.spatiotemporal.decoder_words == "fused"
    torch.manual_seed(0)
    fused = build_model(cfg).eval()
    cfg.spatiotemporal.decoder_words = "text"
    text = build_model(cfg, clip=fused.clip.model).eval()
    assert fused.reasoner.word_proj is None and text.reasoner.word_proj is not None
    missing = text.load_state_dict(fused.state_dict(), strict=False).missing_keys  # same weights but the projection
    assert sorted(missing) == ["reasoner.word_proj.bias", "reasoner.word_proj.weight"]
    tokens = fused.tokenize(["the red circle moving left"])
    with torch.no_grad():
        a, b = fused(_clip(b=1), tokens), text(_clip(b=1), tokens, record_attention=True)
    assert a["pred_masks"].shape == b["pred_masks"].shape
    assert (a["pred_masks"] - b["pred_masks"]).abs().max() > 1e-3
    text.train()
    _loss(text(_clip(b=1), tokens)).backward()
    assert text.reasoner.word_proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("mode, trained", [("off", False), ("one-step", True), ("two-step", True)])
def test_checkpoint_says_whether_history_was_trained(tmp_path, tiny_model, mode, trained):
    from rvoslib.checkpoint import model_from_checkpoint, save_checkpoint

    assert tiny_model.history_trained  # a freshly built model: assumed trained
    cfg = get_preset("tiny")
    cfg.train.history_training = mode
    model, _ = model_from_checkpoint(save_checkpoint(tmp_path / "run.pt", tiny_model, cfg))
    assert model.history_trained == trained
    cfg.model.prompts.use_history = False  # no history tokens: nothing to fall back from
    no_history = build_model(cfg.model)
    model, _ = model_from_checkpoint(save_checkpoint(tmp_path / "plain.pt", no_history, cfg))
    assert model.history is None and model.history_trained
