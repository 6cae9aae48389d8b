"""benchmarks/mask_resolution.py: the best J of a mask whose logits live at stride s."""

import json

import pytest
import torch

from benchmarks import mask_resolution as mr


def square(size=32, top=8, left=8, side=8):
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_a_grid_aligned_square_fits_at_its_stride_but_pooling_rounds_its_corners():
    masks = square()[None]  # an 8-pixel square on the 4-pixel grid
    assert mr.fitted_iou(masks, 4)[0] > 0.99
    assert mr.pooled_iou(masks, 4)[0] == pytest.approx(60 / 64)  # bilinear upsampling cuts one pixel per corner


def test_a_small_object_is_lost_at_a_coarse_stride_and_fitting_beats_pooling():
    masks = torch.stack([square(side=3, top=9, left=10), square(side=5, top=5, left=13)])  # off-grid, small
    fine, coarse = mr.fitted_iou(masks, 2), mr.fitted_iou(masks, 8)
    assert (fine > coarse + 0.2).all(), (fine, coarse)
    assert (mr.fitted_iou(masks, 8) >= mr.pooled_iou(masks, 8) - 1e-9).all()
    assert mr.pooled_iou(masks, 8)[0] == 0.0  # a 3-pixel square covers < half of every 8 x 8 cell


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="divisible by stride 4"):
        mr.pooled_iou(torch.zeros(2, 30, 32, dtype=torch.bool), 4)


def test_command_writes_json_and_table(tmp_path):
    assert mr.main(["--seed", "5", "--videos", "2", "--out", str(tmp_path / "r.json")]) == 0
    rows = {r["stride"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert rows[2]["fitted_j"] > rows[8]["fitted_j"]  # finer logits fit the synthetic objects better
    assert "| 4 | 16 x 16 |" in (tmp_path / "r.md").read_text()
    assert all(r["fitted_j"] >= r["pooled_j"] for r in rows.values())
