"""rvoslib.backbone: open_clip creation, weight resolution (tag | path | None), freezing, errors."""

import time

import pytest
import torch

import open_clip
from rvoslib import backbone
from rvoslib.backbone import (CheckpointError, FrozenCLIP, WeightsUnavailableError, create_clip, get_tokenizer,
                              register_tiny_config, resolve_pretrained)
from rvoslib.config import BackboneConfig


def tiny_cfg(**kw) -> BackboneConfig:
    return BackboneConfig(**{"model_name": "rvos-tiny", "pretrained": None, "image_size": 64, **kw})


def test_register_is_idempotent_and_not_done_at_import():
    import subprocess
    import sys

    code = "import rvoslib, rvoslib.backbone, open_clip; print('rvos-tiny' in open_clip.list_models())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    register_tiny_config()
    n_paths = len(open_clip.factory._MODEL_CONFIG_PATHS)
    register_tiny_config()
    assert len(open_clip.factory._MODEL_CONFIG_PATHS) == n_paths
    assert "rvos-tiny" in open_clip.list_models()


def test_tiny_model_shapes_and_frozen():
    clip = create_clip(tiny_cfg())
    assert clip.visual.grid_size == (8, 8)
    assert clip.visual.conv1.out_channels == 64 and len(clip.visual.transformer.resblocks) == 4
    assert clip.positional_embedding.shape == (32, 64)
    assert not any(p.requires_grad for p in clip.parameters())
    assert not clip.training


def test_frozen_clip_stays_in_eval():
    parent = torch.nn.Sequential(FrozenCLIP(create_clip(tiny_cfg())), torch.nn.Linear(2, 2))
    parent.train()
    assert parent[1].training and parent[0].training
    assert not any(m.training for m in parent[0].model.modules())
    x = torch.randn(2, 3, 64, 64)
    assert parent[0].encode_image(x).shape == (2, 64)


def test_tokenizer_uses_model_context_length():
    tokens = get_tokenizer(tiny_cfg())(["a small red circle", "a blue square"])
    assert tokens.shape == (2, 32) and tokens.dtype == torch.long


def test_image_size_must_be_multiple_of_patch():
    with pytest.raises(ValueError, match=r"S=60.*patch size 8"):
        create_clip(tiny_cfg(image_size=60))


def test_unknown_model_name():
    with pytest.raises(ValueError, match=r"'ViT-B-15' is not an open_clip architecture.*ViT-B-16"):
        create_clip(BackboneConfig(model_name="ViT-B-15", pretrained=None, image_size=224))


