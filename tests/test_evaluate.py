"""Evaluation: J&F scoring, per-kind keys, Ref-DAVIS17 annotator averaging, A2D, submissions, CLI."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rvoslib.checkpoint import save_checkpoint
from rvoslib.config import get_preset
from rvoslib.data import read_ref_davis17, read_ref_youtube_vos
from rvoslib.evaluate import (
    VideoPrediction,
    average_groups,
    canonical_format,
    davis_groups,
    evaluate_dataset,
    evaluate_model,
    evaluate_ref_davis17,
    merge_objects,
    predict_records,
    score_davis_group,
    score_predictions,
    summarize_scores,
    write_ytvos_submission,
)
from rvoslib.evaluate_cli import add_evaluate_arguments, run_evaluate
from rvoslib.metrics import summarize
from rvoslib.model import build_model

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data_samples"
SYNTHETIC_VALID = SAMPLES / "synthetic/valid"


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return build_model(get_preset("tiny").model).eval()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    save_checkpoint(path, tiny_model, get_preset("tiny"), step=1, full=True)
    return path


def oracle_prediction(record, exp_ids=None, empty=()) -> VideoPrediction:
    """The ground truth as a prediction (expressions listed in ``empty`` predicted empty)."""
    expressions = [e for e in record.expressions if exp_ids is None or e.exp_id in exp_ids]
    frames = list(range(record.num_frames))
    masks = np.stack([
        np.zeros_like(record.load_masks(frames, e.obj_ids), dtype=bool) if e.exp_id in empty
        else record.load_masks(frames, e.obj_ids) == 1
        for e in expressions
    ])
    return VideoPrediction(record.video_id, [e.exp_id for e in expressions], frames, list(record.frame_names), masks)


def logits_of(masks: np.ndarray, value: float = 8.0) -> np.ndarray:
    return np.where(masks, value, -value).astype(np.float32)


# ----------------------------------------------------------------------------- J&F per expression


def test_oracle_scores_exactly_one_with_kind_keys():
    records = read_ref_youtube_vos(SYNTHETIC_VALID)[:3]
    scores = score_predictions((oracle_prediction(r) for r in records), records)
    result = summarize_scores(scores)
    kinds = {e.kind for r in records for e in r.expressions}
    assert result["num_objects"] == sum(len(r.expressions) for r in records)
    assert result["J&F"] == result["J"] == result["F"] == 1.0
    assert {k for k in result if k.startswith("J&F/")} == {f"J&F/{k}" for k in kinds}
    assert all(result[f"J&F/{k}"] == 1.0 for k in kinds)


def test_hand_scores_with_void_and_kinds(tiny_ytvos):
    root, id_maps = tiny_ytvos
    records = read_ref_youtube_vos(root)
    # expression "0" (kind motion) perfect, "1" (no kind) empty: J = F = 0 on every frame
    predictions = [oracle_prediction(r, empty={"1"}) for r in records]
    result = summarize_scores(score_predictions(predictions, records))
    assert result == {"J&F": 0.5, "J": 0.5, "F": 0.5, "J&F/motion": 1.0, "num_objects": 4}
    # void pixels (255) count as background: predicting one there lowers J
    predictions[0].masks[0, 2, 0, 0] = True
    objects = score_predictions(predictions[:1], records)
    assert objects[0][0].j[2] == pytest.approx(4 / 5)  # object 1 has 4 pixels in frame 2


def test_evaluate_model_on_synthetic_videos(tiny_model):
    records = read_ref_youtube_vos(SYNTHETIC_VALID)
    tiny_model.train()
    result = evaluate_model(tiny_model, records, get_preset("tiny"), device="cpu", max_videos=2, progress=False)
    assert tiny_model.training  # the mode is restored
    tiny_model.eval()
    assert {"J&F", "J", "F", "num_objects"} <= set(result)
    assert result["num_objects"] == sum(len(r.expressions) for r in records[:2])
    assert all(0.0 <= v <= 1.0 for k, v in result.items() if k != "num_objects")
    assert any(k.startswith("J&F/") for k in result)
    assert result["J&F"] == pytest.approx((result["J"] + result["F"]) / 2)


def test_predict_records_annotated_only(tiny_model, tiny_ytvos):
    root, _ = tiny_ytvos
    records = read_ref_youtube_vos(root)
    (prediction,) = predict_records(tiny_model, records[:1], None, "cpu", window=2, progress=False)
    assert prediction.masks.shape == (2, 3, 6, 8) and prediction.exp_ids == ["0", "1"]
    assert prediction.frame_names == ["00000", "00001", "00002"]


# ----------------------------------------------------------------------------- Ref-DAVIS17


@pytest.fixture
def davis_two_annotators(tmp_path, save_rgb, save_palette):
    """One sequence 'dogs', 3 frames of 10 x 12, objects 1 and 2; two annotators (full video)."""
    root = tmp_path / "davis"
    ids = np.zeros((3, 10, 12), dtype=np.uint8)
    for t in range(3):
        ids[t, 2:6, 1 + t:5 + t] = 1
        ids[t, 6:9, 7:11] = 2
        save_rgb(root / "dogs/JPEGImages" / f"{t:05d}.jpg", np.full((10, 12, 3), 30 * t, np.uint8))
        save_palette(root / "dogs/Annotations" / f"{t:05d}.png", ids[t])
    text = root / "davis_text_annotations"
    text.mkdir()
    (text / "Davis17_annot1_full_video.txt").write_text('dogs 1 "a dog running"\ndogs 2 "a dog sitting"\n')
    (text / "Davis17_annot2_full_video.txt").write_text('dogs 1 "the brown dog"\ndogs 2 "the black dog"\n')
    return root, ids


def test_merge_objects_takes_the_most_probable_object():
    logits = np.array([[[[3.0, 1.0, -2.0, 0.5]]], [[[1.0, 2.0, -1.0, 0.5]]]], dtype=np.float32)  # (2, 1, 1, 4)
    assert merge_objects(logits, [1, 2]).tolist() == [[[1, 2, 0, 1]]]  # tie -> the first object
    assert merge_objects(logits, [1, 2], threshold=0.8).tolist() == [[[1, 2, 0, 0]]]


def test_ref_davis17_per_annotator_averaging(davis_two_annotators):
    root, ids = davis_two_annotators
    records = read_ref_davis17(root, expression_type="full_video")
    groups = davis_groups(records)
    assert sorted(groups) == ["annot1_full_video", "annot2_full_video"]
    objects = {"dogs": [1, 2]}
    summaries = {}
    for name, group in groups.items():
        (record,) = group
        masks = np.stack([ids == e.obj_ids[0] for e in record.expressions])  # (2, T, H, W) perfect
        if name == "annot2_full_video":
            masks[1] = False  # annotator 2's second expression finds nothing
        prediction = VideoPrediction("dogs", [e.exp_id for e in record.expressions], [0, 1, 2],
                                     ["00000", "00001", "00002"], masks, logits_of(masks))
        results = score_davis_group([prediction], group, objects)
        assert [(o.name, o.jf_mean) for o in results] == [
            ("dogs_1", 1.0), ("dogs_2", 1.0 if name == "annot1_full_video" else 0.0)]
        summaries[name] = summarize(results)
    assert summaries["annot1_full_video"]["J&F-Mean"] == 1.0
    assert summaries["annot2_full_video"]["J&F-Mean"] == 0.5
    averaged = average_groups(summaries)
    assert averaged["J&F"] == averaged["J&F-Mean"] == 0.75 and averaged["J"] == 0.75 and averaged["F"] == 0.75


def test_ref_davis17_end_to_end(tiny_model, davis_two_annotators, tmp_path):
    root, _ = davis_two_annotators
    records = read_ref_davis17(root, expression_type="full_video")
    result = evaluate_ref_davis17(tiny_model, records, None, "cpu", tmp_path / "out", progress=False)
    assert sorted(result["groups"]) == ["annot1_full_video", "annot2_full_video"]
    assert result["J&F"] == pytest.approx(np.mean([g["J&F-Mean"] for g in result["groups"].values()]))
    assert sorted(result["objects"]["annot1_full_video"]) == ["dogs_1", "dogs_2"]
    assert result["J&F"] == pytest.approx((result["J"] + result["F"]) / 2)  # the toolkit's J&F, averaged
    written = sorted(p.name for p in (tmp_path / "out/annot2_full_video/dogs").iterdir())
    assert written == ["00000.png", "00001.png", "00002.png"]


def test_evaluate_dataset_on_bundled_davis(tiny_model, tmp_path):
    result = evaluate_dataset(tiny_model, SAMPLES / "davis", "davis", "valid", tmp_path, max_videos=1, progress=False)
    assert result["format"] == "ref-davis17" and result["num_videos"] == 1
    assert list(result["groups"]) == ["all"] and 0.0 <= result["J&F"] <= 1.0
    assert json.loads((tmp_path / "metrics.json").read_text())["J&F"] == result["J&F"]


# ----------------------------------------------------------------------------- A2D-Sentences


@pytest.fixture
def a2d_root(tmp_path, save_rgb, save_palette):
    """One test video, 6 frames of 16 x 20; frames 2 and 5 annotated, instance 1 absent from frame 5."""
    root = tmp_path / "a2d"
    (root / "Release").mkdir(parents=True)
    (root / "Release/videoset.csv").write_text("vidA,11,0,1,240,320,6,2,1\n")
    for t in range(1, 7):
        save_rgb(root / "Release/pngs320H/vidA" / f"{t:05d}.png", np.full((16, 20, 3), 20 * t, np.uint8))
    text = root / "text_annotations"
    text.mkdir()
    (text / "a2d_annotation.txt").write_text("video_id,instance_id,query\nvidA,0,man walking\nvidA,1,dog jumping\n")
    ids = np.zeros((16, 20))
    ids[2:8, 3:9], ids[9:14, 10:18] = 1, 2
    save_palette(text / "a2d_annotation_with_instances/vidA/00002.png", ids)
    save_palette(text / "a2d_annotation_with_instances/vidA/00005.png", np.where(ids == 1, 1, 0))
    return root


def test_a2d_protocol(tiny_model, a2d_root):
    result = evaluate_dataset(tiny_model, a2d_root, "a2d", "test", progress=False)
    assert result["num_samples"] == 3  # man in frames 2 and 5, dog in frame 2 only
    # precision only falls as the IoU bar rises: AP at 0.5 bounds the mean over 0.5:0.95, P@0.5 bounds P@0.9
    assert result["AP50"] >= result["mAP"] and result["P@0.5"] >= result["P@0.9"]


# ----------------------------------------------------------------------------- submissions


def test_ytvos_submission_zip_layout(tiny_ytvos, tmp_path):
    root, id_maps = tiny_ytvos
    records = read_ref_youtube_vos(root)
    predictions = [oracle_prediction(r) for r in records]
    zip_path = write_ytvos_submission(predictions, tmp_path / "sub")
    assert zip_path == tmp_path / "sub/submission.zip"
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
        assert names == sorted(f"Annotations/{v}/{e}/{t:05d}.png"
                               for v in ("vid_a", "vid_b") for e in ("0", "1") for t in range(3))
        with archive.open("Annotations/vid_a/0/00001.png") as handle:
            image = Image.open(io.BytesIO(handle.read()))
            image.load()
    assert image.mode == "L" and image.size == (8, 6)
    expected = np.where(id_maps["vid_a"][1] == 1, 255, 0)
    assert np.array_equal(np.asarray(image), expected) and set(np.unique(np.asarray(image))) == {0, 255}


def copy_without_masks(source: Path, target: Path, videos: int) -> Path:
    meta = json.loads((source / "meta_expressions.json").read_text())
    keep = sorted(meta["videos"])[:videos]
    for video in keep:
        shutil.copytree(source / "JPEGImages" / video, target / "JPEGImages" / video)
    meta = {"videos": {v: {"expressions": {k: {"exp": e["exp"]} for k, e in meta["videos"][v]["expressions"].items()},
                           "frames": meta["videos"][v]["frames"]} for v in keep}}
    (target / "meta_expressions.json").write_text(json.dumps(meta))
    return target


def test_evaluate_dataset_without_masks_writes_submission(tiny_model, tmp_path):
    root = copy_without_masks(SYNTHETIC_VALID, tmp_path / "valid", videos=2)
    records = read_ref_youtube_vos(root)
    with pytest.raises(ValueError, match="submission"):
        evaluate_dataset(tiny_model, root, "ytvos", None, progress=False)
    result = evaluate_dataset(tiny_model, root, "ytvos", None, tmp_path / "out", progress=False)
    assert result["submission"] == str(tmp_path / "out/submission.zip") and result["num_videos"] == 2
    with zipfile.ZipFile(result["submission"]) as archive:
        assert len(archive.namelist()) == sum(len(r.expressions) * r.num_frames for r in records)


def test_format_aliases():
    assert canonical_format("ytvos") == canonical_format("synthetic") == "ref-youtube-vos"
    assert canonical_format("davis") == "ref-davis17" and canonical_format("A2D") == "a2d-sentences"
    with pytest.raises(ValueError, match="unknown dataset format 'coco'"):
        canonical_format("coco")


# ----------------------------------------------------------------------------- command line


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rvoslib evaluate")
    add_evaluate_arguments(parser)
    return parser


def test_cli_evaluate(tiny_checkpoint, tmp_path):
    args = evaluate_parser().parse_args([
        "--checkpoint", str(tiny_checkpoint), "--data", str(SAMPLES / "synthetic"), "--split", "valid",
        "--max-videos", "2", "--out", str(tmp_path / "eval"), "--device", "cpu", "--no-progress",
    ])
    assert args.func is run_evaluate
    assert run_evaluate(args) == 0
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert metrics["format"] == "ref-youtube-vos" and metrics["split"] == "valid" and metrics["num_videos"] == 2
    assert 0.0 <= metrics["J&F"] <= 1.0 and any(k.startswith("J&F/") for k in metrics)


def test_cli_evaluate_defaults_and_errors(tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "run/best.pt"
    ckpt.parent.mkdir()
    shutil.copy(tiny_checkpoint, ckpt)
    args = evaluate_parser().parse_args(["--checkpoint", str(ckpt), "--data", str(SAMPLES / "davis"),
                                         "--format", "davis", "--max-videos", "1", "--no-progress"])
    assert run_evaluate(args) == 0
    assert (tmp_path / "run/eval-ref-davis17-valid/metrics.json").is_file()  # split from the config
    with pytest.raises(ValueError, match="needs a trained checkpoint.*rvoslib train"):
        run_evaluate(evaluate_parser().parse_args(["--data", str(SAMPLES / "synthetic")]))


def test_evaluate_refuses_an_out_folder_that_is_the_data_or_holds_the_checkpoint(tmp_path):
    import subprocess
    import sys

    from rvoslib.data.synthetic import write_synthetic_dataset

    data = tmp_path / "data"
    write_synthetic_dataset(data / "valid", 1, seed=0, split="valid")
    before = sorted(p.name for p in (data / "valid").iterdir())
    ckpt_dir = tmp_path / "run"
    ckpt_dir.mkdir()
    import shutil

    shutil.copyfile(Path(__file__).resolve().parents[1] / "data_samples/tiny_rvos/rvos-tiny-synthetic.pt",
                    ckpt_dir / "best.pt")
    weights = (ckpt_dir / "best.pt").read_bytes()
    for out in (data, ckpt_dir):
        proc = subprocess.run([sys.executable, "-m", "rvoslib.cli", "evaluate", "--checkpoint", str(ckpt_dir / "best.pt"),
                               "--data", str(data), "--format", "ytvos", "--split", "valid", "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode != 0 and "--out" in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name for p in (data / "valid").iterdir()) == before
    assert (ckpt_dir / "best.pt").read_bytes() == weights and sorted(p.name for p in ckpt_dir.iterdir()) == ["best.pt"]
