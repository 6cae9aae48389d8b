"""Hand-computed checks of rvoslib.metrics (DAVIS J/F/J&F, statistics, A2D metrics).

Small images (diagonal < 125 px) have a boundary tolerance of ceil(0.008 * diag) = 1
pixel, i.e. the radius-1 disk (a plus sign): a boundary pixel is matched when the other
boundary has a pixel at Manhattan distance <= 1.
"""

import math

import numpy as np
import pytest
from PIL import Image

from rvoslib import iou_metrics as IOU
from rvoslib import metrics as M


def square(shape, top, left, size):
    """Bool mask with a size x size square whose top-left pixel is (top, left)."""
    m = np.zeros(shape, bool)
    m[top : top + size, left : left + size] = True
    return m


def grid(rows):
    """Bool array from strings of '0' / '1'."""
    return np.array([[c == "1" for c in r] for r in rows])


# ----------------------------------------------------------------------- seg2bmap


def test_seg2bmap_square_ring_includes_background_pixels():
    # 2x2 square at rows 1-2, cols 1-2: the boundary is the 3x3 ring whose top-left is
    # (0, 0): background pixels left of / above the object count, the object's own
    # top-left pixel (1, 1) does not (its right, lower and lower-right neighbours agree).
    expected = grid(["111000", "101000", "111000", "000000", "000000", "000000"])
    assert np.array_equal(M.seg2bmap(square((6, 6), 1, 1, 2)), expected)


def test_seg2bmap_last_row_and_last_column_rules():
    # Object = bottom row: the last row only looks right (no change), so only row 1 is boundary;
    # (1, 2) is in the last column, which only looks down (0 vs 1).
    mask = grid(["000", "000", "111"])
    assert np.array_equal(M.seg2bmap(mask), grid(["000", "111", "000"]))
    # Object = last column: column 2 only looks down (equal except at the bottom-right corner,
    # which is never boundary); column 1 differs from its right neighbour everywhere.
    mask = grid(["0001", "0001", "0001"])
    assert np.array_equal(M.seg2bmap(mask), grid(["0010", "0010", "0010"]))
    # A pixel in the last row, middle column.
    mask = grid(["000", "000", "010"])
    assert np.array_equal(M.seg2bmap(mask), grid(["000", "110", "110"]))


def test_seg2bmap_full_and_empty_masks_have_no_boundary():
    assert not M.seg2bmap(np.ones((4, 5), bool)).any()
    assert not M.seg2bmap(np.zeros((4, 5), bool)).any()


# ----------------------------------------------------------------------- disk / dilation


def test_disk_footprints():
    assert np.array_equal(M.disk(1), grid(["010", "111", "010"]))
    assert np.array_equal(M.disk(2), grid(["00100", "01110", "11111", "01110", "00100"]))
    assert M.disk(8).shape == (17, 17) and M.disk(8).sum() == 197  # lattice points with x^2 + y^2 <= 64


def test_dilation_equals_or_of_shifts_and_clips_at_border():
    point = np.zeros((5, 6), bool)
    point[0, 5] = True  # top-right corner
    assert np.array_equal(M.binary_dilate_disk(point, 1), grid(["000011", "000001", "000000", "000000", "000000"]))
    rng = np.random.default_rng(0)
    src = rng.random((23, 31)) < 0.05
    for radius in (0, 2, 5):
        expected = np.zeros_like(src)
        for dy, dx in zip(*np.nonzero(M.disk(radius))):
            dy, dx = dy - radius, dx - radius
            shifted = np.zeros_like(src)
            shifted[max(dy, 0) : 23 + min(dy, 0), max(dx, 0) : 31 + min(dx, 0)] = src[
                max(-dy, 0) : 23 - max(dy, 0), max(-dx, 0) : 31 - max(dx, 0)
            ]
            expected |= shifted
        assert np.array_equal(M.binary_dilate_disk(src, radius), expected)


def test_boundary_radius():
    assert M.boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.65)
    assert M.boundary_radius((6, 6)) == 1
    assert M.boundary_radius((480, 854), bound_th=3) == 3
    with pytest.raises(ValueError):
        M.boundary_radius((10, 10), bound_th=2.5)