def test_unknown_tag_and_missing_file():
    with pytest.raises(ValueError, match="neither an existing file nor an open_clip tag"):
        create_clip(tiny_cfg(pretrained="openaii"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_clip(tiny_cfg(pretrained="/nonexistent/weights.pt"))


def test_local_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(1)
    source = create_clip(tiny_cfg())
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    loaded = create_clip(tiny_cfg(pretrained=str(path)))
    fresh = create_clip(tiny_cfg())
    for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert not torch.equal(fresh.visual.conv1.weight, loaded.visual.conv1.weight)
    assert not any(p.requires_grad for p in loaded.parameters())


def test_local_safetensors_checkpoint(tmp_path):
    from safetensors.torch import save_file

    source = create_clip(tiny_cfg())
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    loaded = create_clip(tiny_cfg(pretrained=str(path)))
    assert torch.equal(loaded.token_embedding.weight, source.token_embedding.weight)


def test_checkpoint_position_embedding_resized_by_open_clip(tmp_path):
    source = create_clip(tiny_cfg())
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    big = create_clip(tiny_cfg(pretrained=str(path), image_size=96))
    assert big.visual.grid_size == (12, 12)
    assert big.visual.positional_embedding.shape == (145, 64)
    assert torch.equal(big.visual.positional_embedding[0], source.visual.positional_embedding[0])  # CLS row
    assert torch.equal(big.visual.conv1.weight, source.visual.conv1.weight)


def test_wrong_architecture_checkpoint(tmp_path):
    other = open_clip.CLIP(embed_dim=64, vision_cfg=dict(image_size=64, layers=2, width=32, patch_size=8,
                                                         head_width=16),
                           text_cfg=dict(context_length=32, width=64, heads=2, layers=4))
    path = tmp_path / "other.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        create_clip(tiny_cfg(pretrained=str(path)))
    message = str(info.value)
    assert "other.pt" in message and "rvos-tiny" in message
    assert "shape mismatches" in message and "visual.conv1.weight" in message
    assert "keys missing" in message


def test_corrupt_checkpoint(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint at all")
    expected = r"broken.pt.*could not be read as a checkpoint \((UnpicklingError|RuntimeError)"
    with pytest.raises(CheckpointError, match=expected):
        create_clip(tiny_cfg(pretrained=str(path)))


class _NotATensor:
    pass


def test_checkpoint_loading_is_weights_only(tmp_path):
    source = create_clip(tiny_cfg())
    path = tmp_path / "pickled.pt"
    torch.save({"state_dict": source.state_dict(), "extra": _NotATensor()}, path)
    with pytest.raises(CheckpointError, match="could not be read.*(Unsupported global|weights_only)"):
        create_clip(tiny_cfg(pretrained=str(path)))


def _offline_error(tmp_path) -> tuple[WeightsUnavailableError, float]:
    cfg = BackboneConfig(model_name="ViT-B-16", pretrained="openai", image_size=224, cache_dir=str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        create_clip(cfg)
    return info.value, time.perf_counter() - start


def test_offline_tag_fails_fast_with_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(backbone, "_host_reachable", lambda *a, **k: False)  # deterministic, even online
    error, seconds = _offline_error(tmp_path)
    message = str(error)
    assert "'ViT-B-16'" in message and "'openai'" in message
    assert "Hugging Face cache" in message and str(tmp_path) in message
    assert "backbone.pretrained=/path/to/weights" in message and "cache_dir" in message
    assert "backbone.quick_gelu=True" in message  # a local copy of OpenAI weights needs QuickGELU
    assert seconds < 5


def test_offline_tag_real_network_probe(tmp_path):
    if any(backbone._host_reachable(h, p, timeout=2) for h, p in backbone._download_hosts(
            open_clip.get_pretrained_cfg("ViT-B-16", "openai"))):
        pytest.skip("network available: the real download would start")
    _, seconds = _offline_error(tmp_path)
    assert seconds < 2 * backbone.PROBE_TIMEOUT_S + 2


def test_cached_tag_resolves_without_network(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("network touched")

    monkeypatch.setattr(backbone, "_host_reachable", no_network)
    repo = tmp_path / "models--timm--vit_base_patch16_clip_224.openai"
    snapshot = repo / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"weights")
    path, tag_cfg = resolve_pretrained("ViT-B-16", "openai", cache_dir=str(tmp_path))
    assert path.endswith("open_clip_pytorch_model.bin") and tag_cfg["quick_gelu"]


@pytest.mark.slow
def test_vit_b16_builds_at_352_with_resized_grid():
    clip = create_clip(BackboneConfig(model_name="ViT-B-16", pretrained=None, image_size=352))
    assert clip.visual.grid_size == (22, 22)
    assert clip.visual.positional_embedding.shape == (22 * 22 + 1, 768)
    with pytest.raises(ValueError, match="patch size 16"):
        create_clip(BackboneConfig(model_name="ViT-B-16", pretrained=None, image_size=350))


def test_random_weights_on_purpose_do_not_warn_and_the_filter_is_removed(caplog):
    import logging

    with caplog.at_level(logging.INFO):
        create_clip(tiny_cfg())
    assert not any("No pretrained weights" in r.getMessage() for r in caplog.records)
    assert any("random weights" in r.getMessage() and r.name == "rvoslib.backbone" for r in caplog.records)
    caplog.clear()
    logging.warning("No pretrained weights loaded for model 'x'.")  # other code's identical warning still shows
    assert [r.getMessage() for r in caplog.records] == ["No pretrained weights loaded for model 'x'."]


# ----------------------------------------------------------------------------- QuickGELU


def _activations(clip) -> set[type]:
    return {type(block.mlp.gelu) for block in clip.visual.transformer.resblocks} | \
        {type(block.mlp.gelu) for block in clip.transformer.resblocks}


def test_quick_gelu_field_builds_quick_gelu_around_a_local_checkpoint(tmp_path):
    from open_clip.transformer import QuickGELU

    torch.manual_seed(2)
    source = create_clip(tiny_cfg())
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    quick = create_clip(tiny_cfg(pretrained=str(path), quick_gelu=True))
    plain = create_clip(tiny_cfg(pretrained=str(path)))
    assert _activations(quick) == {QuickGELU}
    assert _activations(plain) == {torch.nn.GELU}
    assert torch.equal(quick.visual.conv1.weight, source.visual.conv1.weight)
    image = torch.randn(1, 3, 64, 64)
    assert not torch.allclose(quick.encode_image(image), plain.encode_image(image))  # the activation matters


def test_local_copy_of_openai_weights_is_recognised_by_its_cache_path(tmp_path):
    arch = backbone.model_config("ViT-B-16")
    cached = tmp_path / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc" / "open_clip_model.safetensors"
    assert backbone.tag_of_file("ViT-B-16", str(cached))[0] == "openai"
    cfg = BackboneConfig(model_name="ViT-B-16", pretrained=str(cached))
    assert backbone.use_quick_gelu(cfg, arch, str(cached), {}) is True
    laion = tmp_path / "models--laion--CLIP-ViT-B-16-laion2B-s34B-b88K" / "snapshots" / "x" / "open_clip_model.safetensors"
    assert backbone.tag_of_file("ViT-B-16", str(laion))[0] == "laion2b_s34b_b88k"
    assert backbone.use_quick_gelu(BackboneConfig(pretrained=str(laion)), arch, str(laion), {}) is False


def test_local_file_of_unknown_origin_builds_gelu_with_a_warning(tmp_path, caplog):
    import logging

    arch = backbone.model_config("ViT-B-16")
    path = str(tmp_path / "weights" / "clip_b16.safetensors")
    assert backbone.tag_of_file("ViT-B-16", path) is None
    with caplog.at_level(logging.WARNING, logger="rvoslib.backbone"):
        assert backbone.use_quick_gelu(BackboneConfig(pretrained=path), arch, path, {}) is False
    assert any("backbone.quick_gelu=True" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rvoslib.backbone"):  # an explicit choice is silent
        assert backbone.use_quick_gelu(BackboneConfig(pretrained=path, quick_gelu=True), arch, path, {}) is True
    assert not caplog.records
    tag_cfg = open_clip.get_pretrained_cfg("ViT-B-16", "openai")
    assert backbone.use_quick_gelu(BackboneConfig(), arch, "/cache/file", tag_cfg) is True  # a tag decides


def test_quick_gelu_false_on_a_quickgelu_architecture_is_a_clear_error():
    arch = backbone.model_config("ViT-B-16-quickgelu")
    with pytest.raises(ValueError, match="QuickGELU architecture"):
        backbone.use_quick_gelu(BackboneConfig(model_name="ViT-B-16-quickgelu", quick_gelu=False), arch, None, {})
