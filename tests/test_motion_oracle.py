"""benchmarks.motion_oracle: the oracle motion code of the text-path diagnostic, and the motion-only split."""

import json

import pytest
import torch

from benchmarks import motion_oracle as mo
from rvoslib.backbone import create_clip, get_tokenizer
from rvoslib.config import tiny
from rvoslib.data.expressions import motion_phrases
from rvoslib.data.shapes import MOTIONS
from rvoslib.data.synthetic import write_synthetic_dataset
from rvoslib.runtime import TINY_CLIP_CHECKPOINT, TINY_RVOS_CHECKPOINT, find_sample
from rvoslib.text_encoder import PromptedTextEncoder, tokenize


def test_every_generator_phrase_reads_as_its_motion():
    for motion in MOTIONS:
        for phrase in motion_phrases(motion):
            assert mo.CLASSES[mo.motion_class(f"the small red circle {phrase}")] == motion
    assert mo.CLASSES[mo.motion_class("the large blue square")] == "none"


def test_the_patch_adds_one_code_per_motion_and_is_undone():
    cfg = tiny().model
    cfg.backbone.pretrained = str(find_sample(TINY_CLIP_CHECKPOINT))
    clip = create_clip(cfg.backbone)
    tokens = tokenize(["the circle moving left", "the circle moving right", "the circle moving to the left"],
                      get_tokenizer(cfg.backbone), num_prompts=cfg.prompts.num_language)
    with mo.oracle_text():
        encoder = PromptedTextEncoder(clip, cfg.prompts)
        assert mo.token_classes(tokens).tolist() == [1, 2, 1]
        with torch.no_grad():
            out = encoder(tokens)
    reference = PromptedTextEncoder(clip, cfg.prompts)
    assert not hasattr(reference, "oracle")  # the class is restored on exit
    reference.load_state_dict({k: v for k, v in encoder.state_dict().items() if not k.startswith("oracle")})
    with torch.no_grad():
        base = reference(tokens)
    code = encoder.oracle.weight.detach()
    assert torch.allclose(out["sentence"] - base["sentence"], code[[1, 2, 1]], atol=1e-5)
    assert torch.allclose(out["words"][:, 0] - base["words"][:, 0], code[[1, 2, 1]], atol=1e-5)


def test_motion_only_split_keeps_the_motion_sentences(tmp_path):
    write_synthetic_dataset(tmp_path / "src" / "train", 4, seed=3, hard=True)
    kept = mo.write_motion_only(tmp_path / "src", tmp_path / "dst")
    meta = json.loads((tmp_path / "dst" / "train" / "meta_expressions.json").read_text())
    kinds = [e["kind"] for v in meta["videos"].values() for e in v["expressions"].values()]
    source = json.loads((tmp_path / "src" / "train" / "meta_expressions.json").read_text())
    assert kinds == ["motion"] * kept and kept == sum(e["kind"] == "motion" for v in source["videos"].values()
                                                      for e in v["expressions"].values()) > 0
    assert (tmp_path / "dst" / "train" / "JPEGImages").resolve() == (tmp_path / "src" / "train" / "JPEGImages").resolve()
    assert not (tmp_path / "dst" / "valid").exists()  # the source has no valid split
    with pytest.raises(FileExistsError, match="exists"):
        mo.write_motion_only(tmp_path / "src", tmp_path / "dst")
    with pytest.raises(FileNotFoundError, match="meta_expressions.json"):
        mo.write_motion_only(tmp_path / "nowhere", tmp_path / "other")


def test_scoring_refuses_a_checkpoint_trained_without_the_code():
    shipped = str(find_sample(TINY_RVOS_CHECKPOINT))
    with pytest.raises(SystemExit, match="not trained with the oracle motion code"):
        mo.main(["stride", "--checkpoint", shipped])
    with pytest.raises(SystemExit, match="not trained with the oracle motion code"):
        mo.main(["toy-eval", "--checkpoint", f"shipped={shipped}", "--std-seed", "1", "--hard-seed", "2"])


def test_motion_only_links_the_valid_split_when_there_is_one(tmp_path):
    write_synthetic_dataset(tmp_path / "src" / "train", 2, seed=3, hard=True)
    write_synthetic_dataset(tmp_path / "src" / "valid", 2, seed=4, split="valid", hard=True)
    mo.write_motion_only(tmp_path / "src", tmp_path / "dst")
    assert (tmp_path / "dst" / "valid").resolve() == (tmp_path / "src" / "valid").resolve()