# ----------------------------------------------------------------------- J


def test_jaccard_hand_values_and_empty_cases():
    gt = square((6, 6), 1, 1, 2)
    assert M.jaccard(square((6, 6), 1, 2, 2), gt) == pytest.approx(2 / 6)
    assert M.jaccard(square((6, 6), 1, 1, 1), gt) == pytest.approx(1 / 4)
    empty = np.zeros((6, 6), bool)
    assert M.jaccard(empty, empty) == 1.0
    assert M.jaccard(empty, gt) == 0.0
    assert M.jaccard(gt, empty) == 0.0


def test_jaccard_void_pixels_are_excluded():
    gt = square((6, 6), 1, 1, 2)
    pred = gt.copy()
    pred[4, 4] = True  # a false positive ...
    void = np.zeros((6, 6), bool)
    void[4, 4] = True  # ... on a void pixel
    assert M.jaccard(pred, gt) == pytest.approx(4 / 5)
    assert M.jaccard(pred, gt, void) == 1.0
    void[1, 1] = True  # a void pixel inside the object leaves 3 / 3
    assert M.jaccard(pred, gt, void) == 1.0
    assert M.jaccard(np.zeros((6, 6)), gt, gt) == 1.0  # everything left is empty


def test_jaccard_per_frame():
    gt = np.stack([square((6, 6), 1, 1, 2)] * 3)
    pred = np.stack([square((6, 6), 1, 1, 2), square((6, 6), 1, 2, 2), np.zeros((6, 6), bool)])
    assert np.allclose(M.jaccard(pred, gt), [1.0, 1 / 3, 0.0])


# ----------------------------------------------------------------------- F


def test_f_identical_and_shift_within_tolerance():
    gt = square((6, 6), 1, 1, 2)
    assert M.boundary_f(gt, gt) == 1.0
    # Shift right by 1: every ring pixel is at most 1 px from the other ring.
    assert M.boundary_f(square((6, 6), 1, 2, 2), gt) == 1.0


def test_f_shift_by_two_hand_value():
    # GT ring: rows 0-2 x cols 0-2; predicted ring: rows 0-2 x cols 2-4.
    # Predicted pixels (0,4), (1,4), (2,4) are 2 px from the GT ring: precision 5/8,
    # and recall 5/8 by symmetry, so F = 5/8.
    gt, pred = square((6, 6), 1, 1, 2), square((6, 6), 1, 3, 2)
    assert M.boundary_f(pred, gt) == pytest.approx(0.625)
    assert M.jaccard(pred, gt) == 0.0


def test_f_asymmetric_precision_recall():
    # pred = single pixel (1,1): boundary {(0,0), (0,1), (1,0), (1,1)}, all within 1 px
    # of the GT ring -> precision 1. GT ring pixel (2,2) is 2 px (L1) from every
    # predicted boundary pixel -> recall 7/8. F = 2 * 7/8 / (15/8) = 14/15.
    gt, pred = square((6, 6), 1, 1, 2), square((6, 6), 1, 1, 1)
    assert M.boundary_f(pred, gt) == pytest.approx(14 / 15)


def test_f_empty_boundary_conventions():
    empty = np.zeros((6, 6), bool)
    gt = square((6, 6), 1, 1, 2)
    assert M.boundary_f(empty, empty) == 1.0
    assert M.boundary_f(empty, gt) == 0.0
    assert M.boundary_f(gt, empty) == 0.0
    full = np.ones((6, 6), bool)  # a full mask has no boundary at all
    assert M.boundary_f(full, full) == 1.0
    assert M.boundary_f(full, gt) == 0.0


def test_f_void_pixels_removed_from_both_masks():
    # Extra predicted pixel at (4,4) adds boundary {(3,3), (3,4), (4,3), (4,4)}, none
    # within 1 px of the GT ring: precision 8/12, recall 1, F = 0.8. On a void pixel it vanishes.
    gt = square((6, 6), 1, 1, 2)
    pred = gt.copy()
    pred[4, 4] = True
    void = np.zeros((6, 6), bool)
    void[4, 4] = True
    assert M.boundary_f(pred, gt) == pytest.approx(0.8)
    assert M.boundary_f(pred, gt, void) == 1.0


