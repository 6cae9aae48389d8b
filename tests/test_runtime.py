"""runtime: modes, seeding, sample paths and the notebooks' config."""

import os

import pytest
import torch

from rvoslib.config import get_preset
from rvoslib.runtime import (TINY_CLIP_CHECKPOINT, TINY_CLIP_MODEL, find_sample, notebook_config, repo_root, resolve_mode, setup,
                             use_shipped_tiny_clip)


def test_modes_and_seeding(monkeypatch):
    monkeypatch.setenv("RVOSLIB_MODE", "fast")
    rt = setup(seed=3)
    assert rt.fast and rt.device == torch.device("cpu")
    first = torch.rand(2)
    setup(seed=3)
    assert torch.equal(first, torch.rand(2))
    assert resolve_mode("auto") == ("full" if torch.cuda.is_available() else "fast")
    with pytest.raises(ValueError, match="RVOSLIB_MODE"):
        resolve_mode("turbo")


def test_find_sample_resolves_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = find_sample(TINY_CLIP_CHECKPOINT)
    assert found == repo_root() / TINY_CLIP_CHECKPOINT and found.is_file()
    assert find_sample("no/such/file.pt") == type(found)("no/such/file.pt")
    assert os.path.isabs(find_sample(str(found)))


def test_shipped_tiny_clip_only_for_tiny_without_weights(monkeypatch):
    monkeypatch.setenv("RVOSLIB_MODE", "fast")
    cfg = notebook_config(setup())
    assert cfg.model.backbone.model_name == TINY_CLIP_MODEL == "rvos-tiny2"
    # relative when run from the repository root (portable in saved configs), else absolute
    assert find_sample(cfg.model.backbone.pretrained).resolve() == (repo_root() / TINY_CLIP_CHECKPOINT).resolve()
    b16 = use_shipped_tiny_clip(get_preset("clip-b16"))
    assert b16.model.backbone.pretrained == "openai"  # other presets are left alone
    chosen = get_preset("tiny")
    chosen.model.backbone.pretrained = "my.pt"
    assert use_shipped_tiny_clip(chosen).model.backbone.pretrained == "my.pt"


def test_setup_switches_progress_bars_to_text_unless_asked_not_to(monkeypatch):
    import tqdm.auto
    import tqdm.std

    from rvoslib.runtime import setup

    widget_bar = object()
    monkeypatch.setattr(tqdm.auto, "tqdm", widget_bar)
    setup(seed=0, mode="fast", text_progress=False)
    assert tqdm.auto.tqdm is widget_bar
    rt = setup(seed=0, mode="fast")
    assert tqdm.auto.tqdm is tqdm.std.tqdm and tqdm.auto.trange is tqdm.std.trange
    assert (rt.root / "data_samples").is_dir()


def test_runtime_root_is_the_nearest_folder_holding_data_samples(tmp_path, monkeypatch):
    from rvoslib.runtime import setup

    (tmp_path / "data_samples").mkdir()
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert setup(seed=0, mode="fast", text_progress=False).root == tmp_path
