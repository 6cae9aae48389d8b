"""Bad values get one clear line naming the key or the file, never a traceback from deep inside."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rvoslib import cli
from rvoslib.checkpoint import CheckpointFormatError, load_checkpoint, model_from_checkpoint
from rvoslib.config import (FIELD_RANGES, Config, apply_overrides, check_config, get_preset,
                            load_config_file)
from rvoslib.io import write_image

# ----------------------------------------------------------------------------- --set overrides


@pytest.mark.parametrize("override, words", [
    ("train.lr=abc", ["train.lr", "number", "abc"]),
    ("train.steps=ten", ["train.steps", "integer", "ten"]),
    ("train.steps=2.5", ["train.steps", "integer"]),
    ("model.prompts.use_history=maybe", ["model.prompts.use_history", "True or False"]),
    ("train.lr_milestones=0.5", ["train.lr_milestones", "tuple"]),
    ("model.num_frames=0", ["model.num_frames", ">= 1"]),
    ("train.lr=-1e-4", ["train.lr", "> 0"]),
    ("train.lr=nan", ["train.lr", "number"]),
    ("model.backbone.image_size=None", ["model.backbone.image_size", "None"]),
    ("model.backbone=3", ["model.backbone", "section"]),
])
def test_override_values_are_checked_against_the_field(override, words):
    with pytest.raises(ValueError) as info:
        apply_overrides(get_preset("tiny"), [override])
    message = str(info.value)
    assert override in message and all(word in message for word in words), message
    assert "clip_len" not in message


def test_num_frames_message_names_the_user_facing_key():
    with pytest.raises(ValueError, match=r"model\.num_frames must be >= 1") as info:
        apply_overrides(get_preset("tiny"), ["model.num_frames=0"])
    assert "clip_len" not in str(info.value)


def test_good_overrides_keep_their_types():
    cfg = apply_overrides(get_preset("tiny"), [
        "train.lr=1", "train.steps=7", "model.backbone.pretrained=None", "data.root=2024",
        "train.lr_milestones=[0.5, 0.9]", "model.vision.stage1_layers=(0, 1)", "train.amp='bf16'",
        "model.spatiotemporal.attention=full",
    ])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.steps == 7 and cfg.model.backbone.pretrained is None
    assert cfg.data.root == "2024"  # a str field keeps the text, not the number
    assert cfg.train.lr_milestones == (0.5, 0.9) and cfg.model.vision.stage1_layers == (0, 1)
    assert cfg.train.amp == "bf16" and cfg.model.spatiotemporal.attention == "full"


def test_every_range_key_is_a_config_field_and_presets_pass():
    for key in FIELD_RANGES:
        node = Config()
        for part in key.split("."):
            assert dataclasses.is_dataclass(node) and hasattr(node, part), key
            node = getattr(node, part)
    for name in ("tiny", "clip-b16", "clip-l14"):
        assert check_config(get_preset(name)) == get_preset(name)


def test_train_cli_reports_the_key_not_a_traceback(capsys):
    code = cli.main(["train", "--set", "train.lr=abc", "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "train.lr" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- --config files


@pytest.mark.parametrize("text, words", [
    ("{not json", ["not valid JSON"]),
    ('{"train": {"lr": "abc"}}', ["train.lr", "number"]),
    ('{"model": {"num_frames": 0}}', ["model.num_frames", ">= 1"]),
    ('{"train": {"nope": 1}}', ["unknown keys", "nope"]),
    ('[1, 2]', ["mapping"]),
])
def test_malformed_config_file_is_named(tmp_path, text, words):
    path = tmp_path / "config.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_config_file(path)
    message = str(info.value)
    assert str(path) in message and all(word in message for word in words), message


def test_saved_config_file_round_trips(tmp_path):
    cfg = apply_overrides(get_preset("tiny"), ["train.lr=3e-4", "model.num_frames=3"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    assert load_config_file(path) == cfg


# ----------------------------------------------------------------------------- checkpoints


def fake_checkpoint(path: Path, **changes) -> Path:
    state = {"format": "rvoslib-checkpoint", "version": 1, "config": get_preset("tiny").to_dict(), "step": 3,
             "model": {"w": torch.zeros(2)}, "full": False}
    state.update(changes)
    for key in [k for k, v in state.items() if v is ...]:
        del state[key]
    torch.save(state, path)
    return path


@pytest.mark.parametrize("changes, words", [
    ({"model": ...}, ["no 'model' entry"]),
    ({"config": ...}, ["no 'config' entry"]),
    ({"model": [1, 2]}, ["'model'", "list"]),
    ({"model": {"w": 3}}, ["'w'", "not a tensor"]),
    ({"step": "ten"}, ["step"]),
])
def test_checkpoint_missing_entries_name_the_file(tmp_path, changes, words):
    path = fake_checkpoint(tmp_path / "broken.pt", **changes)
    with pytest.raises(CheckpointFormatError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and all(word in message for word in words), message


@pytest.mark.parametrize("section, key, value, words", [
    ("train", "nope", 1, ["nope"]),
    ("model", "num_frames", "four", ["model.num_frames", "integer"]),
    ("model", "num_frames", 0, ["model.num_frames", ">= 1"]),
])
def test_checkpoint_with_unreadable_config_names_the_file(tmp_path, section, key, value, words):
    bad = get_preset("tiny").to_dict()
    bad[section][key] = value
    path = fake_checkpoint(tmp_path / "odd.pt", config=bad)
    with pytest.raises(CheckpointFormatError) as info:
        model_from_checkpoint(path)
    assert "odd.pt" in str(info.value) and all(word in str(info.value) for word in words), str(info.value)


def test_shipped_checkpoint_config_passes_the_checks(samples):
    from rvoslib.checkpoint import config_of

    shipped = sorted((samples / "tiny_rvos").glob("*.pt"))
    assert shipped
    for path in shipped:
        assert check_config(config_of(load_checkpoint(path)))


def test_segment_cli_names_a_checkpoint_without_model(tmp_path, capsys):
    video = tmp_path / "frames"
    for t in range(2):
        write_image(video / f"{t:05d}.png", np.zeros((8, 8, 3), np.uint8))
    path = fake_checkpoint(tmp_path / "nomodel.pt", model=...)
    code = cli.main(["segment", str(video), "a thing", "--checkpoint", str(path), "--out", str(tmp_path / "o.gif"),
                     "--no-progress", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "nomodel.pt" in err and "no 'model' entry" in err, err
    assert not (tmp_path / "o.gif").exists()


def test_train_cli_names_a_malformed_config_file(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"train": {"lr": 1e-4,}}', encoding="utf-8")
    code = cli.main(["train", "--config", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "not valid JSON" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override", ["loss.mask_loss=dice", "loss.dice_per=video", "train.amp=fp8",
                                      "model.spatiotemporal.attention=foo", "model.vision.capture_time_code=x",
                                      "model.vision.capture_placement=before", "train.history_training=yes",
                                      "model.spatiotemporal.decoder_words=both"])
def test_a_value_outside_a_fields_choices_names_the_key_and_the_choices(override):
    key, value = override.split("=")
    with pytest.raises(ValueError, match=rf"{key} must be one of \[.*\], got {value}"):
        apply_overrides(get_preset("tiny"), [override])


def test_the_config_choices_are_the_ones_the_code_accepts():
    from rvoslib.config import FIELD_CHOICES
    from rvoslib.fusion import FUSION_SCOPES, SENTENCE_MODES
    from rvoslib.spatiotemporal import ATTENTION_MODES, DECODER_WORDS, VALUE_POSITIONS
    from rvoslib.time_code import TIME_CODES
    from rvoslib.train_step import AMP_MODES, HISTORY_MODES
    from rvoslib.text_encoder import WORD_CODE_SPREADS
    from rvoslib.vision_encoder import CAPTURE_PLACEMENTS

    assert FIELD_CHOICES["model.spatiotemporal.attention"] == ATTENTION_MODES
    assert FIELD_CHOICES["model.fusion.scope"] == FUSION_SCOPES
    assert FIELD_CHOICES["model.fusion.sentence"] == SENTENCE_MODES
    assert FIELD_CHOICES["model.prompts.word_code_spread"] == WORD_CODE_SPREADS
    assert FIELD_CHOICES["model.spatiotemporal.decoder_words"] == DECODER_WORDS
    assert FIELD_CHOICES["model.spatiotemporal.value_position"] == VALUE_POSITIONS
    assert FIELD_CHOICES["model.vision.capture_time_code"] == TIME_CODES
    assert FIELD_CHOICES["model.vision.capture_placement"] == CAPTURE_PLACEMENTS
    assert FIELD_CHOICES["train.amp"] == AMP_MODES
    assert FIELD_CHOICES["train.history_training"] == HISTORY_MODES
    for key in FIELD_CHOICES:  # every preset's value is one of the choices
        for preset in ("tiny", "clip-b16", "clip-l14"):
            node = get_preset(preset)
            for part in key.split("."):
                node = getattr(node, part)
            assert node in FIELD_CHOICES[key], (preset, key, node)