def test_f_854x480_radius_8():
    # radius = ceil(0.008 * sqrt(854^2 + 480^2)) = 8. The GT boundary of a 100 x 100
    # square is the perimeter of a 101 x 101 rectangle (400 pixels).
    shape = (480, 854)
    gt = square(shape, 190, 377, 100)
    assert M.boundary_f(square(shape, 190, 385, 100), gt) == 1.0  # shifted 8 px: all within 8
    # Shifted 9 px: of the 400 predicted boundary pixels, the 101 of the right edge are
    # 9 px from everything, and so are 83 of the left edge (those more than 8 rows away
    # from the top and bottom edges): precision = recall = 216 / 400.
    pred = square(shape, 190, 386, 100)
    assert M.boundary_f(pred, gt) == pytest.approx(216 / 400)
    assert M.jaccard(pred, gt) == pytest.approx(91 / 109)


def test_f_per_frame_and_shape_errors():
    gt = np.stack([square((6, 6), 1, 1, 2)] * 2)
    pred = np.stack([square((6, 6), 1, 1, 2), square((6, 6), 1, 3, 2)])
    assert np.allclose(M.boundary_f(pred, gt), [1.0, 0.625])
    with pytest.raises(ValueError, match="shape"):
        M.boundary_f(np.zeros((5, 6)), np.zeros((6, 6)))


# ----------------------------------------------------------------------- statistics


def test_statistics_hand_sequence():
    # n = 10: bin edges round(linspace(1, 10, 5)) - 1 = 0, 2, 5, 7, 9 -> first bin frames
    # 0..2, last bin frames 7..9. Decay = 1.0 - mean(0.4, 0.2, 0.0) = 0.8.
    values = [1.0, 1.0, 1.0, 0.9, 0.8, 0.6, 0.5, 0.4, 0.2, 0.0]
    stats = M.statistics(values)
    assert stats.mean == pytest.approx(0.64)
    assert stats.recall == pytest.approx(0.6)  # 0.5 itself is not > 0.5
    assert stats.decay == pytest.approx(0.8)
    assert M.decay_bins(10) == [slice(0, 3), slice(2, 6), slice(5, 8), slice(7, 10)]


def test_statistics_rounds_halves_up_like_the_toolkit():
    # n = 3: linspace(1, 3, 5) = 1, 1.5, 2, 2.5, 3 -> edges 0, 1, 1, 2, 2 (halves up, not to
    # even), so the last bin is frame 2 alone: decay = mean(1.0, 0.8) - 0.2 = 0.7
    # (round-half-to-even would give 0.9 - 0.5 = 0.4).
    assert M.decay_bins(3)[-1] == slice(2, 3)
    assert M.statistics([1.0, 0.8, 0.2]).decay == pytest.approx(0.7)


def test_statistics_single_frame_and_errors():
    stats = M.statistics([0.7])
    assert (stats.mean, stats.recall, stats.decay) == (pytest.approx(0.7), 1.0, 0.0)
    with pytest.raises(ValueError):
        M.statistics([])


# ----------------------------------------------------------------------- folders


def save_png(path, labels):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(labels.astype(np.uint8))
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [255, 255, 255] * 252)
    img.save(path)


