"""Dataset readers on small fixtures written in each published layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from rvoslib.data import (
    DatasetFormatError,
    MasksUnavailableError,
    read_a2d_sentences,
    read_dataset,
    read_mevis,
    read_ref_davis17,
    read_ref_youtube_vos,
)
from rvoslib.io import read_mask

SHARED_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "data" / "davis"  # ../shared beside the repo

# ----------------------------------------------------------------------------- Ref-YouTube-VOS


def test_ytvos_records_and_masks(tiny_ytvos):
    root, id_maps = tiny_ytvos
    records = read_ref_youtube_vos(root)
    assert [r.video_id for r in records] == ["vid_a", "vid_b"]
    record = records[0]
    assert record.frame_names == ["00000", "00001", "00002"] and record.num_frames == 3
    assert [(e.exp_id, e.text, e.obj_ids, e.kind) for e in record.expressions] == [
        ("0", "the left thing 0", [1], "motion"),
        ("1", "the right block", [2], None),
    ]
    assert record.annotated_indices() == [0, 1, 2] and record.frame_size() == (6, 8)
    mask = record.load_mask(1, [1])
    np.testing.assert_array_equal(mask, (id_maps["vid_a"][1] == 1).astype(np.uint8))
    union = record.load_mask(2, [1, 2])
    assert union[0, 0] == 255  # void kept
    expected = np.isin(id_maps["vid_a"][2], [1, 2]).astype(np.uint8)
    expected[0, 0] = 255
    np.testing.assert_array_equal(union, expected)
    assert record.load_frames([2, 0]).shape == (2, 6, 8, 3)


def test_ytvos_valid_split_without_masks(tiny_ytvos):
    root, _ = tiny_ytvos
    shutil.rmtree(root / "Annotations")
    meta = json.loads((root / "meta_expressions.json").read_text())
    for video in meta["videos"].values():
        for expression in video["expressions"].values():
            expression.pop("obj_id")  # the valid meta has no object ids
    (root / "meta_expressions.json").write_text(json.dumps(meta))
    record = read_ref_youtube_vos(root)[0]
    assert not record.has_masks and record.expressions[0].obj_ids == []
    with pytest.raises(MasksUnavailableError, match="video 'vid_a' .*no ground-truth masks"):
        record.load_mask(0, [1])


def test_ytvos_release_layout(tiny_ytvos, tmp_path):
    root, _ = tiny_ytvos
    release = tmp_path / "release"
    shutil.copytree(root, release / "train", ignore=shutil.ignore_patterns("meta_expressions.json"))
    (release / "meta_expressions" / "train").mkdir(parents=True)
    shutil.copy(root / "meta_expressions.json", release / "meta_expressions" / "train")
    records = read_dataset("ref-youtube-vos", release, split="train")
    assert len(records) == 2 and records[1].expressions[0].text == "the left thing 1"


def _edit_meta(root, edit):
    meta = json.loads((root / "meta_expressions.json").read_text())
    edit(meta)
    (root / "meta_expressions.json").write_text(json.dumps(meta))


def test_ytvos_meta_errors(tiny_ytvos):
    root, _ = tiny_ytvos
    (root / "meta_expressions.json").write_text('{"videos": {')
    with pytest.raises(DatasetFormatError, match=r"cannot parse .*meta_expressions\.json: invalid JSON at line 1"):
        read_ref_youtube_vos(root)
    (root / "meta_expressions.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"meta_expressions\.json not found"):
        read_ref_youtube_vos(root)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("videos"), "missing key 'videos'"),
        (lambda m: m["videos"]["vid_b"].pop("frames"), "video 'vid_b' has no key 'frames'"),
        (
            lambda m: m["videos"]["vid_a"]["expressions"]["1"].pop("exp"),
            "video 'vid_a', expression '1' has no key 'exp'",
        ),
        (lambda m: m["videos"]["vid_a"]["expressions"]["0"].pop("obj_id"), "expression '0' has no key 'obj_id'"),
        (lambda m: m["videos"]["vid_a"]["expressions"]["0"].update(obj_id="x"), "'obj_id' must be an integer"),
    ],
)
def test_ytvos_missing_keys(tiny_ytvos, edit, message):
    root, _ = tiny_ytvos
    _edit_meta(root, edit)
    with pytest.raises(DatasetFormatError, match=message):
        read_ref_youtube_vos(root)


def test_ytvos_empty_sentence_is_skipped_with_a_warning(tiny_ytvos, caplog):
    root, _ = tiny_ytvos
    _edit_meta(root, lambda m: m["videos"]["vid_a"]["expressions"]["1"].update(exp="   "))
    records = read_ref_youtube_vos(root)
    assert [e.exp_id for e in records[0].expressions] == ["0"] and len(records[1].expressions) == 2
    assert "video 'vid_a': skipped expression(s) ['1'] with an empty sentence" in caplog.text


def test_ytvos_frame_not_on_disk(tiny_ytvos):
    root, _ = tiny_ytvos
    _edit_meta(root, lambda m: m["videos"]["vid_b"]["frames"].append("00007"))
    with pytest.raises(FileNotFoundError, match="video 'vid_b' lists frame '00007'"):
        read_ref_youtube_vos(root)


def test_ytvos_mask_size_differs_from_frame(tiny_ytvos, save_palette):
    root, _ = tiny_ytvos
    save_palette(root / "Annotations/vid_a/00001.png", np.zeros((5, 8)))
    record = read_ref_youtube_vos(root)[0]
    record.load_mask(0, [1])
    with pytest.raises(ValueError, match=r"mask .*vid_a/00001\.png is 5 x 8 .* frame .*vid_a/00001\.jpg is 6 x 8"):
        record.load_mask(1, [1])


# ----------------------------------------------------------------------------- MeViS


def _rle(mask):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


@pytest.fixture
def tiny_mevis(tmp_path, save_rgb):
    root = tmp_path / "mevis"
    a, b = np.zeros((6, 8), np.uint8), np.zeros((6, 8), np.uint8)
    a[0:2, 0:3] = 1
    b[3:6, 4:8] = 1
    for t in range(2):
        save_rgb(root / "train/JPEGImages/v1" / f"{t:05d}.jpg", np.zeros((6, 8, 3)))
    meta = {"videos": {"v1": {"frames": ["00000", "00001"], "expressions": {
        "0": {"exp": "the two cats", "obj_id": [0, 1], "anno_id": [5, 7]},
        "1": {"exp": "the cat on top", "obj_id": [0], "anno_id": [5]},
    }}}}
    (root / "train/meta_expressions.json").write_text(json.dumps(meta))
    mask_dict = {"5": [_rle(a), _rle(a)], "7": [_rle(b), None]}
    (root / "train/mask_dict.json").write_text(json.dumps(mask_dict))
    return root, a, b


def test_mevis_union_of_objects(tiny_mevis):
    root, a, b = tiny_mevis
    record = read_mevis(root, split="train")[0]
    assert record.expressions[0].obj_ids == [0, 1] and record.dataset == "mevis"
    np.testing.assert_array_equal(record.load_mask(0, [0, 1]), a | b)
    np.testing.assert_array_equal(record.load_mask(1, [0, 1]), a)  # object 1 absent (null RLE)
    np.testing.assert_array_equal(record.load_mask(0, [1]), b)
    assert int(record.load_mask(0, [0]).sum()) == 6


def test_mevis_errors(tiny_mevis):
    root, _, _ = tiny_mevis
    meta = json.loads((root / "train/meta_expressions.json").read_text())
    del meta["videos"]["v1"]["expressions"]["1"]["anno_id"]
    (root / "train/meta_expressions.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetFormatError, match="video 'v1', expression '1' has no key 'anno_id'"):
        read_mevis(root, split="train")
    (root / "train/mask_dict.json").unlink()
    record = read_mevis(root, split="train")[0]  # like MeViS "valid": no masks
    with pytest.raises(MasksUnavailableError):
        record.load_mask(0, [0])


def test_mevis_rle_size_differs(tiny_mevis):
    root, a, _ = tiny_mevis
    (root / "train/mask_dict.json").write_text(json.dumps({"5": [_rle(a[:5]), None], "7": [None, None]}))
    record = read_mevis(root, split="train")[0]
    with pytest.raises(ValueError, match=r"annotation 5 frame 0 is 5 x 8 .*00000\.jpg is 6 x 8"):
        record.load_mask(0, [0])


# ----------------------------------------------------------------------------- Ref-DAVIS17


@pytest.fixture
def tiny_davis(tmp_path, save_rgb, save_palette):
    """DAVIS-2017 layout with two annotators' text files (the second in latin-1)."""
    root = tmp_path / "DAVIS"
    for seq in ("bear", "dogs"):
        for t in range(4):
            save_rgb(root / "JPEGImages/480p" / seq / f"{t:05d}.jpg", np.zeros((4, 6, 3)))
            ids = np.zeros((4, 6))
            ids[0, t], ids[3, 5] = 1, 2
            save_palette(root / "Annotations/480p" / seq / f"{t:05d}.png", ids)
    text = root / "davis_text_annotations"
    text.mkdir()
    (text / "Davis17_annot1.txt").write_text(
        'bear 1 "a brown bear"\ndogs 1 "a dog on the left"\ndogs 2 "a black dog"\n'
    )
    (text / "Davis17_annot1_full_video.txt").write_text(
        'bear 1 "a bear walking"\ndogs 1 "a dog running"\ndogs 2 "a dog sitting"\n'
    )
    (text / "Davis17_annot2.txt").write_bytes('bear 1 "a big bear"\ndogs 1 "a caf\u00e9 dog"\n'.encode("latin-1"))
    return root


