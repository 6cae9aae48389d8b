"""rvoslib.prompts: the prompt generator and the history tokens."""

import dataclasses

import pytest
import torch

from rvoslib.config import PromptConfig, tiny
from rvoslib.prompts import HistoryEncoder, PromptGenerator


def prompt_cfg(**kw) -> PromptConfig:
    return dataclasses.replace(tiny().model.prompts, **kw)


def test_generator_shapes():
    cfg = prompt_cfg()
    out = PromptGenerator(cfg, vision_width=48, text_width=40)(3)
    assert out["vision"].shape == (cfg.num_vision, 48)
    assert out["temporal"].shape == (3, cfg.num_temporal, 48)
    assert out["language"].shape == (cfg.num_language, 40)


def test_temporal_prompts_differ_per_frame_and_are_t_consistent():
    gen = PromptGenerator(prompt_cfg(), 48, 40)
    temporal = gen(4)["temporal"]
    assert not torch.allclose(temporal[0], temporal[1])
    torch.testing.assert_close(gen(2)["temporal"], temporal[:2])  # frame t's prompts do not depend on T
    torch.testing.assert_close(gen(2)["vision"], gen(4)["vision"])


@pytest.mark.parametrize("flag", ["use_vision", "use_temporal", "use_language"])
def test_disabled_kinds_are_none(flag):
    out = PromptGenerator(prompt_cfg(**{flag: False}), 48, 40)(2)
    kind = flag.removeprefix("use_")
    assert out[kind] is None
    assert all(v is not None for k, v in out.items() if k != kind)


def test_everything_disabled_has_no_parameters():
    gen = PromptGenerator(prompt_cfg(use_vision=False, use_temporal=False, use_language=False), 48, 40)
    assert gen(2) == {"vision": None, "temporal": None, "language": None}
    assert not list(gen.parameters())


def test_generator_errors():
    gen = PromptGenerator(prompt_cfg(max_frames=8), 48, 40)
    with pytest.raises(ValueError, match="max_frames=8"):
        gen(9)
    with pytest.raises(ValueError, match="divisible"):
        PromptGenerator(prompt_cfg(generator_dim=63, generator_heads=2), 48, 40)


def test_generator_parameters_all_get_gradients():
    gen = PromptGenerator(prompt_cfg(), 48, 40)
    out = gen(3)
    sum(v.square().sum() for v in out.values()).backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_history_initial_tokens():
    hist = HistoryEncoder(prompt_cfg(), dim=32, vision_width=48)
    tokens = hist.initial(3)
    assert tokens.shape == (3, 2, 48)
    tokens.sum().backward()
    assert hist.initial_tokens.grad is not None


@pytest.mark.parametrize("mask_size", [(8, 8), (64, 64), (30, 50)])
def test_history_pool_shapes_and_detached(mask_size):
    hist = HistoryEncoder(prompt_cfg(), dim=32, vision_width=48)
    feats = torch.randn(2, 3, 32, 8, 8, requires_grad=True)
    logits = torch.randn(2, 3, *mask_size, requires_grad=True)
    tokens = hist.pool(feats, logits)
    assert tokens.shape == (2, 2, 48) and not tokens.requires_grad


def test_history_pool_reads_only_the_masked_region():
    torch.manual_seed(0)
    hist = HistoryEncoder(prompt_cfg(), dim=32, vision_width=48)
    feats = torch.randn(1, 2, 32, 8, 8)
    logits = torch.full((1, 2, 8, 8), -30.0)
    logits[..., 2:5, 2:5] = 30.0  # the object
    other = feats.clone()
    other[..., 6:, :] = torch.randn_like(other[..., 6:, :])  # change the background only
    base = hist.pool(feats, logits)
    assert (hist.pool(other, logits) - base).abs().max() < 1e-4 * base.abs().max()
    moved = feats.clone()
    moved[..., 3, 3] = torch.randn(32)  # change the object
    assert (hist.pool(moved, logits) - base).abs().max() > 1e-2 * base.abs().max()


def test_history_pool_trainable_when_not_detached():
    hist = HistoryEncoder(prompt_cfg(), dim=32, vision_width=48)
    feats = torch.randn(1, 2, 32, 8, 8, requires_grad=True)
    tokens = hist.pool(feats, torch.randn(1, 2, 64, 64), detach=False)
    tokens.square().sum().backward()
    assert feats.grad is None  # the finished clip never receives gradient
    for name in ("queries", "key.weight", "proj.weight", "norm.weight"):
        assert hist.get_parameter(name).grad.abs().sum() > 0, name


def test_history_pool_bad_shapes():
    hist = HistoryEncoder(prompt_cfg(), dim=32, vision_width=48)
    with pytest.raises(ValueError, match=r"features \(B, T, d, h, w\)"):
        hist.pool(torch.randn(2, 32, 8, 8), torch.randn(2, 1, 8, 8))