def make_dataset(root):
    """Two sequences with hand-known scores (6 x 8 frames, tolerance 1 px).

    seq_a, 4 frames. Object 1: GT square rows 1-2, cols 1-2; prediction exact in frames
    0-1, shifted 2 px right in frame 2 (J 0, F 5/8), missing in frame 3 (J 0, F 0).
    Object 2: one pixel at (4, 5), always exact.
    seq_b, 1 frame. Object 3: GT square, prediction its top-left pixel (J 1/4, F 14/15).
    """
    shape = (6, 8)
    for t in range(4):
        gt = np.zeros(shape, np.uint8)
        gt[1:3, 1:3] = 1
        gt[4, 5] = 2
        pred = np.zeros(shape, np.uint8)
        pred[4, 5] = 2
        if t < 2:
            pred[1:3, 1:3] = 1
        elif t == 2:
            pred[1:3, 3:5] = 1
        save_png(root / "gt" / "seq_a" / f"{t:05d}.png", gt)
        save_png(root / "pred" / "seq_a" / f"{t:05d}.png", pred)
    gt = np.zeros(shape, np.uint8)
    gt[1:3, 1:3] = 3
    pred = np.zeros(shape, np.uint8)
    pred[1, 1] = 3
    save_png(root / "gt" / "seq_b" / "00000.png", gt)
    save_png(root / "pred" / "seq_b" / "00000.png", pred)


def test_evaluate_folders_hand_values(tmp_path):
    make_dataset(tmp_path)
    result = M.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    rows = {o.name: o for o in result.objects}
    assert sorted(rows) == ["seq_a_1", "seq_a_2", "seq_b_3"]
    obj1 = rows["seq_a_1"]
    assert np.allclose(obj1.j, [1, 1, 0, 0]) and np.allclose(obj1.f, [1, 1, 0.625, 0])
    # n = 4: bins [0:2] and [2:4].
    assert (obj1.j_stats.mean, obj1.j_stats.recall, obj1.j_stats.decay) == (0.5, 0.5, 1.0)
    assert (obj1.f_stats.mean, obj1.f_stats.recall, obj1.f_stats.decay) == (0.65625, 0.75, 0.6875)
    assert rows["seq_a_2"].jf_mean == 1.0
    assert rows["seq_b_3"].j_stats.mean == pytest.approx(0.25)
    assert rows["seq_b_3"].f_stats.mean == pytest.approx(14 / 15)
    j_mean, f_mean = (0.5 + 1 + 0.25) / 3, (0.65625 + 1 + 14 / 15) / 3
    expected = {
        "J&F-Mean": (j_mean + f_mean) / 2,
        "J-Mean": j_mean,
        "J-Recall": (0.5 + 1 + 0) / 3,
        "J-Decay": 1 / 3,
        "F-Mean": f_mean,
        "F-Recall": (0.75 + 1 + 1) / 3,
        "F-Decay": 0.6875 / 3,
    }
    assert result.summary == pytest.approx(expected)
    table = M.format_table(result)
    assert "J&F-Mean" in table and "seq_b_3" in table and f"{expected['J&F-Mean']:.3f}" in table
    only_b = M.evaluate_folders(tmp_path / "pred", tmp_path / "gt", sequences=["seq_b"])
    assert [o.name for o in only_b.objects] == ["seq_b_3"]
    trimmed = M.evaluate_folders(tmp_path / "pred", tmp_path / "gt", ["seq_a"], skip_first_last=True)
    assert np.allclose(trimmed.objects[0].j, [1, 0])


def test_evaluate_folders_void(tmp_path):
    gt = np.zeros((6, 6), np.uint8)
    gt[1:3, 1:3] = 1
    gt[4, 4] = M.VOID_LABEL
    pred = np.zeros((6, 6), np.uint8)
    pred[1:3, 1:3] = 1
    pred[4, 4] = 1
    save_png(tmp_path / "gt" / "s" / "0.png", gt)
    save_png(tmp_path / "pred" / "s" / "0.png", pred)
    as_toolkit = M.evaluate_folders(tmp_path / "pred", tmp_path / "gt")  # void -> background
    assert [o.object_id for o in as_toolkit.objects] == [1]  # 255 is not an object
    assert as_toolkit.summary["J-Mean"] == pytest.approx(0.8)
    assert as_toolkit.summary["F-Mean"] == pytest.approx(0.8)
    excluded = M.evaluate_folders(tmp_path / "pred", tmp_path / "gt", exclude_void=True)
    assert excluded.summary["J&F-Mean"] == 1.0


