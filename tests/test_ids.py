"""Ids read from data files are single path components, refused at read time otherwise
(DESIGN.md section 11); the submission writer keeps every file and archive entry inside."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvoslib.data.a2d import read_a2d_sentences
from rvoslib.data.davis import read_davis_expressions_csv, read_davis_expressions_txt
from rvoslib.data.formats import read_mevis, read_ref_youtube_vos
from rvoslib.data.records import DatasetFormatError, check_path_component
from rvoslib.evaluate import VideoPrediction, write_ytvos_submission


def _all_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "../../x", "a/b", "a\\b", "/etc/passwd",
                                 "C:\\x", "C:", "x\x00y"])
def test_check_path_component_refuses(bad):
    with pytest.raises(ValueError, match="not a single path component") as info:
        check_path_component(bad, "some/file.json", "video id")
    assert isinstance(info.value, DatasetFormatError)
    assert "some/file.json" in str(info.value) and repr(bad) in str(info.value)


@pytest.mark.parametrize("good", ["0", "00000", "3e01c2b0a4", "vid_a", "a..b", ".hidden", "x y", 7])
def test_check_path_component_accepts(good):
    assert check_path_component(good, "f", "id") == str(good)


# ----------------------------------------------------------------------------- Ref-YouTube-VOS


def _edit_meta(meta_file: Path, edit) -> None:
    meta = json.loads(meta_file.read_text())
    edit(meta["videos"])
    meta_file.write_text(json.dumps(meta))


def _refused(reader, meta_file: Path, bad_id: str, tmp_path: Path, **kwargs) -> None:
    before = _all_files(tmp_path)
    with pytest.raises(DatasetFormatError) as info:
        reader(**kwargs)
    message = str(info.value)
    assert str(meta_file) in message and repr(bad_id) in message, message
    assert _all_files(tmp_path) == before


def test_ytvos_normal_dataset_reads(tiny_ytvos):
    root, _ = tiny_ytvos
    records = read_ref_youtube_vos(root)
    assert [r.video_id for r in records] == ["vid_a", "vid_b"]
    assert [e.exp_id for e in records[0].expressions] == ["0", "1"]


def test_ytvos_expression_id_escaping_is_refused(tiny_ytvos, tmp_path):
    root, _ = tiny_ytvos
    meta_file = root / "meta_expressions.json"
    _edit_meta(meta_file, lambda v: v["vid_a"]["expressions"].__setitem__("../../x", {"exp": "bad", "obj_id": "1"}))
    _refused(read_ref_youtube_vos, meta_file, "../../x", tmp_path, root=root)


def test_ytvos_absolute_video_id_is_refused(tiny_ytvos, tmp_path, save_rgb):
    root, _ = tiny_ytvos
    elsewhere = tmp_path / "elsewhere"  # frames that would be read without the check
    for t in range(3):
        save_rgb(elsewhere / f"{t:05d}.jpg", np.zeros((6, 8, 3)))
    meta_file = root / "meta_expressions.json"
    _edit_meta(meta_file, lambda v: v.__setitem__(str(elsewhere), v.pop("vid_b")))
    _refused(read_ref_youtube_vos, meta_file, str(elsewhere), tmp_path, root=root)


@pytest.mark.parametrize("bad", ["..", "../vid_b", "/tmp"])
def test_ytvos_video_id_and_frame_name_refused(tiny_ytvos, tmp_path, bad):
    root, _ = tiny_ytvos
    meta_file = root / "meta_expressions.json"
    _edit_meta(meta_file, lambda v: v["vid_a"]["frames"].__setitem__(0, bad))
    _refused(read_ref_youtube_vos, meta_file, bad, tmp_path, root=root, check_files=False)
    _edit_meta(meta_file, lambda v: v["vid_a"]["frames"].__setitem__(0, "00000"))
    _edit_meta(meta_file, lambda v: v.__setitem__(bad, v.pop("vid_a")))
    _refused(read_ref_youtube_vos, meta_file, bad, tmp_path, root=root, check_files=False)


# ----------------------------------------------------------------------------- MeViS


@pytest.fixture
def tiny_mevis(tmp_path, save_rgb):
    root = tmp_path / "mevis"
    for t in range(2):
        save_rgb(root / "train/JPEGImages/v1" / f"{t:05d}.jpg", np.zeros((6, 8, 3)))
    meta = {"videos": {"v1": {"frames": ["00000", "00001"], "expressions": {
        "0": {"exp": "the two cats", "obj_id": [0, 1], "anno_id": [5, 7]},
    }}}}
    (root / "train/meta_expressions.json").write_text(json.dumps(meta))
    return root


def test_mevis_normal_dataset_reads(tiny_mevis):
    (record,) = read_mevis(tiny_mevis, split="train")
    assert record.video_id == "v1" and record.expressions[0].exp_id == "0"


def test_mevis_expression_id_escaping_is_refused(tiny_mevis, tmp_path):
    meta_file = tiny_mevis / "train/meta_expressions.json"
    _edit_meta(meta_file, lambda v: v["v1"]["expressions"].__setitem__(
        "../../x", {"exp": "bad", "obj_id": [0], "anno_id": [5]}))
    _refused(read_mevis, meta_file, "../../x", tmp_path, root=tiny_mevis, split="train")


def test_mevis_absolute_video_id_is_refused(tiny_mevis, tmp_path):
    meta_file = tiny_mevis / "train/meta_expressions.json"
    absolute = str(tiny_mevis / "train/JPEGImages/v1")  # exists: would be read without the check
    _edit_meta(meta_file, lambda v: v.__setitem__(absolute, v.pop("v1")))
    _refused(read_mevis, meta_file, absolute, tmp_path, root=tiny_mevis, split="train")


# ----------------------------------------------------------------------------- Ref-DAVIS17, A2D


def test_davis_expression_files_refuse_bad_sequences(tmp_path):
    txt = tmp_path / "Davis17_annot1.txt"
    txt.write_text('bear 1 "a bear"\n.. 1 "up one folder"\n')
    with pytest.raises(DatasetFormatError, match=r"line 2: video id '\.\.'") as info:
        read_davis_expressions_txt(txt)
    assert str(txt) in str(info.value)
    csv_file = tmp_path / "refvos.csv"
    csv_file.write_text("video_id;instance_id;ref_exp\nbear;1;a bear\n/etc;1;a file\n")
    with pytest.raises(DatasetFormatError, match=r"line 3: video id '/etc'") as info:
        read_davis_expressions_csv(csv_file)
    assert str(csv_file) in str(info.value)


def test_a2d_refuses_bad_video_ids(tmp_path):
    root = tmp_path / "a2d"
    (root / "Release").mkdir(parents=True)
    (root / "text_annotations").mkdir()
    videoset = root / "Release/videoset.csv"
    videoset.write_text("vidA,11,0,1,240,320,5,2,1\n../vidB,12,0,1,240,320,5,1,0\n")
    (root / "text_annotations/a2d_annotation.txt").write_text("video_id,instance_id,query\nvidA,0,a man\n")
    with pytest.raises(DatasetFormatError, match=r"line 2: video id '\.\./vidB'") as info:
        read_a2d_sentences(root)
    assert str(videoset) in str(info.value)
    videoset.write_text("vidA,11,0,1,240,320,5,2,1\n")
    queries = root / "text_annotations/a2d_annotation.txt"
    queries.write_text("video_id,instance_id,query\nvidA,0,a man\n/vidA,0,a man\n")
    with pytest.raises(DatasetFormatError, match=r"line 3: video id '/vidA'") as info:
        read_a2d_sentences(root)
    assert str(queries) in str(info.value)


# ----------------------------------------------------------------------------- submission writer


def _prediction(video_id="vid", exp_ids=("0",), names=("00000",)) -> VideoPrediction:
    masks = np.zeros((len(exp_ids), len(names), 4, 6), dtype=bool)
    return VideoPrediction(video_id, list(exp_ids), list(range(len(names))), list(names), masks)


def test_submission_entries_are_relative(tmp_path):
    zip_path = write_ytvos_submission([_prediction(exp_ids=("0", "1"))], tmp_path / "out")
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
    assert names == ["Annotations/vid/0/00000.png", "Annotations/vid/1/00000.png"]


@pytest.mark.parametrize("field, bad", [("exp_ids", ("../../../x",)), ("video_id", "ABSOLUTE"), ("names", ("..",))])
def test_submission_writer_refuses_escaping_ids(tmp_path, field, bad):
    out = tmp_path / "deep" / "out"
    if bad == "ABSOLUTE":  # an absolute path inside tmp_path, so a regression writes nowhere else
        bad = str(tmp_path / "escaped")
    before = _all_files(tmp_path)
    with pytest.raises(ValueError, match="not a single path component"):
        write_ytvos_submission([_prediction(**{field: bad})], out)
    assert _all_files(tmp_path) == before