def test_ref_davis17_text_files(tiny_davis):
    records = read_ref_davis17(tiny_davis)
    assert [r.video_id for r in records] == ["bear", "dogs"]
    dogs = records[1]
    texts = {(e.annotator, e.extra["expression_type"], e.obj_ids[0]): e.text for e in dogs.expressions}
    assert texts[(1, "first_frame", 1)] == "a dog on the left"
    assert texts[(1, "full_video", 2)] == "a dog sitting"
    assert texts[(2, "first_frame", 1)] == "a caf\u00e9 dog"
    assert len(dogs.expressions) == 5 and dogs.num_frames == 4
    expected = np.zeros((4, 6), np.uint8)
    expected[0, 2] = 1
    np.testing.assert_array_equal(dogs.load_mask(2, [1]), expected)
    annot2 = read_ref_davis17(tiny_davis, annotator=2)
    assert [e.exp_id for e in annot2[1].expressions] == ["a2_first_frame_1"]
    full = read_ref_davis17(tiny_davis, annotator=1, expression_type="full_video")
    assert [e.text for e in full[0].expressions] == ["a bear walking"]


def test_ref_davis17_bad_line(tiny_davis):
    (tiny_davis / "davis_text_annotations/Davis17_annot1.txt").write_text('bear one "a bear"\n')
    with pytest.raises(DatasetFormatError, match=r"Davis17_annot1\.txt, line 1: expected"):
        read_ref_davis17(tiny_davis, annotator=1)