def test_evaluate_folders_clear_errors(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "pred" / "seq_b" / "00000.png").unlink()
    with pytest.raises(FileNotFoundError, match="00000.png"):
        M.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    save_png(tmp_path / "pred" / "seq_b" / "00000.png", np.zeros((5, 8)))
    with pytest.raises(ValueError, match="differs from the ground truth"):
        M.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    Image.new("RGB", (8, 6)).save(tmp_path / "pred" / "seq_b" / "00000.png")
    with pytest.raises(ValueError, match="mode RGB"):
        M.evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    with pytest.raises(FileNotFoundError):
        M.evaluate_folders(tmp_path / "nowhere", tmp_path / "gt")


# ----------------------------------------------------------------------- A2D / JHMDB


def test_iou_metrics_hand_values():
    gt = [square((4, 4), 0, 0, 2), square((4, 4), 0, 0, 2)]
    pred = [gt[0] | square((4, 4), 2, 0, 1) | square((4, 4), 2, 1, 1), square((4, 4), 0, 0, 1)]
    # sample 0: I = 4, U = 6 -> 2/3; sample 1: I = 1, U = 4 -> 1/4
    out = IOU.iou_metrics(pred, gt)
    assert out["overall_iou"] == pytest.approx(5 / 10)
    assert out["mean_iou"] == pytest.approx((2 / 3 + 1 / 4) / 2)
    assert out["P@0.5"] == 0.5 and out["P@0.6"] == 0.5 and out["P@0.7"] == 0.0
    assert IOU.mask_iou(np.zeros((3, 3)), np.zeros((3, 3)))[0] == pytest.approx(1.0)


def test_coco_map_perfect_predictions():
    gt = [square((20, 20), 0, 0, 10), square((20, 20), 5, 5, 6)]
    out = IOU.a2d_metrics(gt, gt, scores=[0.9, 0.3])
    assert out["mAP"] == pytest.approx(1.0)
    assert out["overall_iou"] == pytest.approx(1.0) and out["P@0.9"] == 1.0


def test_coco_map_iou_between_thresholds():
    # IoU 72/100 = 0.72: a true positive at thresholds 0.50..0.70 (5 of 10), a false
    # positive at 0.75..0.95 -> mAP = 0.5, AP50 = 1, AP75 = 0.
    gt = square((20, 20), 0, 0, 10)
    pred = np.zeros((20, 20), bool)
    pred[0:9, 0:8] = True
    out = IOU.coco_map([pred], [gt])
    assert out["mAP"] == pytest.approx(0.5)
    assert out["AP50"] == pytest.approx(1.0) and out["AP75"] == pytest.approx(0.0)


def test_coco_map_ranking_across_samples():
    # Sample 0 perfect (score 0.9), sample 1 IoU 0.72 (score 0.8). At 0.50..0.70 both
    # match: AP 1. At 0.75..0.95 the ranked list is TP, FP: recall 0.5 at precision 1,
    # so 51 of the 101 recall points have precision 1: AP 51/101. mAP = (5 + 5 * 51/101) / 10.
    gt = [square((20, 20), 0, 0, 10), square((20, 20), 0, 0, 10)]
    pred1 = np.zeros((20, 20), bool)
    pred1[0:9, 0:8] = True
    out = IOU.a2d_metrics([gt[0], pred1], gt, scores=[0.9, 0.8])
    assert out["mAP"] == pytest.approx((5 + 5 * 51 / 101) / 10)
    assert out["mean_iou"] == pytest.approx((1 + 0.72) / 2)


def test_a2d_top_scoring_candidate_is_used_for_iou():
    gt = square((20, 20), 0, 0, 10)
    candidates = np.stack([np.zeros((20, 20), bool), gt])  # (K=2, H, W)
    out = IOU.a2d_metrics([candidates], [gt], scores=[np.array([0.2, 0.7])])
    assert out["mean_iou"] == pytest.approx(1.0)
    assert out["mAP"] == pytest.approx(1.0)  # the empty candidate ranks below the match
    with pytest.raises(ValueError, match="scores"):
        IOU.a2d_metrics([candidates], [gt], scores=[[0.5]])
    assert math.isclose(IOU.iou_metrics([gt], [gt])["P@0.9"], 1.0)
