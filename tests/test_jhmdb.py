"""JHMDB-Sentences in the published layout (Rename_Images, puppet_mask .mat, jhmdb_annotation.txt),
the MAT-file reader it needs, and its evaluation with the A2D protocol."""

from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from rvoslib.data import read_dataset, read_jhmdb_sentences
from rvoslib.data.jhmdb import scored_frames
from rvoslib.data.matfile import read_mat_variable

from layouts import write_jhmdb, write_mat

# ----------------------------------------------------------------------------- MAT files

# written by scipy.io.savemat({"other": np.arange(6.).reshape(2, 3), "part_mask": A}, do_compression=True)
# with A = (np.random.default_rng(0).random((5, 7, 3)) > 0.5).astype(np.uint8)
SCIPY_COMPRESSED = (
    "TUFUTEFCIDUuMCBNQVQtZmlsZSBQbGF0Zm9ybTogcG9zaXgsIENyZWF0ZWQgb246IFdlZCBEZWMgIDIgMDA6NTU6MzQgMjAyNgAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABSU0PAAAAOwAAAHic42NgYMgAYjYg5oDSIMAK5TMBMTMQM0LF8ksyUouANCcQ"
    "GzCgAw4HCP3BHkILQPkMUFrEAQABowVZDwAAAFkAAAB4nD2OXQqAMAyDU8U/EK8oexQRRD2cxzNrUwNfw5psbAHwkp6MZEKoI7N8IK32ps5Zrmc9yr1r"
    "35DNc2PFqrnnwO+GKHi1yoM4IF9Qphm3ERXLb7g+6o4Fbw=="
)


def test_mat_reader_reads_a_scipy_compressed_file(tmp_path):
    path = tmp_path / "scipy.mat"
    path.write_bytes(base64.b64decode(SCIPY_COMPRESSED))
    expected = (np.random.default_rng(0).random((5, 7, 3)) > 0.5).astype(np.uint8)
    assert np.array_equal(read_mat_variable(path, "part_mask"), expected)
    assert np.array_equal(read_mat_variable(path, "other"), np.arange(6.0).reshape(2, 3))
    with pytest.raises(KeyError, match="no variable 'nope'"):
        read_mat_variable(path, "nope")


def test_mat_reader_round_trips_the_spec_writer_and_rejects_other_files(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_mat(tmp_path / "a.mat", "part_mask", array)
    assert np.array_equal(read_mat_variable(tmp_path / "a.mat", "part_mask"), array)
    (tmp_path / "b.mat").write_bytes(b"not a mat file" * 20)
    with pytest.raises(ValueError, match="b.mat: not a MATLAB"):
        read_mat_variable(tmp_path / "b.mat", "part_mask")


# ----------------------------------------------------------------------------- the dataset


def test_jhmdb_reader_gives_puppet_masks_on_the_scored_frames(tmp_path):
    parts = write_jhmdb(tmp_path)
    records = read_jhmdb_sentences(tmp_path)
    assert [r.video_id for r in records] == list(parts)
    record = records[0]
    assert record.num_frames == 8 and record.frame_names[0] == "00001"
    assert [(e.text, e.obj_ids) for e in record.expressions] == [("woman brushing her hair", [1])]
    assert record.annotated_indices() == scored_frames(6, 3) == [1, 3, 5]  # middles of 3 parts of 6 masked frames
    for index in record.annotated_indices():
        assert np.array_equal(record.load_mask(index, [1]), parts[record.video_id][:, :, index])
    every = read_dataset("jhmdb", tmp_path, frames_per_video=None)[0]
    assert every.annotated_indices() == list(range(6))  # frames 7-8 have no mask


def test_jhmdb_missing_mask_file_and_bad_header_are_named(tmp_path):
    write_jhmdb(tmp_path)
    (tmp_path / "puppet_mask" / "run" / "Run_fast_f_cm_np1_ri_med_1" / "puppet_mask.mat").unlink()
    with pytest.raises(FileNotFoundError, match="Run_fast_f_cm_np1_ri_med_1/puppet_mask.mat"):
        read_jhmdb_sentences(tmp_path)
    (tmp_path / "jhmdb_annotation.txt").write_text("video,sentence\nx,y\n")
    with pytest.raises(ValueError, match=r"jhmdb_annotation.txt: missing column"):
        read_jhmdb_sentences(tmp_path)


def test_jhmdb_evaluation_uses_the_a2d_protocol(tmp_path):
    from rvoslib.config import get_preset
    from rvoslib.evaluate import evaluate_dataset
    from rvoslib.model import build_model

    write_jhmdb(tmp_path)
    cfg = get_preset("tiny").model
    cfg.num_frames = 2
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    results = evaluate_dataset(model, tmp_path, "jhmdb", split=None, out_dir=tmp_path / "eval", device="cpu",
                               progress=False)
    assert results["format"] == "jhmdb-sentences" and results["num_videos"] == 2
    assert results["num_samples"] == 2 * 3  # 3 scored frames per video, the actor present in each
    assert {"mAP", "overall_iou", "mean_iou", "P@0.5"} <= set(results)
    assert (tmp_path / "eval" / "metrics.json").is_file()