def test_ref_davis17_samples(samples):
    records = read_ref_davis17(samples / "davis")
    assert {r.video_id: r.num_frames for r in records} == {"blackswan": 12, "car-shadow": 12, "libby": 12}
    libby = next(r for r in records if r.video_id == "libby")
    assert libby.expressions[0].text == "a dog running" and libby.expressions[0].obj_ids == [1]
    assert libby.expressions[0].extra["ref_exp_difficulty"].startswith("Trivial")
    mask = libby.load_mask(11, [1])
    assert int(mask.sum()) == 17838
    np.testing.assert_array_equal(mask, read_mask(samples / "davis/libby/Annotations/00011.png"))


@pytest.mark.skipif(not SHARED_DAVIS.is_dir(), reason="shared/data/davis not present")
def test_ref_davis17_shared_folder_and_full_csv():
    records = read_ref_davis17(SHARED_DAVIS, SHARED_DAVIS / "ref_davis17_expressions_refvos.csv")
    assert sorted((r.video_id, r.num_frames) for r in records) == [("blackswan", 50), ("car-shadow", 40), ("libby", 49)]
    from rvoslib.data.davis import read_davis_expressions_csv

    by_video = read_davis_expressions_csv(SHARED_DAVIS / "ref_davis17_expressions_refvos.csv")
    assert len(by_video) == 30 and sum(len(v) for v in by_video.values()) == 61
    assert by_video["loading"][0].text == "a man on the left with a beard wearing jeans"


# ----------------------------------------------------------------------------- A2D-Sentences


@pytest.fixture
def tiny_a2d(tmp_path, save_rgb, save_palette):
    """Two videos, 5 frames of 4 x 6; frames 2 and 4 of 'vidA' annotated (PNG id maps)."""
    root = tmp_path / "a2d"
    (root / "Release").mkdir(parents=True)
    (root / "Release/videoset.csv").write_text("vidA,11,0,1,240,320,5,2,1\nvidB,12,0,1,240,320,5,1,0\n")
    for video in ("vidA", "vidB"):
        for t in range(1, 6):
            save_rgb(root / "Release/pngs320H" / video / f"{t:05d}.png", np.zeros((4, 6, 3)))
    text = root / "text_annotations"
    text.mkdir()
    (text / "a2d_annotation.txt").write_text(
        "video_id,instance_id,query\nvidA,0,man walking on the left\nvidA,1,dog jumping\nvidB,0,a bird flying\n"
    )
    ids = np.zeros((4, 6))
    ids[1, 1], ids[2, 4] = 1, 2  # instance 0 and instance 1
    save_palette(text / "a2d_annotation_with_instances/vidA/00002.png", ids)
    save_palette(text / "a2d_annotation_with_instances/vidA/00004.png", ids * 0)
    return root


def test_a2d_sparse_annotations(tiny_a2d):
    records = read_a2d_sentences(tiny_a2d, split="test")
    assert [r.video_id for r in records] == ["vidA"]
    record = records[0]
    assert record.frame_names[0] == "00001" and record.annotated_indices() == [1, 3]
    assert [(e.text, e.obj_ids, e.extra["instance_id"]) for e in record.expressions] == [
        ("man walking on the left", [1], 0),
        ("dog jumping", [2], 1),
    ]
    dog = record.load_mask(1, [2])
    assert dog.dtype == np.uint8 and dog.sum() == 1 and dog[2, 4] == 1
    assert record.load_mask(3, [1]).sum() == 0
    with pytest.raises(MasksUnavailableError, match="frame 0 .*'00001'.* of video 'vidA' is not annotated"):
        record.load_mask(0, [1])
    assert [r.video_id for r in read_a2d_sentences(tiny_a2d, split=None)] == ["vidA", "vidB"]
    (tiny_a2d / "text_annotations/a2d_missed_videos.txt").write_text("vidA\n")
    assert read_a2d_sentences(tiny_a2d, split="test") == []


def test_a2d_frames_from_mp4(tiny_a2d):
    from rvoslib.io import write_video

    shutil.rmtree(tiny_a2d / "Release/pngs320H/vidB")
    frames = np.random.default_rng(0).integers(0, 255, size=(5, 16, 32, 3), dtype=np.uint8)
    write_video(tiny_a2d / "Release/clips320H/vidB.mp4", frames, fps=5)
    record = read_a2d_sentences(tiny_a2d, split="train")[0]
    assert record.frame_paths is None and record.video_path.name == "vidB.mp4"
    assert record.frame_names == ["00001", "00002", "00003", "00004", "00005"] and record.annotated_indices() == []
    assert record.load_frames([0, 4]).shape == (2, 16, 32, 3) and record.frame_size() == (16, 32)


def test_a2d_published_h5(tiny_a2d, monkeypatch):
    """The .h5 path: reMask (N, W, H) transposed to (H, W), instance i -> obj id i + 1.

    h5py is not a dependency, so a minimal stand-in module serves the two datasets.
    """
    import contextlib
    import sys
    import types

    masks = np.zeros((2, 6, 4), np.uint8)  # (N, W, H)
    masks[0, 1, 2], masks[1, 4, 3] = 1, 1
    fake = types.ModuleType("h5py")
    fake.File = lambda path, mode: contextlib.nullcontext({"reMask": masks, "instance": np.array([[0, 1]])})
    monkeypatch.setitem(sys.modules, "h5py", fake)
    folder = tiny_a2d / "text_annotations/a2d_annotation_with_instances/vidA"
    (folder / "00002.png").rename(folder / "00002.h5")
    record = read_a2d_sentences(tiny_a2d)[0]
    man, dog = record.load_mask(1, [1]), record.load_mask(1, [2])
    assert man.shape == (4, 6) and man.sum() == 1 and man[2, 1] == 1
    assert dog.sum() == 1 and dog[3, 4] == 1
    monkeypatch.setitem(sys.modules, "h5py", None)  # as when h5py is not installed
    with pytest.raises(ModuleNotFoundError, match=r"00002\.h5 needs h5py"):
        record.load_mask(1, [1])


def test_a2d_errors(tiny_a2d):
    with pytest.raises(ValueError, match="split must be"):
        read_a2d_sentences(tiny_a2d, split="val")
    (tiny_a2d / "text_annotations/a2d_annotation.txt").write_text("video_id,query\nvidA,x\n")
    with pytest.raises(DatasetFormatError, match=r"missing column\(s\) \['instance_id'\]"):
        read_a2d_sentences(tiny_a2d)
    (tiny_a2d / "Release/videoset.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"videoset\.csv not found"):
        read_a2d_sentences(tiny_a2d)


def test_format_aliases_read_the_same_records(samples):
    root = samples / "synthetic" / "valid"
    ids = [r.video_id for r in read_dataset("ref-youtube-vos", root)]
    assert ids and [r.video_id for r in read_dataset("ytvos", root)] == ids
    assert [r.video_id for r in read_dataset("Synthetic", root)] == ids


def test_unknown_format_name(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset format 'coco'"):
        read_dataset("coco", tmp_path)
